"""The socket.io channel of the web widget, hardened; Rasa's protocol is kept.

Rasa 3.6's own SocketIOInput lets a client name any session id, in `session_request`
and again in every `user_uttered`, and so read or write anyone's conversation. Here:
- the session id (Rasa's sender id, as in Rasa) is issued by the server, unguessable,
  and comes with a secret, its HMAC under the server's key, sent to the client that
  opened the session (event `session_secret`). A `session_request` naming a session id
  without its secret gets a new, empty session: a conversation id alone is no key. The
  secret rotates: each resume gets the current period's secret, and a secret older than
  two periods (SECRET_PERIOD_S) no longer opens the session;
- `forget_session` ends and forgets the conversation (the widget's "end and forget"
  control): the deletion runs as if the person asked and confirmed it, and
  `session_forgotten` says whether everything is deleted;
- a socket writes only into the conversation its `session_request` established;
- after `session_confirm` the server sends `session_history` (our addition, which other
  widgets ignore), so a reload shows the conversation, a counsellor's replies included;
- text is checked like the REST channel's, typed "/intent{...}" is disarmed, and only
  a `language_hint` is taken from the client's metadata;
- the replies to a message are emitted once the message is recorded, then
  `message_processed` (our addition: the turn is over); if it could not be recorded,
  the client gets `message_failed` and sends it again (nothing half answered);
- with several replicas (AVRR_REDIS_URL set), socket.io's rooms span them through Redis:
  a reply emitted on any replica (a counsellor's, through Rasa's HTTP API) reaches the
  socket wherever it is connected, and SOCKET_SESSION_SECRET, the same on every replica,
  lets a session resume on any of them;
- cross-origin connections are accepted from WIDGET_ORIGINS only; a socket.io message is
  at most MAX_PAYLOAD_BYTES; at most RATE_LIMIT_PER_SENDER messages a minute per session
  and RATE_LIMIT_PER_ADDRESS per client address (`message_refused` with `retry_after`);
- a longer polling POST is a 413 at once (python-engineio 4 closed the session and then
  waited for a poll that never came: the request hung until Sanic's timeout), a request
  for a session closing meanwhile a 400 (it was a 500), and a malformed packet one INFO
  line (avrr.logs.MalformedPackets; it was an ERROR with a traceback);
- a packet with binary attachments is refused (TextPackets): the widget sends none, and
  python-socketio 5.8 kept every attachment a client announced, however many, in memory
  for good;
- `forget_session` counts against the same limits as a message: each is two turns;
- a `session_request` (a read of the conversation) is limited per address like a
  message, beyond which `session_refused` says when to ask again; an address has at
  most SOCKETS_PER_ADDRESS connections open on a replica (CappedServer). An IPv6
  address counts as its /64 (avrr.network).

Events stay Rasa's: `session_request` -> `session_confirm`, `user_uttered` ->
`bot_uttered`, so third-party Rasa widgets still work.
"""

import base64
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any, Awaitable, Callable, Counter, Dict, List, Optional, Tuple

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOOutput
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncRedisManager, AsyncServer
from socketio import packet as socketio_packet

from avrr.logs import MALFORMED_PACKETS, RefusedPacket
from avrr.vocabulary import CONVERSATION_PREFIXES, Channel, Intents, Metadata
from bot import runtime
from bot.channels.base import (
    add_health,
    client_address,
    disarm,
    language_hint,
    message_id_of,
)
from bot.channels.rate_limits import close_on_stop, rate_limits
from bot.text import InvalidMessage, clean_text
from bot.transcript import history

logger = logging.getLogger(__name__)

WEB_PREFIX = CONVERSATION_PREFIXES[Channel.SOCKETIO]
DELETE_COMMAND = f"/{Intents.DELETE_MY_DATA}"
CONFIRM_COMMAND = f"/{Intents.AFFIRM}"
MAX_PAYLOAD_BYTES = 64 * 1024
# A web chat's secret is renewed each period; an unused one opens its session for one to
# two periods: a chat left alone for a month cannot be reopened from the device.
SECRET_PERIOD_S = 15 * 24 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Sessions:
    """Issues session ids with their secrets, and checks a secret, with one key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.clock = clock

    def secret_of(self, session_id: str, period: Optional[int] = None) -> str:
        """The secret of `session_id` in `period` (default: the current one)."""
        period = int(self.clock() // SECRET_PERIOD_S) if period is None else period
        message = f"{session_id}|{period}".encode("utf-8", "surrogatepass")
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest()[:24])

    def issue(self) -> Tuple[str, str]:
        session_id = f"{WEB_PREFIX}{secrets.token_hex(16)}"
        return session_id, self.secret_of(session_id)

    def owns(self, session_id: Any, secret: Any) -> bool:
        """Whether `secret` is one this server gave with `session_id`, this period or the
        one before."""
        if not isinstance(session_id, str) or not isinstance(secret, str):
            return False
        if not session_id.startswith(WEB_PREFIX) or len(session_id) > 64:
            return False
        given = secret.encode("utf-8", "surrogatepass")
        current = int(self.clock() // SECRET_PERIOD_S)
        return any(
            hmac.compare_digest(given, self.secret_of(session_id, period).encode())
            for period in (current, current - 1)
        )


class TextPackets(socketio_packet.Packet):
    """socket.io packets without binary attachments. python-socketio 5.8 keeps the binary
    frames a packet announces (up to 10 digits' worth of them) until they have all come,
    even after the socket closed: a stranger could fill the server's memory."""

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise RefusedPacket("binary frame")
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, TypeError, IndexError, KeyError, RecursionError) as malformed:
            raise RefusedPacket(type(malformed).__name__) from None
        binary = (socketio_packet.BINARY_EVENT, socketio_packet.BINARY_ACK)
        if attachments or self.packet_type in binary:
            raise RefusedPacket("binary attachments")
        return attachments


class CappedServer(AsyncServer):
    """python-socketio's server, with at most `per_address` engine.io connections open
    at once from one client address: each holds memory and a ping task from its first
    request, before any socket.io event. One more is refused with a 401 (socket.io's
    clients try again later, as after any failed connection)."""

    def __init__(self, per_address: int, **options: Any) -> None:
        super().__init__(**options)
        self.per_address = per_address
        self.open_from: Counter[str] = Counter()
        self.address_of: Dict[str, str] = {}

    async def _handle_eio_connect(self, eio_sid: str, environ: Dict[str, Any]) -> Any:
        request = environ.get("sanic.request")
        address = client_address(request) if request is not None else "unknown"
        if self.open_from[address] >= self.per_address:
            logger.info("refused a web chat connection: %d open from its address already",
                        self.open_from[address])
            return False  # engine.io forgets it, without a disconnect event
        self.open_from[address] += 1
        self.address_of[eio_sid] = address
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str) -> None:
        address = self.address_of.pop(eio_sid, None)
        if address is not None:
            self.open_from[address] -= 1
            if self.open_from[address] <= 0:
                del self.open_from[address]
        await super()._handle_eio_disconnect(eio_sid)


def hint_of(metadata: Any) -> Dict[str, str]:
    """Only the client's language hint (rasa-webchat calls it `language`)."""
    if isinstance(metadata, dict):
        return language_hint(metadata.get(Metadata.LANGUAGE_HINT) or metadata.get("language"))
    return {}


def answering_what_engineio_mishandles(
    handle: Callable[[Request], Awaitable[HTTPResponse]],
) -> Callable[[Request], Awaitable[HTTPResponse]]:
    """engine.io's request handler, with a 413 for a polling POST over MAX_PAYLOAD_BYTES
    before engine.io sees it, and a 400 for a session that closed meanwhile or a
    websocket frame engine.io cannot decode (it raised it to Sanic: a traceback in the
    log for every such frame)."""

    async def handle_request(request: Request) -> HTTPResponse:
        if (request.method == "POST"
                and int(request.headers.get("content-length") or 0) > MAX_PAYLOAD_BYTES):
            return response.text("payload exceeds maximum size", status=413)
        try:
            return await handle(request)
        except KeyError:  # engine.io's "Session is disconnected"
            return response.text("Invalid session", status=400)
        except (ValueError, TypeError, IndexError, RecursionError) as malformed:
            logger.info("refused a malformed engine.io packet (%s)", type(malformed).__name__)
            websocket = getattr(request.transport.get_protocol(), "websocket", None)
            if websocket is not None:  # a websocket's frame: the socket is closed
                await websocket.close(1003, "malformed packet")
            return response.text("Malformed packet", status=400)

    return handle_request


class _Blueprint(SocketBlueprint):
    """Rasa's socket blueprint, keeping the app so that handlers reach the tracker store."""

    def register(self, app: Sanic, options: Dict[str, Any]) -> None:
        self.ctx.app = app
        engine = self.ctx.sio.eio
        engine.handle_request = answering_what_engineio_mishandles(engine.handle_request)
        for name in ("engineio.server", "socketio.server"):
            logging.getLogger(name).addFilter(MALFORMED_PACKETS)
        super().register(app, options)


class GuardedSocketIOInput(InputChannel):
    """socket.io channel with server-issued sessions; see the module docstring."""

    @classmethod
    def name(cls) -> str:
        return Channel.SOCKETIO

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(
            user_message_evt=credentials.get("user_message_evt", "user_uttered"),
            bot_message_evt=credentials.get("bot_message_evt", "bot_uttered"),
            socketio_path=credentials.get("socketio_path", "/socket.io"),
        )

    def __init__(
        self,
        user_message_evt: str = "user_uttered",
        bot_message_evt: str = "bot_uttered",
        socketio_path: str = "/socket.io",
    ) -> None:
        self.user_message_evt = user_message_evt
        self.bot_message_evt = bot_message_evt
        self.socketio_path = socketio_path
        self.sio: Optional[AsyncServer] = None
        settings = runtime.settings()
        secret = settings.socket_session_secret
        if secret is None:
            logger.warning(
                "SOCKET_SESSION_SECRET is not set: web chat sessions end when the server stops"
            )
        key = secret.get_secret_value() if secret else secrets.token_hex(32)
        self.sessions = Sessions(key.encode())
        self.origins = settings.widget_origins

    def get_output_channel(self) -> Optional[SocketIOOutput]:
        return SocketIOOutput(self.sio, self.bot_message_evt) if self.sio else None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        settings = runtime.settings()
        # Several replicas: rooms through Redis, so that an emit on one reaches them all.
        shared = settings.redis_url
        sio = CappedServer(
            settings.sockets_per_address,
            async_mode="sanic",
            cors_allowed_origins="*" if self.origins == ["*"] else self.origins,
            max_http_buffer_size=MAX_PAYLOAD_BYTES,
            serializer=TextPackets,
            client_manager=AsyncRedisManager(shared.get_secret_value()) if shared else None,
        )
        per_session = rate_limits("socketio-session", settings.rate_per_sender)
        per_address = rate_limits("socketio-address", settings.rate_per_address)
        # Each session_request reads the conversation: as many a minute as messages.
        resumes = rate_limits("socketio-resume", settings.rate_per_address)
        addresses: Dict[str, str] = {}
        webhook = _Blueprint(sio, self.socketio_path, "guarded_socketio_webhook", __name__)
        self.sio = sio
        senders: Dict[str, str] = {}

        async def tracker_events(sender_id: str) -> List[Dict[str, Any]]:
            tracker = await webhook.ctx.app.ctx.agent.tracker_store.retrieve(sender_id)
            return (
                [e.as_dict() for e in tracker.events if isinstance(e, UserUttered | BotUttered)]
                if tracker
                else []
            )

        add_health(webhook)
        close_on_stop(webhook, per_session, per_address, resumes)

        @webhook.listener("after_server_start")
        async def listen_to_the_other_replicas(*_: Any) -> None:
            # python-socketio subscribes to Redis only at the first connection, and the
            # first replies to that client (session_confirm) could come back before it.
            if not sio.manager_initialized:
                sio.manager_initialized = True
                sio.manager.initialize()

        @sio.on("connect")
        async def connect(sid: str, environ: Dict[str, Any], *_: Any) -> None:
            request = environ.get("sanic.request")
            addresses[sid] = client_address(request) if request is not None else "unknown"

        @sio.on("disconnect")
        async def disconnect(sid: str) -> None:
            senders.pop(sid, None)
            addresses.pop(sid, None)

        @sio.on("session_request")
        async def session_request(sid: str, data: Any = None, *_: Any) -> None:
            wait = await resumes.wait_for(addresses.get(sid, "unknown"))
            if wait is not None:
                await sio.emit("session_refused", {
                    "error": "too many session requests, please wait", "retry_after": wait},
                    room=sid)
                return
            data = data if isinstance(data, dict) else {}
            sender_id, secret = data.get("session_id"), data.get("session_secret")
            if not self.sessions.owns(sender_id, secret):
                sender_id, secret = self.sessions.issue()
            else:
                secret = self.sessions.secret_of(sender_id)  # renewed at each resume
            old = senders.get(sid)
            if old and old != sender_id:
                sio.leave_room(sid, old)
            senders[sid] = sender_id
            sio.enter_room(sid, sender_id)
            await sio.emit("session_confirm", sender_id, room=sid)
            await sio.emit(
                "session_secret", {"session_id": sender_id, "session_secret": secret}, room=sid
            )
            try:
                shown = history(await tracker_events(sender_id))
            except Exception as failure:  # noqa: BLE001 - history is a courtesy
                logger.error("web chat history unavailable: %s", type(failure).__name__)
                shown = []
            await sio.emit("session_history", {"messages": shown}, room=sid)

        async def refused(sid: str, sender_id: str) -> bool:
            """Whether this address or this session sent too much: it is told so."""
            wait = await per_address.wait_for(addresses.get(sid, "unknown"))
            if wait is None:
                wait = await per_session.wait_for(sender_id)
            if wait is not None:
                await sio.emit("message_refused", {
                    "error": "too many messages, please wait", "retry_after": wait}, room=sid)
            return wait is not None

        @sio.on("forget_session")
        async def forget_session(sid: str, data: Any = None, *_: Any) -> None:
            sender_id = senders.get(sid)
            if sender_id is None:
                await sio.emit("session_invalid", {"error": "send session_request first"}, room=sid)
                return
            if await refused(sid, sender_id):
                return
            replies: List[Dict[str, Any]] = []
            try:
                # As if the person asked and confirmed: the widget asked them already.
                for text in (DELETE_COMMAND, CONFIRM_COMMAND):
                    collector = CollectingOutputChannel()
                    await on_new_message(
                        UserMessage(text, collector, sender_id, input_channel=self.name())
                    )
                    replies = collector.messages
                store = webhook.ctx.app.ctx.agent.tracker_store
                deleted = await store.retrieve(sender_id) is None
            except Exception as failure:  # noqa: BLE001 - the client may ask again
                logger.error("web chat could not be forgotten: %s", type(failure).__name__)
                await sio.emit(
                    "message_failed", {"error": "not processed, please send it again"}, room=sid
                )
                return
            said = " ".join(m.get("text") or "" for m in replies).strip()
            await sio.emit("session_forgotten", {"deleted": deleted, "text": said}, room=sid)
            if deleted:
                sio.leave_room(sid, sender_id)
                senders.pop(sid, None)

        @sio.on(self.user_message_evt)
        async def handle_message(sid: str, data: Any = None, *_: Any) -> None:
            sender_id = senders.get(sid)
            if sender_id is None and isinstance(data, dict):
                # A client that reconnected may send its session with the message.
                if self.sessions.owns(data.get("session_id"), data.get("session_secret")):
                    sender_id = data["session_id"]
                    senders[sid] = sender_id
                    sio.enter_room(sid, sender_id)
            if sender_id is None or not isinstance(data, dict):
                await sio.emit("session_invalid", {"error": "send session_request first"}, room=sid)
                return
            try:
                text = clean_text(data.get("message"))
            except InvalidMessage as invalid:
                await sio.emit("message_refused", {"error": str(invalid)}, room=sid)
                return
            if await refused(sid, sender_id):
                return
            metadata = hint_of(data.get("metadata") or data.get("customData"))
            collector = CollectingOutputChannel()
            try:
                text = await disarm(webhook.ctx.app, sender_id, text)
                await on_new_message(
                    UserMessage(text, collector, sender_id, input_channel=self.name(),
                                metadata=metadata, message_id=message_id_of(data))
                )
            except Exception as failure:  # noqa: BLE001 - tell the client to send it again
                logger.error("web chat message could not be processed: %s", type(failure).__name__)
                logger.debug("web chat message failure", exc_info=True)
                await sio.emit(
                    "message_failed", {"error": "not processed, please send it again"}, room=sid
                )
                return
            said = " ".join(m.get("text") or "" for m in collector.messages).strip()
            output = SocketIOOutput(sio, self.bot_message_evt)
            for message in collector.messages:
                await output.send_response(message.pop("recipient_id"), message)
            await sio.emit("message_processed", {"replies": len(collector.messages)}, room=sid)
            if await deleted_by(sender_id):
                # "Delete my data" typed, and confirmed: as after "End and forget", the
                # session ends, so its id and secret leave the device with the transcript.
                await sio.emit("session_forgotten", {"deleted": True, "text": said}, room=sid)
                sio.leave_room(sid, sender_id)
                senders.pop(sid, None)

        async def deleted_by(sender_id: str) -> bool:
            """Whether the turn just over deleted the conversation (its tracker is gone)."""
            try:
                return await webhook.ctx.app.ctx.agent.tracker_store.retrieve(sender_id) is None
            except Exception as failure:  # noqa: BLE001 - the session stays; no harm
                logger.error("web chat could not check a deletion: %s", type(failure).__name__)
                return False

        return webhook
