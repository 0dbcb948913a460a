"""A stand-in for the Telegram Bot API: a real HTTP server on loopback.

It runs in a thread with its own event loop, so it serves sync pytest code, async tests
and a Rasa server in another process alike. It answers like the real API (the same
envelopes, the same 429 for flood control) and records every call.

    api = FakeTelegramApi()
    root = api.start()          # http://127.0.0.1:<port>: pass as TELEGRAM_API_BASE_URL
    ...
    api.wait_for("sendMessage", 2, timeout=15, chat_id=42)
    api.stop()

ptb posts its parameters as a form, with every value that is not a string JSON-encoded;
other clients post JSON. Both are recorded as a dict; a form value that is a JSON object
or array (`reply_markup`) is decoded, the others stay strings, so compare chat ids with
`str(...)` or use `chat_id=` in `wait_for` and `sent_to`.
"""
import asyncio
import json
import threading
import time
from typing import Any, Dict, List, Optional

from aiohttp import web

from tests.fakes.calls import CallLog
from tests.fakes.loopback import LoopbackServer

BOT_NAME = "AVRR test bot"


class Call(tuple):
    """(method, params), as recorded; `.at` is when it arrived (time.monotonic())."""

    def __new__(cls, method: str, params: Dict[str, Any], at: float) -> "Call":
        call = super().__new__(cls, (method, params))
        call.at = at
        return call

    @property
    def method(self) -> str:
        return self[0]

    @property
    def params(self) -> Dict[str, Any]:
        return self[1]


def _decode_form_value(value: str) -> Any:
    if value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _chat(chat_id: Any) -> Dict[str, Any]:
    """The chat as Telegram describes it: a person's id is positive, a group's negative."""
    try:
        number = int(chat_id)
    except (TypeError, ValueError):  # "@channelusername"
        return {"id": -1001000000001, "type": "channel", "username": str(chat_id).lstrip("@")}
    if number > 0:
        return {"id": number, "type": "private"}
    kind = "supergroup" if str(number).startswith("-100") else "group"
    return {"id": number, "type": kind, "title": "Test group"}


class FakeTelegramApi:
    def __init__(self, token: Optional[str] = None) -> None:
        # Chats whose person blocked the bot: sendMessage answers 403.
        self.blocked: set = set()
        """`token`: if given, any other token is refused with 401, as Telegram does."""
        self.token = token
        self.calls = CallLog()
        self.refused = CallLog()  # the calls answered 429 by fail_next
        self._failures: Dict[str, List[int]] = {}
        self._updates: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next_message_id = 1
        self._server = LoopbackServer("fake-telegram-api")
        self.url = ""

    # -- control, from the test's thread --

    def start(self) -> str:
        """Serve on a free loopback port; returns the API root (no /bot suffix)."""
        self.url = self._server.start(
            lambda app: app.router.add_post("/bot{token}/{method}", self._answer)
        )
        return self.url

    def stop(self) -> None:
        self._server.stop()

    def fail_next(self, method: str, retry_after: int = 1) -> None:
        """The next call of `method` gets Telegram's 429 "Too Many Requests"."""
        with self._lock:
            self._failures.setdefault(method, []).append(retry_after)

    def push_update(self, update: Dict[str, Any]) -> None:
        """An update for the next getUpdates (polling mode)."""
        with self._lock:
            self._updates.append(update)

    def wait_for(
        self, method: str, count: int, timeout: float = 15, chat_id: Any = None
    ) -> List[Call]:
        """The calls of `method` (to `chat_id`, if given), once there are `count` of them."""

        def matching(calls: List[Call]) -> List[Call]:
            return [
                c for c in calls
                if c.method == method
                and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
            ]

        if not self.calls.wait(lambda calls: len(matching(calls)) >= count, timeout):
            seen = [c.method for c in self.calls]
            raise AssertionError(f"expected {count} {method} call(s) in {timeout} s; saw {seen}")
        return matching(self.calls.snapshot())

    def sent_to(self, chat_id: Any) -> List[Call]:
        """The sendMessage calls to `chat_id` so far."""
        return [
            c for c in self.calls
            if c.method == "sendMessage" and str(c.params.get("chat_id")) == str(chat_id)
        ]

    # -- the server, in its own thread --

    async def _params(self, request: web.Request) -> Dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return body if isinstance(body, dict) else {}
        if request.can_read_body:
            form = await request.post()
            return {key: _decode_form_value(str(value)) for key, value in form.items()}
        return dict(request.query)

    async def _answer(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)

        if self.token is not None and request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        with self._lock:
            failures = self._failures.get(method)
            retry_after = failures.pop(0) if failures else None
        if retry_after is not None:
            self.refused.append(call)
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                },
                status=429,
            )
        if method == "sendMessage" and str(params.get("chat_id")) in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        answer = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "answerCallbackQuery": self._true,
            "setWebhook": self._true,
            "deleteWebhook": self._true,
            "getUpdates": self._get_updates,
        }.get(method)
        if answer is None:
            return _error(404, "Not Found")
        result = answer(request.match_info["token"], params)
        if asyncio.iscoroutine(result):
            result = await result
        return web.json_response({"ok": True, "result": result})

    def _get_me(self, token: str, params: Dict[str, Any]) -> Dict[str, Any]:
        return _bot_user(token) | {
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _send_message(self, token: str, params: Dict[str, Any]) -> Dict[str, Any]:
        with self._lock:
            message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        message = {
            "message_id": message_id,
            "from": _bot_user(token),
            "chat": _chat(params.get("chat_id")),
            "date": int(time.time()),
            "text": params.get("text", ""),
        }
        if isinstance(params.get("reply_markup"), dict):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _true(self, token: str, params: Dict[str, Any]) -> bool:
        return True

    async def _get_updates(self, token: str, params: Dict[str, Any]) -> List[Dict[str, Any]]:
        # A long poll waits for an update, briefly here, so that a polling loop does not spin.
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
        offset = int(params.get("offset") or 0)
        while True:
            with self._lock:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                pending = list(self._updates)
            if pending or time.monotonic() >= deadline:
                return pending
            await asyncio.sleep(0.05)


def _bot_user(token: str) -> Dict[str, Any]:
    bot_id = token.split(":")[0]
    return {
        "id": int(bot_id) if bot_id.isdigit() else 1,
        "is_bot": True,
        "first_name": BOT_NAME,
        "username": "avrr_test_bot",
    }


def _error(status: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )
