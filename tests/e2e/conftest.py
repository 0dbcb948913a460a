"""The real assistant on loopback, started once by `python -m bot.launch`: Rasa, the
action server, the counsellor desk and the widget's page, with Telegram and WhatsApp
pointed at local fakes of their APIs. Every port is a free one: two checkouts, or a
running `make run`, never collide with the tests."""
import contextlib
import os
import queue
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
import socketio

from tests import launcher as launcher_of
from tests.assistant import (
    ACTION_TOKEN,
    CHANNEL_ENV,
    COUNSELLOR_PASSWORD,
    DESK_TOKEN,
    RASA_TOKEN,
    Assistant,
    Ports,
)
from tests.fakes.graph_api import FakeGraphApi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def graph_api():
    fake = FakeGraphApi()
    fake.base = fake.start()
    yield fake
    fake.stop()


def launch_env(data_dir: Path, telegram_api, graph_api, ports: Ports) -> Dict[str, str]:
    env = dict(
        os.environ,
        RASA_PORT=str(ports.rasa),
        ACTION_PORT=str(ports.action),
        DESK_PORT=str(ports.desk),
        WIDGET_PORT=str(ports.widget),
        AVRR_DATA_DIR=str(data_dir),
        RASA_TELEMETRY_ENABLED="false",
        DESK_API_TOKEN=DESK_TOKEN,
        RASA_API_TOKEN=RASA_TOKEN,
        # Every test speaks from 127.0.0.1: the limit per sender is tested, not per address.
        RATE_LIMIT_PER_ADDRESS="100000",
        ACTION_SERVER_TOKEN=ACTION_TOKEN,
        DESK_INITIAL_PASSWORD=COUNSELLOR_PASSWORD,
        TELEGRAM_API_BASE_URL=telegram_api.root,
        WHATSAPP_API_BASE_URL=graph_api.base,
        **CHANNEL_ENV,
    )
    for name in ("DESK_DATABASE_URL", "AVRR_DATABASE_URL", "REST_CHANNEL_TOKEN",
                 "SOCKET_SESSION_SECRET", "WIDGET_ORIGINS", "WIDGET_RASA_URL"):
        env.pop(name, None)
    return env


@contextlib.contextmanager
def started(data_dir: Path, telegram_api, graph_api,
            own_content: bool = False) -> Iterator[Assistant]:
    """`python -m bot.launch` on free ports with its data in `data_dir`, until the block
    ends; with `own_content`, on a copy of content/ in `data_dir` that a test may edit."""
    ports = Ports()
    log = data_dir / "servers.log"
    env = launch_env(data_dir, telegram_api, graph_api, ports)
    if own_content:
        shutil.copytree(ROOT / "content", data_dir / "content")
        env["AVRR_CONTENT_DIR"] = str(data_dir / "content")
    launcher = launcher_of.start("bot.launch", env, log, "the assistant")
    try:
        yield Assistant(data_dir, log, ports, launcher)
    finally:
        launcher_of.stop(launcher, timeout_s=60)


@pytest.fixture(scope="session")
def assistant(tmp_path_factory, telegram_api, graph_api):
    with started(tmp_path_factory.mktemp("data"), telegram_api, graph_api) as running:
        yield running


@pytest.fixture(scope="session")
def isolated(tmp_path_factory, telegram_api, graph_api):
    """A second assistant, for tests that kill its parts, fuzz it or edit its content
    (`data_dir / "content"`): the others' state is never theirs to break."""
    with started(tmp_path_factory.mktemp("isolated"), telegram_api, graph_api,
                 own_content=True) as running:
        yield running


class Desk:
    """The running counsellor desk, seen through its API."""

    def __init__(self, assistant: Assistant) -> None:
        self.url = assistant.desk_url
        self.token = DESK_TOKEN
        self.username = "counsellor"
        self.password = COUNSELLOR_PASSWORD
        self.assistant = assistant

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def create_ticket(self, **fields) -> Dict[str, Any]:
        at = datetime.now(timezone.utc).isoformat()
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "conversation_id": f"test-{uuid.uuid4().hex[:12]}",
            "channel": "rest",
            "language": "en",
            "topic": "request_human",
            "urgency": "normal",
            "consent": {"at": at, "language": fields.get("language", "en")},
            "transcript": [{"sender": "person", "text": "I need help", "at": at}],
        }
        body.update(fields)
        reply = self.api("POST", "/api/tickets", json=body)
        assert reply.status_code in (200, 201), reply.text
        return reply.json()

    def open_ticket_of(self, conversation_id: str, timeout: float = 15) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                t for t in self.api("GET", "/api/tickets?status=open").json()
                if t["conversation_id"] == conversation_id
            ]
            if found:
                return found[0]
            time.sleep(0.3)
        raise AssertionError(f"no open ticket for {conversation_id}")


@pytest.fixture(scope="session")
def desk(assistant) -> Desk:
    return Desk(assistant)


TURN_OVER = {"event": "message_processed"}


class WebChat:
    """A person on the web chat: Rasa's socket.io protocol, as a widget speaks it."""

    def __init__(self, url: str, session_id: Any = None, secret: Any = None) -> None:
        self.received: queue.Queue[Dict[str, Any]] = queue.Queue()
        self.history: queue.Queue[List[Dict[str, Any]]] = queue.Queue()
        self.confirmed: queue.Queue[str] = queue.Queue()
        self.secrets: queue.Queue[Dict[str, str]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("bot_uttered", self.received.put)
        self.client.on("session_confirm", self.confirmed.put)
        self.client.on("session_secret", self.secrets.put)
        self.client.on("session_history", lambda data: self.history.put(data["messages"]))
        self.forgotten: queue.Queue[Dict[str, Any]] = queue.Queue()
        self.client.on("session_forgotten", self.forgotten.put)
        # The end of each turn, in order with the replies: what arrived before it is all.
        self.client.on("message_processed", lambda data: self.received.put(TURN_OVER))
        self.client.connect(url, socketio_path="/socket.io", transports=["websocket"])
        self.client.emit("session_request", {"session_id": session_id, "session_secret": secret})
        self.sent = self.processed = 0
        self.session_id = self.confirmed.get(timeout=15)
        self.secret = self.secrets.get(timeout=15)["session_secret"]

    def say(self, text: str, **metadata) -> None:
        self.sent += 1
        self.client.emit(
            "user_uttered", {"message": text, "session_id": self.session_id, "metadata": metadata}
        )

    def _next(self, deadline: float) -> Dict[str, Any]:
        message = self.received.get(timeout=max(0.1, deadline - time.monotonic()))
        if message is TURN_OVER:
            self.processed += 1
        return message

    def turn(self, timeout: float = 20) -> List[Dict[str, Any]]:
        """The replies to the latest message sent: what arrives between the end of the
        turn before it and the end of its own (the turns are processed in order)."""
        seen: List[Dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while self.processed < self.sent:
            message = self._next(deadline)
            if message is TURN_OVER:
                if self.processed < self.sent:
                    seen = []  # an earlier turn's, already read by replies() or until()
            else:
                seen.append(message)
        return seen

    def say_and_wait(self, text: str, **metadata) -> List[Dict[str, Any]]:
        self.say(text, **metadata)
        return self.turn()

    def replies(self, count: int, timeout: float = 20) -> List[Dict[str, Any]]:
        """The next `count` replies (the ends of turns between them are skipped)."""
        deadline = time.monotonic() + timeout
        seen = []
        while len(seen) < count:
            message = self._next(deadline)
            if message is not TURN_OVER:
                seen.append(message)
        return seen

    def until(self, predicate, timeout: float = 20) -> List[Dict[str, Any]]:
        """Messages received until one matches `predicate` (that one included)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if message is TURN_OVER:
                continue
            seen.append(message)
            if predicate(message):
                return seen

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def web_chat(assistant):
    chats: List[WebChat] = []

    def open_chat(session_id: Any = None, secret: Any = None) -> WebChat:
        chat = WebChat(assistant.url, session_id, secret)
        chats.append(chat)
        return chat

    yield open_chat
    for chat in chats:
        chat.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()
