"""bench/cgroups.py: which hierarchy, what to write for a CPU limit, groups made and removed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cgroups
from bench.cgroups import CpuGroups, Hierarchy


def test_the_unified_hierarchy_is_used_when_it_offers_cpu(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert cgroups.find_hierarchy(tmp_path) == Hierarchy(tmp_path, 2)


def test_the_legacy_cpu_hierarchy_otherwise(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroups.find_hierarchy(tmp_path) == Hierarchy(tmp_path / "cpu", 1)


def test_no_cpu_controller_is_none(tmp_path):
    assert cgroups.find_hierarchy(tmp_path) is None


@pytest.mark.parametrize(
    ("version", "cores", "writes"),
    [
        (2, 0.5, [("cpu.max", "50000 100000")]),
        (2, 1.25, [("cpu.max", "125000 100000")]),
        (2, None, [("cpu.max", "max 100000")]),
        (1, 0.5, [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")]),
        (1, None, [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "-1")]),
    ],
)
def test_limit_writes(version, cores, writes):
    assert cgroups.limit_writes(version, cores) == writes


def test_weight_writes_count_ordinary_processes():
    assert cgroups.weight_writes(1, 8) == [("cpu.shares", "8192")]
    assert cgroups.weight_writes(2, 8) == [("cpu.weight", "800")]
    assert cgroups.weight_writes(2, 500) == [("cpu.weight", "10000")]
    with pytest.raises(ValueError):
        cgroups.weight_writes(1, 0)


@pytest.mark.parametrize("cores", [0, -0.5])
def test_a_share_must_be_positive(cores):
    with pytest.raises(ValueError):
        cgroups.quota_us(cores)


def test_group_folders_stay_under_the_parent():
    hierarchy = Hierarchy(Path("/sys/fs/cgroup"), 2)
    assert cgroups.group_dir(hierarchy, "avrr-bench", "rasa-2") == Path(
        "/sys/fs/cgroup/avrr-bench/rasa-2")
    for name in ("..", "../x", "a/b", "", "Rasa"):
        with pytest.raises(ValueError):
            cgroups.group_dir(hierarchy, "avrr-bench", name)


def test_a_process_group_read_from_proc():
    v1 = "9:name=systemd:/\n4:memory:/job/1\n2:cpuacct:/\n1:cpu,cpuacct:/avrr-bench/load\n0::/\n"
    assert cgroups.group_of(v1, 1) == "/avrr-bench/load"
    assert cgroups.group_of(v1, 2) == "/"
    assert cgroups.group_of("0::/user.slice/session-3.scope\n", 2) == "/user.slice/session-3.scope"
    assert cgroups.group_of("4:memory:/\n", 1) is None


def test_throttled_share_between_two_readings():
    before = cgroups.parse_cpu_stat("nr_periods 100\nnr_throttled 10\nthrottled_time 5\n")
    after = cgroups.parse_cpu_stat("nr_periods 300\nnr_throttled 160\nthrottled_time 9\n")
    assert after == {"nr_periods": 300, "nr_throttled": 160, "throttled_time": 9}
    assert cgroups.throttled_share(before, after) == pytest.approx(0.75)
    assert cgroups.throttled_share(after, after) is None


def test_on_the_unified_hierarchy_cpu_is_enabled_and_cpu_max_written(tmp_path, monkeypatch):
    # A folder standing in for /sys/fs/cgroup: the files are what the kernel was told.
    monkeypatch.setattr(cgroups, "REMOVE_TIMEOUT_S", 0)
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    (tmp_path / "cgroup.procs").write_text("")
    parent = tmp_path / "avrr-bench"
    parent.mkdir()
    (parent / "cgroup.subtree_control").write_text("")
    with CpuGroups(Hierarchy(tmp_path, 2), weight=4) as groups:
        folder = groups.make("rasa-1", 0.5)
        groups.move("rasa-1", [4242])
        assert (folder / "cpu.max").read_text() == "50000 100000"
        assert (folder / "cgroup.procs").read_text() == "4242"
        assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
        assert (parent / "cgroup.subtree_control").read_text() == "+cpu"
        assert (parent / "cpu.weight").read_text() == "400"
    # What was left in the group went back to the top.
    assert (tmp_path / "cgroup.procs").read_text() == "4242"
    assert groups.groups == {}


def real_hierarchy():
    hierarchy = cgroups.find_hierarchy()
    if hierarchy is None or os.geteuid() != 0:
        return None
    return hierarchy


@pytest.mark.skipif(real_hierarchy() is None, reason="needs root and a cgroup cpu controller")
def test_a_real_process_is_limited_and_the_groups_are_removed():
    hierarchy = real_hierarchy()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    parent = f"avrr-bench-test-{os.getpid()}"
    try:
        with CpuGroups(hierarchy, parent=parent, weight=2) as groups:
            folder = groups.make("rasa-1", 0.25)
            ((name, value),) = cgroups.weight_writes(hierarchy.version, 2)
            assert (hierarchy.root / parent / name).read_text().strip() == value
            groups.move("rasa-1", [sleeper.pid])
            text = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
            assert cgroups.group_of(text, hierarchy.version) == f"/{parent}/rasa-1"
            assert "nr_periods" in groups.cpu_stat("rasa-1")
            limit = dict(cgroups.limit_writes(hierarchy.version, 0.25))
            for name, value in limit.items():
                assert (folder / name).read_text().strip() == value
        # Still running, back at the top, and nothing of ours is left.
        assert sleeper.poll() is None
        text = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        assert cgroups.group_of(text, hierarchy.version) == "/"
        assert not (hierarchy.root / parent).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
