"""bench/processes.py: free ports, finding our servers among real processes, memory, stopping."""
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from bench import processes
from bench.processes import (
    RssSampler,
    find_our_servers,
    free_ports,
    live_group_members,
    read_rss,
    server_role,
    stop_process,
)

SLEEP = "import time; time.sleep(30)"


def test_free_ports_are_distinct_and_free():
    ports = free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/r/.venv/bin/python", "-m", "bot.serve", "run", "--port", "5005"], "rasa"),
        (["/r/.venv/bin/python", "-m", "bot.action_server"], "action"),
        (["python", "-m", "rasa_sdk", "--port", "5055"], "action"),
        (["/r/.venv/bin/rasa", "run", "--enable-api"], "rasa"),
        (["/r/.venv/bin/rasa", "run", "actions"], "action"),
        (["python", "-m", "rasa", "run"], "rasa"),
        # A path that happens to contain "rasa" is no Rasa server.
        (["/home/rasa/.venv/bin/python", "-m", "desk"], None),
        (["python", "-m", "bot.widget_server", "--model", "/srv/rasa/models"], None),
        (["python", "-m"], None),
        ([], None),
    ],
)
def test_server_role_reads_whole_arguments(cmdline, role):
    assert server_role(cmdline) == role


@pytest.fixture
def launcher_like():
    """A shell with children like the launcher's: Rasa, a decoy, an action server grandchild."""
    py = sys.executable
    script = (
        f'"{py}" -c "{SLEEP}" -m bot.serve run & '
        f'"{py}" -c "{SLEEP}" /srv/rasa/decoy & '
        f'( "{py}" -c "{SLEEP}" -m bot.action_server; : ) & '
        "wait"
    )
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    yield proc
    stop_process(proc, "launcher-like")


def servers_of(launcher, timeout=5.0):
    """find_our_servers once both children have started."""
    deadline = time.monotonic() + timeout
    while not all(found := find_our_servers(launcher.pid)):
        assert time.monotonic() < deadline, f"not both found in time: {found}"
        time.sleep(0.05)
    return found


def test_find_our_servers_among_real_descendants(launcher_like):
    rasa_pid, action_pid = servers_of(launcher_like)
    assert psutil.Process(rasa_pid).ppid() == launcher_like.pid
    assert "bot.serve" in psutil.Process(rasa_pid).cmdline()
    # The action server is a grandchild (under a subshell).
    assert psutil.Process(action_pid).ppid() != launcher_like.pid
    assert "bot.action_server" in psutil.Process(action_pid).cmdline()


def test_stop_process_stops_the_whole_group(launcher_like):
    servers_of(launcher_like)
    assert len(live_group_members(launcher_like.pid)) >= 4
    stop_process(launcher_like, "launcher-like")
    assert launcher_like.returncode is not None
    assert live_group_members(launcher_like.pid) == []


def test_find_our_servers_of_a_gone_process():
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert find_our_servers(gone.pid) == (None, None)
    assert read_rss(gone.pid) is None


def test_rss_of_a_live_process():
    assert read_rss(os.getpid()) > 1024 * 1024


def test_rss_sampler_keeps_the_peak_of_each_named_process(monkeypatch):
    monkeypatch.setattr(processes, "RSS_SAMPLE_INTERVAL_S", 0.01)
    with RssSampler({"me": os.getpid(), "none": None}) as rss:
        time.sleep(0.05)
    assert rss.peaks["me"] >= read_rss(os.getpid()) * 0.5
    assert rss.peaks["none"] is None


def test_line_pump_notices_only_a_ready_word(tmp_path):
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as stream, open(tmp_path / "log", "wb") as log:
        pump = processes.LinePump(stream, log)
        with open(write_end, "wb", buffering=0) as writer:
            writer.write(b"starting\nalready running\n")
            assert not pump.ready.wait(0.1)
            writer.write(b"ready\n")
            assert pump.ready.wait(2)
        pump.join(2)
    assert (tmp_path / "log").read_bytes() == b"starting\nalready running\nready\n"


def test_our_env_passes_ours_on_with_free_ports_and_no_rest_token(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_TEST_MARKER", "kept")
    monkeypatch.setenv("REST_CHANNEL_TOKEN", "a-token-the-bench-must-not-need")
    env = processes.our_env(tmp_path)
    ports = {env[name] for name in ("RASA_PORT", "ACTION_PORT", "DESK_PORT", "WIDGET_PORT")}
    assert len(ports) == 4
    assert env["AVRR_DATA_DIR"] == str(tmp_path)
    assert env["AVRR_MODEL"] == str(processes.OUR_MODEL)
    assert env["REST_CHANNEL_TOKEN"] == ""
    assert env["BENCH_TEST_MARKER"] == "kept"
    assert env["RASA_TELEMETRY_ENABLED"] == "false"


def test_interrupts_are_deferred_during_cleanup():
    before = signal.getsignal(signal.SIGINT)
    with processes.interrupts_deferred():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) == before
