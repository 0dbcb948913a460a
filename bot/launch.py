"""`python -m bot.launch`: start the whole assistant on this machine; Ctrl-C stops it.

Starts, on loopback: the action server; the Rasa server with its HTTP API and the
channels (REST and the web widget's socket.io always; Telegram and WhatsApp when their
settings are in the environment); the counsellor desk; and the web widget's demo page.
Conversations, tickets and the outbox are SQLite files in AVRR_DATA_DIR. Secrets not
given in the environment are generated once and kept there (mode 0600). Prints one
line with "ready" once all answer and the model is loaded. If one process ends, all
are stopped.
"""
import logging
import os
import secrets
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
# Channels that start only when their settings are given, by the variable that tells.
OPTIONAL_CHANNELS = {
    "bot.channels.telegram.TelegramInput": "TELEGRAM_BOT_TOKEN",
    "bot.channels.whatsapp.WhatsAppInput": "WHATSAPP_ACCESS_TOKEN",
}


@dataclass(frozen=True)
class Settings:
    """Where the parts listen and keep their data, from the environment."""

    rasa_port: int
    action_port: int
    data_dir: Path
    model: Path
    api_token: Optional[str]
    desk_port: int
    widget_port: int
    channels: List[str]

    @classmethod
    def from_env(cls, env: Dict[str, str]) -> "Settings":
        return cls(
            rasa_port=int(env.get("RASA_PORT", "5005")),
            action_port=int(env.get("ACTION_PORT", "5055")),
            data_dir=Path(env.get("AVRR_DATA_DIR", ROOT / "var")),
            model=Path(env.get("AVRR_MODEL", ROOT / "models" / "avrr.tar.gz")),
            api_token=env.get("RASA_API_TOKEN") or None,
            desk_port=int(env.get("DESK_PORT", "8000")),
            widget_port=int(env.get("WIDGET_PORT", "8080")),
            channels=[name for name, variable in OPTIONAL_CHANNELS.items() if env.get(variable)],
        )

    @property
    def tracker_db(self) -> Path:
        return self.data_dir / "conversations.db"

    @property
    def status_url(self) -> str:
        query = f"?token={urllib.parse.quote(self.api_token)}" if self.api_token else ""
        return f"http://127.0.0.1:{self.rasa_port}/status{query}"


def kept_secret(env: Dict[str, str], name: str, data_dir: Path) -> str:
    """The secret `name` from the environment, else one generated once and kept."""
    if env.get(name):
        return env[name]
    path = data_dir / name.lower()
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def credentials(settings: Settings) -> Path:
    """Rasa's credentials file: the channels to start. Their secrets stay in the environment."""
    path = settings.data_dir / "credentials.yml"
    lines = (ROOT / "credentials.yml").read_text().splitlines()
    lines += [f"{channel}:" for channel in settings.channels]
    path.write_text("\n".join(lines) + "\n")
    return path


def child_env(settings: Settings) -> Dict[str, str]:
    env = dict(os.environ)
    rasa_url = f"http://127.0.0.1:{settings.rasa_port}"
    # The widget's page, and Rasa's own origin (same-origin pages, test clients).
    widget = [
        f"http://{host}:{port}"
        for port in (settings.widget_port, settings.rasa_port)
        for host in ("127.0.0.1", "localhost")
    ]
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        ACTION_SERVER_URL=f"http://127.0.0.1:{settings.action_port}/webhook",
        AVRR_TRACKER_DB=str(settings.tracker_db),
        AVRR_OUTBOX_DB=str(settings.data_dir / "outbox.db"),
        AVRR_CHANNEL_DB=str(settings.data_dir / "channels.db"),
        AVRR_DATA_DIR=str(settings.data_dir),
        DESK_URL=f"http://127.0.0.1:{settings.desk_port}",
        DESK_PORT=str(settings.desk_port),
        DESK_API_TOKEN=kept_secret(env, "DESK_API_TOKEN", settings.data_dir),
        SOCKET_SESSION_SECRET=kept_secret(env, "SOCKET_SESSION_SECRET", settings.data_dir),
        RASA_URL=rasa_url,
        WIDGET_RASA_URL=env.get("WIDGET_RASA_URL", rasa_url),
        WIDGET_PORT=str(settings.widget_port),
        WIDGET_ORIGINS=env.get("WIDGET_ORIGINS", ",".join(widget)),
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
        "--credentials", str(credentials(settings)),
        "--endpoints", str(ROOT / "endpoints.yml"),
    ]
    if settings.api_token:
        rasa += ["--auth-token", settings.api_token]
    return {
        "action server": [
            sys.executable, "-m", "bot.action_server",
            "--actions", "actions",
            "--port", str(settings.action_port),
        ],
        "rasa server": rasa,
        "counsellor desk": [sys.executable, "-m", "desk"],
        "web widget": [sys.executable, "-m", "bot.widget_server"],
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
        "counsellor desk": (f"http://127.0.0.1:{settings.desk_port}/health", False),
        "web widget": (f"http://127.0.0.1:{settings.widget_port}/health", False),
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
    # Also when started with SIGINT ignored (a background job): Ctrl-C to the group
    # must stop us as it stops the children.
    signal.signal(signal.SIGINT, interrupt)
    try:
        for name, command in commands(settings).items():
            logger.info("starting the %s", name)
            # Their output goes to our stderr: stdout carries only the "ready" line.
            processes[name] = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=env, stdout=sys.stderr
            )
        wait_until_ready(settings, processes)
        logger.info(
            "ready: web chat http://127.0.0.1:%d/ , counsellor desk http://127.0.0.1:%d/ "
            "(first login in %s), REST http://127.0.0.1:%d/webhooks/rest/webhook, "
            "data in %s. Ctrl-C stops.",
            settings.widget_port, settings.desk_port,
            settings.data_dir / "desk-first-login.txt", settings.rasa_port, settings.data_dir,
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
