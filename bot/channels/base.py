"""What every channel of ours shares: refusals, the typed-command guard, language hints,
the once-only handling of the platforms' deliveries, and the durable output channel.

A messaging platform (Telegram, WhatsApp) delivers a webhook again when it gets no 200 in
time, even while the first delivery is still being handled. `once` handles each delivery
exactly once: a new one is handled; one in hand answers 503 (the platform tries again
later, by which time it is done or released), however long its handling takes (the claim
is renewed meanwhile); one done answers 200; a failure releases the claim and answers
503, so the platform's retry is handled. The replies are queued in the same transaction
that marks the delivery done, and sent by `bot.channels.delivery`.
"""
import asyncio
import contextlib
import logging
import math
import re
from dataclasses import dataclass, field
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    List,
    Optional,
    Set,
    Type,
    TypeVar,
)

from rasa.core.channels.channel import InputChannel, OutputChannel
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from avrr.network import counted_address
from avrr.settings import Settings, load
from avrr.vocabulary import CODES, Metadata, platform_id, primary_language
from bot import runtime
from bot.channels.delivery import Deliverer
from bot.channels.records import CLAIM_RENEW_S, ChannelRecords, Claim
from bot.text import disarm_command, offered_payloads

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The turns running, held here: asyncio keeps only a weak reference to a task, and a turn
# whose platform hung up has no other.
_RUNNING: Set["asyncio.Task[Any]"] = set()

# A counsellor's reply is confirmed sent within this time, or the desk tries again later.
CONFIRM_TIMEOUT_S = 10.0
CONFIRM_POLL_S = 0.1


def error(reason: str, status: int) -> HTTPResponse:
    """A refusal with its reason, as JSON."""
    return response.json({"error": reason}, status=status)


def too_many(retry_after_s: float) -> HTTPResponse:
    """429, with how long to wait."""
    wait = max(1, math.ceil(retry_after_s))
    return response.json(
        {"error": f"too many messages, please wait {wait} s"},
        status=429,
        headers={"Retry-After": str(wait)},
    )


def client_address(request: Request) -> str:
    """The client's address as the limits count it (avrr.network): the proxies'
    X-Forwarded-For when AVRR_PROXIES_COUNT is set."""
    return counted_address(request.remote_addr or request.ip)


def add_health(blueprint: Blueprint) -> None:
    """`GET /webhooks/<channel>/`: the channel is up."""

    @blueprint.route("/", methods=["GET"])
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})


def language_hint(tag: Any) -> Dict[str, str]:
    """The metadata for a client's language tag ("pt-BR" -> {"language_hint": "pt"}).

    Any primary language subtag is kept (the detector weighs it; the actions use it only
    when it is one of ours); anything else is no hint.
    """
    code = primary_language(tag)
    return {Metadata.LANGUAGE_HINT: code} if code else {}


def ours(hint: Dict[str, str]) -> Optional[str]:
    """The hinted language, if we answer in it."""
    code = hint.get(Metadata.LANGUAGE_HINT)
    return code if code in CODES else None


async def disarm(app: Sanic, sender_id: str, text: str) -> str:
    """`text`, with a typed command turned into words (see `bot.text.disarm_command`).

    Only a button payload the conversation was just offered may reach Rasa as a command.
    """
    if not text.lstrip().startswith("/"):
        return text
    tracker = await app.ctx.agent.tracker_store.retrieve(sender_id)
    offered = offered_payloads(e.as_dict() for e in tracker.events) if tracker else set()
    return disarm_command(text, offered)


# -- once-only handling of a platform's delivery --


class AlreadyHandled(Exception):
    """Handled before: acknowledge it (200)."""


class InHand(Exception):
    """Being handled right now: not yet recorded, so the platform must try again (503)."""


@dataclass
class Turn:
    """What one delivery leaves to send: its replies, rendered for the platform."""

    conversation: Optional[str] = None
    payloads: List[Dict[str, Any]] = field(default_factory=list)
    # Until when these replies may go out whatever else is known (WhatsApp's window).
    window_until: Optional[float] = None

    def reply(self, conversation: str, payloads: List[Dict[str, Any]],
              window_until: Optional[float] = None) -> None:
        self.conversation = conversation
        self.payloads = payloads
        self.window_until = window_until


async def keep_claimed(records: ChannelRecords, channel: str, key: str) -> None:
    """Renew the claim on `key` until cancelled: it expires only if this process stops."""
    while True:
        await asyncio.sleep(CLAIM_RENEW_S)
        try:
            await asyncio.to_thread(records.renew, channel, key)
        except Exception as failure:  # noqa: BLE001 - renewed at the next beat, or expires
            logger.warning("%s claim not renewed: %s", channel, type(failure).__name__)


@contextlib.asynccontextmanager
async def once(records: ChannelRecords, channel: str, key: str) -> AsyncIterator[Turn]:
    """Handle the delivery `key` of `channel` once; see the module docstring.

    Raises AlreadyHandled or InHand instead of entering; keeps the claim while the block
    runs; releases it when the block fails; marks it done and queues the turn's replies
    when the block succeeds.
    """
    claim = await asyncio.to_thread(records.claim, channel, key)
    if claim is Claim.DONE:
        raise AlreadyHandled(key)
    if claim is Claim.IN_HAND:
        raise InHand(key)
    turn = Turn()
    renewing = asyncio.create_task(keep_claimed(records, channel, key))
    try:
        yield turn
    except BaseException:
        renewing.cancel()
        # If even the release fails, the claim expires (records.CLAIM_TIMEOUT_S).
        with contextlib.suppress(Exception):
            await asyncio.to_thread(records.release, channel, key)
        raise
    renewing.cancel()
    await asyncio.to_thread(
        records.finish, channel, key, turn.conversation or "", turn.payloads, turn.window_until
    )


async def handled_once(
    records: ChannelRecords, channel: str, key: str, work: Callable[[Turn], Awaitable[None]]
) -> int:
    """The HTTP status for the platform after handling `key` once with `work`.

    Sanic cancels a request's handler when the client hangs up (a platform that waited
    too long): the turn would stop half done, after an action's side effect, and its
    replies would be lost. It runs in a task of its own, to its end; the platform's
    redelivery meanwhile finds it in hand, and afterwards done."""
    return await to_its_end(_handle_once(records, channel, key, work))


async def to_its_end(work: Awaitable[T]) -> T:
    """`work`, run in a task of its own to its end even if the request awaiting it is
    cancelled (Sanic cancels a handler when its client hangs up). `work` must not raise:
    nobody may be left to hear it."""
    task = asyncio.ensure_future(work)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return await asyncio.shield(task)


async def _handle_once(
    records: ChannelRecords, channel: str, key: str, work: Callable[[Turn], Awaitable[None]]
) -> int:
    try:
        async with once(records, channel, key) as turn:
            await work(turn)
    except AlreadyHandled:
        return 200
    except InHand:
        logger.info("%s delivery in hand already: asked to deliver it again", channel)
        return 503
    except Exception as failure:  # noqa: BLE001 - any failure: the platform delivers again
        # The exception's text may quote the message or the sender (a database error
        # quotes its parameters): only its type is logged above DEBUG.
        logger.error("%s delivery could not be handled: %s", channel, type(failure).__name__)
        logger.debug("%s delivery failure", channel, exc_info=True)
        return 503
    return 200


# -- out: messages that reach Rasa later (a counsellor's reply through the HTTP API) --


class NotYetSent(RuntimeError):
    """The message is queued but not confirmed sent: the desk asks again later."""


class Undeliverable(RuntimeError):
    """The platform refused the message for good (the person blocked the assistant, say):
    Rasa's API answers 410, and the desk marks the reply undeliverable."""


class QueuedOutput(OutputChannel):
    """An output channel that queues each message durably for the channel's deliverer.

    A message with a `reply_key` (a counsellor's reply) is queued once however often it
    is offered, and sending returns only once the platform has it (else NotYetSent, and
    Rasa's API answers 503: the desk offers it again later; or Undeliverable, 410).
    """

    channel: str = ""

    def __init__(self, records: ChannelRecords, wake: Callable[[], None]) -> None:
        self.records = records
        self.wake = wake

    @classmethod
    def name(cls) -> str:
        return cls.channel

    def render(self, message: Dict[str, Any]) -> List[Dict[str, Any]]:
        """The platform's payloads for a Rasa bot message."""
        raise NotImplementedError

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        platform_id(self.channel, recipient_id)  # ValueError: not this channel's person
        payloads = self.render(message)
        if not payloads:
            return
        key = message.get("reply_key")
        key = str(key) if key is not None else None
        await asyncio.to_thread(self.records.enqueue, self.channel, recipient_id, payloads, key)
        self.wake()
        if key is not None:
            await self._confirmed(key)

    async def _confirmed(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONFIRM_TIMEOUT_S
        while not await asyncio.to_thread(self.records.is_sent, self.channel, key):
            if await asyncio.to_thread(self.records.is_refused, self.channel, key):
                raise Undeliverable(f"{self.channel} refused the message for good")
            if loop.time() > deadline:
                raise NotYetSent(f"{self.channel} message queued, not yet sent")
            await asyncio.sleep(CONFIRM_POLL_S)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text, **kwargs})


class QueuedInput(InputChannel):
    """A platform's webhook channel (Telegram, WhatsApp): its settings come from the
    environment only, its records from the Rasa server's runtime, and its replies leave
    through a deliverer that empties its send queue. A subclass names `settings_class`
    and `output_class`, and makes its deliverer in `new_deliverer`."""

    settings_class: Type[Settings]
    output_class: Type[QueuedOutput]

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        if credentials:
            logger.warning("%s settings in the credentials file are ignored: they are read "
                           "from the environment only", cls.name())
        return cls(load(cls.settings_class))

    def __init__(self, settings: Any, records: Optional[ChannelRecords] = None) -> None:
        self.settings = settings
        self._records = records
        self.deliverer: Optional[Deliverer] = None

    @property
    def records(self) -> ChannelRecords:
        return self._records if self._records is not None else runtime.records()

    def new_deliverer(self) -> Deliverer:
        raise NotImplementedError

    def start_delivery(self) -> None:
        self.deliverer = self.new_deliverer()
        self.deliverer.start()

    def wake(self) -> None:
        if self.deliverer is not None:
            self.deliverer.wake()

    async def close(self) -> None:
        if self.deliverer is not None:
            await self.deliverer.stop()

    def get_output_channel(self) -> QueuedOutput:
        return self.output_class(self.records, self.wake)

    def webhook_blueprint(self, name: str) -> Blueprint:
        """The channel's blueprint, with its health route, delivering while Sanic runs."""
        webhook = Blueprint(name, __name__)
        add_health(webhook)

        @webhook.listener("after_server_start")
        async def start(*_: Any) -> None:
            self.start_delivery()

        @webhook.listener("before_server_stop")
        async def stop(*_: Any) -> None:
            await self.close()

        return webhook


MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def message_id_of(data: Dict[str, Any]) -> Optional[str]:
    """The client's id of a message (the widget's, a REST client's), the same when it
    sends the message again after a dropped connection or a timeout: the desk then takes a
    relay or a consent once (actions/handoff.py `message_key`). Anything else: None, and
    Rasa makes one."""
    given = data.get("message_id")
    return given if isinstance(given, str) and MESSAGE_ID.fullmatch(given) else None
