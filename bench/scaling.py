"""Scaling benchmark: the same load through nginx on one Rasa replica, then on two, each
replica held to the same CPU share.

Run as root from anywhere with the project's virtual environment (and its dev packages)::

    .venv/bin/python bench/scaling.py [--replicas 1,2] [--rasa-cpu 0.5] [--concurrency 32]
        [--warmup 20] [--duration 60] [--repeats 2] [--services-cpu N] [--load-cpu N]
        [--quiet-load 1.0] [--quiet-wait 1200] [-v]

Each run starts a cluster of its own (``python -m bot.cluster``, as tests/cluster starts
it: free ports, a fresh data folder, its own PostgreSQL, Redis and nginx, two action
servers, two desks), with REPLICAS Rasa servers. Once it is ready, every Rasa server (with
any children) is put in a control group of its own limited to ``--rasa-cpu`` of a core
(bench/cgroups.py); the supervisor and every other part go to a ``services`` group, and
this process, the load generator, to a ``load`` group, neither limited unless asked.
The runs alternate (1, 2, 1, 2 ...): drift of the machine falls on both alike.

Load. C simulated users post the script of the load benchmark (bench/generate.py:
"hello" ... "bye", a fresh sender id for every pass) to nginx's REST webhook, each
waiting for its reply before the next message. Requests that end in the warm-up are not
counted; then a fixed window is measured.

Measured in the window: messages answered (HTTP 200 with a JSON list) per second, latency
percentiles, CPU time of each component from /proc (bench/procfs.py: every process of
the component, PostgreSQL's backends and nginx's worker included), the periods in which
a replica's quota ran out, the CPU time the rest of the machine used, and the peak VmRSS
of every process (sampled every RSS_EVERY_S). Before each cluster starts, the run waits
for the machine to be quiet: a one-minute load average under ``--quiet-load``, for at
most ``--quiet-wait`` seconds (then it goes on and the report says so).

The Markdown report is printed and written to ``bench/scaling.md``.

Exit status: 0 when every run ran (whether or not the target was met), 1 when a cluster
failed, 2 when a prerequisite is missing (root, a cpu controller, Debian's servers, the
model), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess  # noqa: S404 - we start our own servers
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, only bench/ is on the path: the repository's packages too.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import cgroups, processes, procfs  # noqa: E402
from bench.cgroups import CpuGroups, Hierarchy  # noqa: E402
from bench.generate import (  # noqa: E402
    OUR_SCRIPT,
    REQUEST_TIMEOUT_S,
    WEBHOOK_PATH,
    LevelResult,
    Window,
    conversation,
    new_sender,
    send_message,
)
from bench.load import parse_concurrency  # noqa: E402
from bench.processes import BenchError, MissingPrerequisite  # noqa: E402
from bot.cluster import Layout, missing_programs  # noqa: E402
from bot.launch import KEPT_SECRETS, port_free  # noqa: E402

logger = logging.getLogger(__name__)

RESULTS_FILE = Path(__file__).resolve().parent / "scaling.md"
TARGET_RATIO = 1.8
READY_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 90.0
PARTS_TIMEOUT_S = 30.0
RSS_EVERY_S = 2.0
QUIET_POLL_S = 15.0
PORT_SPAN = 40
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
MIB = 1024**2
EXTRAPOLATED_CORES = (2, 4, 8, 16)

# What each part of a cluster is, by the kind in its name ("rasa-1" is a Rasa server).
COMPONENTS = {
    "rasa": "Rasa servers",
    "actions": "action servers",
    "postgresql": "PostgreSQL",
    "redis": "Redis",
    "nginx": "nginx",
    "desk": "desks",
}
SUPERVISOR = "supervisor"
LOAD = "load generator"
# The components of a cluster, in the report's order; the load generator is not one.
CLUSTER_COMPONENTS = (*COMPONENTS.values(), SUPERVISOR)
# Processes that serve one message at a time on one core whatever the machine: nginx
# runs one worker in bot/cluster.py, Redis one thread.
SINGLE_PROCESS = ("nginx", "Redis")
# Components written in C: their CPU per message shows how fast the machine ran.
NATIVE = ("PostgreSQL", "Redis", "nginx")


# --------------------------------------------------------------------------
# A cluster of our own
# --------------------------------------------------------------------------


def part_name(layout: Layout, port: int) -> str | None:
    """Which part of the cluster listens on `port` ("rasa-1", "postgresql" ...), if any."""
    fixed = {layout.rasa_front: "nginx", layout.actions_front: "nginx",
             layout.desk_front: "nginx", layout.postgres: "postgresql", layout.redis: "redis"}
    if port in fixed:
        return fixed[port]
    for kind, ports in (("rasa", layout.rasa), ("actions", layout.actions),
                        ("desk", layout.desks)):
        if port in ports:
            return f"{kind}-{ports.index(port) + 1}"
    return None


def expected_parts(layout: Layout) -> set[str]:
    """The name of every part a cluster of `layout` runs."""
    return {name for port in layout.ports().values() if (name := part_name(layout, port))}


def component_of(part: str) -> str:
    """The component a part belongs to: "rasa-2" is one of the "Rasa servers"."""
    return COMPONENTS[part.rsplit("-", 1)[0] if part[-1].isdigit() else part]


def ephemeral_start(text: str) -> int:
    """The first port the kernel hands out to outgoing connections, from the text of
    /proc/sys/net/ipv4/ip_local_port_range ("32768\t60999")."""
    return int(text.split()[0])


def free_base() -> int:
    """A base port whose whole span (the cluster's ports) is free now, below the ports the
    kernel gives outgoing connections: a readiness check that connects again and again
    to a port nothing listens on yet can otherwise be given that very port as its own,
    and connect to itself."""
    try:
        top = ephemeral_start(EPHEMERAL_PORTS.read_text())
    except (OSError, ValueError, IndexError):
        top = 32768
    for _ in range(100):
        base = random.randrange(10000, top - PORT_SPAN)  # noqa: S311 - not a secret
        if all(port_free(port) for port in range(base, base + PORT_SPAN)):
            return base
    raise BenchError("no span of free ports for a cluster")


def cluster_env(folder: Path, layout: Layout) -> dict[str, str]:
    """The cluster's environment: its ports and folder, our model, no limits, no channel
    but REST and socket.io, and no secret or database of the caller's (an empty value
    counts as unset, also over a `.env`)."""
    env = processes.child_env(
        AVRR_CLUSTER_DIR=str(folder),
        CLUSTER_PORT=str(layout.base),
        REPLICAS=str(layout.replicas),
        AVRR_MODEL=str(processes.OUR_MODEL),
        # All the load comes from one address: what is measured is the work of
        # answering, not the refusals that protect the service from one client.
        RATE_LIMIT_PER_SENDER=str(processes.UNLIMITED),
        RATE_LIMIT_PER_ADDRESS=str(processes.UNLIMITED),
    )
    for name in (*KEPT_SECRETS, "AVRR_DATABASE_URL", "DESK_DATABASE_URL", "AVRR_REDIS_URL",
                 "REST_CHANNEL_TOKEN", "WIDGET_ORIGINS", "TELEGRAM_BOT_TOKEN",
                 "WHATSAPP_ACCESS_TOKEN", "DESK_TELEGRAM_CHAT_ID"):
        env[name] = ""
    return env


def listening_ports(proc: psutil.Process) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {c.laddr.port for c in proc.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN}
    return set()


def find_parts(launcher: int, layout: Layout) -> dict[str, int]:
    """The pid of every part, among the supervisor's children, by the ports they listen on."""
    wanted = expected_parts(layout)
    deadline = time.monotonic() + PARTS_TIMEOUT_S
    while True:
        found: dict[str, int] = {}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(launcher).children():
                for port in listening_ports(child):
                    name = part_name(layout, port)
                    if name:
                        found[name] = child.pid
        if set(found) == wanted:
            return found
        if time.monotonic() >= deadline:
            raise BenchError(f"parts of the cluster not found: {sorted(wanted - set(found))}")
        time.sleep(0.5)


@dataclass
class RunningCluster:
    layout: Layout
    launcher: subprocess.Popen[bytes]
    parts: dict[str, int]

    @property
    def url(self) -> str:
        return f"http://{processes.HOST}:{self.layout.rasa_front}"


class StartFailed(BenchError):
    """A cluster stopped, or did not get ready, before any load was sent."""


def wait_ready(proc: subprocess.Popen[bytes], pump: processes.LinePump, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not pump.ready.wait(timeout=1.0):
        if proc.poll() is not None:
            raise StartFailed(f"bot.cluster exited with status {proc.returncode} before it "
                              f"was ready; log {log}:\n{processes.log_tail(log)}")
        if time.monotonic() >= deadline:
            raise StartFailed(f"bot.cluster not ready after {READY_TIMEOUT_S:.0f} s; "
                              f"log {log}:\n{processes.log_tail(log)}")


def stop_cluster(proc: subprocess.Popen[bytes], name: str) -> None:
    """Stop the cluster as Ctrl-C does (its supervisor stops the parts, tier by tier),
    then whatever is left in its session."""
    with processes.interrupts_deferred():
        if proc.poll() is None:
            logger.info("stopping %s", name)
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
        processes.stop_process(proc, name)


@contextlib.contextmanager
def cluster(replicas: int, logs_dir: Path, run: str) -> Iterator[RunningCluster]:
    """`python -m bot.cluster` with `replicas` Rasa servers on free ports and a fresh folder,
    until the block ends; then stopped, and its folder removed."""
    root = Path(tempfile.mkdtemp(prefix="avrr-scaling-"))
    root.chmod(0o711)  # PostgreSQL runs as its own account, and passes through
    layout = Layout(free_base(), replicas)
    name = f"bot.cluster (run {run}, {replicas} replica(s))"
    log_path = logs_dir / f"cluster-run-{run}.log"
    with open(log_path, "wb") as log:
        proc = processes.start_process(
            [processes.PYTHON, "-m", "bot.cluster"], cwd=REPO_ROOT,
            env=cluster_env(root / "cluster", layout), stdout=subprocess.PIPE, log=log,
            name=name,
        )
        pump: processes.LinePump | None = None
        try:
            assert proc.stdout is not None  # noqa: S101 - set by stdout=PIPE
            pump = processes.LinePump(proc.stdout, log)
            wait_ready(proc, pump, log_path)
            logger.info("%s is ready", name)
            yield RunningCluster(layout, proc, find_parts(proc.pid, layout))
        finally:
            stop_cluster(proc, name)
            if pump is not None:
                pump.join(timeout=5)
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------
# Control groups
# --------------------------------------------------------------------------


def check_prerequisites() -> Hierarchy:
    """The cpu controller to use; MissingPrerequisite for whatever is missing."""
    if not processes.OUR_MODEL.is_file():
        raise MissingPrerequisite(f"no trained model at {processes.OUR_MODEL}; "
                                  "run `make train` first")
    missing = missing_programs()
    if missing:
        raise MissingPrerequisite(f"the cluster runs Debian's {', '.join(missing)}: "
                                  f"apt-get install {' '.join(missing)}")
    if os.geteuid() != 0:
        raise MissingPrerequisite("CPU limits need control groups of our own: run as root")
    hierarchy = cgroups.find_hierarchy()
    if hierarchy is None:
        raise MissingPrerequisite("no cgroup cpu controller under /sys/fs/cgroup")
    return hierarchy


def rasa_group(index: int) -> str:
    return f"rasa-{index}"


def place(groups: CpuGroups, running: RunningCluster) -> None:
    """Each Rasa server's tree in its own group; the supervisor and the rest in `services`."""
    snap = procfs.snapshot()
    rasa: set[int] = set()
    for index in range(1, running.layout.replicas + 1):
        tree = procfs.tree(snap, running.parts[f"rasa-{index}"])
        groups.move(rasa_group(index), tree)
        rasa.update(tree)
    groups.move("services", [pid for pid in procfs.tree(snap, running.launcher.pid)
                             if pid not in rasa])


@contextlib.contextmanager
def in_group(groups: CpuGroups, name: str) -> Iterator[None]:
    """This process in group `name` for the block, then back where it was."""
    text = Path("/proc/self/cgroup").read_text()
    home = cgroups.group_of(text, groups.hierarchy.version) or "/"
    groups.move(name, [os.getpid()])
    try:
        yield
    finally:
        groups.move_to(home, [os.getpid()])


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


@dataclass
class Reading:
    """CPU counters at one moment."""

    at: float
    snap: procfs.Snapshot
    machine_busy: int
    throttle: dict[str, dict[str, int]]


@dataclass
class Run:
    """Everything measured in one run."""

    number: int
    replicas: int
    load: LevelResult
    load_average_before: float
    waited_quiet_s: float
    elapsed_s: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    replica_cpu_ms: list[float] = field(default_factory=list)
    throttled: list[float | None] = field(default_factory=list)
    machine_busy_ms: float = 0.0
    rss: dict[str, list[int]] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)
    failed_starts: int = 0

    @property
    def throughput(self) -> float:
        return self.load.throughput

    def ms_per_message(self, component: str) -> float | None:
        if not self.load.messages or component not in self.cpu_ms:
            return None
        return self.cpu_ms[component] / self.load.messages

    @property
    def cluster_ms_per_message(self) -> float | None:
        values = [self.ms_per_message(c) for c in CLUSTER_COMPONENTS]
        return None if None in values else sum(v for v in values if v is not None)

    @property
    def rasa_ms_per_s(self) -> float | None:
        """CPU time the Rasa servers got, per second of the window."""
        return sum(self.replica_cpu_ms) / self.elapsed_s if self.elapsed_s > 0 else None

    def share_used(self, rasa_cpu: float) -> float | None:
        """The Rasa servers' CPU time as a share of their quotas over the window."""
        if self.elapsed_s <= 0:
            return None
        return sum(self.replica_cpu_ms) / (self.elapsed_s * 1000 * rasa_cpu * self.replicas)

    @property
    def others_ms_per_s(self) -> float | None:
        """CPU the rest of the machine used (other programs, the kernel's threads)."""
        if self.elapsed_s <= 0:
            return None
        return (self.machine_busy_ms - sum(self.cpu_ms.values())) / self.elapsed_s


class Probe:
    """Reads the cluster's CPU counters at the window's edges and its memory in between."""

    def __init__(self, running: RunningCluster, groups: CpuGroups) -> None:
        self.running = running
        self.groups = groups
        parts = running.parts
        self.roots: dict[str, list[int]] = {}
        for part in sorted(parts):
            self.roots.setdefault(component_of(part), []).append(parts[part])
        self.replicas = [parts[f"rasa-{i}"] for i in range(1, running.layout.replicas + 1)]
        self.rss: dict[str, dict[int, int]] = {}

    def read(self) -> Reading:
        throttle = {}
        for index in range(1, len(self.replicas) + 1):
            with contextlib.suppress(OSError, KeyError):
                throttle[rasa_group(index)] = self.groups.cpu_stat(rasa_group(index))
        return Reading(time.perf_counter(), procfs.snapshot(), procfs.system_ticks()[0],
                       throttle)

    def sample_memory(self) -> None:
        snap = procfs.snapshot()
        for component, roots in self.roots.items():
            peaks = self.rss.setdefault(component, {})
            for root in roots:
                for pid in procfs.tree(snap, root):
                    rss = procfs.read_vmrss(pid)
                    if rss is not None:
                        peaks[pid] = max(rss, peaks.get(pid, 0))

    def finish(self, run: Run, start: Reading, end: Reading) -> None:
        """Fill `run` with the differences between the two readings."""

        def ms(ticks: int) -> float:
            return ticks * 1000 / procfs.CLOCK_TICKS_PER_S

        run.elapsed_s = end.at - start.at
        for component, roots in self.roots.items():
            run.cpu_ms[component] = ms(procfs.tree_ticks(end.snap, roots)
                                       - procfs.tree_ticks(start.snap, roots))
        supervisor = [self.running.launcher.pid]
        run.cpu_ms[SUPERVISOR] = ms(procfs.own_ticks(end.snap, supervisor)
                                    - procfs.own_ticks(start.snap, supervisor))
        me = [os.getpid()]
        run.cpu_ms[LOAD] = ms(procfs.own_ticks(end.snap, me) - procfs.own_ticks(start.snap, me))
        run.replica_cpu_ms = [ms(procfs.tree_ticks(end.snap, [pid])
                                 - procfs.tree_ticks(start.snap, [pid]))
                              for pid in self.replicas]
        run.throttled = [cgroups.throttled_share(start.throttle.get(group, {}),
                                                 end.throttle.get(group, {}))
                         for group in map(rasa_group, range(1, len(self.replicas) + 1))]
        run.machine_busy_ms = ms(end.machine_busy - start.machine_busy)
        run.rss = {component: sorted(peaks.values(), reverse=True)
                   for component, peaks in self.rss.items()}
        gone = [root for roots in self.roots.values() for root in roots
                if root not in end.snap or root not in start.snap]
        run.restarted = [part for part, pid in self.running.parts.items() if pid in gone]


async def drive(url: str, concurrency: int, warmup: float, duration: float, probe: Probe,
                run: Run) -> None:
    """Load the cluster for warm-up + window; read the counters at the window's edges."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        now = time.perf_counter()
        window = Window(start=now + warmup, end=now + warmup + duration)
        tasks = [asyncio.create_task(conversation(session, url + WEBHOOK_PATH, OUR_SCRIPT,
                                                  window, run.load, False))
                 for _ in range(concurrency)]
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        start = probe.read()
        while (left := window.end - time.perf_counter()) > 0:
            probe.sample_memory()
            await asyncio.sleep(min(RSS_EVERY_S, left))
        end = probe.read()
        done, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()
    probe.finish(run, start, end)


async def first_messages(url: str, count: int) -> None:
    """One message per replica (nginx takes them in turn); BenchError if one fails."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S * 2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            error = await send_message(session, url + WEBHOOK_PATH, new_sender(), OUR_SCRIPT[0])
            if error is not None:
                raise BenchError(f"the cluster does not answer through nginx: {error}")


def wait_quiet(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait until the one-minute load average is under `threshold`, at most `max_wait`
    seconds; return (the load average then, seconds waited)."""
    started = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - started
        if load < threshold or waited >= max_wait:
            if load >= threshold:
                logger.warning("load average still %.2f after %.0f s: measuring anyway",
                               load, waited)
            return load, waited
        logger.info("load average %.2f (>= %.2f): waiting for a quiet machine", load,
                    threshold)
        time.sleep(min(QUIET_POLL_S, max_wait - waited))


def measure(args: argparse.Namespace, hierarchy: Hierarchy, logs_dir: Path, number: int,
            replicas: int) -> Run:
    """One run; a cluster that fails to start (nothing measured yet) is started again once."""
    try:
        return measure_once(args, hierarchy, logs_dir, number, replicas, attempt=1)
    except StartFailed as failure:
        logger.warning("run %d: the cluster did not start (%s); starting another", number,
                       str(failure).splitlines()[0])
        run = measure_once(args, hierarchy, logs_dir, number, replicas, attempt=2)
        run.failed_starts = 1
        return run


def measure_once(args: argparse.Namespace, hierarchy: Hierarchy, logs_dir: Path,
                 number: int, replicas: int, attempt: int) -> Run:
    """One run: a fresh cluster, its groups, warm-up and the measured window."""
    load_average, waited = wait_quiet(args.quiet_load, args.quiet_wait)
    run = Run(number=number, replicas=replicas, load_average_before=load_average,
              waited_quiet_s=waited,
              load=LevelResult(server=f"{replicas} replica(s)", concurrency=args.concurrency,
                               measured_s=args.duration, has_action_server=True))
    with CpuGroups(hierarchy, weight=args.weight) as groups:
        for index in range(1, replicas + 1):
            groups.make(rasa_group(index), args.rasa_cpu)
        groups.make("services", args.services_cpu)
        groups.make("load", args.load_cpu)
        with cluster(replicas, logs_dir, f"{number}-{attempt}") as running:
            place(groups, running)
            asyncio.run(first_messages(running.url, replicas))
            probe = Probe(running, groups)
            logger.info("run %d, %d replica(s): %d conversations, %g s warm-up + %g s "
                        "measured", number, replicas, args.concurrency, args.warmup,
                        args.duration)
            with in_group(groups, "load"):
                asyncio.run(drive(running.url, args.concurrency, args.warmup,
                                  args.duration, probe, run))
    logger.info("run %d, %d replica(s): %.1f msg/s, %d error(s)", number, replicas,
                run.throughput, run.load.error_count)
    if run.restarted:
        logger.warning("run %d: parts restarted during the window: %s", number,
                       ", ".join(run.restarted))
    return run


def run_all(args: argparse.Namespace, hierarchy: Hierarchy, logs_dir: Path) -> list[Run]:
    """Every configuration, `repeats` times, alternating."""
    runs: list[Run] = []
    for _ in range(args.repeats):
        for replicas in args.replicas:
            runs.append(measure(args, hierarchy, logs_dir, len(runs) + 1, replicas))
    return runs


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def median_throughput(runs: Sequence[Run], replicas: int) -> float | None:
    values = [r.throughput for r in runs if r.replicas == replicas]
    return statistics.median(values) if values else None


def median_ms(runs: Sequence[Run], component: str) -> float | None:
    values = [v for r in runs if (v := r.ms_per_message(component)) is not None]
    return statistics.median(values) if values else None


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    return (f"nproc {len(os.sched_getaffinity(0))}, CPU {procfs.cpu_model(cpuinfo)}, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def run_rows(runs: Sequence[Run], rasa_cpu: float) -> list[str]:
    rows = ["| Run | Replicas | Throughput (msg/s) | p50 (ms) | p95 (ms) | p99 (ms) "
            "| Messages | Errors | Rasa CPU / quota | Quota ran out | Rest of machine "
            "(CPU ms/s) | Load avg before |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        throttled = ", ".join(percent(t) for t in r.throttled)
        rows.append(
            f"| {r.number} | {r.replicas} | {r.throughput:.1f} "
            f"| {fmt(r.load.latency_ms(0.50), 0)} | {fmt(r.load.latency_ms(0.95), 0)} "
            f"| {fmt(r.load.latency_ms(0.99), 0)} | {r.load.messages} | {r.load.error_count} "
            f"| {percent(r.share_used(rasa_cpu))} | {throttled} "
            f"| {fmt(r.others_ms_per_s, 0)} | {r.load_average_before:.2f} |")
    return rows


def ratio_lines(runs: Sequence[Run], replicas: Sequence[int]) -> list[str]:
    base = min(replicas)
    t_base = median_throughput(runs, base)
    lines = []
    for n in sorted(replicas):
        if n == base:
            continue
        t_n = median_throughput(runs, n)
        if t_base is None or t_n is None or t_base == 0:
            lines.append(f"- T({n})/T({base}): n/a")
            continue
        ratio = t_n / t_base
        pairs = [b.throughput / a.throughput
                 for a, b in zip([r for r in runs if r.replicas == base],
                                 [r for r in runs if r.replicas == n], strict=False)
                 if a.throughput > 0]
        target = ""
        if n == 2 * base:
            target = (f"; target >= {TARGET_RATIO}: "
                      f"**{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}**")
        lines.append(
            f"- **T({n})/T({base}) = {ratio:.2f}** (medians {t_n:.1f} / {t_base:.1f} msg/s; "
            f"run by run, in order: {', '.join(f'{p:.2f}' for p in pairs)}){target}")
        cpu_n, cpu_base = median_rasa_cpu(runs, n), median_rasa_cpu(runs, base)
        if cpu_n and cpu_base:
            lines.append(
                f"- CPU time the Rasa servers got, {n} replicas against {base}: "
                f"{cpu_n / cpu_base:.2f} (medians {cpu_n:.0f} / {cpu_base:.0f} ms/s): the "
                f"throughput ratio if a message cost the same CPU in every run")
    return lines + spread_lines(runs)


def median_rasa_cpu(runs: Sequence[Run], replicas: int) -> float | None:
    values = [v for r in runs if r.replicas == replicas and (v := r.rasa_ms_per_s)]
    return statistics.median(values) if values else None


def spread_lines(runs: Sequence[Run]) -> list[str]:
    """How much a message's CPU cost varied from run to run, in Rasa and in the programs in
    C, whose work per message is the same in every run: when both move together, what
    varied is the machine's speed."""
    rasa = [r.ms_per_message("Rasa servers") for r in runs]
    native = [sum(r.ms_per_message(c) or 0.0 for c in NATIVE) for r in runs]
    if len(runs) < 3 or None in rasa or min(native) <= 0:
        return []
    rasa_values = [v for v in rasa if v is not None]
    try:
        together = statistics.correlation(rasa_values, native)
    except statistics.StatisticsError:
        return []
    return [
        f"- From run to run a message cost Rasa {min(rasa_values):.1f} to "
        f"{max(rasa_values):.1f} ms of CPU, and {' + '.join(NATIVE)} {min(native):.2f} to "
        f"{max(native):.2f} ms (programs in C, whose work per message does not change); "
        f"correlation {together:.2f}. With each replica at its full quota, a replica's "
        f"throughput is its quota divided by that cost."]


def cpu_rows(runs: Sequence[Run]) -> list[str]:
    components = (*CLUSTER_COMPONENTS, LOAD)
    rows = ["| Run | Replicas | " + " | ".join(components) + " | cluster total |",
            "|--:|--:|" + "--:|" * (len(components) + 1)]
    for r in runs:
        cells = [fmt(r.ms_per_message(c), 2) for c in components]
        rows.append(f"| {r.number} | {r.replicas} | " + " | ".join(cells)
                    + f" | {fmt(r.cluster_ms_per_message, 2)} |")
    return rows


def mib(values: Sequence[int]) -> str:
    """Peak VmRSS of each process, largest first; a long list summed up."""
    if not values:
        return "n/a"
    if len(values) <= 3:
        return ", ".join(f"{v / MIB:.0f}" for v in values)
    return (f"{len(values)} processes: {values[0] / MIB:.0f} largest, "
            f"{statistics.median(values) / MIB:.0f} median, {sum(values) / MIB:.0f} sum")


def rss_rows(runs: Sequence[Run], replicas: Sequence[int]) -> list[str]:
    """Per component, each process's peak in the last run of each configuration."""
    last = {n: next((r for r in reversed(runs) if r.replicas == n), None) for n in replicas}
    heads = [f"{n} replica(s), run {run.number}" if (run := last[n]) else f"{n} replica(s)"
             for n in replicas]
    rows = ["| Component | " + " | ".join(heads) + " |", "|---|" + "--:|" * len(replicas)]
    for component in COMPONENTS.values():
        cells = [mib(last[n].rss.get(component, [])) if last[n] else "n/a" for n in replicas]
        rows.append(f"| {component} | " + " | ".join(cells) + " |")
    return rows


@dataclass(frozen=True)
class Extrapolation:
    """What k cores should carry if CPU were the only limit, from measured ms per message."""

    rasa_ms: float
    others_ms: dict[str, float]

    @property
    def total_ms(self) -> float:
        return self.rasa_ms + sum(self.others_ms.values())

    @property
    def per_rasa_core(self) -> float:
        """Messages a second per core of Rasa CPU."""
        return 1000 / self.rasa_ms

    def throughput(self, cores: int) -> float:
        return cores * 1000 / self.total_ms

    def cores_of(self, component_ms: float, cores: int) -> float:
        return cores * component_ms / self.total_ms

    def ceiling(self, component: str) -> float | None:
        """Messages a second at which a single-process component fills its core."""
        ms = self.others_ms.get(component)
        return 1000 / ms if ms else None


def replicas_for(rasa_cores: float, per_replica: float) -> int:
    """Replicas of `per_replica` cores each that give `rasa_cores` cores."""
    return math.ceil(round(rasa_cores / per_replica, 6))


def extrapolation(runs: Sequence[Run], replicas: int) -> Extrapolation | None:
    """From the median ms per message of the runs with `replicas` replicas."""
    chosen = [r for r in runs if r.replicas == replicas]
    rasa = median_ms(chosen, "Rasa servers")
    others = {c: median_ms(chosen, c) for c in CLUSTER_COMPONENTS if c != "Rasa servers"}
    if not rasa or any(v is None for v in others.values()):
        return None
    return Extrapolation(rasa, {c: v for c, v in others.items() if v is not None})


def extrapolation_lines(model: Extrapolation | None, replicas: int, rasa_cpu: float
                        ) -> list[str]:
    if model is None:
        return ["Not enough measurements to extrapolate."]
    others = sum(model.others_ms.values())
    lines = [
        f"**Extrapolation, not a measurement.** From the median CPU ms per message of the "
        f"runs with {replicas} replicas: Rasa {model.rasa_ms:.1f} ms, everything else "
        f"{others:.1f} ms (" + ", ".join(f"{c} {v:.2f}" for c, v in model.others_ms.items())
        + f"), {model.total_ms:.1f} ms in all. One core of Rasa CPU answers "
        f"**{model.per_rasa_core:.1f} msg/s** and brings {others / model.rasa_ms:.2f} "
        f"core(s) of work elsewhere. Assumed: CPU is the only limit, every component's cost "
        f"per message stays as measured (no lock or I/O contention in PostgreSQL, Redis "
        f"or nginx at higher rates), the load comes from other machines (the load "
        f"generator's own CPU is left out), the machine runs nothing else. A replica is "
        f"one Python process: count on one core each at most.",
        "",
        f"| Cores | msg/s | Rasa cores | Rasa replicas at {rasa_cpu:g} core (as here) "
        "| at 1 core | " + " | ".join(f"{c} cores" for c in model.others_ms) + " |",
        "|--:|--:|--:|--:|--:|" + "--:|" * len(model.others_ms),
    ]
    for cores in EXTRAPOLATED_CORES:
        rasa_cores = model.cores_of(model.rasa_ms, cores)
        lines.append(
            f"| {cores} | {model.throughput(cores):.0f} | {rasa_cores:.2f} "
            f"| {replicas_for(rasa_cores, rasa_cpu)} | {replicas_for(rasa_cores, 1.0)} | "
            + " | ".join(f"{model.cores_of(v, cores):.2f}" for v in model.others_ms.values())
            + " |")
    ceilings = [f"{c} at {ceiling:.0f} msg/s" for c in SINGLE_PROCESS
                if (ceiling := model.ceiling(c)) is not None]
    if ceilings:
        lines += ["", "Single processes fill their one core first: " + ", ".join(ceilings)
                  + " (nginx runs one worker in bot/cluster.py; Redis one thread)."]
    return lines


def note_lines(runs: Sequence[Run], args: argparse.Namespace) -> list[str]:
    notes = []
    for r in runs:
        if r.restarted:
            notes.append(f"- Run {r.number}: parts restarted in the window "
                         f"({', '.join(r.restarted)}): its CPU figures miss their time.")
        if r.failed_starts:
            notes.append(f"- Run {r.number}: its first cluster did not start (the log says "
                         "why; nothing was measured on it); a second one did.")
        if r.load.error_count:
            notes.append(f"- Run {r.number}: {r.load.error_count} failed request(s): "
                         f"{dict(r.load.errors)}.")
        if r.load_average_before >= args.quiet_load:
            notes.append(f"- Run {r.number}: the machine was not quiet before it "
                         f"(load average {r.load_average_before:.2f} after "
                         f"{r.waited_quiet_s:.0f} s of waiting).")
    return notes


def limit_text(cores: float | None) -> str:
    return "no limit" if cores is None else f"{cores:g} core"


def render_report(runs: Sequence[Run], args: argparse.Namespace, started: datetime.datetime,
                  machine_text: str, hierarchy_text: str) -> str:
    quota = cgroups.quota_us(args.rasa_cpu)
    top = max(args.replicas)
    lines = [
        "# Scaling benchmark: one Rasa replica, then two, the same CPU share each",
        "",
        f"- Command: `{shlex.join(sys.orig_argv)}` (as root; `make bench-cluster`)",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Machine: {machine_text}",
        f"- CPU limits ({hierarchy_text}): each Rasa server in a group of its own, "
        f"{quota} µs of CPU every {cgroups.PERIOD_US} µs ({args.rasa_cpu:g} core); "
        f"supervisor, action servers, desks, PostgreSQL, Redis and nginx in one group "
        f"({limit_text(args.services_cpu)}); the load generator (this process) in one "
        f"({limit_text(args.load_cpu)}); all of them under one parent group that weighs as "
        f"{args.weight} ordinary processes against the rest of the machine when the CPU is "
        "contended (a group otherwise counts as one process however many it holds)",
        f"- Load: {args.concurrency} simulated users at once through nginx "
        f"(`POST {WEBHOOK_PATH}`), each sending the script of bench/generate.py "
        f"({len(OUR_SCRIPT)} messages, \"{OUR_SCRIPT[0]}\" ... \"{OUR_SCRIPT[-1]}\", a "
        f"fresh sender id for every pass) and waiting for each reply; "
        f"{args.warmup:g} s warm-up, then {args.duration:g} s measured; a fresh cluster "
        f"per run, the configurations alternating, {args.repeats} run(s) of each",
        "- Counted: HTTP 200 with a JSON list body, ended within the window. CPU: "
        "utime + stime from /proc/<pid>/stat over the window, every process of each "
        "component (PostgreSQL's backends, nginx's worker), reaped children included. "
        "\"Quota ran out\": the share of 100 ms periods in which a replica used up its "
        "quota (each replica). \"Rest of the machine\": busy CPU time of the whole "
        "machine (/proc/stat) minus the cluster's and the load generator's; it may come out "
        "a little below zero, as the machine's counters are sampled at each clock tick and "
        "the processes' are not",
        "",
        "## Throughput and latency, every run",
        "",
        *run_rows(runs, args.rasa_cpu),
        "",
        *ratio_lines(runs, args.replicas),
        "",
        "At saturation latency is mostly queueing: with a closed loop of C users, "
        "latency is about C / throughput.",
        "",
        "## CPU milliseconds per message, per component, every run",
        "",
        *cpu_rows(runs),
        "",
        "## Resident memory: peak VmRSS per process (MiB)",
        "",
        *rss_rows(runs, args.replicas),
        "",
        "PostgreSQL's figures count its shared buffers again in every process that touched "
        "them: their sum overstates its memory.",
        "",
        "## What a k-core machine should carry",
        "",
        *extrapolation_lines(extrapolation(runs, top), top, args.rasa_cpu),
    ]
    notes = note_lines(runs, args)
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def cores(text: str) -> float:
    """Argparse type: a CPU share in cores, > 0 (0.5 is half a core)."""
    value = float(text)
    if value <= 0 or value > os.cpu_count():
        raise argparse.ArgumentTypeError(f"must be > 0 and at most {os.cpu_count()}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput of the cluster through nginx with 1 and 2 Rasa replicas, "
                    "each held to the same CPU share (cgroups; run as root).")
    parser.add_argument("--replicas", type=parse_concurrency, default=[1, 2],
                        help="comma-separated numbers of Rasa replicas (default 1,2)")
    parser.add_argument("--rasa-cpu", type=cores, default=0.5,
                        help="CPU share of each Rasa replica, in cores (default 0.5)")
    parser.add_argument("--services-cpu", type=cores, default=None,
                        help="CPU limit of all the other parts together (default none)")
    parser.add_argument("--load-cpu", type=cores, default=None,
                        help="CPU limit of the load generator (default none)")
    parser.add_argument("--weight", type=processes.positive_int, default=8,
                        help="the benchmark's processes together weigh as this many ordinary "
                             "processes when other programs contend for the CPU (default 8)")
    parser.add_argument("--concurrency", type=processes.positive_int, default=32,
                        help="simultaneous conversations (default 32)")
    parser.add_argument("--warmup", type=processes.positive_float, default=20.0,
                        help="uncounted seconds of load before the window (default 20)")
    parser.add_argument("--duration", type=processes.positive_float, default=60.0,
                        help="measured seconds per run (default 60)")
    parser.add_argument("--repeats", type=processes.positive_int, default=2,
                        help="runs of each configuration (default 2)")
    parser.add_argument("--quiet-load", type=processes.positive_float, default=1.0,
                        help="one-minute load average to wait for before each run (1.0)")
    parser.add_argument("--quiet-wait", type=float, default=1200.0,
                        help="at most this many seconds of waiting for it (default 1200)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (stderr)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()

    def produce(logs_dir: Path) -> tuple[str, bool]:
        hierarchy = check_prerequisites()
        runs = run_all(args, hierarchy, logs_dir)
        report = render_report(runs, args, started, machine(), hierarchy.describe())
        return report, False

    return processes.run_and_report(args.verbose, "scaling", produce, RESULTS_FILE)


if __name__ == "__main__":
    sys.exit(main())
