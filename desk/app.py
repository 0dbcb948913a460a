"""The desk's HTTP API and console: routes, authentication and the delivery loop."""

import asyncio
import hmac
import logging
import math
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

import aiohttp
from aiohttp import web
from sqlalchemy import exc as database_errors

from avrr import readiness
from avrr.content import Content, ContentError
from avrr.metrics import CONTENT_TYPE, exposition
from avrr.network import counted_address
from avrr.settings import DeskSettings
from avrr.vocabulary import CODES, GLOSS_LANGUAGES, Channel, channel_of
from desk import insight, stats
from desk.announce import Announcer
from desk.openapi import document
from desk.rasa import ConversationGone, DeliveryError, Rasa, Undeliverable
from desk.store import (
    API_ACTOR,
    ROLES,
    URGENCIES,
    Conflict,
    Gone,
    NotFound,
    Store,
    now,
    parse_time,
)

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
CLAIMS_EVERY_S = 60.0  # the job that releases the tickets of counsellors who went away
MAX_RETRY_PAUSE_S = 60.0
DATABASE_RETRY_S = 2
LEASE_S = 60.0  # > one delivery's longest wait for Rasa (20 s)
# Failed sign-ins allowed in LOGIN_WINDOW before the next attempt waits: per name from
# one address (the real counsellor elsewhere is not locked out by a stranger), per
# address (one machine guessing many names), and per name from anywhere.
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_LIMITS = {"pair": 5, "addr": 20, "name": 50}
PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/"), ("GET", "/stats"),
          ("POST", "/api/login")}
INSIGHT_EVERY_S = 10.0  # the statistics job
MAX_REFRESH_BATCHES = 100  # "Count now": at most 200,000 events in one request
STATUS_TIMEOUT = aiohttp.ClientTimeout(total=3)
API_ONLY = {"create_ticket", "inbound", "delete_conversation"}
# Routes for administrators (and the API token).
ADMIN_ONLY = {
    "list_counsellors", "add_counsellor", "update_counsellor", "disable_counsellor",
    "enable_counsellor", "reset_password", "account_history", "assign",
    "unanswered", "label_question", "refresh_stats", "intents", "metrics",
}
# The statistics: for administrators and viewers (the API token too).
STATISTICS = {"stats", "stats_csv", "stats_chart"}
# What a viewer may do, besides the statistics.
VIEWER = {"me", "logout", "change_password"}
# What a counsellor with a temporary password may do before changing it.
BEFORE_NEW_PASSWORD = {"change_password", "logout"}
MIN_PASSWORD = 10
MAX_VALUE = 100  # a ready reply's filled-in value: a date, a time, a place
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
    except (ValueError, RecursionError, LookupError) as invalid:  # LookupError: a charset
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
        self.content = Content(settings.content_dir)
        self.delivery_lock = asyncio.Lock()
        # Delivering is one desk's job at a time (several may run): this one's name, the
        # same after a restart, so that a restarted desk takes its lease back at once.
        self.instance = f"{socket.gethostname()}:{settings.port}"
        # Per conversation: failed delivery attempts in a row, and when to try again.
        self.failures: Dict[str, int] = {}
        self.retry_at: Dict[str, float] = {}
        # A conversation's replies go out one at a time, in order, whoever sends them.
        self.delivering: Dict[str, List[Any]] = {}

    # Authentication.

    def principal(self, request: web.Request) -> Optional[Dict[str, Any]]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer ") :].encode("utf-8", "replace")
            if hmac.compare_digest(given, self.settings.api_token.get_secret_value().encode()):
                return {"kind": "api", "username": API_ACTOR, "role": "admin", "languages": []}
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
        """Who may do what; the API's errors as JSON; a database that fails as a 503 the
        client can send again (its text quotes the statement's values: its type only)."""
        try:
            return await self._guarded(request, handler)
        except (database_errors.DBAPIError, database_errors.TimeoutError) as fault:
            logger.warning("database failed (%s): answered 503", type(fault).__name__)
            answer = fail(503, "the desk's database did not answer; try again")
            answer.headers["Retry-After"] = str(DATABASE_RETRY_S)
            return self.secure(answer)

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        public = (request.method, request.path) in PUBLIC or request.path.startswith("/static/")
        if not public and route.resource is not None:
            who = await asyncio.to_thread(self.principal, request)
            if who is None:
                return self.secure(fail(401, "authentication required"))
            if who["kind"] == "counsellor":
                if route.name in API_ONLY:
                    return self.secure(fail(403, "for the assistant's API token only"))
                if who["must_change_password"] and route.name not in BEFORE_NEW_PASSWORD:
                    answer = web.json_response({
                        "error": "change your temporary password first (POST /api/me/password)",
                        "must_change_password": True}, status=403)
                    return self.secure(answer)
                if who["role"] == "viewer":
                    if route.name not in STATISTICS | VIEWER:
                        return self.secure(fail(403, "a viewer sees the statistics only"))
                elif route.name in STATISTICS | ADMIN_ONLY and who["role"] != "admin":
                    return self.secure(fail(403, "for administrators only"))
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
        except NotFound as missing:
            answer = fail(404, str(missing))
        except Conflict as conflict:
            answer = fail(409, str(conflict))
        except Gone as gone:
            answer = fail(410, str(gone))
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

    async def ready(self, request: web.Request) -> web.Response:
        """200 when the desk's database answers; 503 naming it otherwise."""
        failed = await readiness.failing({"database": readiness.database(self.store.engine)})
        body, status = readiness.answer(failed)
        return web.json_response(body, status=status)

    async def console(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(document())

    async def login(self, request: web.Request) -> web.Response:
        # Only a JSON body: a page elsewhere can post a form or text/plain across sites
        # without asking (and sign the browser into an account of its choosing), JSON not.
        if request.content_type != "application/json":
            return fail(415, "the body must be JSON (Content-Type: application/json)")
        body = await body_of(request)
        username = text_field(body, "username", 64)
        password = text_field(body, "password", 256)
        address = self._client_address(request)
        limits = {
            f"pair:{username}|{address}": LOGIN_LIMITS["pair"],
            f"addr:{address}": LOGIN_LIMITS["addr"],
            f"name:{username}": LOGIN_LIMITS["name"],
        }
        # Counted before any password hash is computed: a locked name costs no CPU.
        locked = await self._attempt(limits, "too many failed attempts, wait a few minutes")
        if locked is not None:
            return locked
        counsellor = await asyncio.to_thread(self.store.check_password, username, password)
        if counsellor is None:
            return fail(401, "wrong username or password")
        pair = f"pair:{username}|{address}"
        await asyncio.to_thread(
            self.store.login_succeeded, [pair], [key for key in limits if key != pair])
        opened = await asyncio.to_thread(self.store.open_session, counsellor)
        session = await asyncio.to_thread(self.store.session, opened["token"])
        answer = web.json_response({k: session[k] for k in SESSION_FIELDS})
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

    async def _attempt(self, limits: Dict[str, int], reason: str) -> Optional[web.Response]:
        """A password attempt, counted: the 429 when it is one too many, else None."""
        wait = await asyncio.to_thread(self.store.login_attempt, limits, LOGIN_WINDOW)
        if wait is None:
            return None
        answer = fail(429, reason)
        answer.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return answer

    def _client_address(self, request: web.Request) -> str:
        """The client's address as the limits count it (avrr.network): with
        AVRR_PROXIES_COUNT proxies in front (nginx), the one the outermost of them wrote
        in X-Forwarded-For, as Rasa reads it."""
        proxies = self.settings.proxies_count
        if proxies:
            forwarded = [part.strip() for part in
                         ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
            if len(forwarded) >= proxies and forwarded[-proxies]:
                return counted_address(forwarded[-proxies])
        return counted_address(request.remote or "unknown")

    async def me(self, request: web.Request) -> web.Response:
        who = request["who"]
        if who["kind"] != "counsellor":
            return web.json_response({"username": None, "languages": [], "csrf_token": None,
                                      "role": "admin", "must_change_password": False})
        return web.json_response({k: who[k] for k in SESSION_FIELDS})

    async def change_password(self, request: web.Request) -> web.Response:
        """A counsellor's own new password; their other sessions end."""
        who = request["who"]
        if who["kind"] != "counsellor":
            raise BadRequest("only a signed-in counsellor has a password to change")
        body = await body_of(request)
        old, new = text_field(body, "old", 256), password_field(body, "new")
        if new == old:
            raise BadRequest("the new password must differ from the old one")
        # Guessing the password from a session left open is slowed down like sign-ins.
        limits = {f"own:{who['username']}": LOGIN_LIMITS["pair"]}
        locked = await self._attempt(limits, "too many wrong passwords, wait a few minutes")
        if locked is not None:
            return locked
        changed = await asyncio.to_thread(
            self.store.change_password, who["id"], old, new, who["token"])
        if not changed:
            return fail(403, "the old password is wrong")
        await asyncio.to_thread(self.store.login_succeeded, list(limits))
        return web.json_response({"changed": True})

    # Accounts (administrators and the API token).

    async def list_counsellors(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.store.counsellors))

    async def account_history(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.store.account_events))

    async def add_counsellor(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        username = text_field(body, "username", 64)
        password = password_field(body, "password")
        role = role_field(body.get("role", "counsellor"))
        try:
            account = await asyncio.to_thread(
                self.store.add_counsellor, username, password,
                languages_field(body.get("languages")), role, True, request["who"]["username"])
        except ValueError as invalid:
            raise BadRequest(f"'username': {invalid}") from invalid
        return web.json_response(account, status=201)

    async def update_counsellor(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        changes: Dict[str, Any] = {}
        if "languages" in body:
            changes["languages"] = languages_field(body["languages"])
        if "role" in body:
            changes["role"] = role_field(body["role"])
        if not changes:
            raise BadRequest("give 'languages' and/or 'role'")
        username = request.match_info["username"]
        return web.json_response(await asyncio.to_thread(
            self.store.update_counsellor, username, changes, request["who"]["username"]))

    async def disable_counsellor(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        if request["who"]["kind"] == "counsellor" and username == request["who"]["username"]:
            raise Conflict("you cannot disable your own account")
        return web.json_response(await asyncio.to_thread(
            self.store.set_disabled, username, True, request["who"]["username"]))

    async def enable_counsellor(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(
            self.store.set_disabled, request.match_info["username"], False,
            request["who"]["username"]))

    async def reset_password(self, request: web.Request) -> web.Response:
        """A temporary password, to be changed at the next sign-in."""
        password = password_field(await body_of(request), "password")
        return web.json_response(await asyncio.to_thread(
            self.store.reset_password, request.match_info["username"], password,
            request["who"]["username"]))



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
        reader = self._gloss_language(request)
        return web.json_response([self._readable(ticket, reader) for ticket in found])

    async def get_ticket(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self.store.ticket, self._ticket_id(request), True)
        if found is None:
            return fail(404, "no such ticket")
        return web.json_response(self._readable(found, self._gloss_language(request)))

    async def replies(self, request: web.Request) -> web.Response:
        """The ready replies in `language` (default: the reader's), for choosing one."""
        language = request.query.get("language") or self._gloss_language(request)
        if language not in self.content.languages():
            raise BadRequest(f"language must be one of {', '.join(self.content.languages())}")
        return web.json_response(self.content.ready_replies(language))

    async def reply(self, request: web.Request) -> web.Response:
        """A counsellor's free text, or a ready reply (`reply_key`, `values`) sent in the
        person's language."""
        ticket_id = self._ticket_id(request)
        reader = self._gloss_language(request)
        body = await body_of(request)
        ticket = await asyncio.to_thread(self.store.ticket, ticket_id)
        if ticket is None:
            return fail(404, "no such ticket")
        content = None
        if "reply_key" in body:
            ready = self._ready_reply(body, ticket["language"])
            text, content = ready.text, ready.source()
        else:
            text = text_field(body, "text")
        # The console's key of this draft: a reply sent again after an answer that was lost
        # (a desk restarting, a proxy's 502) is the same reply, not a second one.
        key = text_field(body, "idempotency_key", 100) if "idempotency_key" in body else None
        message = await asyncio.to_thread(
            self.store.reply, ticket_id, request["who"]["username"], text, content, key)
        await self.deliver(ticket["conversation_id"])
        stored = await asyncio.to_thread(self.store.ticket, ticket_id, True)
        mine = next((m for m in (stored or {}).get("messages", []) if m["id"] == message["id"]),
                    None)
        if mine is None:  # the person deleted the conversation meanwhile
            return fail(404, "the conversation was deleted")
        return web.json_response(self._message(mine, ticket["language"], reader), status=201)

    async def close(self, request: web.Request) -> web.Response:
        closed = await asyncio.to_thread(
            self.store.close, self._ticket_id(request), request["who"]["username"])
        await self.deliver(closed["conversation_id"])
        return web.json_response(closed)

    async def claim(self, request: web.Request) -> web.Response:
        who = request["who"]
        if who["kind"] != "counsellor":
            raise BadRequest("a ticket is claimed by a signed-in counsellor (or assigned)")
        return web.json_response(await asyncio.to_thread(
            self.store.claim, self._ticket_id(request), who["username"]))

    async def release(self, request: web.Request) -> web.Response:
        who = request["who"]
        return web.json_response(await asyncio.to_thread(
            self.store.release, self._ticket_id(request), who["username"], who["role"] == "admin"))

    async def assign(self, request: web.Request) -> web.Response:
        username = text_field(await body_of(request), "username", 64)
        return web.json_response(await asyncio.to_thread(
            self.store.assign, self._ticket_id(request), username, request["who"]["username"]))

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
        conversation = body.get("conversation_id")
        if conversation is not None:
            conversation = text_field(body, "conversation_id", 128)
        key = text_field(body, "idempotency_key", 160)
        text = text_field(body, "text")
        at = self._time(body.get("at"))
        message, raised = await asyncio.to_thread(
            self.store.inbound, text_field(body, "ticket_key", 128), conversation, key, text,
            at, body.get("urgent") is True, **understood(body),
        )
        if raised is not None:
            logger.info("ticket %d is now urgent (%s)", raised["id"], raised["language"])
            self.announcer.announce(raised, now_urgent=True)
        return web.json_response(message, status=201)

    async def delete_conversation(self, request: web.Request) -> web.Response:
        language = request.query.get("language", insight.UNKNOWN)
        if language != insight.UNKNOWN and language not in CODES:
            raise BadRequest(f"language must be one of {', '.join(CODES)}")
        deleted = await asyncio.to_thread(
            self.store.delete_conversation, request.match_info["conversation_id"], language
        )
        return web.json_response({"deleted_tickets": deleted})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus' gauges (the API token as its bearer credentials)."""
        now_ = await asyncio.to_thread(self.store.gauges)
        text = exposition([
            ("avrr_desk_open_tickets", "Open tickets, by urgency.",
             [({"urgency": urgency}, n) for urgency, n in now_["open"].items()]),
            ("avrr_desk_waiting_tickets", "Open tickets whose person wrote last.",
             now_["waiting"]),
            ("avrr_desk_longest_wait_seconds",
             "How long the person who has waited longest for an answer has waited.",
             round(now_["longest_wait_s"], 1)),
            ("avrr_desk_undelivered_replies", "Counsellor replies not delivered yet.",
             now_["undelivered"]),
            ("avrr_desk_undeliverable_replies", "Counsellor replies that can never be delivered.",
             now_["undeliverable"]),
            ("avrr_desk_hand_backs_pending", "Closed tickets Rasa has not taken back yet.",
             now_["hand_backs_pending"]),
        ])
        return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})

    # Statistics and the questions the assistant did not understand.

    async def stats_page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "stats.html")

    async def _period_rows(self, request: web.Request) -> Any:
        try:
            first, last = stats.period(
                request.query.get("from"), request.query.get("to"), self.store.today())
        except ValueError as invalid:
            raise BadRequest(f"from and to are days (YYYY-MM-DD): {invalid}") from invalid
        rows = await asyncio.to_thread(self.store.statistics, first, last)
        if _viewer(request):  # no small count: it can point at a person
            rows = stats.for_viewers(stats.finished_days(rows, self.store.today()))
        return first, last, rows

    async def stats(self, request: web.Request) -> web.Response:
        first, last, rows = await self._period_rows(request)
        summary = stats.summary(first, last, rows)
        if _viewer(request):
            summary["smallest_count_shown"] = stats.SMALL_COUNT
        return web.json_response(summary)

    async def stats_csv(self, request: web.Request) -> web.Response:
        first, last, rows = await self._period_rows(request)
        return web.Response(
            text=stats.as_csv(rows), content_type="text/csv", headers={
                "Content-Disposition":
                    f'attachment; filename="avrr-stats-{first}-{last}.csv"'})

    async def stats_chart(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in stats.CHARTS:
            return fail(404, f"charts: {', '.join(stats.CHARTS)}")
        first, last, rows = await self._period_rows(request)
        reader = self._gloss_language(request)
        drawn = await asyncio.to_thread(
            stats.chart, name, first, last, rows,
            lambda intent: self.content.topic_name(intent, reader) or intent)
        return web.Response(body=drawn, content_type="image/svg+xml")

    async def refresh_stats(self, request: web.Request) -> web.Response:
        """Count what the assistant stored since the last run, now (it runs every 10 s)."""
        read = 0
        for _ in range(MAX_REFRESH_BATCHES):
            batch = await asyncio.to_thread(
                self.store.run_insight, self.settings.conversations_url)
            read += batch
            if batch < insight.BATCH:
                break
        return web.json_response({"events_read": read})

    async def unanswered(self, request: web.Request) -> web.Response:
        language = request.query.get("language") or None
        if language is not None and language not in CODES:
            raise BadRequest(f"language must be one of {', '.join(CODES)}")
        labelled = {"true": True, "false": False, None: None}.get(request.query.get("labelled"),
                                                                  "bad")
        if labelled == "bad":
            raise BadRequest("labelled must be true or false")
        return web.json_response(
            await asyncio.to_thread(self.store.unanswered, language, labelled))

    def _label_intents(self) -> List[str]:
        """What a question can be labelled with: every intent the assistant has."""
        names = self.content.language_file("en").get("topic_names", {})
        return [intent for intent in names if intent != "not_understood"]

    async def intents(self, request: web.Request) -> web.Response:
        """The intents a question can be labelled with, in words in the reader's language."""
        reader = self._gloss_language(request)
        return web.json_response([
            {"intent": intent, "name": self.content.topic_name(intent, reader)}
            for intent in self._label_intents()])

    async def label_question(self, request: web.Request) -> web.Response:
        raw = request.match_info["question_id"]
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
            raise BadRequest(f"the question id must be a number from 1 to {MAX_ID}")
        intent = text_field(await body_of(request), "intent", 64)
        intents = self._label_intents()
        if intent not in intents:
            raise BadRequest(f"'intent' must be one of {', '.join(sorted(intents))}")
        return web.json_response(await asyncio.to_thread(
            self.store.label, int(raw), intent, request["who"]["username"]))

    # Delivery to the person, through Rasa.

    async def deliver(self, conversation: Optional[str] = None) -> None:
        """Send what is waiting, oldest conversation first; with `conversation`, only its
        replies (a counsellor's send or close waits for those, not for anyone else's). A
        conversation whose delivery fails keeps the rest of its messages (their order
        matters) for a later try, after a pause that grows while it keeps failing; the
        other conversations go on. A reply is marked delivered only once the channel
        confirmed it; a REST conversation, or one the person deleted, can never receive
        it, and the reply says so."""
        if conversation is not None:
            await self._deliver_to(conversation)
            return
        async with self.delivery_lock:
            waiting = [m["conversation_id"] for m in
                       await asyncio.to_thread(self.store.undelivered)]
            waiting += [t["conversation_id"] for t in
                        await asyncio.to_thread(self.store.pending_hand_backs)]
            # A conversation with nothing left to send (delivered, deleted, expired)
            # leaves no trace here.
            for gone in set(self.retry_at) - set(waiting):
                self.failures.pop(gone, None)
                self.retry_at.pop(gone, None)
            for each in dict.fromkeys(waiting):
                if not await self._deliver_to(each):
                    return  # another desk delivers; this one's replies are in its queue

    async def _deliver_to(self, conversation: str) -> bool:
        """One conversation's replies, then its hand-back once they are all out. False
        when another desk holds the delivery lease."""
        # The lock, and how many wait for it or hold it: the last one out removes it.
        turn = self.delivering.setdefault(conversation, [asyncio.Lock(), 0])
        turn[1] += 1
        try:
            async with turn[0]:
                return await self._send_waiting(conversation)
        finally:
            turn[1] -= 1
            if not turn[1]:
                del self.delivering[conversation]

    async def _send_waiting(self, conversation: str) -> bool:
        if self.retry_at.get(conversation, 0) > asyncio.get_running_loop().time():
            return True
        # The tickets closed before the replies are read: a reply written meanwhile, and
        # its ticket closed after it, waits for the next turn with its hand-back.
        closed = await asyncio.to_thread(self.store.pending_hand_backs, conversation)
        for message in await asyncio.to_thread(self.store.undelivered, conversation):
            if not await self._deliverer():
                return False
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
            except Undeliverable:
                await asyncio.to_thread(
                    self.store.mark_undeliverable, message["id"],
                    "the platform refused it for good: the person may have blocked the "
                    "assistant or left the platform")
                continue
            except DeliveryError as failure:
                self.failures[conversation] = self.failures.get(conversation, 0) + 1
                pause = min(MAX_RETRY_PAUSE_S, 2.0 ** self.failures[conversation])
                self.retry_at[conversation] = asyncio.get_running_loop().time() + pause
                logger.warning("reply %d not delivered yet (%s): again in %.0f s",
                               message["id"], failure, pause)
                return True
            self.failures.pop(conversation, None)
            self.retry_at.pop(conversation, None)
            await asyncio.to_thread(self.store.mark_delivered, message["id"])
        for ticket in closed:
            if not await self._deliverer():
                return False
            try:
                await self.rasa.hand_back(conversation)
            except ConversationGone:
                pass  # nobody to hand back to
            except DeliveryError as failure:
                logger.warning("ticket %d not handed back yet: %s", ticket["id"], failure)
                continue
            await asyncio.to_thread(self.store.mark_handed_back, ticket["id"])
        return True

    async def _deliverer(self) -> bool:
        """Whether this desk delivers now: the lease is taken (or renewed) before each
        message, for longer than one delivery can take."""
        return await asyncio.to_thread(self.store.lease, "delivery", self.instance, LEASE_S)

    async def delivery_loop(self, app: web.Application) -> Any:
        retention = timedelta(days=self.settings.retention_days)
        idle = timedelta(minutes=self.settings.claim_idle_minutes)

        async def loop() -> None:
            expired_at = counted_at = claims_at = 0.0
            while True:
                try:
                    await self.deliver()
                    if idle and time.monotonic() - claims_at > CLAIMS_EVERY_S:
                        released = await asyncio.to_thread(self.store.release_absent, idle)
                        claims_at = time.monotonic()
                        if released:
                            logger.info("%d tickets released: their holders went away",
                                        released)
                    if time.monotonic() - counted_at > INSIGHT_EVERY_S:
                        for _ in range(insight.MAX_BATCHES):
                            read = await asyncio.to_thread(
                                self.store.run_insight, self.settings.conversations_url)
                            if read < insight.BATCH:
                                break
                        counted_at = time.monotonic()
                    if time.monotonic() - expired_at > EXPIRE_EVERY_S or not expired_at:
                        expired = await asyncio.to_thread(self.store.expire, retention)
                        expired_at = time.monotonic()
                        if expired:
                            logger.info("retention: %d tickets removed", expired)
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

    # What a counsellor reads.

    def _gloss_language(self, request: web.Request) -> str:
        """The language the reader glosses in: ?gloss=, else the first of their languages
        that can gloss, else English."""
        asked = request.query.get("gloss")
        if asked is not None:
            if asked not in GLOSS_LANGUAGES:
                raise BadRequest(f"gloss must be one of {', '.join(GLOSS_LANGUAGES)}")
            return asked
        theirs = [code for code in request["who"]["languages"] if code in GLOSS_LANGUAGES]
        return theirs[0] if theirs else GLOSS_LANGUAGES[0]

    def _readable(self, ticket: Dict[str, Any], reader: str) -> Dict[str, Any]:
        """The ticket with its topic in words, and each message glossed for `reader`."""
        readable = dict(ticket, topic_name=self.content.topic_name(ticket["topic"], reader),
                        gloss_language=reader)
        if "messages" in ticket:
            readable["messages"] = [
                self._message(message, ticket["language"], reader)
                for message in ticket["messages"]
            ]
        return readable

    def _message(self, message: Dict[str, Any], language: str, reader: str) -> Dict[str, Any]:
        """A message with `gloss` (the same message in the reader's language, from the
        content it was written from; null for the person's free text, for a message in
        the reader's own language and for a counsellor's free text) and, for the
        person's, `topic` (what the assistant understood, in words) and `confidence`."""
        readable = dict(message, gloss=None)
        source = message.get("content")
        if source and language != reader:
            readable["gloss"] = self.content.gloss(source, reader)
        if message["sender"] == "person":
            intent = message.get("intent")
            readable["topic"] = self.content.topic_name(intent, reader) if intent else None
        return readable

    def _ready_reply(self, body: Dict[str, Any], language: str) -> Any:
        key = text_field(body, "reply_key", 64)
        values = body.get("values", {})
        if not isinstance(values, dict):
            raise BadRequest("'values' must be an object of texts")
        try:
            fields = self.content.ready_reply_fields(key, language)
        except ContentError as unknown:
            raise BadRequest(str(unknown)) from unknown
        extra = sorted(set(values) - set(fields))
        if extra:
            raise BadRequest(f"'{key}' has no placeholder {', '.join(map(str, extra))}")
        missing = [name for name in fields if name not in values]
        if missing:
            raise BadRequest(f"'{key}' needs values for {', '.join(missing)}")
        filled = {name: text_field(values, name, MAX_VALUE) for name in fields}
        return self.content.ready_reply(key, language, filled)

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
                dict(
                    understood(entry),
                    sender=entry["sender"],
                    text=text_field(entry, "text"),
                    at=self._time(entry.get("at")),
                    content=source_field(entry.get("content")),
                )
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


SESSION_FIELDS = ("username", "languages", "role", "must_change_password", "csrf_token")


def password_field(body: Dict[str, Any], name: str) -> str:
    password = text_field(body, name, 256)
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"'{name}' needs at least {MIN_PASSWORD} characters")
    return password


def role_field(value: Any) -> str:
    if value not in ROLES:
        raise BadRequest(f"'role' must be one of {', '.join(ROLES)}")
    return str(value)


def languages_field(value: Any) -> List[str]:
    if (not isinstance(value, list) or not value
            or any(not isinstance(code, str) or code not in CODES for code in value)):
        raise BadRequest(f"'languages' must be a non-empty list of {', '.join(CODES)}")
    return list(dict.fromkeys(value))


def understood(body: Dict[str, Any]) -> Dict[str, Any]:
    """What the assistant understood of a message of the person: `intent`, `confidence`."""
    intent, confidence = body.get("intent"), body.get("confidence")
    if intent is not None and (not isinstance(intent, str) or not 0 < len(intent) <= 64):
        raise BadRequest("'intent' must be a name of up to 64 characters")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int | float)
        or not 0 <= confidence <= 1
    ):
        raise BadRequest("'confidence' must be a number from 0 to 1")
    return {"intent": intent, "confidence": None if confidence is None else float(confidence)}


def source_field(value: Any) -> Optional[Dict[str, Any]]:
    """Which content an assistant's message says: {"key", "part", "values"}, or None."""
    if value is None:
        return None
    values = value.get("values", {}) if isinstance(value, dict) else None
    if (not isinstance(value, dict) or not isinstance(value.get("key"), str)
            or not 0 < len(value["key"]) <= 100
            or isinstance(value.get("part", 0), bool) or not isinstance(value.get("part", 0), int)
            or not isinstance(values, dict) or len(values) > 10
            or any(not isinstance(v, str) or len(v) > MAX_VALUE for v in values.values())):
        raise BadRequest("'content' must be {key, part, values} of an assistant's message")
    return {"key": value["key"], "part": value.get("part", 0), "values": values}


def _viewer(request: web.Request) -> bool:
    return (request.get("who") or {}).get("role") == "viewer"


STORE = web.AppKey("store", Store)


def create_app(settings: DeskSettings, store: Store) -> web.Application:
    desk = Desk(settings, store)
    app = web.Application(
        middlewares=[desk.refuse_large, desk.guard], client_max_size=MAX_BODY_BYTES
    )
    app[STORE] = store
    # Each route is named after its handler: the guard checks names (API_ONLY, ADMIN_ONLY...).
    for method, path, handler in (
        ("GET", "/health", desk.health),
        ("GET", "/ready", desk.ready),
        ("GET", "/", desk.console),
        ("GET", "/openapi.json", desk.openapi),
        ("POST", "/api/login", desk.login),
        ("POST", "/api/logout", desk.logout),
        ("GET", "/api/me", desk.me),
        ("POST", "/api/me/password", desk.change_password),
        ("GET", "/api/counsellors", desk.list_counsellors),
        ("POST", "/api/counsellors", desk.add_counsellor),
        ("GET", "/api/counsellors/history", desk.account_history),
        ("PATCH", "/api/counsellors/{username}", desk.update_counsellor),
        ("POST", "/api/counsellors/{username}/disable", desk.disable_counsellor),
        ("POST", "/api/counsellors/{username}/enable", desk.enable_counsellor),
        ("POST", "/api/counsellors/{username}/password", desk.reset_password),
        ("GET", "/api/replies", desk.replies),
        ("GET", "/stats", desk.stats_page),
        ("GET", "/api/stats", desk.stats),
        ("GET", "/api/stats.csv", desk.stats_csv),
        ("GET", "/api/stats/charts/{name}.svg", desk.stats_chart),
        ("POST", "/api/stats/refresh", desk.refresh_stats),
        ("GET", "/api/unanswered", desk.unanswered),
        ("GET", "/api/intents", desk.intents),
        ("POST", "/api/unanswered/{question_id}/label", desk.label_question),
        ("GET", "/api/status", desk.status),
        ("GET", "/metrics", desk.metrics),
        ("GET", "/api/tickets", desk.list_tickets),
        ("POST", "/api/tickets", desk.create_ticket),
        ("GET", "/api/tickets/{ticket_id}", desk.get_ticket),
        ("POST", "/api/tickets/{ticket_id}/messages", desk.reply),
        ("POST", "/api/tickets/{ticket_id}/close", desk.close),
        ("POST", "/api/tickets/{ticket_id}/claim", desk.claim),
        ("POST", "/api/tickets/{ticket_id}/release", desk.release),
        ("POST", "/api/tickets/{ticket_id}/assign", desk.assign),
        ("POST", "/api/inbound", desk.inbound),
        ("DELETE", "/api/conversations/{conversation_id}", desk.delete_conversation),
    ):
        app.router.add_route(method, path, handler, name=handler.__name__)
    app.router.add_static("/static/", STATIC, name="static")
    app.cleanup_ctx.append(desk.delivery_loop)
    return app
