"""The address a client's requests are counted under, by the per-address limits; a
conversation id as a segment of a Rasa API path, and the API's answer when it has no
such conversation."""
import ipaddress
import urllib.parse

# RFC 3986's characters of a path segment beside letters and digits.
PATH_SAFE = ":@!$&'()*+,;="
# The Rasa server's 404 body for a conversation it does not have (bot/serve.py), which the
# desk tells apart from any other 404 (desk/rasa.py).
NO_CONVERSATION = {"error": "no such conversation"}


def counted_address(address: str) -> str:
    """`address`, or for IPv6 its /64: one home or phone is given a whole /64 and may
    take a new address in it for each request, so that an address alone is no limit.
    An IPv4 address written as IPv6 is counted as IPv4; what is not an address, as is."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def path_segment(conversation_id: str) -> str:
    """`conversation_id` in a Rasa API path, as its route reads it: Sanic does not unquote
    a path, so what a path segment may hold stays as it is ("telegram:42", "+3630...");
    the rest is percent-encoded. A client must send it as given (yarl: encoded=True)."""
    return urllib.parse.quote(conversation_id, safe=PATH_SAFE)
