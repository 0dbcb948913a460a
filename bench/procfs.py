"""CPU time and resident memory of processes, read from /proc.

CPU time of a process tree over a window: for every process of the tree alive at a
reading, its own user + system time plus the time of the children it has reaped
(``cutime``, ``cstime``); the window's share is the end reading minus the start one.
A process that ends during the window is reaped by its parent (a PostgreSQL backend by
the postmaster), whose reaped-children time then holds all of it: the difference counts
exactly what was used in the window, as long as the tree's root lives throughout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
KIB = 1024


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that the benchmark uses (times in clock ticks)."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def own(self) -> int:
        """User + system time of the process itself (every thread)."""
        return self.utime + self.stime

    @property
    def with_reaped(self) -> int:
        """Its own time and that of the children it has reaped."""
        return self.own + self.cutime + self.cstime


Snapshot = dict[int, ProcStat]


def parse_stat(text: str) -> ProcStat:
    """Parse one /proc/<pid>/stat line.

    The command name (field 2) is in parentheses and may hold spaces and parentheses
    itself, so the fields are counted from the last ")".
    """
    pid = int(text[: text.index(" ")])
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5), the state: utime is field 14, so fields[11].
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """A process's stat now, None if it is gone."""
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def snapshot(proc: Path = PROC) -> Snapshot:
    """The stat of every process now."""
    found: Snapshot = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                found[stat.pid] = stat
    return found


def tree(snap: Snapshot, root: int) -> list[int]:
    """`root` and its descendants in `snap` ([] if root is not there)."""
    if root not in snap:
        return []
    children: dict[int, list[int]] = {}
    for stat in snap.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def tree_ticks(snap: Snapshot, roots: Iterable[int]) -> int:
    """CPU ticks of the trees under `roots`, reaped descendants included."""
    return sum(snap[pid].with_reaped for root in roots for pid in tree(snap, root))


def own_ticks(snap: Snapshot, pids: Iterable[int]) -> int:
    """CPU ticks of the processes `pids` themselves, not of their children."""
    return sum(snap[pid].own for pid in pids if pid in snap)


def parse_vmrss(status: str) -> int | None:
    """VmRSS in bytes from the text of /proc/<pid>/status (None for a kernel thread)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"VmRSS in {unit!r}")
            return int(value) * KIB
    return None


def read_vmrss(pid: int, proc: Path = PROC) -> int | None:
    """A process's resident memory now, None if it is gone."""
    try:
        return parse_vmrss((proc / str(pid) / "status").read_text())
    except OSError:
        return None


def parse_system_ticks(stat: str) -> tuple[int, int]:
    """(busy, all) CPU ticks of every core since boot, from the text of /proc/stat.

    Busy is everything but idle and iowait; guest time is already in user time.
    """
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
            busy = user + nice + system + irq + softirq + steal
            return busy, busy + idle + iowait
    raise ValueError("no cpu line in /proc/stat")


def system_ticks(proc: Path = PROC) -> tuple[int, int]:
    """(busy, all) CPU ticks of the machine since boot."""
    return parse_system_ticks((proc / "stat").read_text())


def cpu_model(cpuinfo: str) -> str:
    """The first processor's "model name" in /proc/cpuinfo, with its family and model
    numbers when given (a virtual machine may name only the brand)."""
    first: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if not key and first:
            break  # the blank line after the first processor
        first.setdefault(key, value.strip())
    name = first.get("model name", "unknown")
    if "cpu family" in first and "model" in first:
        name += f" (family {first['cpu family']}, model {first['model']})"
    return name
