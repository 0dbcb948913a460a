"""Load generation: simulated conversations on the REST webhook, level after level.

At a concurrency level C, C simulated users run at once. Each posts the messages of a
fixed script, cycled, to the REST webhook, waiting for every reply before sending the
next message; every pass through the script ("hello" ... "bye") is a conversation with
its own fresh sender id. Requests that finish in the warm-up are not counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from bench.processes import RssSampler, RunningServer

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/rest/webhook"
REQUEST_TIMEOUT_S = 30.0
ERROR_BACKOFF_S = 0.1
# Our REST channel refuses senders naming another channel's conversation
# ("telegram:", "whatsapp:", "web-"): ours start with this instead.
SENDER_PREFIX = "bench-"

OUR_SCRIPT = (
    "hello",
    "what is voluntary return",
    "is it free",
    "i have no passport",
    "how long does it take",
    "who will see my data",
    "what help after return",
    "thank you",
    "bye",
)
STARTER_SCRIPT = ("hello", "I am sad", "yes", "are you a bot?", "great", "bye")
SCRIPTS = {"ours": OUR_SCRIPT, "starter": STARTER_SCRIPT}


@dataclass
class LevelResult:
    """Measurements for one (server, concurrency) pair."""

    server: str
    concurrency: int
    measured_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: int = 0
    rasa_rss_peak: int | None = None
    action_rss_peak: int | None = None
    has_action_server: bool = False

    @property
    def messages(self) -> int:
        """Number of counted (successful) messages in the measured window."""
        return len(self.latencies_s)

    @property
    def error_count(self) -> int:
        """Number of failed requests in the measured window."""
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Counted messages per measured second."""
        return self.messages / self.measured_s if self.measured_s > 0 else 0.0

    def latency_ms(self, fraction: float) -> float | None:
        """Latency percentile in milliseconds, or None without any sample."""
        value = percentile(sorted(self.latencies_s), fraction)
        return None if value is None else value * 1000.0


@dataclass(frozen=True)
class LoadPlan:
    """What to run against each server."""

    levels: Sequence[int]
    duration: float
    warmup: float
    keep_sender: bool


@dataclass
class Window:
    """The measured interval, as time.perf_counter() values."""

    start: float
    end: float


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Return the percentile (linear interpolation) of already sorted values."""
    if not sorted_values:
        return None
    rank = fraction * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def new_sender() -> str:
    """A fresh conversation id that the REST channel accepts."""
    return SENDER_PREFIX + uuid.uuid4().hex


async def send_message(
    session: aiohttp.ClientSession, url: str, sender: str, text: str
) -> str | None:
    """Post one message; return None on success or a short error kind.

    Success means HTTP 200 and a JSON list body. The error kind never contains
    message text.
    """
    try:
        async with session.post(url, json={"sender": sender, "message": text}) as resp:
            body = await resp.read()
            status = resp.status
    except asyncio.TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return type(exc).__name__
    if status != 200:
        return f"HTTP {status}"
    try:
        parsed = json.loads(body)
    except ValueError:
        return "body not JSON"
    if not isinstance(parsed, list):
        return "body not a JSON list"
    return None


async def conversation(
    session: aiohttp.ClientSession,
    url: str,
    script: Sequence[str],
    window: Window,
    result: LevelResult,
    keep_sender: bool,
) -> None:
    """One simulated user: send the script, cycled, until the window ends.

    Every pass through the script ("hello" ... "bye") is a new conversation with
    a fresh sender id, so each one is as long as the script. With keep_sender,
    one sender id is kept for the whole run instead: its tracker then grows all
    along, and so does the latency (Rasa loads the whole tracker per message).
    """
    sender = new_sender()
    index = 0
    while time.perf_counter() < window.end:
        if index and index % len(script) == 0 and not keep_sender:
            sender = new_sender()
        text = script[index % len(script)]
        index += 1
        started = time.perf_counter()
        error = await send_message(session, url, sender, text)
        finished = time.perf_counter()
        # Counted by when it was sent, however long it took: a request still running when
        # the window ends (slow, or timing out REQUEST_TIMEOUT_S later) is waited for and
        # counted, or the slowest requests and every timeout would never show.
        if window.start <= started < window.end:
            if error is None:
                result.latencies_s.append(finished - started)
            else:
                result.errors[error] += 1
        elif started < window.start and error is not None:
            result.warmup_errors += 1
        if error is not None:
            logger.debug("request failed: %s", error)
            await asyncio.sleep(ERROR_BACKOFF_S)


async def run_level(
    server: RunningServer, script: Sequence[str], concurrency: int, plan: LoadPlan
) -> LevelResult:
    """Run `concurrency` conversations for warm-up + duration seconds."""
    result = LevelResult(
        server=server.name,
        concurrency=concurrency,
        measured_s=plan.duration,
        has_action_server=server.has_action_server,
    )
    url = server.base_url + WEBHOOK_PATH
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        now = time.perf_counter()
        window = Window(start=now + plan.warmup, end=now + plan.warmup + plan.duration)
        tasks = [
            asyncio.create_task(
                conversation(session, url, script, window, result, plan.keep_sender)
            )
            for _ in range(concurrency)
        ]
        # Bounded: conversations stop sending at window.end and every request has
        # a total timeout, so this only guards against the unexpected.
        done, pending = await asyncio.wait(
            tasks, timeout=plan.warmup + plan.duration + REQUEST_TIMEOUT_S + 10
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()
    return result


async def smoke_test(server: RunningServer, script: Sequence[str]) -> None:
    """Send one message and log whether the webhook answers as expected."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S * 2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        error = await send_message(
            session, server.base_url + WEBHOOK_PATH, new_sender(), script[0]
        )
    if error is None:
        logger.info("%s: webhook answers", server.name)
    else:
        logger.warning("%s: first message failed (%s)", server.name, error)


def bench_server(server: RunningServer, plan: LoadPlan) -> list[LevelResult]:
    """Load one server at every concurrency level, sampling its memory."""
    script = SCRIPTS[server.name]
    asyncio.run(smoke_test(server, script))
    results = []
    for concurrency in plan.levels:
        logger.info(
            "%s: %d conversation(s), %g s warm-up + %g s measured",
            server.name,
            concurrency,
            plan.warmup,
            plan.duration,
        )
        with RssSampler({"rasa": server.rasa_pid, "action": server.action_pid}) as rss:
            result = asyncio.run(run_level(server, script, concurrency, plan))
        result.rasa_rss_peak = rss.peaks["rasa"]
        result.action_rss_peak = rss.peaks["action"]
        if result.errors:
            logger.warning(
                "%s at C=%d: %d error(s): %s",
                server.name,
                concurrency,
                result.error_count,
                dict(result.errors),
            )
        if result.warmup_errors:
            logger.info("%s: %d error(s) during warm-up", server.name, result.warmup_errors)
        p95 = result.latency_ms(0.95)
        logger.info(
            "%s at C=%d: %.1f msg/s, p95 %s ms",
            server.name,
            concurrency,
            result.throughput,
            "n/a" if p95 is None else f"{p95:.0f}",
        )
        results.append(result)
    return results
