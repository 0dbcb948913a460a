"""Start one of our launchers (`python -m bot.launch`, `python -m bot.cluster`) for a
test, and wait for the one line with "ready" it prints once every part answers."""
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 300


def start(module: str, env: Dict[str, str], log: Path, what: str) -> subprocess.Popen:
    """`python -m module`, its errors in `log`, once it is ready (else the test fails,
    with the end of the log)."""
    with log.open("w") as log_file:
        launcher = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=log_file, text=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    line = ""
    try:
        while "ready" not in line:
            line = launcher.stdout.readline()
            if not line and launcher.poll() is not None:
                pytest.fail(f"{what} did not start:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not start in time")
    except BaseException:
        stop(launcher)
        raise
    return launcher


def stop(launcher: subprocess.Popen, timeout_s: float = 90) -> None:
    """As Ctrl-C stops it (its parts first); killed if it takes longer than `timeout_s`."""
    launcher.terminate()
    try:
        launcher.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()
