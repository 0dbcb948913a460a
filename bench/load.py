"""Load benchmark: the assistant under test against a vanilla ``rasa init`` starter.

Run from anywhere with the project's virtual environment::

    .venv/bin/python bench/load.py [--concurrency 1,4,16] [--duration 20]
        [--warmup 3] [--skip-starter] [--skip-ours] [--keep-sender] [-v]

For each server, one after the other, and for each concurrency level C, the
benchmark runs C simulated users at once. Each posts the messages of a fixed
script, cycled, to the REST webhook, waiting for every reply before sending the
next message; every pass through the script ("hello" ... "bye") is a conversation
with its own fresh sender id. Requests that finish in the warm-up are not counted.
It reports throughput, latency percentiles, errors and the peak resident memory of
the server processes, prints a Markdown report and writes it to
``bench/results.md``.

The assistant under test is started with ``python -m bot.launch`` (Rasa server and
action server) on ports 5205 / 5255; the baseline is the ``rasa init`` starter
project, created once under ``bench/.starter/``, served on port 5206. Every
process the benchmark starts is stopped on exit, Ctrl-C or error.

Exit status: 0 when the benchmark ran (whether or not targets were met), 1 when a
server failed, 2 when a prerequisite is missing, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn

import aiohttp

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
RASA = VENV_BIN / "rasa"
OUR_MODEL = REPO_ROOT / "models" / "avrr.tar.gz"
STARTER_DIR = BENCH_DIR / ".starter"
RESULTS_FILE = BENCH_DIR / "results.md"

HOST = "127.0.0.1"
OUR_RASA_PORT = 5205
OUR_ACTION_PORT = 5255
OUR_DESK_PORT = 8205
OUR_WIDGET_PORT = 8285
STARTER_PORT = 5206
WEBHOOK_PATH = "/webhooks/rest/webhook"

OUR_READY_TIMEOUT_S = 300.0
STARTER_READY_TIMEOUT_S = 180.0
STARTER_INIT_TIMEOUT_S = 900.0
PID_DISCOVERY_TIMEOUT_S = 15.0
STOP_GRACE_S = 15.0
REQUEST_TIMEOUT_S = 30.0
ERROR_BACKOFF_S = 0.1
RSS_SAMPLE_INTERVAL_S = 0.5

# A whole word, so that a log line saying "already ..." does not count.
READY_PATTERN = re.compile(r"\bready\b", re.IGNORECASE)

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

TARGET_P95_MS = 100.0
TARGET_THROUGHPUT_RATIO = 0.7
TARGET_RSS_GIB = 1.5

MIB = 1024**2
GIB = 1024**3


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message (exit status 1)."""


class MissingPrerequisite(BenchError):
    """Something the user has to provide first, such as a trained model."""


@dataclass
class ServerUnderLoad:
    """A running server to load: where to send messages and what to measure."""

    name: str
    base_url: str
    script: Sequence[str]
    rasa_pid: int
    action_pid: int | None = None
    has_action_server: bool = False


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


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Return the percentile (linear interpolation) of already sorted values."""
    if not sorted_values:
        return None
    rank = fraction * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def parse_concurrency(text: str) -> list[int]:
    """Parse "1,4,16" into a list of distinct positive integers, in order."""
    levels: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {part!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError("concurrency levels must be >= 1")
        if value not in levels:
            levels.append(value)
    if not levels:
        raise argparse.ArgumentTypeError("give at least one concurrency level")
    return levels


def positive_float(text: str) -> float:
    """Argparse type: a float > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def non_negative_float(text: str) -> float:
    """Argparse type: a float >= 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: ours, telemetry off, unbuffered output."""
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def port_in_use(port: int) -> bool:
    """Whether something already accepts connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError):
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    return False


def require_free_ports(*ports: int) -> None:
    """Raise MissingPrerequisite if any of the ports is taken."""
    busy = [port for port in ports if port_in_use(port)]
    if busy:
        raise MissingPrerequisite(
            f"port(s) {', '.join(map(str, busy))} on {HOST} already in use; "
            "stop whatever listens there (an earlier benchmark?) and retry"
        )


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up, so cleanup cannot be cut short."""
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def raise_keyboard_interrupt(signum: int, frame: object) -> NoReturn:
    """SIGTERM handler: unwind like Ctrl-C so that every finally block runs."""
    raise KeyboardInterrupt


# --------------------------------------------------------------------------
# /proc helpers (no psutil in the venv)
# --------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """Return (state, ppid, process group) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces or ")".
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def all_pids() -> list[int]:
    """Every process id currently listed in /proc."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def descendants(root: int) -> list[int]:
    """Descendants of a process, breadth first (children before grandchildren)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: list[int] = []
    queue = sorted(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return found


def live_group_members(pgid: int) -> list[int]:
    """Processes of a process group that are still alive (not zombies)."""
    members = []
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None and stat[2] == pgid and stat[0] != "Z":
            members.append(pid)
    return members


def command_words(pid: int) -> str:
    """A process's command line with the executable reduced to its file name.

    The venv's interpreter path is dropped so a repository path that happens to
    contain "rasa" cannot make every Python child look like a Rasa server.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    if not argv:
        return ""
    return " ".join([Path(argv[0]).name, *argv[1:]])


def read_rss(pid: int) -> int | None:
    """Current resident set size (VmRSS) of a process in bytes, None if gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def find_our_servers(launcher_pid: int) -> tuple[int | None, int | None]:
    """Find (Rasa server pid, action server pid) among the launcher's children."""
    rasa_pid: int | None = None
    action_pid: int | None = None
    for pid in descendants(launcher_pid):
        words = command_words(pid)
        if "bot.action_server" in words or "rasa_sdk" in words:
            action_pid = action_pid or pid
        elif "bot.serve" in words or "rasa" in words:
            rasa_pid = rasa_pid or pid
    return rasa_pid, action_pid


class RssSampler:
    """Background thread recording the peak VmRSS of some processes."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        """Prepare to sample the given named pids (None entries are skipped)."""
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.peaks: dict[str, int | None] = {name: None for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        """Take one sample of every process and keep the maxima."""
        for name, pid in self._pids.items():
            rss = read_rss(pid)
            if rss is not None:
                previous = self.peaks[name]
                self.peaks[name] = rss if previous is None else max(previous, rss)

    def _run(self) -> None:
        """Sample every RSS_SAMPLE_INTERVAL_S until stopped."""
        while True:
            self._sample()
            if self._stop.wait(RSS_SAMPLE_INTERVAL_S):
                break

    def __enter__(self) -> RssSampler:
        """Start sampling."""
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop sampling, with one last sample."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()


# --------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------


def start_process(
    argv: Sequence[str | Path],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: int | IO[bytes],
    log: IO[bytes],
    name: str,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session, so it and its children can be stopped.

    A new session also keeps the terminal's Ctrl-C away from it: the benchmark
    decides when and how its children stop.
    """
    logger.info("starting %s: %s", name, shlex.join(map(str, argv)))
    return subprocess.Popen(  # noqa: S603 - fixed argv from this module, no shell
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=log,
        start_new_session=True,
    )


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no live process is left in the group; True if it emptied."""
    deadline = time.monotonic() + timeout
    while live_group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send a signal to a process group we created, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_process(proc: subprocess.Popen[bytes], name: str) -> None:
    """Stop a child and everything left in its process group.

    SIGTERM goes to the child itself first (the launcher forwards it to its own
    children); whatever is still alive after STOP_GRACE_S gets SIGKILL.
    Leftovers in the group (children the leader did not stop) get the same
    treatment. The group id is the child's pid (it leads its own session).
    """
    pgid = proc.pid
    with interrupts_deferred():
        if proc.poll() is None:
            logger.info("stopping %s (pid %d)", name, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0f s; killing", name, STOP_GRACE_S)
                signal_group(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        leftovers = live_group_members(pgid)
        if leftovers:
            logger.warning("%s left %d process(es) behind; stopping them", name, len(leftovers))
            signal_group(pgid, signal.SIGTERM)
            if not wait_group_gone(pgid, STOP_GRACE_S):
                signal_group(pgid, signal.SIGKILL)
                wait_group_gone(pgid, 5)
        logger.debug("%s stopped (exit status %s)", name, proc.returncode)


class LinePump:
    """Copy a child's stdout to a log file and notice a "ready" line."""

    def __init__(self, stream: IO[bytes], log: IO[bytes]) -> None:
        """Start a daemon thread reading the stream until end of file."""
        self.ready = threading.Event()
        self._stream = stream
        self._log = log
        self._thread = threading.Thread(target=self._run, name="stdout-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Read lines until EOF, logging each and flagging the ready line."""
        for raw in iter(self._stream.readline, b""):
            self._log.write(raw)
            self._log.flush()
            if not self.ready.is_set() and READY_PATTERN.search(raw.decode(errors="replace")):
                self.ready.set()

    def join(self, timeout: float) -> None:
        """Wait for the pump to reach end of file (after the child stopped)."""
        self._thread.join(timeout)


# --------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------


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
    sender = uuid.uuid4().hex
    index = 0
    while time.perf_counter() < window.end:
        if index and index % len(script) == 0 and not keep_sender:
            sender = uuid.uuid4().hex
        text = script[index % len(script)]
        index += 1
        started = time.perf_counter()
        error = await send_message(session, url, sender, text)
        finished = time.perf_counter()
        if window.start <= finished <= window.end:
            if error is None:
                result.latencies_s.append(finished - started)
            else:
                result.errors[error] += 1
        elif finished < window.start and error is not None:
            result.warmup_errors += 1
        if error is not None:
            logger.debug("request failed: %s", error)
            await asyncio.sleep(ERROR_BACKOFF_S)


async def run_level(server: ServerUnderLoad, concurrency: int, plan: LoadPlan) -> LevelResult:
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
                conversation(session, url, server.script, window, result, plan.keep_sender)
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


async def smoke_test(server: ServerUnderLoad) -> None:
    """Send one message and log whether the webhook answers as expected."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S * 2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        error = await send_message(
            session, server.base_url + WEBHOOK_PATH, uuid.uuid4().hex, server.script[0]
        )
    if error is None:
        logger.info("%s: webhook answers", server.name)
    else:
        logger.warning("%s: first message failed (%s)", server.name, error)


def bench_server(server: ServerUnderLoad, plan: LoadPlan) -> list[LevelResult]:
    """Load one server at every concurrency level, sampling its memory."""
    asyncio.run(smoke_test(server))
    results = []
    for concurrency in plan.levels:
        logger.info(
            "%s: %d conversation(s), %.0f s warm-up + %.0f s measured",
            server.name,
            concurrency,
            plan.warmup,
            plan.duration,
        )
        with RssSampler({"rasa": server.rasa_pid, "action": server.action_pid}) as rss:
            result = asyncio.run(run_level(server, concurrency, plan))
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
        logger.info(
            "%s at C=%d: %.1f msg/s, p95 %s ms",
            server.name,
            concurrency,
            result.throughput,
            fmt(result.latency_ms(0.95), 0),
        )
        results.append(result)
    return results


# --------------------------------------------------------------------------
# The two servers
# --------------------------------------------------------------------------


def check_our_prerequisites() -> None:
    """Fail early if the assistant under test cannot be started."""
    if not OUR_MODEL.is_file():
        raise MissingPrerequisite(
            f"no trained model at {OUR_MODEL.relative_to(REPO_ROOT)}; run `make train` first"
        )
    launch = REPO_ROOT / "bot"
    if not (launch / "launch.py").is_file() and not (launch / "launch").is_dir():
        raise MissingPrerequisite("bot/launch.py not found: cannot start the assistant")
    require_free_ports(OUR_RASA_PORT, OUR_ACTION_PORT, OUR_DESK_PORT, OUR_WIDGET_PORT)


def wait_for_ready_line(proc: subprocess.Popen[bytes], pump: LinePump, log_path: Path) -> None:
    """Block until the launcher prints "ready", exits, or the timeout expires."""
    deadline = time.monotonic() + OUR_READY_TIMEOUT_S
    while not pump.ready.wait(timeout=1.0):
        if proc.poll() is not None:
            raise BenchError(
                f"bot.launch exited with status {proc.returncode} before it was "
                f"ready; log {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            raise BenchError(
                f"bot.launch not ready after {OUR_READY_TIMEOUT_S:.0f} s; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )


def find_our_servers_waiting(launcher_pid: int) -> tuple[int, int | None]:
    """Find the launcher's Rasa and action server pids, retrying for a while."""
    deadline = time.monotonic() + PID_DISCOVERY_TIMEOUT_S
    while True:
        rasa_pid, action_pid = find_our_servers(launcher_pid)
        if (rasa_pid and action_pid) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if rasa_pid is None:
        logger.warning("no Rasa server child of bot.launch found; measuring the launcher itself")
        rasa_pid = launcher_pid
    if action_pid is None:
        logger.warning("no action server (bot.action_server) child of bot.launch found")
    logger.info("Rasa server pid %d, action server pid %s", rasa_pid, action_pid)
    return rasa_pid, action_pid


def bench_ours(plan: LoadPlan, logs_dir: Path) -> list[LevelResult]:
    """Start bot.launch on a fresh data folder, load it, and stop it."""
    data_dir = Path(tempfile.mkdtemp(prefix="avrr-bench-data-"))
    log_path = logs_dir / "bot-launch.log"
    env = child_env(
        RASA_PORT=str(OUR_RASA_PORT),
        ACTION_PORT=str(OUR_ACTION_PORT),
        DESK_PORT=str(OUR_DESK_PORT),
        WIDGET_PORT=str(OUR_WIDGET_PORT),
        AVRR_DATA_DIR=str(data_dir),
    )
    with open(log_path, "wb") as log:
        proc = start_process(
            [PYTHON, "-m", "bot.launch"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            log=log,
            name="bot.launch",
        )
        pump: LinePump | None = None
        try:
            assert proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
            pump = LinePump(proc.stdout, log)
            wait_for_ready_line(proc, pump, log_path)
            logger.info("bot.launch is ready")
            rasa_pid, action_pid = find_our_servers_waiting(proc.pid)
            server = ServerUnderLoad(
                name="ours",
                base_url=f"http://{HOST}:{OUR_RASA_PORT}",
                script=OUR_SCRIPT,
                rasa_pid=rasa_pid,
                action_pid=action_pid,
                has_action_server=True,
            )
            return bench_server(server, plan)
        finally:
            stop_process(proc, "bot.launch")
            if pump is not None:
                pump.join(timeout=5)
            shutil.rmtree(data_dir, ignore_errors=True)


def ensure_starter(logs_dir: Path) -> Path:
    """Create and train the `rasa init` starter once; return its model file."""
    models = sorted((STARTER_DIR / "models").glob("*.tar.gz"))
    if models:
        logger.info("reusing starter model %s", models[-1].relative_to(REPO_ROOT))
        return models[-1]
    if STARTER_DIR.exists():
        logger.info("removing incomplete starter project %s", STARTER_DIR)
        shutil.rmtree(STARTER_DIR)
    STARTER_DIR.mkdir(parents=True)
    log_path = logs_dir / "rasa-init.log"
    logger.info("creating the starter with `rasa init` (trains a model, ~75 s)")
    with open(log_path, "wb") as log:
        proc = start_process(
            [RASA, "init", "--no-prompt", "--init-dir", "bench/.starter"],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=log,
            log=log,
            name="rasa init",
        )
        try:
            proc.wait(timeout=STARTER_INIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"rasa init did not finish in {STARTER_INIT_TIMEOUT_S:.0f} s; log {log_path}"
            ) from None
        finally:
            stop_process(proc, "rasa init")
    models = sorted((STARTER_DIR / "models").glob("*.tar.gz"))
    if proc.returncode != 0 or not models:
        raise BenchError(
            f"rasa init failed (status {proc.returncode}); log {log_path}:\n"
            f"{log_tail(log_path)}"
        )
    return models[-1]


async def poll_status(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll GET /status until it names a model file, the child exits, or timeout."""
    deadline = time.monotonic() + STARTER_READY_TIMEOUT_S
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(
                    f"starter server exited with status {proc.returncode}; "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        status = await resp.json()
                        if isinstance(status, dict) and status.get("model_file"):
                            return
            await asyncio.sleep(1.0)
    raise BenchError(
        f"starter not ready after {STARTER_READY_TIMEOUT_S:.0f} s; "
        f"log {log_path}:\n{log_tail(log_path)}"
    )


def bench_starter(plan: LoadPlan, logs_dir: Path) -> list[LevelResult]:
    """Serve the starter's model with `rasa run`, load it, and stop it."""
    require_free_ports(STARTER_PORT)
    log_path = logs_dir / "starter.log"
    base_url = f"http://{HOST}:{STARTER_PORT}"
    with open(log_path, "wb") as log:
        proc = start_process(
            [RASA, "run", "--enable-api", "-p", str(STARTER_PORT), "-i", HOST],
            cwd=STARTER_DIR,
            env=child_env(),
            stdout=log,
            log=log,
            name="starter (rasa run)",
        )
        try:
            asyncio.run(poll_status(proc, base_url + "/status", log_path))
            logger.info("starter is ready (pid %d)", proc.pid)
            server = ServerUnderLoad(
                name="starter",
                base_url=base_url,
                script=STARTER_SCRIPT,
                rasa_pid=proc.pid,
            )
            return bench_server(server, plan)
        finally:
            stop_process(proc, "starter (rasa run)")


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    """Format a number for the table; "n/a" when it was not measured."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_mib(value: int | None) -> str:
    """Format a byte count in MiB."""
    return fmt(None if value is None else value / MIB, 0)


def verdict(ok: bool | None) -> str:
    """PASS / FAIL / not measured."""
    if ok is None:
        return "not measured"
    return "PASS" if ok else "FAIL"


def render_report(
    results: list[LevelResult], args: argparse.Namespace, started: datetime.datetime
) -> str:
    """Build the Markdown report: context, the per-level table, ratios, targets."""
    nproc = len(os.sched_getaffinity(0))
    rasa_version = importlib.metadata.version("rasa")
    lines = [
        "# Load benchmark: assistant under test vs `rasa init` starter",
        "",
        f"- Command: `{shlex.join(sys.orig_argv)}`",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Machine: nproc {nproc}, {platform.machine()}, "
        f"Python {platform.python_version()}, Rasa {rasa_version}",
        f"- Per level: {args.warmup:g} s warm-up (not counted), then "
        f"{args.duration:g} s measured. C simulated users at once, each sending "
        "the script's messages one after the other, waiting for every reply; "
        + (
            "one sender id per user for the whole run (--keep-sender)"
            if args.keep_sender
            else "every pass through the script is a new conversation with a fresh sender id"
        ),
        "- Counted: HTTP 200 with a JSON list body. Latency: wall clock per "
        "request, send to full response. RSS: peak VmRSS sampled every 0.5 s",
        "",
        "| Server | C | Throughput (msg/s) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| Messages | Errors | Rasa RSS (MiB) | Action server RSS (MiB) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        action = fmt_mib(r.action_rss_peak) if r.has_action_server else "—"
        lines.append(
            f"| {r.server} | {r.concurrency} | {r.throughput:.1f} "
            f"| {fmt(r.latency_ms(0.50))} | {fmt(r.latency_ms(0.95))} "
            f"| {fmt(r.latency_ms(0.99))} | {r.messages} | {r.error_count} "
            f"| {fmt_mib(r.rasa_rss_peak)} | {action} |"
        )

    ours = {r.concurrency: r for r in results if r.server == "ours"}
    starter = {r.concurrency: r for r in results if r.server == "starter"}
    top = max(args.concurrency)

    ratio: float | None = None
    ratio_text = "n/a (needs both servers)"
    if top in ours and top in starter:
        base = starter[top].throughput
        if base > 0:
            ratio = ours[top].throughput / base
            ratio_text = f"{ratio:.2f} ({ours[top].throughput:.1f} / {base:.1f} msg/s)"
        else:
            ratio_text = "n/a (starter throughput 0)"

    p95 = ours[1].latency_ms(0.95) if 1 in ours else None
    p95_text = f"{p95:.1f} ms" if p95 is not None else "n/a (ours not run at C=1)"

    peaks = [r.rasa_rss_peak for r in ours.values() if r.rasa_rss_peak is not None]
    rss_gib = max(peaks) / GIB if peaks else None
    rss_text = f"{rss_gib:.2f} GiB" if rss_gib is not None else "n/a"

    errors = sum(r.error_count for r in results)
    lines += [
        "",
        "## Ratios and targets",
        "",
        "| Metric | Value | Target | Result |",
        "|---|--:|--:|---|",
        f"| Throughput ours / starter at C={top} (saturated) | {ratio_text} "
        f"| >= {TARGET_THROUGHPUT_RATIO} "
        f"| {verdict(None if ratio is None else ratio >= TARGET_THROUGHPUT_RATIO)} |",
        f"| Ours p95 latency at C=1 (single conversation) | {p95_text} "
        f"| <= {TARGET_P95_MS:.0f} ms "
        f"| {verdict(None if p95 is None else p95 <= TARGET_P95_MS)} |",
        f"| Ours Rasa server peak RSS | {rss_text} | <= {TARGET_RSS_GIB} GiB "
        f"| {verdict(None if rss_gib is None else rss_gib <= TARGET_RSS_GIB)} |",
        "",
        f"Errors over all measured windows: {errors}.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Load benchmark of the assistant against a rasa init starter."
    )
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=[1, 4, 16],
        help="comma-separated numbers of simultaneous conversations (default 1,4,16)",
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=20.0,
        help="measured seconds per level (default 20)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_float,
        default=3.0,
        help="uncounted seconds before each measured window (default 3)",
    )
    parser.add_argument(
        "--skip-starter", action="store_true", help="do not run the starter baseline"
    )
    parser.add_argument(
        "--skip-ours", action="store_true", help="do not run the assistant under test"
    )
    parser.add_argument(
        "--keep-sender",
        action="store_true",
        help="keep one sender id per simulated user for the whole run instead of "
        "a fresh one per pass through the script (the tracker then grows, and "
        "latency with it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (to stderr)")
    args = parser.parse_args(argv)
    if args.skip_ours and args.skip_starter:
        parser.error("--skip-ours and --skip-starter leave nothing to benchmark")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started = datetime.datetime.now().astimezone()
    logs_dir = Path(tempfile.mkdtemp(prefix="avrr-bench-logs-"))
    keep_logs = True
    try:
        if not args.skip_ours:
            check_our_prerequisites()
        if not args.skip_starter:
            require_free_ports(STARTER_PORT)
            # Train before any server runs: never a training and a server at once.
            ensure_starter(logs_dir)
        plan = LoadPlan(
            levels=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            keep_sender=args.keep_sender,
        )
        results: list[LevelResult] = []
        if not args.skip_ours:
            results += bench_ours(plan, logs_dir)
        if not args.skip_starter:
            results += bench_starter(plan, logs_dir)
        report = render_report(results, args, started)
        print(report)
        RESULTS_FILE.write_text(report, encoding="utf-8")
        logger.info("report written to %s", RESULTS_FILE.relative_to(REPO_ROOT))
        keep_logs = False
        return 0
    except MissingPrerequisite as exc:
        logger.error("%s", exc)
        return 2
    except BenchError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; every started process has been stopped")
        return 130
    finally:
        if keep_logs and any(logs_dir.iterdir()):
            logger.info("child process logs kept in %s", logs_dir)
        else:
            shutil.rmtree(logs_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
