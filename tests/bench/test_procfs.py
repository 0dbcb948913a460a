"""bench/procfs.py: /proc's stat and status lines, and CPU time of process trees."""
import os
import subprocess

import pytest

from bench import procfs
from bench.procfs import ProcStat

# Fields 3 to 22 of proc(5) after the command name: ppid 1, utime 11, stime 12,
# cutime 13, cstime 14.
TAIL = "S 1 7 7 0 -1 4194560 100 0 0 0 11 12 13 14 20 0 3 0 1234"


@pytest.mark.parametrize("comm", ["postgres", "python -m x", "a) (b", ")", "(sd-pam)"])
def test_parse_stat_counts_fields_after_the_last_parenthesis(comm):
    stat = procfs.parse_stat(f"4242 ({comm}) {TAIL} 5 6 7\n")
    assert stat == ProcStat(pid=4242, ppid=1, utime=11, stime=12, cutime=13, cstime=14)
    assert (stat.own, stat.with_reaped) == (23, 50)


def stat(pid, ppid, own, reaped=0):
    return ProcStat(pid=pid, ppid=ppid, utime=own, stime=0, cutime=reaped, cstime=0)


def test_a_tree_is_the_root_and_all_its_descendants():
    snap = {p.pid: p for p in (stat(1, 0, 1), stat(10, 1, 1), stat(11, 10, 1),
                               stat(12, 11, 1), stat(20, 1, 1))}
    assert sorted(procfs.tree(snap, 10)) == [10, 11, 12]
    assert procfs.tree(snap, 12) == [12]
    assert procfs.tree(snap, 99) == []


def test_the_time_of_a_child_that_ends_in_the_window_is_counted_once():
    # The postmaster (100) has two backends; backend 102 used 30 ticks before the window,
    # 5 more in it, then ended and was reaped (its 35 ticks now in 100's cutime); backend
    # 103 started in the window and used 7.
    start = {p.pid: p for p in (stat(100, 1, 50), stat(101, 100, 40), stat(102, 100, 30))}
    end = {p.pid: p for p in (stat(100, 1, 52, reaped=35), stat(101, 100, 44),
                              stat(103, 100, 7))}
    used = procfs.tree_ticks(end, [100]) - procfs.tree_ticks(start, [100])
    assert used == 2 + 4 + 5 + 7


def test_own_ticks_leave_children_out():
    snap = {p.pid: p for p in (stat(5, 1, 10, reaped=100), stat(6, 5, 3))}
    assert procfs.own_ticks(snap, [5]) == 10
    assert procfs.own_ticks(snap, [5, 6, 7]) == 13


def test_vmrss_in_bytes_and_none_for_a_kernel_thread():
    assert procfs.parse_vmrss("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t  2048 kB\n") == 2 * 1024**2
    assert procfs.parse_vmrss("Name:\tkthreadd\nThreads:\t1\n") is None
    with pytest.raises(ValueError, match="VmRSS in 'MB'"):
        procfs.parse_vmrss("VmRSS:\t2 MB\n")


def test_machine_busy_time_leaves_idle_and_iowait_out():
    text = "cpu  100 5 30 1000 40 2 3 4 9 0\ncpu0 50 2 15 500 20 1 1 2 0 0\nintr 1\n"
    assert procfs.parse_system_ticks(text) == (100 + 5 + 30 + 2 + 3 + 4, 144 + 1000 + 40)
    with pytest.raises(ValueError):
        procfs.parse_system_ticks("intr 1\n")


def test_cpu_model_is_the_first_processors_with_its_family_and_model():
    cpuinfo = ("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\n"
               "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: other\n")
    assert procfs.cpu_model(cpuinfo) == "AMD EPYC (family 25, model 17)"
    assert procfs.cpu_model("processor\t: 0\nmodel name\t: Neoverse\n") == "Neoverse"
    assert procfs.cpu_model("processor\t: 0\n") == "unknown"


def test_real_processes_are_read_and_a_gone_one_is_none():
    snap = procfs.snapshot()
    assert snap[os.getpid()].ppid == os.getppid()
    assert procfs.read_vmrss(os.getpid()) > 1024**2
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert procfs.read_stat(gone.pid) is None
    assert procfs.read_vmrss(gone.pid) is None
    busy, total = procfs.system_ticks()
    assert 0 < busy <= total
