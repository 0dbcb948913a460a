"""The desk's HTTP API and console: routes, authentication and the delivery loop."""

import asyncio
import hmac
import logging
import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional

import aiohttp
from aiohttp import web

from avrr.settings import DeskSettings
from avrr.vocabulary import Channel, channel_of
from desk.announce import Announcer
from desk.openapi import document
from desk.rasa import ConversationGone, DeliveryError, Rasa
from desk.store import URGENCIES, Store, now, parse_time

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "desk_session"
MAX_TEXT = 4096
# Transcripts of up to 200 messages of 4,096 characters fit (actions/handoff.py sends less).
MAX_BODY_BYTES = 1024 * 1024
# Ticket and message ids are 32-bit integers (PostgreSQL's INTEGER).
MAX_ID = 2**31 - 1
MAX_TRANSCRIPT = 500
DELIVERY_INTERVAL_S = 2.0
EXPIRE_EVERY_S = 3600.0  # the retention job
MAX_RETRY_PAUSE_S = 60.0
# Failed sign-ins allowed in LOGIN_WINDOW before the next attempt waits: per name from
# one address (the real counsellor elsewhere is not locked out by a stranger), per
# address (one machine guessing many names), and per name from anywhere.
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_LIMITS = {"pair": 5, "addr": 20, "name": 50}
PUBLIC = {("GET", "/health"), ("GET", "/"), ("POST", "/api/login")}
STATUS_TIMEOUT = aiohttp.ClientTimeout(total=3)
API_ONLY = {"create_ticket", "inbound", "delete_conversation"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fail(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class BadRequest(Exception):
    """The request body is not what the API documents."""


async def body_of(request: web.Request) -> Dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError) as invalid:
        raise BadRequest("the body must be JSON") from invalid
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def text_field(body: Dict[str, Any], name: str, limit: int = MAX_TEXT) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"'{name}' is longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as unstorable:  # a lone surrogate: no store can hold it
        raise BadRequest(f"'{name}' holds characters that are not text") from unstorable
    if "\x00" in value:
        raise BadRequest(f"'{name}' holds a NUL character")
    return value


class Desk:
    """The routes, with the store, the Rasa client and the announcer they share."""

    def __init__(self, settings: DeskSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.rasa = Rasa(settings.rasa_url, settings.rasa_api_token)
        self.announcer = Announcer(settings)
        self.delivery_lock = asyncio.Lock()
        # Per conversation: failed delivery attempts in a row, and when to try again.
        self.failures: Dict[str, int] = {}
        self.retry_at: Dict[str, float] = {}

    # Authentication.

    def principal(self, request: web.Request) -> Optional[Dict[str, Any]]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer ") :].encode("utf-8", "replace")
            if hmac.compare_digest(given, self.settings.api_token.get_secret_value().encode()):
                return {"kind": "api"}
            return None
        token = request.cookies.get(COOKIE)
        session = self.store.session(token) if token else None
        return dict(session, kind="counsellor", token=token) if session else None

    @web.middleware
    async def refuse_large(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A body over the limit is refused before it is read, before anything else."""
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return self.secure(fail(413, f"the body is larger than {MAX_BODY_BYTES} bytes"))
        return await handler(request)

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        public = (request.method, request.path) in PUBLIC or request.path.startswith("/static/")
        if not public and route.resource is not None:
            who = await asyncio.to_thread(self.principal, request)
            if who is None:
                return self.secure(fail(401, "authentication required"))
            if who["kind"] == "counsellor":
                if route.name in API_ONLY:
                    return self.secure(fail(403, "for the assistant's API token only"))
                csrf = request.headers.get("X-CSRF-Token", "")
                if request.method not in SAFE_METHODS and not hmac.compare_digest(
                    csrf.encode("utf-8", "replace"), who["csrf_token"].encode()
                ):
                    return self.secure(fail(403, "missing or wrong X-CSRF-Token"))
            request["who"] = who
        try:
            answer = await handler(request)
        except BadRequest as bad:
            answer = fail(400, str(bad))
        except web.HTTPException as http:
            if http.status < 400:
                answer = http
            else:
                answer = fail(http.status, http.reason or "error")
                if "Allow" in http.headers:  # a 405 says what is allowed
                    answer.headers["Allow"] = http.headers["Allow"]
        return self.secure(answer)

    @staticmethod
    def secure(answer: web.StreamResponse) -> web.StreamResponse:
        answer.headers.setdefault("Content-Security-Policy", CSP)
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["X-Frame-Options"] = "DENY"
        answer.headers["Referrer-Policy"] = "no-referrer"
        answer.headers.setdefault("Cache-Control", "no-store")
        return answer

    # Public routes.

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def console(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(document())

    async def login(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        username = text_field(body, "username", 64)
        password = text_field(body, "password", 256)
        address = request.remote or "unknown"
        limits = {
            f"pair:{username}|{address}": LOGIN_LIMITS["pair"],
            f"addr:{address}": LOGIN_LIMITS["addr"],
            f"name:{username}": LOGIN_LIMITS["name"],
        }
        # Checked before any password hash is computed: a locked name costs no CPU.
        wait = await asyncio.to_thread(self.store.login_wait, limits, LOGIN_WINDOW)
        if wait is not None:
            answer = fail(429, "too many failed attempts, wait a few minutes")
            answer.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return answer
        counsellor = await asyncio.to_thread(self.store.check_password, username, password)
        if counsellor is None:
            await asyncio.to_thread(self.store.record_login_failure, list(limits), LOGIN_WINDOW)
            return fail(401, "wrong username or password")
        await asyncio.to_thread(self.store.clear_login_failures, [f"pair:{username}|{address}"])
        opened = await asyncio.to_thread(self.store.open_session, counsellor)
        session = await asyncio.to_thread(self.store.session, opened["token"])
        answer = web.json_response({k: session[k] for k in ("username", "languages", "csrf_token")})
        answer.set_cookie(
            COOKIE,
            opened["token"],
            httponly=True,
            samesite="Strict",
            path="/",
            secure=self.settings.cookie_secure,
            max_age=12 * 3600,
        )
        return answer

    # Routes for a signed-in counsellor or the API token.

    async def logout(self, request: web.Request) -> web.Response:
        who = request["who"]
        if who["kind"] == "counsellor":
            await asyncio.to_thread(self.store.close_session, who["token"])
        answer = web.Response(status=204)
        answer.del_cookie(COOKIE, path="/")
        return answer

    async def me(self, request: web.Request) -> web.Response:
        who = request["who"]
        if who["kind"] != "counsellor":
            return web.json_response({"username": None, "languages": [], "csrf_token": None})
        return web.json_response({k: who[k] for k in ("username", "languages", "csrf_token")})

    async def status(self, request: web.Request) -> web.Response:
        """The assistant's requests to the desk: how many wait, how many failed for good
        (the action server's outbox; `outbox` is null when it cannot be asked)."""
        url, token = self.settings.action_server_status_url, self.settings.action_server_token
        if url is None or token is None:
            return web.json_response({"outbox": None, "reason": "ACTION_SERVER_URL not set"})
        try:
            async with aiohttp.ClientSession(timeout=STATUS_TIMEOUT) as session, session.get(
                url, headers={"Authorization": f"Bearer {token.get_secret_value()}"}
            ) as reply:
                if reply.status != 200:
                    raise aiohttp.ClientError(f"the action server answered {reply.status}")
                outbox = (await reply.json())["outbox"]
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as failure:
            logger.warning("action server status unavailable: %s", type(failure).__name__)
            return web.json_response({"outbox": None, "reason": "the action server is unreachable"})
        return web.json_response({"outbox": {k: int(outbox[k]) for k in ("pending", "dead")}})

    async def list_tickets(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise BadRequest("status must be open, closed or all")
        language = request.query.get("language") or None
        found = await asyncio.to_thread(self.store.list_tickets, status, language)
        return web.json_response(found)

    async def get_ticket(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self.store.ticket, self._ticket_id(request), True)
        if found is None:
            return fail(404, "no such ticket")
        return web.json_response(found)

    async def reply(self, request: web.Request) -> web.Response:
        ticket_id = self._ticket_id(request)
        text = text_field(await body_of(request), "text")
        ticket = await asyncio.to_thread(self.store.ticket, ticket_id)
        if ticket is None:
            return fail(404, "no such ticket")
        if ticket["status"] != "open":
            return fail(409, "the ticket is closed")
        message = await asyncio.to_thread(
            self.store.add_message, ticket_id, "counsellor", text, now()
        )
        await self.deliver()
        stored = await asyncio.to_thread(self.store.ticket, ticket_id, True)
        mine = next(m for m in stored["messages"] if m["id"] == message["id"])
        return web.json_response(mine, status=201)

    async def close(self, request: web.Request) -> web.Response:
        ticket_id = self._ticket_id(request)
        ticket = await asyncio.to_thread(self.store.ticket, ticket_id)
        if ticket is None:
            return fail(404, "no such ticket")
        if ticket["status"] == "open":
            await asyncio.to_thread(self.store.close, ticket_id)
            await self.deliver()
        return web.json_response(await asyncio.to_thread(self.store.ticket, ticket_id))

    # Routes for the assistant's action server (API token only).

    async def create_ticket(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        key = request.headers.get("Idempotency-Key") or body.get("idempotency_key")
        fields, transcript = self._ticket_fields(body, key)
        result = await asyncio.to_thread(self.store.create_ticket, fields, transcript)
        ticket = result["ticket"]
        position = await asyncio.to_thread(self.store.queue_position, ticket["id"])
        if result["created"]:
            logger.info(
                "ticket %d opened (%s, %s)", ticket["id"], ticket["urgency"], ticket["language"]
            )
            self.announcer.announce(ticket)
        return web.json_response(
            dict(ticket, queue_position=position), status=201 if result["created"] else 200
        )

    async def inbound(self, request: web.Request) -> web.Response:
        """A message the person wrote while a counsellor has the conversation."""
        body = await body_of(request)
        ticket = await asyncio.to_thread(
            self.store.ticket_by_key, text_field(body, "ticket_key", 128)
        )
        if ticket is None:
            return fail(404, "no ticket with that key")
        key = text_field(body, "idempotency_key", 160)
        text = text_field(body, "text")
        at = self._time(body.get("at"))
        message = await asyncio.to_thread(
            self.store.add_message, ticket["id"], "person", text, at, key
        )
        if body.get("urgent") is True:
            await asyncio.to_thread(self.store.escalate, ticket["id"])
        return web.json_response(message, status=201)

    async def delete_conversation(self, request: web.Request) -> web.Response:
        deleted = await asyncio.to_thread(
            self.store.delete_conversation, request.match_info["conversation_id"]
        )
        return web.json_response({"deleted_tickets": deleted})

    # Delivery to the person, through Rasa.

    async def deliver(self) -> None:
        """Send what is waiting, oldest first. A conversation whose delivery fails keeps
        the rest of its messages (their order matters) for a later try, after a pause that
        grows while it keeps failing; the other conversations go on. A reply is marked
        delivered only once the channel confirmed it; a REST conversation, or one the
        person deleted, can never receive it, and the reply says so."""
        async with self.delivery_lock:
            stuck = set()
            now = asyncio.get_running_loop().time()
            for message in await asyncio.to_thread(self.store.undelivered):
                conversation = message["conversation_id"]
                if conversation in stuck or self.retry_at.get(conversation, 0) > now:
                    stuck.add(conversation)
                    continue
                if channel_of(conversation) == Channel.REST:
                    await asyncio.to_thread(self.store.mark_undeliverable, message["id"],
                                            "the REST channel cannot deliver a later message")
                    continue
                try:
                    await self.rasa.say(conversation, message["text"], f"desk-{message['id']}")
                except ConversationGone:
                    await asyncio.to_thread(self.store.mark_undeliverable, message["id"],
                                            "the person deleted the conversation")
                    continue
                except DeliveryError as failure:
                    self.failures[conversation] = self.failures.get(conversation, 0) + 1
                    pause = min(MAX_RETRY_PAUSE_S, 2.0 ** self.failures[conversation])
                    self.retry_at[conversation] = now + pause
                    logger.warning("reply %d not delivered yet (%s): again in %.0f s",
                                   message["id"], failure, pause)
                    stuck.add(conversation)
                    continue
                self.failures.pop(conversation, None)
                self.retry_at.pop(conversation, None)
                await asyncio.to_thread(self.store.mark_delivered, message["id"])
            for ticket in await asyncio.to_thread(self.store.pending_hand_backs):
                if ticket["conversation_id"] in stuck:
                    continue
                try:
                    await self.rasa.hand_back(ticket["conversation_id"])
                except ConversationGone:
                    pass  # nobody to hand back to
                except DeliveryError as failure:
                    logger.warning("ticket %d not handed back yet: %s", ticket["id"], failure)
                    continue
                await asyncio.to_thread(self.store.mark_handed_back, ticket["id"])

    async def delivery_loop(self, app: web.Application) -> Any:
        retention = timedelta(days=self.settings.retention_days)

        async def loop() -> None:
            expired_at = 0.0
            while True:
                try:
                    await self.deliver()
                    if time.monotonic() - expired_at > EXPIRE_EVERY_S or not expired_at:
                        expired = await asyncio.to_thread(self.store.expire, retention)
                        expired_at = time.monotonic()
                        if expired:
                            logger.info("retention: %d closed tickets removed", expired)
                except Exception as failure:  # noqa: BLE001 - the loop must outlive any one
                    # A database error's text quotes the statement's values: its type only.
                    logger.error("delivery loop failed: %s; retrying", type(failure).__name__)
                    logger.debug("delivery loop failure", exc_info=True)
                await asyncio.sleep(DELIVERY_INTERVAL_S)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        await self.rasa.close()
        await self.announcer.close()

    # Helpers.

    @staticmethod
    def _ticket_id(request: web.Request) -> int:
        raw = request.match_info["ticket_id"]
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
            raise BadRequest(f"the ticket id must be a number from 1 to {MAX_ID}")
        return int(raw)

    @staticmethod
    def _time(value: Any) -> Any:
        try:
            return parse_time(value) if value is not None else now()
        except ValueError as invalid:
            raise BadRequest("times must be ISO-8601") from invalid

    def _ticket_fields(self, body: Dict[str, Any], key: Any) -> Any:
        if not isinstance(key, str) or not 8 <= len(key) <= 128:
            raise BadRequest(
                "'idempotency_key' (or the Idempotency-Key header) must be 8-128 characters"
            )
        key = text_field({"idempotency_key": key}, "idempotency_key", 128)
        urgency = body.get("urgency", "normal")
        if urgency not in URGENCIES:
            raise BadRequest(f"'urgency' must be one of {', '.join(URGENCIES)}")
        consent = body.get("consent")
        if not isinstance(consent, dict) or "at" not in consent:
            raise BadRequest(
                "'consent' with its time ('at') and language is required: no ticket without consent"
            )
        transcript = body.get("transcript", [])
        if not isinstance(transcript, list) or len(transcript) > MAX_TRANSCRIPT:
            raise BadRequest(f"'transcript' must be a list of at most {MAX_TRANSCRIPT} messages")
        entries = []
        for entry in transcript:
            if not isinstance(entry, dict) or entry.get("sender") not in ("person", "assistant"):
                raise BadRequest(
                    "each transcript entry needs 'sender' (person or assistant) and 'text'"
                )
            entries.append(
                {
                    "sender": entry["sender"],
                    "text": text_field(entry, "text"),
                    "at": self._time(entry.get("at")),
                }
            )
        fields = {
            "idempotency_key": key,
            "conversation_id": text_field(body, "conversation_id", 128),
            "channel": text_field(body, "channel", 32),
            "language": text_field(body, "language", 8),
            "topic": str(body.get("topic") or "request_human")[:64],
            "urgency": urgency,
            "consent_at": self._time(consent["at"]),
            "consent_language": str(consent.get("language") or body["language"])[:8],
        }
        return fields, entries


def create_app(settings: DeskSettings, store: Store) -> web.Application:
    desk = Desk(settings, store)
    app = web.Application(
        middlewares=[desk.refuse_large, desk.guard], client_max_size=MAX_BODY_BYTES
    )
    app.router.add_get("/health", desk.health, name="health")
    app.router.add_get("/", desk.console, name="console")
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_get("/openapi.json", desk.openapi, name="openapi")
    app.router.add_post("/api/login", desk.login, name="login")
    app.router.add_post("/api/logout", desk.logout, name="logout")
    app.router.add_get("/api/me", desk.me, name="me")
    app.router.add_get("/api/status", desk.status, name="status")
    app.router.add_get("/api/tickets", desk.list_tickets, name="list_tickets")
    app.router.add_post("/api/tickets", desk.create_ticket, name="create_ticket")
    app.router.add_get("/api/tickets/{ticket_id}", desk.get_ticket, name="get_ticket")
    app.router.add_post("/api/tickets/{ticket_id}/messages", desk.reply, name="reply")
    app.router.add_post("/api/tickets/{ticket_id}/close", desk.close, name="close")
    app.router.add_post("/api/inbound", desk.inbound, name="inbound")
    app.router.add_delete(
        "/api/conversations/{conversation_id}", desk.delete_conversation, name="delete_conversation"
    )
    app.cleanup_ctx.append(desk.delivery_loop)
    return app
