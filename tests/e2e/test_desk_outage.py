"""The desk goes down while tickets are being opened: the action server's outbox keeps
them, and each reaches the restarted desk exactly once. Real desk processes on loopback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from actions.outbox import Outbox
from avrr.db import engine
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PORT = free_port()
TOKEN = "outage-test-token-0123456789"
URL = f"http://127.0.0.1:{PORT}"


def start_desk(data_dir: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        DESK_PORT=str(PORT),
        DESK_API_TOKEN=TOKEN,
        AVRR_DATA_DIR=str(data_dir),
        RASA_URL="http://127.0.0.1:9",
        DESK_INITIAL_PASSWORD="outage-password",
        PYTHONPATH=str(ROOT),
    )
    env.pop("DESK_DATABASE_URL", None)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    desk = subprocess.Popen(
        [sys.executable, "-m", "desk"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir.parent / "desk.log").open("a"),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{URL}/health", timeout=1).ok:
                return desk
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the desk did not start"
        time.sleep(0.2)


def ticket(key: str, conversation: str) -> dict:
    return {
        "idempotency_key": key,
        "conversation_id": conversation,
        "channel": "telegram",
        "language": "uk",
        "urgency": "legal",
        "consent": {"at": "2026-11-24T08:00:00Z", "language": "uk"},
        "transcript": [
            {"sender": "person", "text": "Мені страшно повертатися", "at": "2026-11-24T07:59:00Z"}
        ],
    }


def tickets_of(conversation: str) -> list:
    listed = requests.get(
        f"{URL}/api/tickets?status=all", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).json()
    return [t for t in listed if t["conversation_id"] == conversation]


@pytest.fixture
def desk_dir(tmp_path):
    return tmp_path / "desk"


class Clock:
    """The outbox's clock, moved on by hand instead of waiting out its backoff."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_ticket_kept_while_the_desk_is_down_arrives_once_after_restart(tmp_path, desk_dir):
    clock = Clock()
    outbox = Outbox(engine(f"sqlite:///{tmp_path / 'outbox.db'}"), URL, TOKEN, clock=clock)
    desk = start_desk(desk_dir)
    try:
        outbox.put(
            "ticket-before-0001",
            "tg-1",
            "POST",
            "/api/tickets",
            ticket("ticket-before-0001", "tg-1"),
        )
        outbox.flush()
        assert outbox.answer("ticket-before-0001")["queue_position"] == 1

        desk.send_signal(signal.SIGKILL)
        desk.wait(timeout=10)
        outbox.put(
            "ticket-during-0002",
            "tg-2",
            "POST",
            "/api/tickets",
            ticket("ticket-during-0002", "tg-2"),
        )
        outbox.put(
            "message-during-3",
            "tg-2",
            "POST",
            "/api/inbound",
            {
                "ticket_key": "ticket-during-0002",
                "idempotency_key": "message-during-3",
                "text": "Ви тут?",
                "urgent": True,
            },
        )
        outbox.flush()
        assert outbox.counts() == {"pending": 2, "dead": 0}
        assert outbox.answer("ticket-during-0002") is None

        desk = start_desk(desk_dir)
        clock.now += 60
        outbox.flush()
        assert outbox.counts() == {"pending": 0, "dead": 0}
        # The same requests again (a retried action): still one ticket, one message.
        outbox.put(
            "ticket-during-0002",
            "tg-2",
            "POST",
            "/api/tickets",
            ticket("ticket-during-0002", "tg-2"),
        )
        outbox.flush()
        again = requests.post(
            f"{URL}/api/tickets",
            json=ticket("ticket-during-0002", "tg-2"),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert again.status_code == 200

        [before] = tickets_of("tg-1")
        [during] = tickets_of("tg-2")
        assert during["urgency"] == "urgent"  # raised by the person's message marked urgent
        detail = requests.get(
            f"{URL}/api/tickets/{during['id']}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        ).json()
        assert [(m["sender"], m["text"]) for m in detail["messages"]] == [
            ("person", "Мені страшно повертатися"),
            ("person", "Ви тут?"),
        ]
        assert before["id"] != during["id"]
    finally:
        desk.terminate()
        desk.wait(timeout=10)
