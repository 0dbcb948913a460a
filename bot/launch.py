"""`python -m bot.launch`: start the whole assistant on this machine; Ctrl-C stops it.

Starts, on loopback: the action server; the Rasa server with its HTTP API and the
channels (REST and the web widget's socket.io always; Telegram and WhatsApp when their
settings are given); the counsellor desk; and the web widget's demo page. Conversations,
tickets and the outbox are SQLite files in the data folder, readable by this account
alone. Secrets not given in the environment are generated once and kept there.

It refuses to start when a port it needs is taken, naming the port, so that it never
mistakes another program for one of its own parts. It prints one line with "ready"
once all answer and the model is loaded. Then it supervises them: a part that dies is
started again, after a pause that grows while it keeps dying (it says so, loudly), and
the others keep serving. Ctrl-C (or SIGTERM) stops everything.
"""
import http.client
import logging
import os
import pwd
import secrets
import signal
import socket
import subprocess  # noqa: S404 - we start our own servers
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from avrr.settings import LOOPBACK, ROOT, LaunchSettings, environment, load

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 300
STOP_TIMEOUT_S = 15
# A part that dies is restarted after 1, 2, 4 ... seconds, at most this long.
MAX_RESTART_DELAY_S = 60.0
# A part that ran this long without dying is healthy again: its next restart is quick.
HEALTHY_AFTER_S = 120.0
# Secrets generated once and kept in the data folder when the environment has none.
KEPT_SECRETS = ("DESK_API_TOKEN", "SOCKET_SESSION_SECRET", "RASA_API_TOKEN",
                "ACTION_SERVER_TOKEN", "DESK_INSIGHT_KEY")
# Channels that start only when their settings are given.
OPTIONAL_CHANNELS = {
    "bot.channels.telegram.channel.TelegramInput": "telegram_bot_token",
    "bot.channels.whatsapp.channel.WhatsAppInput": "whatsapp_access_token",
}

# The commands of the parts `make cluster` starts several of, too.
ACTION_SERVER = [sys.executable, "-m", "bot.action_server"]
DESK = [sys.executable, "-m", "desk"]


class PortTaken(RuntimeError):
    """A port the assistant needs is in use by another program."""


def kept_secret(name: str, data_dir: Path) -> str:
    """The secret `name` kept in the data folder, generated the first time."""
    path = data_dir / name.lower()
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether nothing listens on `port`: connections of a part stopped a moment ago,
    still closing (TIME_WAIT), do not count, as they do not stop a server from binding."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def kept_secrets(settings: LaunchSettings, folder: Path) -> Dict[str, str]:
    """The secrets every part shares: those set in the settings, else kept in `folder`."""
    return {name: settings.secret(name) or kept_secret(name, folder) for name in KEPT_SECRETS}


def ports(settings: LaunchSettings) -> Dict[str, int]:
    return {
        "action server": settings.action_port,
        "rasa server": settings.rasa_port,
        "counsellor desk": settings.desk_port,
        "web widget": settings.widget_port,
    }


def check_ports(settings: LaunchSettings) -> None:
    refuse_taken(ports(settings))


def refuse_taken(named: Dict[str, int]) -> None:
    """PortTaken naming the first of the ports (by what uses it) that is not free."""
    for name, port in named.items():
        if not port_free(port):
            raise PortTaken(
                f"port {port} ({name}) is already in use on {LOOPBACK}: stop what uses it, "
                f"or choose another port in the environment (see .env.example)"
            )


def credentials(settings: LaunchSettings) -> Path:
    """Rasa's credentials file: the channels to start. Their secrets stay in the environment."""
    path = settings.data_dir / "credentials.yml"
    lines = (ROOT / "credentials.yml").read_text().splitlines()
    lines += [f"{channel}:" for channel, field_name in OPTIONAL_CHANNELS.items()
              if getattr(settings, field_name) is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


def child_env(settings: LaunchSettings, environ: Dict[str, str]) -> Dict[str, str]:
    """The environment of the parts: ours, the kept secrets, and where each part is."""
    env = dict(environ, **kept_secrets(settings, settings.data_dir))
    rasa_url = f"http://{LOOPBACK}:{settings.rasa_port}"
    # The widget's page, and Rasa's own origin (same-origin pages, test clients).
    origins = [
        f"http://{host}:{port}"
        for port in (settings.widget_port, settings.rasa_port)
        for host in (LOOPBACK, "localhost")
    ]
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        ACTION_SERVER_URL=f"http://{LOOPBACK}:{settings.action_port}/webhook",
        ACTION_PORT=str(settings.action_port),
        AVRR_DATA_DIR=str(settings.data_dir),
        DESK_URL=f"http://{LOOPBACK}:{settings.desk_port}",
        DESK_PORT=str(settings.desk_port),
        RASA_URL=rasa_url,
        WIDGET_RASA_URL=settings.widget_rasa_url or rasa_url,
        WIDGET_PORT=str(settings.widget_port),
        WIDGET_ORIGINS=settings.widget_origins or ",".join(origins),
        PYTHONPATH=str(ROOT),
    )
    return env


def rasa_command(settings: LaunchSettings, port: int, credentials_file: Path,
                 interface: str = LOOPBACK) -> List[str]:
    """A Rasa server with its HTTP API, at `port` on `interface` (loopback; a container's
    own network in the image, bot/replica.py)."""
    return [
        sys.executable, "-m", "bot.serve", "run",
        "--enable-api",
        "--interface", interface,
        "--port", str(port),
        "--model", str(settings.model),
        "--credentials", str(credentials_file),
        "--endpoints", str(ROOT / "endpoints.yml"),
    ]


def commands(settings: LaunchSettings) -> Dict[str, List[str]]:
    return {
        "action server": ACTION_SERVER,
        "rasa server": rasa_command(settings, settings.rasa_port, credentials(settings)),
        "counsellor desk": DESK,
        "web widget": [sys.executable, "-m", "bot.widget_server"],
    }


def status_url(port: int, api_token: str) -> str:
    """Rasa's /status at `port`: it names the model once one is loaded."""
    return f"http://{LOOPBACK}:{port}/status?" + urllib.parse.urlencode({"token": api_token})


def health_urls(settings: LaunchSettings, api_token: str) -> Dict[str, str]:
    return {
        "action server": f"http://{LOOPBACK}:{settings.action_port}/health",
        "rasa server": status_url(settings.rasa_port, api_token),
        "counsellor desk": f"http://{LOOPBACK}:{settings.desk_port}/health",
        "web widget": f"http://{LOOPBACK}:{settings.widget_port}/health",
    }


def answers(url: str) -> bool:
    """Whether `url` answers 200 (and, for Rasa's /status, names a loaded model)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - loopback
            body = reply.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        # A port still opening may answer garbage, or a connection to itself.
        return False
    return "/status?" not in url or b'"model_file":"' in body.replace(b" ", b"")


def readiness(urls: Dict[str, str]) -> Dict[str, Callable[[], bool]]:
    """For each name, a check that its URL answers."""
    return {name: lambda url=url: answers(url) for name, url in urls.items()}


def account(user: Optional[str]) -> Dict[str, object]:
    """Popen's arguments to run as `user` (its own group, no other), or as we run."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


@dataclass
class Part:
    """One supervised process."""

    name: str
    command: List[str]
    # Its own environment, instead of the supervisor's (a database needs no secrets).
    env: Optional[Dict[str, str]] = None
    # The account it runs as, when not ours (PostgreSQL refuses to run as root).
    user: Optional[str] = None
    # Parts of a higher tier use those of lower ones: they are stopped first.
    tier: int = 0
    # PostgreSQL takes SIGTERM as "wait for every client to leave"; SIGINT stops it now.
    stop_signal: int = signal.SIGTERM
    process: Optional[subprocess.Popen] = None
    started_at: float = 0.0
    deaths: int = 0
    restart_at: Optional[float] = None
    exits: List[int] = field(default_factory=list)

    def start(self, env: Dict[str, str]) -> None:
        # Their output goes to our stderr: stdout carries only the "ready" line.
        self.process = subprocess.Popen(  # noqa: S603
            self.command, cwd=ROOT, env=self.env if self.env is not None else env,
            stdout=sys.stderr, **account(self.user),
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def died(self, now: float) -> float:
        """Note the death; the delay before the restart."""
        code = self.process.returncode if self.process else None
        if now - self.started_at > HEALTHY_AFTER_S:
            self.deaths = 0
        self.deaths += 1
        self.exits.append(code)
        delay = min(MAX_RESTART_DELAY_S, 2.0 ** (self.deaths - 1))
        self.restart_at = now + delay
        return delay


class Supervisor:
    def __init__(self, settings: LaunchSettings, env: Dict[str, str],
                 parts: Optional[List[Part]] = None) -> None:
        self.settings = settings
        self.env = env
        self.parts = parts if parts is not None else [
            Part(name, command) for name, command in commands(settings).items()]

    def start(self, parts: Optional[List[Part]] = None) -> None:
        """Start `parts` (default: all)."""
        for part in self.parts if parts is None else parts:
            logger.info("starting the %s", part.name)
            part.start(self.env)

    def wait_until_ready(self, checks: Dict[str, Callable[[], bool]]) -> None:
        """Until every check passes; RuntimeError if a started part stops meanwhile."""
        pending = dict(checks)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while pending:
            for part in self.parts:
                if part.process is not None and not part.alive():
                    raise RuntimeError(
                        f"the {part.name} stopped while starting (exit {part.process.returncode})"
                    )
            for name, ready in list(pending.items()):
                if ready():
                    logger.info("%s is up", name)
                    del pending[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {STARTUP_TIMEOUT_S} s: {', '.join(pending)}")
            time.sleep(0.5)

    def watch_once(self) -> None:
        """Restart what died, when its pause is over."""
        now = time.monotonic()
        for part in self.parts:
            if part.alive():
                continue
            if part.restart_at is None:
                delay = part.died(now)
                level = logging.ERROR if part.deaths >= 3 else logging.WARNING
                logger.log(level, "the %s stopped (exit %s, %d time(s) in a row): "
                           "starting it again in %.0f s; the other parts keep serving",
                           part.name, part.exits[-1], part.deaths, delay)
            elif now >= part.restart_at:
                logger.info("starting the %s again", part.name)
                part.start(self.env)

    def stop(self) -> None:
        """Stop every part, the highest tier first."""
        for tier in sorted({part.tier for part in self.parts}, reverse=True):
            stopping = [part for part in self.parts if part.tier == tier]
            for part in stopping:
                if part.alive():
                    part.process.send_signal(part.stop_signal)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for part in stopping:
                if part.process is None:
                    continue
                try:
                    part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    part.process.kill()
                    part.process.wait()


def interrupt(signum: int, frame: object) -> None:
    """End like Ctrl-C does on SIGTERM, so the children are always stopped."""
    raise KeyboardInterrupt


def supervise(supervisor: Supervisor, bring_up: Callable[[], None], ready: str) -> int:
    """Start everything with `bring_up`, say `ready` (and print "ready" alone on stdout),
    then restart what dies until Ctrl-C or SIGTERM, which stop every part."""
    signal.signal(signal.SIGTERM, interrupt)
    # Also when started with SIGINT ignored (a background job): Ctrl-C to the group
    # must stop us as it stops the children.
    signal.signal(signal.SIGINT, interrupt)
    try:
        bring_up()
        logger.info("%s", ready)
        print("ready", flush=True)
        while True:
            supervisor.watch_once()
            time.sleep(0.5)
    except KeyboardInterrupt:
        logger.info("stopping")
        return 0
    except RuntimeError as failure:
        logger.error("%s", failure)
        return 1
    finally:
        supervisor.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launch: %(message)s")
    settings = load(LaunchSettings)
    if not settings.model.exists():
        logger.error("No trained model at %s: run `make train` first.", settings.model)
        return 2
    try:
        check_ports(settings)
    except PortTaken as taken:
        logger.error("%s", taken)
        return 2
    # Conversations, tickets, password hashes: for this account alone (files 0600, folders
    # 0700), in every part it starts.
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(settings, child_env(settings, environment()))

    def bring_up() -> None:
        supervisor.start()
        supervisor.wait_until_ready(readiness(
            health_urls(settings, supervisor.env["RASA_API_TOKEN"])))

    return supervise(supervisor, bring_up, (
        f"ready: web chat http://{LOOPBACK}:{settings.widget_port}/ , counsellor desk "
        f"http://{LOOPBACK}:{settings.desk_port}/ (first login in "
        f"{settings.data_dir / 'desk-first-login.txt'}), REST "
        f"http://{LOOPBACK}:{settings.rasa_port}/webhooks/rest/webhook, data in "
        f"{settings.data_dir}. Ctrl-C stops."))


if __name__ == "__main__":
    sys.exit(main())
