"""The real assistant (Rasa server and action server) on loopback, started once."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
RASA_PORT = 5305
ACTION_PORT = 5355
STARTUP_TIMEOUT_S = 300


class Assistant:
    """A running assistant and what it leaves behind: its log and its database."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{RASA_PORT}"
        self.action_url = f"http://127.0.0.1:{ACTION_PORT}"
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
def assistant(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    log = data_dir / "servers.log"
    env = dict(
        os.environ,
        RASA_PORT=str(RASA_PORT),
        ACTION_PORT=str(ACTION_PORT),
        AVRR_DATA_DIR=str(data_dir),
        RASA_TELEMETRY_ENABLED="false",
    )
    env.pop("RASA_API_TOKEN", None)
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
