"""The address a client's requests are counted under, by the per-address limits."""
import ipaddress


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
