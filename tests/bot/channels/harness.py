"""A channel mounted as Rasa mounts it, reached over ASGI, with a stand-in for Rasa."""
import asyncio
import contextlib
import uuid
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import httpx
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Sanic

from avrr.db import engine
from bot.channels.delivery import Deliverer
from bot.channels.records import ChannelRecords

GREETING = "Hello! I am the IOM Hungary assistant, a computer program."
TOPICS = [
    {"title": "What is voluntary return?", "payload": "/ask_what_is_avr"},
    {"title": "Can I apply?", "payload": "/ask_eligibility"},
    {"title": "Does it cost money?", "payload": "/ask_cost"},
    {"title": "Talk to a counsellor", "payload": "/request_human"},
]


def new_records(tmp_path) -> ChannelRecords:
    records = ChannelRecords(engine(f"sqlite:///{tmp_path / 'channels.db'}"))
    records.create_schema()
    return records


class Tracker:
    def __init__(self) -> None:
        self.events: List[Any] = []
        self.slots: Dict[str, Any] = {}

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)


class Rasa:
    """Stands in for the agent: records what it is given, answers from a script, keeps
    trackers with the bot's buttons (for the typed-command guard) and the language."""

    def __init__(self) -> None:
        self.received: List[UserMessage] = []
        self.trackers: Dict[str, Tracker] = {}
        self.failures = 0
        self.language = "en"
        self.delay = 0.0
        # Called with the conversation id once a message is handled (a deletion, say).
        self.then: Optional[Callable[[str], Any]] = None
        self.answers: List[Tuple[str, Sequence[Dict[str, str]]]] = [
            (GREETING, ()),
            ("What would you like to know?", TOPICS),
        ]

    async def retrieve(self, sender_id: str) -> Optional[Tracker]:
        return self.trackers.get(sender_id)

    async def handle(self, message: UserMessage) -> None:
        self.received.append(message)
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RuntimeError(f"database is locked for {message.sender_id}")
        tracker = self.trackers.setdefault(message.sender_id, Tracker())
        tracker.events.append(UserUttered(message.text))
        for text, offered in self.answers:
            tracker.events.append(BotUttered(text, data={"buttons": list(offered)}))
            if offered:
                await message.output_channel.send_text_with_buttons(
                    message.sender_id, text, list(offered)
                )
            else:
                await message.output_channel.send_text_message(message.sender_id, text)
        tracker.slots["language"] = self.language
        if self.then is not None:
            self.then(message.sender_id)
            self.trackers.pop(message.sender_id, None)

    def texts(self) -> List[str]:
        return [m.text for m in self.received]


class Lifespan:
    """Sanic's startup and shutdown, driven as an ASGI server drives them."""

    def __init__(self, app: Sanic) -> None:
        self.app = app
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task: Optional[asyncio.Future] = None

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await asyncio.wait_for(self.outbox.get(), 10)
        assert answer["type"] == f"lifespan.{event}.complete"

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        # Sanic 21.12 goes on as if the lifespan were a request, and fails: not ours.
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AttributeError):
            await self.task


@contextlib.asynccontextmanager
async def served(app: Sanic, base_url: str = "http://rasa"):
    """An HTTP client of `app`, started and stopped as an ASGI server does it (set
    `Sanic.test_mode` first: several apps in one process)."""
    lifespan = Lifespan(app)
    await lifespan.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client
    await lifespan.shutdown()


@contextlib.asynccontextmanager
async def mounted(channel: Any, rasa: Rasa, monkeypatch):
    """An HTTP client of `channel`'s blueprint in its own Sanic app. The deliverer is made
    at start-up but not started: tests drive it with `settle`."""
    monkeypatch.setattr(Sanic, "test_mode", True)  # several apps in one process
    monkeypatch.setattr(Deliverer, "start", lambda self: None)
    app = Sanic(f"channel_test_{uuid.uuid4().hex[:12]}", configure_logging=False)
    app.ctx.agent = SimpleNamespace(tracker_store=rasa)
    app.blueprint(channel.blueprint(rasa.handle), url_prefix=f"/webhooks/{channel.url_prefix()}")
    async with served(app) as client:
        yield client


async def settle(deliverer: Deliverer) -> None:
    """Send everything due now, as the delivery task would, until nothing more is due."""
    for _ in range(100):
        if not await deliverer.deliver_due():
            return
    raise AssertionError("the queue does not settle")
