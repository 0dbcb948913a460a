"""The servers under load: starting, finding and stopping them, and sampling their memory.

The assistant under test is started with ``python -m bot.launch`` on ports the kernel
picks (the launcher refuses ports that are taken), and is ready when it prints its
"ready" line; its Rasa server (``python -m bot.serve run``) and action server
(``python -m bot.action_server``) are found among its descendants. The baseline is the
``rasa init`` starter project, created once under ``bench/.starter/`` and served with
``rasa run``. Every child runs in its own session: it and everything it starts are
stopped on exit, Ctrl-C or error, and the terminal's Ctrl-C never reaches them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess  # noqa: S404 - we start our own servers
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

import aiohttp
import psutil

from avrr.settings import environment

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
RASA = VENV_BIN / "rasa"
OUR_MODEL = REPO_ROOT / "models" / "avrr.tar.gz"
STARTER_DIR = BENCH_DIR / ".starter"

HOST = "127.0.0.1"
UNLIMITED = 1_000_000  # messages a minute

OUR_READY_TIMEOUT_S = 300.0
STARTER_READY_TIMEOUT_S = 180.0
STARTER_INIT_TIMEOUT_S = 900.0
PID_DISCOVERY_TIMEOUT_S = 15.0
STOP_GRACE_S = 15.0
RSS_SAMPLE_INTERVAL_S = 0.5

# A whole word, so that a log line saying "already ..." does not count.
READY_PATTERN = re.compile(r"\bready\b", re.IGNORECASE)

# What the processes run, as `python -m <module>` (or the `rasa` executable).
ACTION_MODULES = frozenset({"bot.action_server", "rasa_sdk"})
RASA_MODULES = frozenset({"bot.serve", "rasa"})


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message (exit status 1)."""


class MissingPrerequisite(BenchError):
    """Something the user has to provide first, such as a trained model."""


@dataclass
class RunningServer:
    """A server ready for load: where its webhook is, and which processes to measure."""

    name: str
    base_url: str
    rasa_pid: int
    action_pid: int | None = None
    has_action_server: bool = False


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: ours, telemetry off, unbuffered output."""
    env = environment()
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on now on HOST (the kernel's choice).

    The sockets stay bound until all are chosen, so the kernel cannot hand out the same
    port twice. Another program may still take one before our server binds it: the
    launcher then refuses to start, naming the port.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((HOST, 0))
            ports.append(probe.getsockname()[1])
        return ports


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
# Finding processes and their memory (psutil)
# --------------------------------------------------------------------------


def descendants(root: int) -> list[psutil.Process]:
    """Descendants of a process, children before grandchildren; [] if it is gone."""
    try:
        found = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return []
    parents: dict[int, int] = {}
    for proc in found:
        with contextlib.suppress(psutil.Error):
            parents[proc.pid] = proc.ppid()

    def depth(pid: int) -> int:
        steps = 0
        while pid != root and pid in parents and steps <= len(parents):
            pid = parents[pid]
            steps += 1
        return steps

    return sorted(found, key=lambda proc: (depth(proc.pid), proc.pid))


def server_role(cmdline: Sequence[str]) -> str | None:
    """Which of our servers a command line runs: "rasa", "action" or None.

    Only whole arguments count (the module after ``-m``, the executable's file name),
    so a repository path that happens to contain "rasa" cannot make every Python child
    look like a Rasa server.
    """
    if not cmdline:
        return None
    program = Path(cmdline[0]).name
    args = list(cmdline[1:])
    module = args[args.index("-m") + 1] if "-m" in args[:-1] else None
    rasa_cli = program == "rasa" or module == "rasa"
    if module in ACTION_MODULES or (rasa_cli and "actions" in args):
        return "action"  # also `rasa run actions`
    if module in RASA_MODULES or rasa_cli:
        return "rasa"
    return None


def find_our_servers(launcher_pid: int) -> tuple[int | None, int | None]:
    """Find (Rasa server pid, action server pid) among the launcher's descendants."""
    rasa_pid: int | None = None
    action_pid: int | None = None
    for proc in descendants(launcher_pid):
        try:
            role = server_role(proc.cmdline())
        except psutil.Error:
            continue
        if role == "action":
            action_pid = action_pid or proc.pid
        elif role == "rasa":
            rasa_pid = rasa_pid or proc.pid
    return rasa_pid, action_pid


def read_rss(pid: int) -> int | None:
    """Current resident set size of a process in bytes, None if it is gone."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def live_group_members(pgid: int) -> list[psutil.Process]:
    """Processes of a process group that are still alive (not zombies)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return members


class RssSampler:
    """Background thread recording the peak resident memory of some processes."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        """Prepare to sample the given named pids (None entries, and gone ones, are skipped)."""
        self._procs: dict[str, psutil.Process] = {}
        for name, pid in pids.items():
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    self._procs[name] = psutil.Process(pid)
        self.peaks: dict[str, int | None] = {name: None for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        """Take one sample of every process and keep the maxima."""
        for name, proc in self._procs.items():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
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
# Starting and stopping
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
# The assistant under test
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


def our_env(data_dir: Path) -> dict[str, str]:
    """The launcher's environment: free ports, a fresh data folder, our model.

    The REST channel's token is unset (an empty value counts as unset), so the
    webhook needs none whatever the caller's environment says. The rate limits are
    lifted: all the load comes from one address, and what is measured is the work of
    answering, not the refusals that protect the service from one abusive client.
    """
    rasa_port, action_port, desk_port, widget_port = free_ports(4)
    return child_env(
        RASA_PORT=str(rasa_port),
        ACTION_PORT=str(action_port),
        DESK_PORT=str(desk_port),
        WIDGET_PORT=str(widget_port),
        AVRR_DATA_DIR=str(data_dir),
        AVRR_MODEL=str(OUR_MODEL),
        REST_CHANNEL_TOKEN="",
        RATE_LIMIT_PER_SENDER=str(UNLIMITED),
        RATE_LIMIT_PER_ADDRESS=str(UNLIMITED),
    )


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


@contextlib.contextmanager
def our_assistant(logs_dir: Path) -> Iterator[RunningServer]:
    """Start bot.launch on a fresh data folder and free ports; stop it afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="avrr-bench-data-"))
    log_path = logs_dir / "bot-launch.log"
    env = our_env(data_dir)
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
            yield RunningServer(
                name="ours",
                base_url=f"http://{HOST}:{env['RASA_PORT']}",
                rasa_pid=rasa_pid,
                action_pid=action_pid,
                has_action_server=True,
            )
        finally:
            stop_process(proc, "bot.launch")
            if pump is not None:
                pump.join(timeout=5)
            shutil.rmtree(data_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The `rasa init` starter
# --------------------------------------------------------------------------


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


@contextlib.contextmanager
def starter(logs_dir: Path) -> Iterator[RunningServer]:
    """Serve the starter's model with `rasa run` on a free port; stop it afterwards."""
    (port,) = free_ports(1)
    log_path = logs_dir / "starter.log"
    base_url = f"http://{HOST}:{port}"
    with open(log_path, "wb") as log:
        proc = start_process(
            [RASA, "run", "--enable-api", "-p", str(port), "-i", HOST],
            cwd=STARTER_DIR,
            env=child_env(),
            stdout=log,
            log=log,
            name="starter (rasa run)",
        )
        try:
            asyncio.run(poll_status(proc, base_url + "/status", log_path))
            logger.info("starter is ready (pid %d)", proc.pid)
            yield RunningServer(name="starter", base_url=base_url, rasa_pid=proc.pid)
        finally:
            stop_process(proc, "starter (rasa run)")


# --------------------------------------------------------------------------
# Command line: what bench/load.py and bench/soak.py share
# --------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def positive_float(text: str) -> float:
    """Argparse type: a float > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def run_and_report(
    verbose: bool, name: str, produce: Callable[[Path], tuple[str, bool]], out: Path
) -> int:
    """Run `produce(logs_dir)`, which gives a Markdown report and whether it failed; print
    it and write it to `out`. The children's logs are kept when something failed. The
    exit status: 0, 1 (failed, or a server failed), 2 (a prerequisite is missing), 130."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    logs_dir = Path(tempfile.mkdtemp(prefix=f"avrr-{name}-logs-"))
    keep_logs = True
    try:
        report, failed = produce(logs_dir)
        print(report)
        out.write_text(report, encoding="utf-8")
        logger.info("report written to %s", out.relative_to(REPO_ROOT))
        keep_logs = failed
        return 1 if failed else 0
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
