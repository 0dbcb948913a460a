"""The real assistant on loopback, started once by `python -m bot.launch`: Rasa, the
action server, the counsellor desk and the widget's page, with Telegram and WhatsApp
pointed at local fakes of their APIs."""
import os
import queue
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests
import socketio

from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.telegram_api import FakeTelegramApi

ROOT = Path(__file__).resolve().parents[2]
RASA_PORT = 5305
ACTION_PORT = 5355
DESK_PORT = 8300
WIDGET_PORT = 8380
STARTUP_TIMEOUT_S = 300
DESK_TOKEN = "desk-test-token-0123456789"
COUNSELLOR_PASSWORD = "counsellor-test-password"
CHANNEL_ENV = {
    "TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN",
    "TELEGRAM_WEBHOOK_SECRET": "telegram-test-secret",
    "DESK_TELEGRAM_CHAT_ID": "-1001234567890",
    "WHATSAPP_ACCESS_TOKEN": "wa-test-token",
    "WHATSAPP_APP_SECRET": "wa-test-secret",
    "WHATSAPP_VERIFY_TOKEN": "wa-verify-token",
    "WHATSAPP_PHONE_NUMBER_ID": "1098765432",
}


class Assistant:
    """A running assistant and what it leaves behind: its log and its database."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{RASA_PORT}"
        self.action_url = f"http://127.0.0.1:{ACTION_PORT}"
        self.widget_url = f"http://127.0.0.1:{WIDGET_PORT}/"
        self.data_dir = data_dir
        self.db = data_dir / "conversations.db"
        self.log = log

    def post(self, body, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/rest/webhook", json=body, timeout=30, **kwargs)

    def say(self, sender: str, text: str):
        """The bot's replies to `text`, as (text, [button payloads]) pairs."""
        reply = self.post({"sender": sender, "message": text})
        assert reply.status_code == 200, reply.text
        return [(m.get("text"), [b["payload"] for b in m.get("buttons", [])]) for m in reply.json()]

    def tracker(self, sender: str):
        return requests.get(f"{self.url}/conversations/{sender}/tracker", timeout=30).json()


@pytest.fixture(scope="session")
def telegram_api():
    fake = FakeTelegramApi()
    fake.root = fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def graph_api():
    fake = FakeGraphApi()
    fake.base = fake.start()
    yield fake
    fake.stop()


def launch_env(data_dir: Path, telegram_api, graph_api) -> Dict[str, str]:
    env = dict(
        os.environ,
        RASA_PORT=str(RASA_PORT),
        ACTION_PORT=str(ACTION_PORT),
        DESK_PORT=str(DESK_PORT),
        WIDGET_PORT=str(WIDGET_PORT),
        AVRR_DATA_DIR=str(data_dir),
        RASA_TELEMETRY_ENABLED="false",
        DESK_API_TOKEN=DESK_TOKEN,
        DESK_INITIAL_PASSWORD=COUNSELLOR_PASSWORD,
        TELEGRAM_API_BASE_URL=telegram_api.root,
        WHATSAPP_API_BASE_URL=graph_api.base,
        **CHANNEL_ENV,
    )
    env.pop("RASA_API_TOKEN", None)
    env.pop("DESK_DATABASE_URL", None)
    return env


@pytest.fixture(scope="session")
def assistant(tmp_path_factory, telegram_api, graph_api):
    data_dir = tmp_path_factory.mktemp("data")
    log = data_dir / "servers.log"
    env = launch_env(data_dir, telegram_api, graph_api)
    with log.open("w") as log_file:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "bot.launch"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        line = ""
        while "ready" not in line:
            line = launcher.stdout.readline()
            if not line and launcher.poll() is not None:
                pytest.fail(f"the assistant did not start:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the assistant did not start in time")
        yield Assistant(data_dir, log)
    finally:
        launcher.terminate()
        launcher.wait(timeout=60)


class Desk:
    """The running counsellor desk, seen through its API."""

    def __init__(self, assistant: Assistant) -> None:
        self.url = f"http://127.0.0.1:{DESK_PORT}"
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
        self.client.connect(url, socketio_path="/socket.io", transports=["websocket"])
        self.client.emit("session_request", {"session_id": session_id, "session_secret": secret})
        self.session_id = self.confirmed.get(timeout=15)
        self.secret = self.secrets.get(timeout=15)["session_secret"]

    def say(self, text: str, **metadata) -> None:
        self.client.emit(
            "user_uttered", {"message": text, "session_id": self.session_id, "metadata": metadata}
        )

    def replies(self, count: int, timeout: float = 20) -> List[Dict[str, Any]]:
        return [self.received.get(timeout=timeout) for _ in range(count)]

    def until(self, predicate, timeout: float = 20) -> List[Dict[str, Any]]:
        """Messages received until one matches `predicate` (that one included)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            seen.append(self.received.get(timeout=max(0.1, deadline - time.monotonic())))
            if predicate(seen[-1]):
                return seen

    def quiet(self, seconds: float = 2.0) -> List[Dict[str, Any]]:
        """Whatever arrives within `seconds`."""
        seen = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                seen.append(self.received.get(timeout=max(0.05, deadline - time.monotonic())))
            except queue.Empty:
                break
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
