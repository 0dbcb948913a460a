"""`make cluster` for real, once per session: `python -m bot.cluster` with Debian's
PostgreSQL, Redis and nginx, two Rasa servers, two action servers and two desks, on
ports of its own (never `make run`'s or `make cluster`'s), its data in a temporary
folder. Telegram points at a local fake of its Bot API, so that what reaches a person
can be counted. The tests talk to it through nginx, as a client would, and read what
it stored in PostgreSQL and Redis."""
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import psutil
import psycopg2
import pytest
import redis
import requests

from bot.cluster import LOOPBACK, RASA_DATABASE, Layout
from bot.launch import KEPT_SECRETS, port_free
from tests import launcher as launcher_of

ROOT = Path(__file__).resolve().parents[2]
# Long enough for the messages of one conversation queued at once on a loaded machine;
# short enough that a conversation whose lock died with its replica resumes soon.
LOCK_LIFETIME_S = 20
TELEGRAM_SECRET = "telegram-cluster-secret"
TELEGRAM = {"TELEGRAM_BOT_TOKEN": "123456:CLUSTER-TEST", "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET}
# Every test speaks from 127.0.0.1: the limits per address are not what is tested here.
PER_ADDRESS = "100000"
PORT_SPAN = 40
# Questions with an answer of their own, each understood in a few words.
QUESTIONS = [
    ("ask_cost", "is it free?"),
    ("ask_duration", "how long until i can leave"),
    ("ask_confidentiality", "who will see my data"),
    ("ask_contact", "what is your address"),
    ("ask_voluntariness", "is it really voluntary"),
]


def new_sender() -> str:
    return f"cluster-{uuid.uuid4().hex}"


def free_base() -> int:
    """A base port whose whole span (the cluster's ports) is free now."""
    for _ in range(100):
        # Below the kernel's range for outgoing connections (32768-60999): a readiness
        # probe could otherwise connect to itself on a port not yet listening.
        base = random.randrange(20000, 32768 - PORT_SPAN)  # noqa: S311 - not a secret
        if all(port_free(port) for port in range(base, base + PORT_SPAN)):
            return base
    raise AssertionError("no span of free ports for a cluster")


Reply = Tuple[Optional[str], List[str]]


def messages(events: List[Dict[str, Any]]) -> List[Tuple[str, Any]]:
    """The user's texts and the bot's messages of `events` (tracker or stored), as the REST
    channel answers them: a bot message without buttons goes paragraph by paragraph."""
    found: List[Tuple[str, Any]] = []
    for event in events:
        if event["event"] == "user":
            found.append(("user", event.get("text")))
        elif event["event"] == "bot" and event.get("text"):
            buttons = [b["payload"] for b in (event.get("data") or {}).get("buttons") or []]
            if buttons:
                found.append(("bot", (event["text"], buttons)))
            else:
                found += [("bot", (part, [])) for part in event["text"].strip().split("\n\n")]
    return found


def turns(events: List[Dict[str, Any]]) -> List[Tuple[str, List[Reply]]]:
    """Each user text with the bot's messages that follow it, up to the next user text."""
    found: List[Tuple[str, List[Reply]]] = []
    for kind, value in messages(events):
        if kind == "user":
            found.append((value, []))
        elif found:
            found[-1][1].append(value)
    return found


def replies_of(answer: requests.Response) -> List[Reply]:
    return [(m.get("text"), [b["payload"] for b in m.get("buttons", [])])
            for m in answer.json()]


def disorder(events: List[Dict[str, Any]], replies: Dict[str, List[Reply]]) -> Optional[str]:
    """What is wrong with `events` as the record of the messages answered `replies`, or
    None when each message is there once, followed by its own replies and by nothing else
    before the next message."""
    stored = turns(events)
    texts = [text for text, _ in stored]
    if sorted(texts) != sorted(replies):
        return f"{len(replies)} messages answered, stored: {texts}"
    others = [text for text, answered in stored if replies[text] != answered]
    if others:
        return f"followed by replies not their own: {others}"
    return None


class Cluster:
    """A running cluster: its launcher, its ports and what it keeps."""

    def __init__(self, folder: Path, layout: Layout, launcher: subprocess.Popen,
                 log: Path) -> None:
        self.folder = folder
        self.layout = layout
        self.launcher = launcher
        self.log = log
        self.url = f"http://{LOOPBACK}:{layout.rasa_front}"
        self.desk_url = f"http://{LOOPBACK}:{layout.desk_front}"

    def secret(self, name: str) -> str:
        return (self.folder / name.lower()).read_text().strip()

    # Talking to it, through nginx.

    def post(self, sender: str, text: str, timeout: float = 60) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/rest/webhook",
                             json={"sender": sender, "message": text}, timeout=timeout)

    def say(self, sender: str, text: str) -> Tuple[List[Reply], str]:
        """The replies to `text`, as (text, [button payloads]), and who answered."""
        reply = self.post(sender, text)
        assert reply.status_code == 200, reply.text
        return replies_of(reply), reply.headers["X-Served-By"]

    def at_once(self, sender: str, texts: List[str]) -> List[requests.Response]:
        """The answers to `texts`, all sent at the same moment."""
        with ThreadPoolExecutor(len(texts)) as pool:
            return list(pool.map(lambda text: self.post(sender, text), texts))

    def telegram(self, update: Dict[str, Any]) -> requests.Response:
        """Post `update` to the Telegram webhook, as Telegram does."""
        return requests.post(f"{self.url}/webhooks/telegram/webhook", json=update,
                             headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
                             timeout=60)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Rasa's HTTP API, with its token."""
        params = dict(kwargs.pop("params", {}), token=self.secret("RASA_API_TOKEN"))
        return requests.request(method, f"{self.url}{path}", params=params, timeout=60,
                                **kwargs)

    def tracker(self, sender: str) -> Dict[str, Any]:
        reply = self.api("GET", f"/conversations/{sender}/tracker")
        assert reply.status_code == 200, reply.text
        return reply.json()

    def desk(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The desks' API, with the API token."""
        headers = {"Authorization": f"Bearer {self.secret('DESK_API_TOKEN')}"}
        return requests.request(method, f"{self.desk_url}{path}", headers=headers,
                                timeout=60, **kwargs)

    # What it stored.

    def database(self, name: str = RASA_DATABASE):
        return psycopg2.connect(host=LOOPBACK, port=self.layout.postgres, user="avrr",
                                password=self.secret("POSTGRES_PASSWORD"), dbname=name)

    def query(self, sql: str, *values: Any, database: str = RASA_DATABASE) -> List[tuple]:
        connection = self.database(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, values)
                return cursor.fetchall()
        finally:
            connection.close()

    def stored_events(self, sender: str) -> List[Dict[str, Any]]:
        """The events PostgreSQL holds for `sender`, in the order they were written."""
        return [json.loads(data) for (data,) in self.query(
            "SELECT data FROM events WHERE sender_id = %s ORDER BY id", sender)]

    def drained(self, conversation: str, timeout: float = 30) -> None:
        """Until nothing waits in the channels' send queue for `conversation`."""
        deadline = time.monotonic() + timeout
        while self.query("SELECT count(*) FROM outgoing WHERE conversation = %s",
                         conversation)[0][0]:
            assert time.monotonic() < deadline, f"{conversation}: the queue does not drain"
            time.sleep(0.2)

    def redis(self) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.layout.redis,
                           password=self.secret("REDIS_PASSWORD"))

    # Its processes.

    def process_on(self, port: int) -> psutil.Process:
        """The part listening on `port`."""
        for child in psutil.Process(self.launcher.pid).children():
            with contextlib.suppress(psutil.Error):
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                       for c in child.net_connections(kind="tcp")):
                    return child
        raise AssertionError(f"nothing of the cluster listens on {port}")

    def kill(self, port: int) -> None:
        """SIGKILL the part on `port`, and wait until it is dead (the launcher reaps it)."""
        victim = self.process_on(port)
        victim.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        with contextlib.suppress(psutil.NoSuchProcess):
            while victim.status() != psutil.STATUS_ZOMBIE:
                assert time.monotonic() < deadline, f"the part on {port} does not die"
                time.sleep(0.05)

    @contextlib.contextmanager
    def down(self, port: int) -> Iterator[None]:
        """The part on `port` dead until the block ends, then started again: the launcher
        is paused meanwhile (SIGSTOP), so that it cannot restart it earlier."""
        launcher = psutil.Process(self.launcher.pid)
        launcher.suspend()
        try:
            self.kill(port)
            yield
        finally:
            launcher.resume()
        self.wait_until_up([port])

    def answers(self, port: int, path: str = "/health") -> bool:
        if port in self.layout.rasa:
            path = f"/status?token={self.secret('RASA_API_TOKEN')}"
        try:
            reply = requests.get(f"http://{LOOPBACK}:{port}{path}", timeout=2)
        except requests.RequestException:
            return False
        return reply.ok and (port not in self.layout.rasa or "model_file" in reply.json())

    def wait_until_up(self, ports: List[int], timeout: float = 180) -> None:
        """Until every part of `ports` answers (the launcher restarts a dead one)."""
        deadline = time.monotonic() + timeout
        for port in ports:
            while not self.answers(port):
                assert time.monotonic() < deadline, f"the part on {port} is not back"
                time.sleep(0.5)

    def all_up(self) -> None:
        """Every Rasa server, action server and desk answers, and nginx sends to each
        (it leaves one that refused a connection aside for a few seconds)."""
        layout = self.layout
        self.wait_until_up(layout.rasa + layout.actions + layout.desks)
        for front, pool, path in ((layout.rasa_front, layout.rasa, "/webhooks/rest/"),
                                  (layout.desk_front, layout.desks, "/health")):
            seen: set = set()
            deadline = time.monotonic() + 30
            while seen != {f"{LOOPBACK}:{port}" for port in pool}:
                assert time.monotonic() < deadline, f"nginx does not reach all of {pool}"
                reply = requests.get(f"http://{LOOPBACK}:{front}{path}", timeout=10)
                seen.add(reply.headers.get("X-Served-By"))


def cluster_env(folder: Path, layout: Layout, **more: str) -> Dict[str, str]:
    env = dict(
        os.environ,
        AVRR_CLUSTER_DIR=str(folder),
        CLUSTER_PORT=str(layout.base),
        REPLICAS=str(layout.replicas),
        RASA_TELEMETRY_ENABLED="false",
        RATE_LIMIT_PER_ADDRESS=PER_ADDRESS,
        TICKET_LOCK_LIFETIME=str(LOCK_LIFETIME_S),
        **more,
    )
    # The cluster makes its own secrets and databases, and keeps them in its folder.
    for name in (*KEPT_SECRETS, "AVRR_DATABASE_URL", "DESK_DATABASE_URL", "AVRR_REDIS_URL",
                 "REST_CHANNEL_TOKEN", "WIDGET_ORIGINS", "DESK_TELEGRAM_CHAT_ID",
                 "WHATSAPP_ACCESS_TOKEN"):
        if name not in more:
            env.pop(name, None)
    return env


@contextlib.contextmanager
def started(replicas: int = 2, **env: str) -> Iterator[Cluster]:
    """`python -m bot.cluster` on free ports, its data in a new folder, until the block
    ends; then stopped as Ctrl-C stops it, and its folder removed."""
    root = Path(tempfile.mkdtemp(prefix="avrr-cluster-"))
    root.chmod(0o711)  # PostgreSQL runs as its own account, and passes through
    folder, log = root / "cluster", root / "cluster.log"
    layout = Layout(free_base(), replicas)
    try:
        launcher = launcher_of.start("bot.cluster", cluster_env(folder, layout, **env), log,
                                     "the cluster")
        try:
            yield Cluster(folder, layout, launcher, log)
        finally:
            launcher_of.stop(launcher)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(telegram_api) -> Iterator[Cluster]:
    with started(TELEGRAM_API_BASE_URL=telegram_api.root, **TELEGRAM) as running:
        yield running


@pytest.fixture
def healthy(cluster) -> Cluster:
    """The cluster with every part up and reached by nginx (an earlier test killed some)."""
    cluster.all_up()
    return cluster
