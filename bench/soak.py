"""Soak run: Telegram conversations for minutes while the assistant's parts are killed.

Run from anywhere with the project's virtual environment (and its dev packages)::

    .venv/bin/python bench/soak.py [--conversations 20] [--minutes 5] [--kill-every 60]
        [--drain-timeout 300] [-v]

The whole assistant is started with ``python -m bot.launch`` as the load benchmark
starts it (bench/processes.py: free ports, a fresh data folder, its own session), with
the Telegram channel pointed at the fake Telegram Bot API of the e2e tests
(tests/fakes/telegram_api.py), which records every ``sendMessage``.

Load. N conversations, each a private Telegram chat of its own (distinct chat ids), post
updates to ``/webhooks/telegram/webhook`` with the webhook's secret header, for M
minutes. Each sends the plain questions of SCRIPT, cycled, one message at a time. Every
update has a unique ``update_id``; like Telegram, the same update is delivered again,
after 1, 2, 4 ... RETRY_MAX_S seconds, while the answer is not 200 or the connection
fails. The next message is sent only once the chat's replies have all gone out: its
send queue (``outgoing`` in the channels' database, read as the e2e tests read it) is
empty. No message is started after M minutes; the one in hand is finished.

Faults. Every K seconds one part is SIGKILLed, in turn: the action server, the desk, the
Rasa server (as tests/e2e/test_faults.py kills them). The launcher starts it again; the
report says when the new process appeared and when it answered its health check again
(Rasa: ``/status`` naming a model, which takes minutes). Afterwards the run waits, at most
``--drain-timeout`` seconds, for every conversation to finish, every send queue to be
empty and every killed part to be back.

Counting. Replies carry no update id, so they are attributed by order: a webhook answers
200 only once the message is recorded and all its replies are queued, the replies of a
chat go out in order, and a chat's next message is sent only after its queue is empty.
So the replies recorded for a chat between the first delivery of its message k and that
of its message k+1 (or the end of the run) are exactly message k's. Per update:

- sent: posted at least once; acknowledged: answered 200 at some delivery;
- answered: acknowledged, and at least one reply recorded for it;
- lost: acknowledged, and no reply ever recorded for it;
- duplicated: among its replies, one with the same text as the reply just before it
  (a reply sent twice; the counts give the updates and the extra replies);
- unacknowledged: never answered 200 before the deadline (Telegram would give up);
- answered differently: its replies differ from the most common replies to the same
  question in the same place (a chat's first message, which also gets the language
  menu, or a later one) over the whole run (informational: the content is
  deterministic, so this shows, e.g., an error message during an outage, or replies
  missing or extra);
- user messages in the trackers: Rasa's count of the chats' user messages, at the end;
  more than acknowledged means a message was handled twice.

Memory. Every RSS_EVERY_S seconds the Rasa server's and the action server's resident
set size are read with psutil; the processes are found again among the launcher's
children by their command line each time, so restarts are followed.

The Markdown report is printed and written to ``bench/soak.md``.

Exit status: 0 when nothing was lost, duplicated or left unacknowledged, 1 when
something was (or the assistant failed), 2 when a prerequisite is missing, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import logging
import shlex
import shutil
import sqlite3
import subprocess  # noqa: S404 - we start our own servers
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, only bench/ is on the path: the repository's packages too.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from avrr.vocabulary import Channel, conversation_id  # noqa: E402
from bench import processes  # noqa: E402
from bench.generate import percentile  # noqa: E402
from bench.processes import BenchError  # noqa: E402
from bench.report import MIB, fmt, machine  # noqa: E402
from bot.launch import answers  # noqa: E402
from tests.assistant import (  # noqa: E402
    CHANNEL_ENV,
    RASA_TOKEN,
    Assistant,
    kill,
    telegram_update,
    user_texts,
)
from tests.fakes.telegram_api import FakeTelegramApi  # noqa: E402

logger = logging.getLogger(__name__)

SOAK_FILE = REPO_ROOT / "bench" / "soak.md"

# Plain questions, each answered by action_answer alone: no form, no handoff, no
# deletion (so a conversation's replies do not depend on where it is in the script).
SCRIPT = (
    "hello",
    "how much does it cost?",
    "how long does it take?",
    "what happens to my asylum case?",
    "who sees my data?",
    "what help do I get after I return?",
    "thank you",
)
# The parts killed in turn, as `python -m <module>`.
KILL_ORDER = ("bot.action_server", "desk", "bot.serve")
PART_NAMES = {"bot.action_server": "action server", "desk": "desk", "bot.serve": "Rasa server"}

WEBHOOK_PATH = "/webhooks/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
REQUEST_TIMEOUT_S = 30.0
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 16.0
PAUSE_S = 1.0  # between a chat's replies and its next message
QUEUE_POLL_S = 0.5
FOLLOW_POLL_S = 0.5
RSS_EVERY_S = 10.0
KILL_WAIT_S = 30.0  # for a part to be running again before it is killed
MAX_PROBLEMS_LISTED = 20


# --------------------------------------------------------------------------
# What is measured
# --------------------------------------------------------------------------


@dataclass
class Delivery:
    """One update of one chat: its deliveries, and the replies attributed to it."""

    chat_id: int
    turn: int
    text: str
    update_id: int
    replies_before: int  # sendMessage calls to the chat before its first delivery
    first_post: float  # time.monotonic()
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged_at: float | None = None
    replies: list[str] = field(default_factory=list)
    first_reply_at: float | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether a delivery was answered 200."""
        return self.acknowledged_at is not None

    @property
    def duplicates(self) -> int:
        """Replies with the same text as the reply just before them."""
        return sum(1 for before, reply in itertools.pairwise(self.replies) if before == reply)


@dataclass
class Kill:
    """One part SIGKILLed, and when it was back."""

    part: str
    at: float  # seconds since the start
    pid: int | None = None
    new_pid: int | None = None
    restarted_at: float | None = None
    back_at: float | None = None


@dataclass
class RssSample:
    """The servers' resident memory at one moment (None: not running then)."""

    at: float  # seconds since the start
    rasa_pid: int | None
    rasa_rss: int | None
    action_pid: int | None
    action_rss: int | None


@dataclass
class Tally:
    """The counts of the report."""

    sent: int = 0
    posts: int = 0
    acknowledged: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    duplicate_replies: int = 0
    unacknowledged: int = 0
    unusual: int = 0
    tracker_users: int | None = None
    statuses: Counter[str] = field(default_factory=Counter)
    first_reply_s: list[float] = field(default_factory=list)
    slowest: str = ""  # the update that waited longest for its first reply
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Anything lost, duplicated or never acknowledged."""
        return bool(self.lost or self.duplicated or self.unacknowledged)


@dataclass
class Soak:
    """One soak run: the assistant, the fake Telegram API, the clock and what was seen."""

    assistant: Assistant
    telegram: FakeTelegramApi
    conversations: int
    kill_every: float
    started: float  # time.monotonic() at the start
    stop_at: float  # no message is started after this
    deadline: float  # nothing is waited for after this
    update_ids: Iterator[int]
    chats: dict[int, list[Delivery]] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    samples: list[RssSample] = field(default_factory=list)
    drained_at: float | None = None

    def now(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    @property
    def webhook_url(self) -> str:
        """Where Telegram posts updates."""
        return self.assistant.url + WEBHOOK_PATH

    def health_url(self, module: str) -> str:
        """What answers once the part is back (Rasa: /status naming a loaded model)."""
        return {
            "bot.action_server": f"{self.assistant.action_url}/health",
            "desk": f"{self.assistant.desk_url}/health",
            "bot.serve": f"{self.assistant.url}/status?token={RASA_TOKEN}",
        }[module]


# --------------------------------------------------------------------------
# The assistant, with Telegram on the fake API
# --------------------------------------------------------------------------


def telegram_env(env: dict[str, str], api_root: str) -> dict[str, str]:
    """The launcher's environment with the Telegram channel on the fake API.

    The Rasa API token is the e2e tests' own, so that their `Assistant.api` works.
    """
    return env | {
        "TELEGRAM_API_BASE_URL": api_root,
        "TELEGRAM_BOT_TOKEN": CHANNEL_ENV["TELEGRAM_BOT_TOKEN"],
        "TELEGRAM_WEBHOOK_SECRET": CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"],
        "RASA_API_TOKEN": RASA_TOKEN,
    }


def ports_of(env: dict[str, str]) -> SimpleNamespace:
    """The parts' ports, as the e2e tests' `Ports` holds them."""
    return SimpleNamespace(
        rasa=int(env["RASA_PORT"]),
        action=int(env["ACTION_PORT"]),
        desk=int(env["DESK_PORT"]),
        widget=int(env["WIDGET_PORT"]),
    )


@contextlib.contextmanager
def launched(logs_dir: Path, api_root: str) -> Iterator[Assistant]:
    """`python -m bot.launch` as bench/processes.py starts it, Telegram on `api_root`.

    Yields the e2e tests' view of a running assistant (tests/e2e/conftest.py): its URLs,
    its parts, its send queue, Rasa's API. Everything is stopped when the block ends.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="avrr-soak-data-"))
    log_path = logs_dir / "bot-launch.log"
    env = telegram_env(processes.our_env(data_dir), api_root)
    with open(log_path, "wb") as log:
        proc = processes.start_process(
            [processes.PYTHON, "-m", "bot.launch"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            log=log,
            name="bot.launch",
        )
        pump: processes.LinePump | None = None
        try:
            assert proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
            pump = processes.LinePump(proc.stdout, log)
            processes.wait_for_ready_line(proc, pump, log_path)
            logger.info("bot.launch is ready")
            yield Assistant(data_dir, log_path, ports_of(env), proc)
        finally:
            processes.stop_process(proc, "bot.launch")
            if pump is not None:
                pump.join(timeout=5)
            shutil.rmtree(data_dir, ignore_errors=True)


def running_pid(assistant: Assistant, module: str) -> int | None:
    """The pid of the part running `python -m <module>` now, None between two lives."""
    try:
        return assistant.part(module).pid
    except (AssertionError, psutil.Error):
        return None


def queued(assistant: Assistant, chat_id: int) -> int | None:
    """Replies to the chat still in the send queue; None if the database was busy."""
    try:
        return assistant.queued(conversation_id(Channel.TELEGRAM, str(chat_id)))
    except sqlite3.Error:
        return None


# --------------------------------------------------------------------------
# The conversations
# --------------------------------------------------------------------------


async def post_update(session: aiohttp.ClientSession, url: str, update: dict[str, Any]) -> str:
    """Deliver an update once; the HTTP status, or why there was none."""
    headers = {SECRET_HEADER: CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"]}
    try:
        async with session.post(url, json=update, headers=headers) as resp:
            await resp.read()
            return str(resp.status)
    except asyncio.TimeoutError:
        return "timeout"
    except aiohttp.ClientConnectionError:
        return "connection failed"
    except aiohttp.ClientError as exc:
        return type(exc).__name__


async def deliver(
    soak: Soak, session: aiohttp.ClientSession, update: dict[str, Any], delivery: Delivery
) -> bool:
    """Deliver the update, again and again with backoff, until 200; False at the deadline."""
    pause = RETRY_FIRST_S
    while True:
        status = await post_update(session, soak.webhook_url, update)
        delivery.statuses[status] += 1
        if status == "200":
            delivery.acknowledged_at = time.monotonic()
            return True
        if status in ("400", "403"):  # ours is wrong, not the assistant's state
            raise BenchError(f"the Telegram webhook refuses our updates (HTTP {status})")
        if time.monotonic() + pause > soak.deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(RETRY_MAX_S, pause * 2)


async def drained(soak: Soak, chat_id: int) -> bool:
    """Wait until the chat's send queue is empty; False at the deadline."""
    while await asyncio.to_thread(queued, soak.assistant, chat_id) != 0:
        if time.monotonic() >= soak.deadline:
            return False
        await asyncio.sleep(QUEUE_POLL_S)
    return True


async def converse(soak: Soak, session: aiohttp.ClientSession, chat_id: int) -> None:
    """One person: the script, cycled, one message at a time, until the time is up."""
    deliveries = soak.chats.setdefault(chat_id, [])
    for turn in itertools.count():
        if time.monotonic() >= soak.stop_at:
            return
        text = SCRIPT[turn % len(SCRIPT)]
        update = telegram_update(chat_id, text)
        update["update_id"] = next(soak.update_ids)
        update["message"]["message_id"] = turn + 1
        update["message"]["from"]["language_code"] = "en"
        delivery = Delivery(
            chat_id=chat_id,
            turn=turn,
            text=text,
            update_id=update["update_id"],
            replies_before=len(soak.telegram.sent_to(chat_id)),
            first_post=time.monotonic(),
        )
        deliveries.append(delivery)
        if not await deliver(soak, session, update, delivery):
            logger.warning("chat %d: update %d never acknowledged", chat_id, delivery.update_id)
            return
        if not await drained(soak, chat_id):
            logger.warning("chat %d: its replies are still queued at the deadline", chat_id)
            return
        await asyncio.sleep(PAUSE_S)


async def run_conversations(soak: Soak) -> None:
    """All the conversations at once, until each has finished its last message."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=soak.conversations)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        first = 10**9 + uuid.uuid4().int % 10**8
        await asyncio.gather(
            *(converse(soak, session, first + n) for n in range(soak.conversations))
        )
    logger.info("conversations finished at %.0f s", soak.now())


# --------------------------------------------------------------------------
# The faults
# --------------------------------------------------------------------------


async def follow_restart(soak: Soak, record: Kill) -> None:
    """Note when the killed part runs again, and when it answers again."""
    url = soak.health_url(record.part)
    while time.monotonic() < soak.deadline:
        if record.restarted_at is None:
            pid = await asyncio.to_thread(running_pid, soak.assistant, record.part)
            if pid is not None and pid != record.pid:
                record.new_pid, record.restarted_at = pid, soak.now()
        elif await asyncio.to_thread(answers, url):
            record.back_at = soak.now()
            logger.info("%s back at %.0f s", PART_NAMES[record.part], record.back_at)
            return
        await asyncio.sleep(FOLLOW_POLL_S)


async def kill_part(soak: Soak, module: str) -> Kill:
    """SIGKILL the part (waiting a little if it is between two lives) and follow it."""
    record = Kill(part=module, at=soak.now())
    waited_until = time.monotonic() + KILL_WAIT_S
    while running_pid(soak.assistant, module) is None and time.monotonic() < waited_until:
        await asyncio.sleep(FOLLOW_POLL_S)
    try:
        record.pid = await asyncio.to_thread(kill, soak.assistant, module)
    except (AssertionError, psutil.Error) as failure:
        logger.warning("%s not killed: %s", PART_NAMES[module], failure)
    record.at = soak.now()
    logger.info("killed the %s (pid %s) at %.0f s", PART_NAMES[module], record.pid, record.at)
    soak.kills.append(record)
    return record


async def kill_in_turn(soak: Soak) -> None:
    """Every --kill-every seconds, SIGKILL the next part; then wait for all to be back."""
    followers = []
    for number in itertools.count(1):
        due = soak.started + number * soak.kill_every
        if due >= soak.stop_at:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        record = await kill_part(soak, KILL_ORDER[(number - 1) % len(KILL_ORDER)])
        if record.pid is not None:
            followers.append(asyncio.create_task(follow_restart(soak, record)))
    await asyncio.gather(*followers)


# --------------------------------------------------------------------------
# Memory and the end of the run
# --------------------------------------------------------------------------


def rss_sample(soak: Soak) -> RssSample:
    """The Rasa and action servers' RSS now, found again by their command lines."""
    rasa_pid, action_pid = processes.find_our_servers(soak.assistant.launcher.pid)
    return RssSample(
        at=soak.now(),
        rasa_pid=rasa_pid,
        rasa_rss=processes.read_rss(rasa_pid) if rasa_pid else None,
        action_pid=action_pid,
        action_rss=processes.read_rss(action_pid) if action_pid else None,
    )


async def sample_rss(soak: Soak) -> None:
    """Sample every RSS_EVERY_S seconds until cancelled."""
    while True:
        soak.samples.append(await asyncio.to_thread(rss_sample, soak))
        await asyncio.sleep(RSS_EVERY_S)


async def wait_drained(soak: Soak) -> None:
    """Wait, until the deadline, for every chat's send queue to be empty."""
    while time.monotonic() < soak.deadline:
        counts = [await asyncio.to_thread(queued, soak.assistant, chat) for chat in soak.chats]
        if all(count == 0 for count in counts):
            soak.drained_at = soak.now()
            logger.info("send queues empty at %.0f s", soak.drained_at)
            return
        await asyncio.sleep(QUEUE_POLL_S)
    logger.warning("send queues not empty at the deadline")


async def run_soak(soak: Soak) -> None:
    """Conversations and kills at once; then the drain; memory sampled all along."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=soak.conversations + 8))
    sampler = asyncio.create_task(sample_rss(soak))
    try:
        await asyncio.gather(run_conversations(soak), kill_in_turn(soak))
        await wait_drained(soak)
        # The fake API records a call before answering it: nothing is on its way now.
        await asyncio.sleep(1.0)
        soak.samples.append(await asyncio.to_thread(rss_sample, soak))
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)


# --------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------


def attribute_replies(soak: Soak) -> None:
    """Give each update the replies recorded between its first delivery and the next's."""
    for chat_id, deliveries in soak.chats.items():
        calls = soak.telegram.sent_to(chat_id)
        ends = [d.replies_before for d in deliveries[1:]] + [len(calls)]
        for delivery, end in zip(deliveries, ends, strict=True):
            mine = calls[delivery.replies_before : end]
            delivery.replies = [str(call.params.get("text", "")) for call in mine]
            delivery.first_reply_at = mine[0].at if mine else None


def question(delivery: Delivery) -> tuple[str, bool]:
    """What is asked, and whether it opens the chat (a first message gets more)."""
    return delivery.text, delivery.turn == 0


def usual_replies(deliveries: Sequence[Delivery]) -> dict[tuple[str, bool], tuple[str, ...]]:
    """The most common replies to each question of the script, first or later."""
    seen: dict[tuple[str, bool], Counter[tuple[str, ...]]] = {}
    for delivery in deliveries:
        if delivery.acknowledged and delivery.replies:  # a lost update is counted apart
            seen.setdefault(question(delivery), Counter())[tuple(delivery.replies)] += 1
    return {asked: counter.most_common(1)[0][0] for asked, counter in seen.items()}


def tracker_users(soak: Soak) -> int | None:
    """User messages in the chats' trackers (Rasa's API); None if Rasa did not say."""
    try:
        return sum(
            len(user_texts(soak.assistant, conversation_id(Channel.TELEGRAM, str(chat))))
            for chat in soak.chats
        )
    except (requests.RequestException, KeyError, ValueError) as failure:
        logger.warning("trackers not read: %s", type(failure).__name__)
        return None


def describe(delivery: Delivery, problem: str) -> str:
    """One line of the problems list."""
    return (
        f"chat {delivery.chat_id} message {delivery.turn + 1} ({delivery.text!r}, "
        f"update {delivery.update_id}): {problem}; replies {delivery.replies!r}"
    )


def count(soak: Soak) -> Tally:
    """Attribute the replies and count what came of every update."""
    attribute_replies(soak)
    deliveries = [d for chat in soak.chats.values() for d in chat]
    usual = usual_replies(deliveries)
    tally = Tally(sent=len(deliveries), tracker_users=tracker_users(soak))
    for d in deliveries:
        tally.posts += sum(d.statuses.values())
        tally.statuses.update(d.statuses)
        if d.first_reply_at is not None:
            wait = d.first_reply_at - d.first_post
            if wait > max(tally.first_reply_s, default=0.0):
                tally.slowest = (
                    f"chat {d.chat_id} message {d.turn + 1} ({d.text!r}), first delivered "
                    f"at {d.first_post - soak.started:.0f} s; its deliveries: "
                    f"{statuses_text(d.statuses)}"
                )
            tally.first_reply_s.append(wait)
        if not d.acknowledged:
            tally.unacknowledged += 1
            tally.problems.append(describe(d, "never acknowledged"))
            continue
        tally.acknowledged += 1
        if d.replies:
            tally.answered += 1
        else:
            tally.lost += 1
            tally.problems.append(describe(d, "lost"))
        if d.duplicates:
            tally.duplicated += 1
            tally.duplicate_replies += d.duplicates
            tally.problems.append(describe(d, f"{d.duplicates} duplicate(s)"))
        if d.replies and tuple(d.replies) != usual[question(d)]:
            tally.unusual += 1
            tally.problems.append(describe(d, "answered differently from the usual"))
    return tally


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    """Seconds since the start, or a dash."""
    return "—" if value is None else f"{value:.0f}"


def mib(value: int | None) -> str:
    """Bytes in MiB, or a dash (not running)."""
    return "—" if value is None else f"{value / MIB:.0f}"


def count_rows(tally: Tally) -> list[str]:
    """The table of counts."""
    tracker = "n/a" if tally.tracker_users is None else str(tally.tracker_users)
    return [
        "| Updates | Count |",
        "|---|--:|",
        f"| sent (distinct update ids) | {tally.sent} |",
        f"| deliveries (POSTs, with redeliveries) | {tally.posts} |",
        f"| acknowledged (200) | {tally.acknowledged} |",
        f"| answered (at least one reply) | {tally.answered} |",
        f"| **lost** (acknowledged, never answered) | {tally.lost} |",
        f"| **duplicated** (a reply sent twice in a row) | {tally.duplicated} "
        f"({tally.duplicate_replies} extra replies) |",
        f"| **unacknowledged** (never 200 before the deadline) | {tally.unacknowledged} |",
        f"| answered differently from the usual | {tally.unusual} |",
        f"| user messages in Rasa's trackers (vs acknowledged) | {tracker} |",
    ]


def statuses_text(statuses: Counter[str]) -> str:
    """HTTP statuses (or failures) and how often each came."""
    return ", ".join(f"{status} × {n}" for status, n in sorted(statuses.items())) or "none"


def status_line(tally: Tally) -> str:
    """The webhook's answers to all deliveries."""
    return f"Webhook answers over all deliveries: {statuses_text(tally.statuses)}."


def latency_line(tally: Tally) -> str:
    """From an update's first delivery to its first reply, outages included."""
    values = sorted(tally.first_reply_s)
    if not values:
        return "No reply was recorded."
    return (
        "From an update's first delivery to its first reply (outages included): "
        f"median {fmt(percentile(values, 0.5))} s, p95 {fmt(percentile(values, 0.95))} s, "
        f"max {fmt(values[-1])} s: {tally.slowest}."
    )


def kill_rows(kills: Sequence[Kill]) -> list[str]:
    """The table of kills."""
    if not kills:
        return ["No part was killed (the run was shorter than --kill-every)."]
    rows = [
        "| # | Killed at (s) | Part | Pid | Running again at (s) | Answering at (s) "
        "| Down for (s) |",
        "|--:|--:|---|--:|--:|--:|--:|",
    ]
    for number, k in enumerate(kills, 1):
        down = None if k.back_at is None else k.back_at - k.at
        rows.append(
            f"| {number} | {k.at:.0f} | {PART_NAMES[k.part]} | {k.pid or 'not running'} "
            f"| {seconds(k.restarted_at)} | {seconds(k.back_at)} | {seconds(down)} |"
        )
    return rows


def restarted(before: RssSample | None, samples: Sequence[RssSample], attr: str) -> bool:
    """Whether the pid in `attr` changed since the sample `before`."""
    pids = [getattr(s, attr) for s in ([before] if before else []) + list(samples)]
    known = [pid for pid in pids if pid is not None]
    return len(set(known)) > 1 or None in pids


def rss_rows(samples: Sequence[RssSample]) -> list[str]:
    """One row per minute: the last sample in it, the peak, restarts or absences."""
    if not samples:
        return ["No memory sample was taken."]
    rows = [
        "| Minute | Rasa (MiB) | Rasa peak (MiB) | Action server (MiB) "
        "| Action server peak (MiB) | Note |",
        "|---|--:|--:|--:|--:|---|",
    ]
    previous: RssSample | None = None
    for minute in range(int(samples[-1].at // 60) + 1):
        inside = [s for s in samples if minute * 60 <= s.at < (minute + 1) * 60]
        if not inside:
            continue
        last = inside[-1]
        rasa_peak = max((s.rasa_rss for s in inside if s.rasa_rss), default=None)
        action_peak = max((s.action_rss for s in inside if s.action_rss), default=None)
        notes = [
            f"{name} restarted or down"
            for name, attr in (("Rasa", "rasa_pid"), ("action server", "action_pid"))
            if restarted(previous, inside, attr)
        ]
        rows.append(
            f"| {minute}-{minute + 1} | {mib(last.rasa_rss)} | {mib(rasa_peak)} "
            f"| {mib(last.action_rss)} | {mib(action_peak)} | {'; '.join(notes)} |"
        )
        previous = last
    return rows


def render_report(
    soak: Soak,
    tally: Tally,
    args: argparse.Namespace,
    started: datetime.datetime,
    startup_s: float,
) -> str:
    """Build the Markdown report."""
    drained = (
        f"send queues empty at {soak.drained_at:.0f} s"
        if soak.drained_at is not None
        else f"send queues still not empty {args.drain_timeout:g} s later"
    )
    lines = [
        "# Soak run: Telegram conversations while parts are killed",
        "",
        f"- Command: `{shlex.join(sys.orig_argv)}`",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Machine: {machine()}",
        f"- Plan: {args.conversations} Telegram chats for {args.minutes:g} min, each "
        f"sending the {len(SCRIPT)} questions of the script in turn, one at a time, the "
        "next once the replies are out; undelivered updates are delivered again with "
        f"backoff (1 s doubling to {RETRY_MAX_S:g} s) until 200. Every "
        f"{args.kill_every:g} s one part SIGKILLed, in turn: "
        + ", ".join(PART_NAMES[m] for m in KILL_ORDER)
        + ".",
        f"- bot.launch ready after {startup_s:.0f} s; times below are seconds from then. "
        f"Last message started before {args.minutes * 60:.0f} s; {drained}.",
        f"- Result: **{'FAIL' if tally.failed else 'PASS'}** "
        f"({tally.lost} lost, {tally.duplicated} duplicated, "
        f"{tally.unacknowledged} unacknowledged)",
        "",
        "## Updates and replies",
        "",
        *count_rows(tally),
        "",
        status_line(tally),
        latency_line(tally),
        "",
        "Replies are attributed by order (see bench/soak.py): a chat's next message is "
        "sent only once its send queue is empty, so the replies between two of its "
        "messages answer the first.",
        "",
        "## Kills",
        "",
        *kill_rows(soak.kills),
        "",
        "## Resident memory",
        "",
        f"Sampled every {RSS_EVERY_S:g} s; per minute, the last sample and the peak "
        "(— : not running at the last sample).",
        "",
        *rss_rows(soak.samples),
        "",
    ]
    if tally.problems:
        lines += ["## Problems", ""]
        lines += [f"- {p}" for p in tally.problems[:MAX_PROBLEMS_LISTED]]
        if len(tally.problems) > MAX_PROBLEMS_LISTED:
            lines.append(f"- … and {len(tally.problems) - MAX_PROBLEMS_LISTED} more")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Soak run: Telegram conversations while the assistant's parts are killed."
    )
    parser.add_argument(
        "--conversations",
        type=processes.positive_int,
        default=20,
        help="simultaneous Telegram chats (default 20)",
    )
    parser.add_argument(
        "--minutes",
        type=processes.positive_float,
        default=5.0,
        help="minutes during which messages are sent (default 5)",
    )
    parser.add_argument(
        "--kill-every",
        type=processes.positive_float,
        default=60.0,
        help="seconds between two SIGKILLs, of the action server, the desk and the Rasa "
        "server in turn (default 60)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=processes.positive_float,
        default=300.0,
        help="seconds to wait afterwards for the queues to drain and the parts to be "
        "back (default 300)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (to stderr)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, logs_dir: Path, started: datetime.datetime) -> tuple[str, bool]:
    """Start everything, soak, count; the report and whether it failed."""
    processes.check_our_prerequisites()
    telegram = FakeTelegramApi()
    api_root = telegram.start()
    try:
        launch_started = time.monotonic()
        with launched(logs_dir, api_root) as assistant:
            now = time.monotonic()
            stop_at = now + args.minutes * 60
            soak = Soak(
                assistant=assistant,
                telegram=telegram,
                conversations=args.conversations,
                kill_every=args.kill_every,
                started=now,
                stop_at=stop_at,
                deadline=stop_at + args.drain_timeout,
                update_ids=itertools.count(uuid.uuid4().int % 2**30),
            )
            asyncio.run(run_soak(soak))
            tally = count(soak)
        report = render_report(soak, tally, args, started, now - launch_started)
        return report, tally.failed
    finally:
        telegram.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; return the process exit status (1 if anything was lost or doubled)."""
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()
    return processes.run_and_report(
        args.verbose, "soak", lambda logs_dir: run(args, logs_dir, started), SOAK_FILE)


if __name__ == "__main__":
    sys.exit(main())
