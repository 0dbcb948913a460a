"""`python -m bot.cluster` (`make cluster`): the assistant as several processes of each
kind, on loopback, behind nginx; Ctrl-C stops all of it.

                             nginx
    people, platforms ──► :8500 ──► Rasa servers 1..REPLICAS  :8510, :8511 ...
    counsellors ────────► :8502 ──► counsellor desks 1, 2     :8530, :8531
                          :8501 ──► action servers 1, 2       :8520, :8521
    Rasa servers ──► :8501          action servers ──► :8502 (tickets), :8500 (Rasa's API)
    desks ──► :8500 (replies, hand-backs)
    Rasa servers, action servers ──► PostgreSQL :8503, database avrr
    desks ──► PostgreSQL :8503, database desk (and reads avrr's events)
    Rasa servers ──► Redis :8504 (the lock store, socket.io's rooms)

Every port is counted from CLUSTER_PORT (8500, as above). nginx adds `X-Served-By`
(host:port of the process that answered) to every response. Every part runs from
Debian's packages (postgresql, redis-server, nginx) or this checkout, with its data in
AVRR_CLUSTER_DIR (`var/cluster/`): `postgres/`, `redis/`, `nginx/`, and one folder per
process (`rasa-1/`, `actions-1/`, `desk-1/`...), so that no two share a file by
accident; what they share is in the databases. The secrets are bot.launch's, kept in
that folder (with the passwords of PostgreSQL and Redis), the same for every replica.

The order: PostgreSQL, Redis and nginx; every store's tables made once (bot.migrate: not a
race between replicas starting together); then the servers. One line with
"ready" once each part answers, directly and through nginx; then each is supervised as
`make run`'s parts are (bot.launch). A taken port stops the start, named.
"""
import logging
import os
import shutil
import subprocess  # noqa: S404 - we start our own servers and Debian's
import sys
from dataclasses import dataclass
from pathlib import Path
from signal import SIGINT
from typing import Callable, Dict, List, Optional

import psycopg2
import redis

from avrr.settings import LOOPBACK, ROOT, ClusterSettings, environment, load
from bot.launch import (
    ACTION_SERVER,
    DESK,
    Part,
    PortTaken,
    Supervisor,
    account,
    credentials,
    kept_secret,
    kept_secrets,
    rasa_command,
    readiness,
    refuse_taken,
    status_url,
    supervise,
)

logger = logging.getLogger(__name__)

ACTION_SERVERS = DESKS = 2
POSTGRES_BIN = Path("/usr/lib/postgresql")
REDIS_SERVER = "/usr/bin/redis-server"
NGINX = "/usr/sbin/nginx"
# PostgreSQL refuses to run as root; Debian's package made this account for it.
POSTGRES_USER = "postgres"
DATABASE_USER = "avrr"
RASA_DATABASE, DESK_DATABASE = "avrr", "desk"
# Tiers: what the servers use is stopped after them.
INFRASTRUCTURE, SERVERS = 0, 1


@dataclass(frozen=True)
class Layout:
    """Where every part of a cluster listens."""

    base: int
    replicas: int

    @property
    def rasa_front(self) -> int:
        return self.base

    @property
    def actions_front(self) -> int:
        return self.base + 1

    @property
    def desk_front(self) -> int:
        return self.base + 2

    @property
    def postgres(self) -> int:
        return self.base + 3

    @property
    def redis(self) -> int:
        return self.base + 4

    @property
    def rasa(self) -> List[int]:
        return [self.base + 10 + i for i in range(self.replicas)]

    @property
    def actions(self) -> List[int]:
        return [self.base + 20 + i for i in range(ACTION_SERVERS)]

    @property
    def desks(self) -> List[int]:
        return [self.base + 30 + i for i in range(DESKS)]

    def ports(self) -> Dict[str, int]:
        named = {
            "nginx, Rasa": self.rasa_front,
            "nginx, action servers": self.actions_front,
            "nginx, desks": self.desk_front,
            "PostgreSQL": self.postgres,
            "Redis": self.redis,
        }
        named.update({f"rasa server {i}": port for i, port in enumerate(self.rasa, 1)})
        named.update({f"action server {i}": port for i, port in enumerate(self.actions, 1)})
        named.update({f"counsellor desk {i}": port for i, port in enumerate(self.desks, 1)})
        return named


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def nginx_conf(layout: Layout, folder: Path) -> str:
    """nginx's configuration: three fronts, each over its pool of processes."""

    def servers(ports: List[int]) -> str:
        # A process that refuses a connection is left out for 2 s, then tried again.
        return "".join(f"        server {LOOPBACK}:{port} max_fails=1 fail_timeout=2s;\n"
                       for port in ports)

    temp = "".join(f"    {kind}_temp_path {folder / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# Written by `make cluster` (bot/cluster.py) at each start: edits here are lost.
worker_processes 1;
pid {folder / "nginx.pid"};
# nginx's error lines quote the request line, which may hold Rasa's API token (?token=)
# and a conversation id: only what stops nginx is logged. The launcher reports dead parts.
error_log stderr crit;
events {{
    worker_connections 1024;
}}
http {{
    # No access log either: its lines are URLs, with the same token and ids.
    access_log off;
{temp}    # Bodies stay in memory (Rasa takes 256 KiB, the desk 1 MiB); so do answers.
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    proxy_max_temp_file_size 0;
    proxy_http_version 1.1;
    # Set here for every location: one that set its own would lose all of these.
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    # A message waits for its conversation's lock, and socket.io pings every 25 s.
    proxy_read_timeout 75s;
    # A request goes to the next process when one refuses the connection; a POST never
    # once one has it (nginx's rule): a message is handled once, or answered 502 and
    # sent again by the client.
    proxy_next_upstream error timeout;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" close;
    }}
    # $upstream_addr lists every process tried ("a:1, b:2"): the last one answered.
    map $upstream_addr $served_by {{
        "~(?<answered>[^ ,]+)$" $answered;
        default $upstream_addr;
    }}
    add_header X-Served-By $served_by always;

    # socket.io: a client that polls (engine.io's long-polling, some third-party widgets)
    # must reach the same replica with every request of its session, which only that
    # replica knows; so polling, and its upgrade to a websocket, go by the client's
    # address. A websocket opened directly (our widget: transports websocket only) needs
    # no such thing and is spread by a key of its own request. Behind a second proxy or
    # a shared NAT the address concentrates polling clients on one replica; a lost
    # replica moves them to another, where they resume their session with its secret.
    map "$arg_transport:$arg_sid" $socketio_key {{
        "websocket:" $request_id;
        default $remote_addr;
    }}

    upstream rasa {{
{servers(layout.rasa)}    }}
    upstream rasa_socketio {{
        hash $socketio_key consistent;
{servers(layout.rasa)}    }}
    upstream actions {{
{servers(layout.actions)}    }}
    upstream desks {{
{servers(layout.desks)}    }}

    server {{
        listen {LOOPBACK}:{layout.rasa_front};
        location / {{
            proxy_pass http://rasa;
        }}
        location /socket.io/ {{
            proxy_pass http://rasa_socketio;
        }}
    }}
    server {{
        listen {LOOPBACK}:{layout.actions_front};
        location / {{
            proxy_pass http://actions;
        }}
    }}
    server {{
        listen {LOOPBACK}:{layout.desk_front};
        location / {{
            proxy_pass http://desks;
        }}
    }}
}}
"""


def postgres_bin() -> Optional[Path]:
    """The newest PostgreSQL of Debian's packages."""
    found = sorted(POSTGRES_BIN.glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def run_as_postgres() -> Optional[str]:
    """The account PostgreSQL runs as: its own when we are root, else ours."""
    return POSTGRES_USER if os.geteuid() == 0 else None


def private_folder(path: Path, owner: Optional[str] = None) -> Path:
    """`path`, made if missing, for `owner` only (default: us)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    if owner is not None:
        shutil.chown(path, owner, owner)
    return path


def init_postgres(bin_dir: Path, folder: Path, password: str) -> Path:
    """PostgreSQL's data folder, made the first time, with a password for DATABASE_USER."""
    owner = run_as_postgres()
    data = private_folder(folder, owner) / "data"
    if (data / "PG_VERSION").exists():
        return data
    password_file = folder / "initial-password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    if owner is not None:
        shutil.chown(password_file, owner, owner)
    try:
        subprocess.run(  # noqa: S603 - Debian's initdb, our arguments
            [str(bin_dir / "initdb"), "-D", str(data), "-U", DATABASE_USER,
             f"--pwfile={password_file}", "--auth=scram-sha-256", "--no-locale",
             "--encoding=UTF8"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=folder, **account(owner),
        )
    except subprocess.CalledProcessError as failed:
        raise RuntimeError(f"initdb failed: {failed.stderr.strip()}") from None
    finally:
        password_file.unlink()
    return data


def postgres_url(layout: Layout, password: str, database: str) -> str:
    return f"postgresql://{DATABASE_USER}:{password}@{LOOPBACK}:{layout.postgres}/{database}"


def postgres_answers(address: str) -> bool:
    try:
        psycopg2.connect(address, connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def create_databases(layout: Layout, password: str) -> None:
    """The Rasa and action servers' database, and the desk's, unless they are there."""
    try:
        connection = psycopg2.connect(postgres_url(layout, password, "postgres"))
    except psycopg2.Error as failure:
        raise RuntimeError(f"PostgreSQL refused us: {type(failure).__name__}") from None
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for name in (RASA_DATABASE, DESK_DATABASE):
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - our constant
    finally:
        connection.close()


def redis_answers(address: str) -> bool:
    client = redis.Redis.from_url(address, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_conf(layout: Layout, folder: Path, password: str) -> Path:
    """Redis's configuration, readable by us only (it holds the password)."""
    path = folder / "redis.conf"
    path.touch(mode=0o600)
    path.write_text(
        f"bind {LOOPBACK}\nport {layout.redis}\nprotected-mode yes\n"
        f"requirepass {password}\ndir {folder}\n"
        # Locks and socket.io's messages live seconds: nothing is worth a disk write.
        'save ""\nappendonly no\ndaemonize no\nlogfile ""\nloglevel warning\n'
    )
    return path


def server_env(base: Dict[str, str], data_dir: Path, **more: str) -> Dict[str, str]:
    """One server's environment: the cluster's, with a data folder of its own."""
    private_folder(data_dir)
    return dict(base, AVRR_DATA_DIR=str(data_dir), **more)


class Cluster:
    """The parts of one cluster, their environments and how to tell they are ready."""

    def __init__(self, settings: ClusterSettings, environ: Dict[str, str]) -> None:
        self.settings = settings
        self.layout = Layout(settings.port, settings.replicas)
        folder = settings.data_dir
        self.secrets = kept_secrets(settings, folder)
        self.postgres_password = kept_secret("POSTGRES_PASSWORD", folder)
        self.redis_password = kept_secret("REDIS_PASSWORD", folder)
        self.redis_url = f"redis://:{self.redis_password}@{LOOPBACK}:{self.layout.redis}/0"
        layout = self.layout
        origins = [f"http://{host}:{port}" for port in (settings.widget_port, layout.rasa_front)
                   for host in (LOOPBACK, "localhost")]
        self.env = dict(
            environ,
            **self.secrets,
            RASA_TELEMETRY_ENABLED="false",
            AVRR_DATABASE_URL=postgres_url(layout, self.postgres_password, RASA_DATABASE),
            DESK_DATABASE_URL=postgres_url(layout, self.postgres_password, DESK_DATABASE),
            AVRR_REDIS_URL=self.redis_url,
            ACTION_SERVER_URL=f"{url(layout.actions_front)}/webhook",
            RASA_URL=url(layout.rasa_front),
            DESK_URL=url(layout.desk_front),
            # nginx is the one proxy: the limits per address read the client's from it.
            AVRR_PROXIES_COUNT="1",
            WIDGET_ORIGINS=settings.widget_origins or ",".join(origins),
            PYTHONPATH=str(ROOT),
        )
        self.migration_env = dict(self.env, AVRR_DATA_DIR=str(folder))
        # Debian's servers get no secret of ours, and find their programs.
        self.plain_env = {"PATH": environ.get("PATH", "/usr/bin:/bin")}

    def infrastructure(self, bin_dir: Path) -> List[Part]:
        folder = self.settings.data_dir
        layout = self.layout
        data = init_postgres(bin_dir, folder / "postgres", self.postgres_password)
        nginx_folder = folder / "nginx"
        nginx_folder.mkdir(exist_ok=True)
        nginx_folder.chmod(0o755)  # nginx's workers (nobody) reach their temporary files
        (nginx_folder / "nginx.conf").write_text(nginx_conf(layout, nginx_folder))
        redis_folder = private_folder(folder / "redis")
        postgres = [
            str(bin_dir / "postgres"), "-D", str(data), "-p", str(layout.postgres),
            "-c", f"listen_addresses={LOOPBACK}", "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
            # A failed statement is logged with its values (a person's words), and its
            # DETAIL names the row: the error's one line only.
            "-c", "log_min_error_statement=panic", "-c", "log_error_verbosity=terse",
        ]
        return [
            Part("PostgreSQL server", postgres, env=self.plain_env, user=run_as_postgres(),
                 tier=INFRASTRUCTURE, stop_signal=SIGINT),
            Part("Redis server",
                 [REDIS_SERVER, str(redis_conf(layout, redis_folder, self.redis_password))],
                 env=self.plain_env, tier=INFRASTRUCTURE),
            Part("nginx proxy", [NGINX, "-e", "stderr", "-p", str(nginx_folder),
                                 "-c", str(nginx_folder / "nginx.conf"), "-g", "daemon off;"],
                 env=self.plain_env, tier=INFRASTRUCTURE),
        ]

    def servers(self) -> List[Part]:
        folder = self.settings.data_dir
        channels = credentials(self.settings)
        parts = [
            Part(f"rasa server {i}", rasa_command(self.settings, port, channels),
                 env=server_env(self.env, folder / f"rasa-{i}"), tier=SERVERS)
            for i, port in enumerate(self.layout.rasa, 1)
        ]
        parts += [
            Part(f"action server {i}", ACTION_SERVER, tier=SERVERS,
                 env=server_env(self.env, folder / f"actions-{i}", ACTION_PORT=str(port)))
            for i, port in enumerate(self.layout.actions, 1)
        ]
        parts += [
            Part(f"counsellor desk {i}", DESK, tier=SERVERS,
                 env=server_env(self.env, folder / f"desk-{i}", DESK_PORT=str(port)))
            for i, port in enumerate(self.layout.desks, 1)
        ]
        return parts

    def infrastructure_ready(self) -> Dict[str, Callable[[], bool]]:
        database = postgres_url(self.layout, self.postgres_password, "postgres")
        return {
            "PostgreSQL server": lambda: postgres_answers(database),
            "Redis server": lambda: redis_answers(self.redis_url),
        }

    def servers_ready(self) -> Dict[str, Callable[[], bool]]:
        token = self.secrets["RASA_API_TOKEN"]
        layout = self.layout
        urls = {f"rasa server {i}": status_url(port, token)
                for i, port in enumerate(layout.rasa, 1)}
        urls.update({f"action server {i}": f"{url(port)}/health"
                     for i, port in enumerate(layout.actions, 1)})
        urls.update({f"counsellor desk {i}": f"{url(port)}/health"
                     for i, port in enumerate(layout.desks, 1)})
        urls.update({
            "nginx to the Rasa servers": status_url(layout.rasa_front, token),
            "nginx to the action servers": f"{url(layout.actions_front)}/health",
            "nginx to the desks": f"{url(layout.desk_front)}/health",
        })
        return readiness(urls)

    def migrate(self) -> None:
        """Every store's tables, made once by one process (bot.migrate)."""
        done = subprocess.run(  # noqa: S603 - our own module
            [sys.executable, "-m", "bot.migrate"], env=self.migration_env,
            stdout=sys.stderr, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the tables could not be made (exit {done.returncode})")


def missing_programs() -> List[str]:
    needed = {"postgresql": postgres_bin(), "redis-server": Path(REDIS_SERVER),
              "nginx": Path(NGINX)}
    return [package for package, path in needed.items() if path is None or not path.exists()]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cluster: %(message)s")
    settings = load(ClusterSettings)
    if not settings.model.exists():
        logger.error("No trained model at %s: run `make train` first.", settings.model)
        return 2
    missing = missing_programs()
    if missing:
        logger.error("`make cluster` runs Debian's %s: apt-get install %s",
                     ", ".join(missing), " ".join(missing))
        return 2
    layout = Layout(settings.port, settings.replicas)
    try:
        refuse_taken(layout.ports())
    except PortTaken as taken:
        logger.error("%s; CLUSTER_PORT moves them all", taken)
        return 2
    folder = settings.data_dir
    folder.mkdir(parents=True, exist_ok=True)
    # PostgreSQL's account and nginx's workers pass through; the secrets are 0600.
    folder.chmod(0o711)
    cluster = Cluster(settings, environment())
    try:
        infrastructure = cluster.infrastructure(postgres_bin())
    except RuntimeError as failure:
        logger.error("%s", failure)
        return 1
    servers = cluster.servers()
    supervisor = Supervisor(settings, cluster.env, infrastructure + servers)

    def bring_up() -> None:
        supervisor.start(infrastructure)
        supervisor.wait_until_ready(cluster.infrastructure_ready())
        create_databases(layout, cluster.postgres_password)
        cluster.migrate()
        supervisor.start(servers)
        supervisor.wait_until_ready(cluster.servers_ready())

    return supervise(supervisor, bring_up, (
        f"ready: {settings.replicas} Rasa servers at {url(layout.rasa_front)} (REST "
        f"/webhooks/rest/webhook, socket.io, HTTP API), counsellor desks at "
        f"{url(layout.desk_front)}/ (first login in {folder / 'desk-first-login.txt'}), "
        f"data in {folder}. Ctrl-C stops."))


if __name__ == "__main__":
    sys.exit(main())
