"""A running assistant (`python -m bot.launch`) as the end-to-end tests and the soak
harness (`bench/soak.py`) drive it: its tokens, its ports, its HTTP API, its send queue,
and the faults they inject (a part killed)."""
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict

import requests

from tests.ports import free_port

DESK_TOKEN = "desk-test-token-0123456789"
# Long enough for an HMAC-SHA256 key: JWTs are signed with the Rasa token.
RASA_TOKEN = "rasa-test-token-0123456789abcdefghijkl"
ACTION_TOKEN = "action-test-token-0123456789"
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


class Ports:
    """Free ports for one assistant."""

    def __init__(self) -> None:
        self.rasa, self.action, self.desk, self.widget = (free_port() for _ in range(4))


class Assistant:
    """A running assistant and what it leaves behind: its log and its database."""

    def __init__(self, data_dir: Path, log: Path, ports: Ports,
                 launcher: subprocess.Popen) -> None:
        self.ports = ports
        self.url = f"http://127.0.0.1:{ports.rasa}"
        self.action_url = f"http://127.0.0.1:{ports.action}"
        self.desk_url = f"http://127.0.0.1:{ports.desk}"
        self.widget_url = f"http://127.0.0.1:{ports.widget}/"
        self.data_dir = data_dir
        self.db = data_dir / "conversations.db"
        self.log = log
        self.launcher = launcher

    def part(self, module: str):
        """The running process of one part (`bot.action_server`, `bot.serve`, `desk`)."""
        import psutil

        for child in psutil.Process(self.launcher.pid).children():
            if module in child.cmdline():
                return child
        raise AssertionError(f"{module} is not running")

    def post(self, body, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/rest/webhook", json=body, timeout=30, **kwargs)

    def say(self, sender: str, text: str):
        """The bot's replies to `text`, as (text, [button payloads]) pairs."""
        reply = self.post({"sender": sender, "message": text})
        assert reply.status_code == 200, reply.text
        return [(m.get("text"), [b["payload"] for b in m.get("buttons", [])]) for m in reply.json()]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """Rasa's HTTP API, with its token."""
        params = dict(kwargs.pop("params", {}), token=RASA_TOKEN)
        return requests.request(method, f"{self.url}{path}", params=params, timeout=30, **kwargs)

    def queue(self, conversation: str) -> Dict[str, int]:
        """Messages to `conversation` in the channels' send queue, by state (queued, held)."""
        with sqlite3.connect(self.data_dir / "channels.db") as db:
            return dict(db.execute(
                "SELECT state, count(*) FROM outgoing WHERE conversation = ? GROUP BY state",
                (conversation,),
            ).fetchall())

    def queued(self, conversation: str) -> int:
        """Messages to `conversation` still in the channels' send queue (queued or held)."""
        return sum(self.queue(conversation).values())

    def drained(self, conversation: str, timeout: float = 30) -> None:
        """Wait until everything queued for `conversation` has gone out. A webhook answers
        200 only once its replies are queued, so after this nothing more comes for them."""
        deadline = time.monotonic() + timeout
        while self.queued(conversation):
            assert time.monotonic() < deadline, f"{conversation}: the queue does not drain"
            time.sleep(0.1)

    def tracker(self, sender: str):
        reply = self.api("GET", f"/conversations/{sender}/tracker")
        assert reply.status_code == 200, reply.text
        return reply.json()


def kill(assistant, module: str) -> int:
    part = assistant.part(module)
    part.send_signal(signal.SIGKILL)
    part.wait(timeout=10)
    return part.pid


def telegram_update(chat_id: int, text: str) -> dict:
    return {
        "update_id": uuid.uuid4().int % 2**31,
        "message": {"message_id": 1, "date": int(time.time()), "text": text,
                    "from": {"id": chat_id, "is_bot": False, "first_name": "A"},
                    "chat": {"id": chat_id, "first_name": "A", "type": "private"}},
    }


def user_texts(assistant, conversation):
    events = assistant.api("GET", f"/conversations/{conversation}/tracker").json()["events"]
    return [e["text"] for e in events if e["event"] == "user"]
