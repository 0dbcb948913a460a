"""A stand-in for Meta's Graph API (WhatsApp Cloud API): a real HTTP server on loopback.

It runs in a thread with its own event loop, so it serves sync pytest code, async tests
and a Rasa server in another process alike. It answers POST /<version>/<phone number
id>/messages as the real API does (the same response and error envelopes, 401 for a
wrong token) and records every message it took.

    api = FakeGraphApi()
    base = api.start()          # http://127.0.0.1:<port>/v21.0: WHATSAPP_API_BASE_URL
    ...
    api.fail_next(status=429)   # the next message is refused once, as under rate limiting
    api.wait_for(2, to="36201234567", timeout=15)
    api.stop()

Also the webhook bodies Meta sends (`message_payload`, `status_payload`, ...) and their
signature (`signed`).
"""
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from tests.fakes.calls import CallLog
from tests.fakes.loopback import LoopbackServer

TOKEN = "wa-test-token"
PHONE_NUMBER_ID = "1098765432"
DISPLAY_PHONE_NUMBER = "36 1 555 0100"
BUSINESS_ACCOUNT_ID = "2109876543"


def new_message_id() -> str:
    """A message id shaped like Meta's ("wamid." and base64)."""
    return "wamid." + secrets.token_urlsafe(36)


Call = Tuple[str, Dict[str, Any]]  # (path, json body)


class FakeGraphApi:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls = CallLog()  # the messages taken
        self.refused = CallLog()  # the messages answered with an error (fail_next, bad token)
        self._failures: List[Tuple[int, Optional[int]]] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer("fake-graph-api")
        self.url = ""

    # -- control, from the test's thread --

    def start(self, version: str = "v21.0") -> str:
        """Serve on a free loopback port; returns the base URL with `version`."""
        self.url = self._server.start(
            lambda app: app.router.add_post("/{version}/{phone_number_id}/messages", self._answer)
        )
        return f"{self.url}/{version}"

    def stop(self) -> None:
        self._server.stop()

    def fail_next(self, status: int = 429, code: Optional[int] = None, times: int = 1) -> None:
        """The next `times` messages get `status`, with Graph error `code` (a fitting
        default: 130429 for 429, 131000 for 5xx, 100 otherwise)."""
        default = 130429 if status == 429 else 131000 if status >= 500 else 100
        with self._lock:
            self._failures += [(status, code if code is not None else default)] * times

    def wait_for(
        self, count: int, to: Optional[str] = None, timeout: float = 15
    ) -> List[Dict[str, Any]]:
        """The messages taken (to `to`, if given), once there are at least `count`."""

        def matching(calls) -> List[Dict[str, Any]]:
            return [body for _, body in calls if to is None or body.get("to") == to]

        if not self.calls.wait(lambda calls: len(matching(calls)) >= count, timeout):
            seen = [(body.get("to"), body.get("type")) for _, body in self.calls]
            raise AssertionError(f"expected {count} message(s) in {timeout} s; saw {seen}")
        return matching(self.calls.snapshot())

    def sent_to(self, to: str) -> List[Dict[str, Any]]:
        """The messages taken for `to` so far."""
        return [body for _, body in self.calls if body.get("to") == to]

    # -- the server, in its own thread --

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        call = (request.path, body if isinstance(body, dict) else {})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused.append(call)
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            self.refused.append(call)
            return _error(failure[0], failure[1], "Failure requested by the test")
        problem = _problem(call[1])
        if problem:
            self.refused.append(call)
            return _error(400, 100, f"(#100) {problem}")
        self.calls.append(call)
        to = str(call[1]["to"])
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": new_message_id()}],
            }
        )


def _problem(body: Dict[str, Any]) -> Optional[str]:
    """What the real API would refuse in a message body, or None."""
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    if not body.get("to"):
        return "The parameter to is required."
    kind = body.get("type", "text")
    if not isinstance(body.get(kind), dict):
        return f"The parameter {kind} is required."
    if kind == "text" and not 0 < len(body["text"].get("body") or "") <= 4096:
        return "Param text['body'] must be 1-4096 characters long."
    if kind == "interactive":
        return _interactive_problem(body["interactive"])
    return None


def _interactive_problem(interactive: Dict[str, Any]) -> Optional[str]:
    body = (interactive.get("body") or {}).get("text") or ""
    if not 0 < len(body) <= 1024:
        return "Param interactive['body']['text'] must be 1-1024 characters long."
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        buttons = action.get("buttons") or []
        if not 0 < len(buttons) <= 3:
            return "Param interactive['action']['buttons'] must have 1-3 buttons."
        for button in buttons:
            reply = button.get("reply") or {}
            if not 0 < len(reply.get("title") or "") <= 20 or not reply.get("id"):
                return "Button title must be 1-20 characters and the id set."
        return None
    if interactive.get("type") == "list":
        sections = action.get("sections") or []
        rows = [row for section in sections for row in section.get("rows") or []]
        if not 0 < len(rows) <= 10 or not 0 < len(action.get("button") or "") <= 20:
            return "A list has 1-10 rows and a button label of 1-20 characters."
        for row in rows:
            if not 0 < len(row.get("title") or "") <= 24 or len(row.get("description", "")) > 72:
                return "Row title must be 1-24 characters, its description at most 72."
        return None
    return "Unsupported interactive type."


def _error(status: int, code: Optional[int], message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": secrets.token_urlsafe(12),
            }
        },
        status=status,
    )


# -- what Meta sends to the webhook --


def signed(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header Meta sends with `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _envelope(value: Dict[str, Any], phone_number_id: str) -> Dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": BUSINESS_ACCOUNT_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def message_payload(
    wa_id: str,
    text: Optional[str] = None,
    *,
    message_id: Optional[str] = None,
    kind: str = "text",
    content: Optional[Dict[str, Any]] = None,
    name: str = "Test Person",
    timestamp: Optional[float] = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> Dict[str, Any]:
    """A webhook body with one message from `wa_id`, as Meta sends it.

    A text message by default; otherwise the message type `kind` and its `content`,
    e.g. kind="image", content={"id": "...", "mime_type": "image/jpeg", "sha256": "..."}.
    """
    message = {
        "from": wa_id,
        "id": message_id or new_message_id(),
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "type": kind,
        kind: content if content is not None else {"body": text},
    }
    if kind == "interactive":
        message["context"] = {"from": DISPLAY_PHONE_NUMBER.replace(" ", ""), "id": new_message_id()}
    value = {
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [message],
    }
    return _envelope(value, phone_number_id)


def button_reply_payload(wa_id: str, button_id: str, title: str, **kwargs: Any) -> Dict[str, Any]:
    """The person pressed a reply button."""
    content = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
    return message_payload(wa_id, kind="interactive", content=content, **kwargs)


def list_reply_payload(
    wa_id: str, row_id: str, title: str, description: Optional[str] = None, **kwargs: Any
) -> Dict[str, Any]:
    """The person chose a row of a list."""
    reply = {"id": row_id, "title": title}
    if description:
        reply["description"] = description
    content = {"type": "list_reply", "list_reply": reply}
    return message_payload(wa_id, kind="interactive", content=content, **kwargs)


def image_payload(wa_id: str, **kwargs: Any) -> Dict[str, Any]:
    content = {
        "caption": "my papers",
        "mime_type": "image/jpeg",
        "sha256": hashlib.sha256(b"photo").hexdigest(),
        "id": "1234567890123456",
    }
    return message_payload(wa_id, kind="image", content=content, **kwargs)


def location_payload(wa_id: str, **kwargs: Any) -> Dict[str, Any]:
    content = {"latitude": 47.4979, "longitude": 19.0402, "name": "Budapest"}
    return message_payload(wa_id, kind="location", content=content, **kwargs)


def reaction_payload(
    wa_id: str, to_message: str, emoji: str = "\N{THUMBS UP SIGN}", **kwargs: Any
) -> Dict[str, Any]:
    content = {"message_id": to_message, "emoji": emoji}
    return message_payload(wa_id, kind="reaction", content=content, **kwargs)


def status_payload(
    wa_id: str,
    message_id: Optional[str] = None,
    status: str = "delivered",
    phone_number_id: str = PHONE_NUMBER_ID,
) -> Dict[str, Any]:
    """A status callback for a message we sent to `wa_id` (sent, delivered, read, failed)."""
    entry: Dict[str, Any] = {
        "id": message_id or new_message_id(),
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": wa_id,
    }
    if status in ("sent", "delivered"):
        entry["conversation"] = {"id": secrets.token_hex(16), "origin": {"type": "service"}}
        entry["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    if status == "failed":
        entry["errors"] = [
            {
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 "
                               "hours have passed since the customer last replied."},
            }
        ]
    return _envelope({"statuses": [entry]}, phone_number_id)


def encode(payload: Dict[str, Any]) -> bytes:
    """The body bytes as Meta sends them (compact JSON, UTF-8)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
