"""`python -m bot.launch`: start the whole assistant on this machine; Ctrl-C stops it.

Starts the action server, then the Rasa server with its HTTP API, on loopback, with a
SQLite tracker store in AVRR_DATA_DIR. Prints one line with "ready" once both answer and
the model is loaded. If either process ends, the other is stopped too.
"""
import logging
import os
import signal
import subprocess  # noqa: S404 - we start our own servers
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 300
STOP_TIMEOUT_S = 15


@dataclass(frozen=True)
class Settings:
    """Where the parts listen and keep their data, from the environment."""

    rasa_port: int
    action_port: int
    data_dir: Path
    model: Path
    api_token: Optional[str]

    @classmethod
    def from_env(cls, env: Dict[str, str]) -> "Settings":
        return cls(
            rasa_port=int(env.get("RASA_PORT", "5005")),
            action_port=int(env.get("ACTION_PORT", "5055")),
            data_dir=Path(env.get("AVRR_DATA_DIR", ROOT / "var")),
            model=Path(env.get("AVRR_MODEL", ROOT / "models" / "avrr.tar.gz")),
            api_token=env.get("RASA_API_TOKEN") or None,
        )

    @property
    def tracker_db(self) -> Path:
        return self.data_dir / "conversations.db"

    @property
    def status_url(self) -> str:
        query = f"?token={urllib.parse.quote(self.api_token)}" if self.api_token else ""
        return f"http://127.0.0.1:{self.rasa_port}/status{query}"


def child_env(settings: Settings) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        ACTION_SERVER_URL=f"http://127.0.0.1:{settings.action_port}/webhook",
        AVRR_TRACKER_DB=str(settings.tracker_db),
        PYTHONPATH=str(ROOT),
    )
    return env


def commands(settings: Settings) -> Dict[str, List[str]]:
    rasa = [
        sys.executable, "-m", "bot.serve", "run",
        "--enable-api",
        "--interface", "127.0.0.1",
        "--port", str(settings.rasa_port),
        "--model", str(settings.model),
        "--credentials", str(ROOT / "credentials.yml"),
        "--endpoints", str(ROOT / "endpoints.yml"),
    ]
    if settings.api_token:
        rasa += ["--auth-token", settings.api_token]
    return {
        "action server": [
            sys.executable, "-m", "rasa_sdk",
            "--actions", "actions",
            "--port", str(settings.action_port),
        ],
        "rasa server": rasa,
    }


def answers(url: str, want_model: bool = False) -> bool:
    """Whether `url` answers 200 (and, for /status, names a loaded model)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - loopback
            body = reply.read()
    except (urllib.error.URLError, OSError):
        return False
    return not want_model or b'"model_file":"' in body.replace(b" ", b"")


def wait_until_ready(settings: Settings, processes: Dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    checks = {
        "action server": (f"http://127.0.0.1:{settings.action_port}/health", False),
        "rasa server": (settings.status_url, True),
    }
    pending = dict(checks)
    while pending:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"the {name} stopped while starting (exit {process.returncode})")
        for name, (url, want_model) in list(pending.items()):
            if answers(url, want_model):
                logger.info("%s is up", name)
                del pending[name]
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {STARTUP_TIMEOUT_S} s: {', '.join(pending)}")
        time.sleep(0.5)


def stop(processes: Dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def interrupt(signum: int, frame: object) -> None:
    """End like Ctrl-C does on SIGTERM, so the children are always stopped."""
    raise KeyboardInterrupt


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launch: %(message)s")
    settings = Settings.from_env(dict(os.environ))
    if not settings.model.exists():
        logger.error("No trained model at %s: run `make train` first.", settings.model)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(settings)
    processes: Dict[str, subprocess.Popen] = {}
    signal.signal(signal.SIGTERM, interrupt)
    try:
        for name, command in commands(settings).items():
            logger.info("starting the %s", name)
            # Their output goes to our stderr: stdout carries only the "ready" line.
            processes[name] = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=env, stdout=sys.stderr
            )
        wait_until_ready(settings, processes)
        logger.info(
            "ready: REST http://127.0.0.1:%d/webhooks/rest/webhook, action server "
            "http://127.0.0.1:%d, conversations in %s. Ctrl-C stops.",
            settings.rasa_port, settings.action_port, settings.tracker_db,
        )
        print("ready", flush=True)
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        ended = [name for name, process in processes.items() if process.poll() is not None]
        logger.error("the %s stopped; stopping everything", " and ".join(ended))
        return 1
    except KeyboardInterrupt:
        logger.info("stopping")
        return 0
    except RuntimeError as failure:
        logger.error("%s", failure)
        return 1
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
