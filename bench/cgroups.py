"""CPU limits for the processes under load: one control group each, cgroup v2 or v1.

A limit is a quota of CPU time per period: 50,000 µs every 100,000 µs is half a core,
whichever cores the process runs on (unlike pinning with taskset, which on two cores
leaves one replica a whole core and the other the rest of the machine's work).

- cgroup v2 (one hierarchy, /sys/fs/cgroup): the limit is ``cpu.max`` ("50000 100000"),
  and the parent must list ``cpu`` in its ``cgroup.subtree_control``.
- cgroup v1 (the cpu controller mounted on its own at /sys/fs/cgroup/cpu, as on hosts
  and virtual machines booted with the legacy hierarchy): the same limit is
  ``cpu.cfs_period_us`` and ``cpu.cfs_quota_us``.

A process moves when its pid is written to the group's ``cgroup.procs``: all its threads
with it, and the children it starts afterwards are born there; the children it already
has are moved one by one. Creating groups needs root.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_FS = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
REMOVE_TIMEOUT_S = 10.0
# Group names become folder names: nothing that could climb out of the parent.
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class CgroupError(RuntimeError):
    """No cpu controller to use, or the kernel refused a write."""


@dataclass(frozen=True)
class Hierarchy:
    """Where the cpu controller is mounted, and which cgroup version it is."""

    root: Path
    version: int

    def describe(self) -> str:
        return f"cgroup v{self.version}, cpu controller at {self.root}"


def find_hierarchy(base: Path = CGROUP_FS) -> Hierarchy | None:
    """The cpu controller's hierarchy: v2 if the unified one offers it, else v1, else None."""
    controllers = base / "cgroup.controllers"
    if controllers.is_file() and "cpu" in controllers.read_text().split():
        return Hierarchy(base, 2)
    legacy = base / "cpu"
    if (legacy / "cpu.cfs_quota_us").is_file():
        return Hierarchy(legacy, 1)
    return None


def quota_us(cores: float, period_us: int = PERIOD_US) -> int:
    """The quota per period that gives `cores` cores (0.5: half of one)."""
    if cores <= 0:
        raise ValueError("a CPU share must be > 0")
    return round(cores * period_us)


def limit_writes(version: int, cores: float | None, period_us: int = PERIOD_US
                 ) -> list[tuple[str, str]]:
    """The files to write, in order, to limit a group to `cores` (None: no limit)."""
    if version == 2:
        quota = "max" if cores is None else str(quota_us(cores, period_us))
        return [("cpu.max", f"{quota} {period_us}")]
    quota = "-1" if cores is None else str(quota_us(cores, period_us))
    return [("cpu.cfs_period_us", str(period_us)), ("cpu.cfs_quota_us", quota)]


def weight_writes(version: int, weight: int) -> list[tuple[str, str]]:
    """The file to write to give a group the weight of `weight` ordinary processes when
    the CPU is contended (v1 ``cpu.shares``, 1024 each; v2 ``cpu.weight``, 100 each)."""
    if weight < 1:
        raise ValueError("a weight must be >= 1")
    if version == 2:
        return [("cpu.weight", str(min(10_000, 100 * weight)))]
    return [("cpu.shares", str(1024 * weight))]


def group_dir(hierarchy: Hierarchy, parent: str, name: str) -> Path:
    """The folder of group `name` under `parent`; ValueError for a name that is no plain word."""
    for part in (parent, name):
        if not NAME.match(part):
            raise ValueError(f"not a cgroup name of ours: {part!r}")
    return hierarchy.root / parent / name


def group_of(proc_cgroup: str, version: int) -> str | None:
    """A process's cpu group, from the text of /proc/<pid>/cgroup ("/" at the top)."""
    for line in proc_cgroup.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if version == 2 and number == "0" and controllers == "":
            return path
        if version == 1 and "cpu" in controllers.split(","):
            return path
    return None


def parse_cpu_stat(text: str) -> dict[str, int]:
    """A group's cpu.stat ("nr_periods 30" per line) as a dict."""
    stats = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            stats[key] = int(value)
    return stats


def throttled_share(before: dict[str, int], after: dict[str, int]) -> float | None:
    """The share of the periods between two cpu.stat readings in which the quota ran out."""
    periods = after.get("nr_periods", 0) - before.get("nr_periods", 0)
    if periods <= 0:
        return None
    return (after.get("nr_throttled", 0) - before.get("nr_throttled", 0)) / periods


@dataclass
class CpuGroups:
    """Groups under one parent (``avrr-bench``), made on entry, emptied and removed on exit.

    The parent weighs as `weight` ordinary processes against the rest of the machine: a
    group, however many processes it holds, otherwise counts as one process when the CPU
    is contended. What is still in a group on exit goes back to the top of the hierarchy,
    so that the groups can be removed however the run ended.
    """

    hierarchy: Hierarchy
    parent: str = "avrr-bench"
    weight: int = 1
    groups: dict[str, Path] = field(default_factory=dict)

    @property
    def parent_dir(self) -> Path:
        return self.hierarchy.root / self.parent

    def __enter__(self) -> CpuGroups:
        if not NAME.match(self.parent):
            raise ValueError(f"not a cgroup name of ours: {self.parent!r}")
        if self.hierarchy.version == 2:
            self._enable_cpu(self.hierarchy.root)
        self.parent_dir.mkdir(exist_ok=True)
        if self.hierarchy.version == 2:
            self._enable_cpu(self.parent_dir)
        for filename, value in weight_writes(self.hierarchy.version, self.weight):
            self._write(self.parent_dir / filename, value)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in list(self.groups):
            self.remove(name)
        with contextlib.suppress(OSError):
            self.parent_dir.rmdir()

    def _enable_cpu(self, folder: Path) -> None:
        """Let the children of `folder` have cpu limits (cgroup v2)."""
        control = folder / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            self._write(control, "+cpu")

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as refused:
            raise CgroupError(f"writing {value!r} to {path}: {refused.strerror}") from None

    def make(self, name: str, cores: float | None) -> Path:
        """Group `name`, limited to `cores` (None: no limit of its own)."""
        folder = group_dir(self.hierarchy, self.parent, name)
        folder.mkdir(exist_ok=True)
        self.groups[name] = folder
        for filename, value in limit_writes(self.hierarchy.version, cores):
            self._write(folder / filename, value)
        logger.info("cgroup %s: %s", folder,
                    "no limit" if cores is None else f"{cores:g} core(s)")
        return folder

    def move(self, name: str, pids: Iterable[int]) -> None:
        """Move the processes `pids` (every thread of each) into group `name`."""
        procs = self.groups[name] / "cgroup.procs"
        for pid in pids:
            try:
                procs.write_text(str(pid))
            except ProcessLookupError:
                continue  # gone meanwhile: nothing to limit
            except OSError as refused:
                raise CgroupError(f"moving pid {pid} to {procs}: {refused.strerror}") from None

    def move_to(self, group_path: str, pids: Iterable[int]) -> None:
        """Move `pids` to a group outside ours, by its path in the hierarchy ("/": the top)."""
        procs = self.hierarchy.root / group_path.lstrip("/") / "cgroup.procs"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                procs.write_text(str(pid))

    def cpu_stat(self, name: str) -> dict[str, int]:
        """Group `name`'s cpu.stat: periods, throttled periods, throttled time."""
        return parse_cpu_stat((self.groups[name] / "cpu.stat").read_text())

    def remove(self, name: str) -> None:
        """Move what is left in group `name` to the top, and remove the group."""
        folder = self.groups.pop(name)
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                left = (folder / "cgroup.procs").read_text().split()
                self.move_to("/", [int(pid) for pid in left])
            try:
                folder.rmdir()
                return
            except OSError as busy:
                # A process that has just exited may keep the group busy a moment.
                if time.monotonic() >= deadline:
                    logger.warning("cgroup %s not removed: %s", folder, busy.strerror)
                    return
            time.sleep(0.2)
