"""deploy/nginx.conf (docker-compose.yml's nginx) against the configuration `make cluster`
writes (bot/cluster.py): the same proxying, only the addresses and nginx's own files
differ. nginx checks the file itself when it is installed (Debian's nginx)."""
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import yaml

from avrr.settings import ROOT
from bot.cluster import Layout, nginx_conf

COMPOSE_CONF = ROOT / "deploy" / "nginx.conf"
# (directive and its arguments, its block or None)
Node = Tuple[Tuple[str, ...], Optional[List["Node"]]]
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[{};]|[^\s{};"\']+')
# Where nginx keeps its own files: the cluster's folder, the image's defaults.
OWN_FILES = {"pid", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
             "uwsgi_temp_path", "scgi_temp_path"}
# What only the compose file has: processes per core, and the real client's address
# behind the TLS proxy on the host (the cluster has no proxy in front).
COMPOSE_ONLY = {"worker_processes", "set_real_ip_from", "real_ip_header", "real_ip_recursive"}
FRONTS = {8500: "rasa", 8501: "actions", 8502: "desks"}


def parse(text: str) -> List[Node]:
    """nginx's configuration as a tree of directives (comments dropped)."""
    tokens = TOKEN.findall(re.sub(r"(?m)#.*$", "", text))
    position = 0

    def block() -> List[Node]:
        nonlocal position
        nodes: List[Node] = []
        words: List[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                nodes.append((tuple(words), None))
                words = []
            elif token == "{":
                nodes.append((tuple(words), block()))
                words = []
            elif token == "}":
                return nodes
            else:
                words.append(token)
        assert not words, f"unterminated directive {words}"
        return nodes

    return block()


def children(nodes: List[Node], name: str) -> List[Node]:
    return [node for node in nodes if node[0][0] == name]


def only(nodes: List[Node], name: str) -> Node:
    found = children(nodes, name)
    assert len(found) == 1, (name, found)
    return found[0]


def http_of(text: str) -> List[Node]:
    return only(parse(text), "http")[1]


def upstreams(http: List[Node]) -> Dict[str, Dict]:
    """Each upstream: its other directives, and its servers as (address, parameters)."""
    found = {}
    for (_, name), body in children(http, "upstream"):
        servers = [(words[1], words[2:]) for words, _ in children(body, "server")]
        rest = [words for words, _ in body if words[0] != "server"]
        found[name] = {"directives": rest, "servers": servers}
    return found


def fronts(http: List[Node]) -> Dict[int, Dict[str, Tuple[str, ...]]]:
    """Each server by the port it listens on: its locations and what they proxy to."""
    found = {}
    for _, body in children(http, "server"):
        address = only(body, "listen")[0][1]
        port = int(address.rsplit(":", 1)[-1])
        found[port] = {words[1:][-1]: tuple(w for w, _ in inner)
                       for words, inner in children(body, "location")}
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> str:
    return nginx_conf(Layout(8500, replicas=2), tmp_path_factory.mktemp("nginx"))


@pytest.fixture(scope="module")
def compose() -> str:
    return COMPOSE_CONF.read_text()


def test_both_set_the_same_headers_limits_timeouts_and_maps(cluster, compose):
    def settings(text: str) -> List[Node]:
        return [(words, body) for words, body in http_of(text)
                if words[0] not in {"upstream", "server"} | OWN_FILES | COMPOSE_ONLY]

    assert settings(compose) == settings(cluster)
    top = {words[0]: words for words, _ in parse(compose) if words[0] != "events"}
    assert top == {"worker_processes": ("worker_processes", "auto"), "http": ("http",),
                   "error_log": ("error_log", "stderr", "crit")}


def test_the_essentials_are_there(compose):
    directives = [words for words, _ in http_of(compose)]
    assert ("add_header", "X-Served-By", "$served_by", "always") in directives
    assert ("proxy_set_header", "Upgrade", "$http_upgrade") in directives
    assert ("proxy_set_header", "Connection", "$connection_upgrade") in directives
    assert ("client_max_body_size", "1m") in directives
    assert ("access_log", "off") in directives


def test_both_spread_the_same_pools_the_same_way(cluster, compose):
    ours, theirs = upstreams(http_of(compose)), upstreams(http_of(cluster))
    assert set(ours) == set(theirs) == {"rasa", "rasa_socketio", "actions", "desks"}
    for name in ours:
        assert ours[name]["directives"] == theirs[name]["directives"], name
        assert [p for _, p in ours[name]["servers"]] == [p for _, p in theirs[name]["servers"]]
    assert ours["rasa_socketio"]["directives"] == [("hash", "$socketio_key", "consistent")]


def test_both_front_the_same_locations(cluster, compose):
    ours, theirs = fronts(http_of(compose)), fronts(http_of(cluster))
    for port, pool in FRONTS.items():
        assert ours[port] == theirs[port], port
        assert ours[port]["/"] == (("proxy_pass", f"http://{pool}"),)
    assert ours[8500]["/socket.io/"] == (("proxy_pass", "http://rasa_socketio"),)
    # The one more: nginx's own health check, on the container's loopback only.
    assert set(ours) - set(theirs) == {8509}
    assert only(children(http_of(compose), "server")[-1][1], "listen")[0] == (
        "listen", "127.0.0.1:8509")


def test_the_pools_are_the_compose_services_on_the_ports_they_listen_on(compose):
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    pools = {"rasa": ("rasa", 5005), "rasa_socketio": ("rasa", 5005),
             "actions": ("actions", 5055), "desks": ("desk", 8000)}
    for name, upstream in upstreams(http_of(compose)).items():
        kind, port = pools[name]
        expected = sorted(f"{service}:{port}" for service in services
                          if service.rsplit("-", 1)[0] == kind)
        assert [address for address, _ in upstream["servers"]] == expected, name
    health = services["nginx"]["healthcheck"]["test"]
    assert health[-1] == "http://127.0.0.1:8509/health"


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx is not installed (Debian's nginx, as make cluster uses)")
def test_nginx_accepts_the_file(tmp_path, compose):
    # nginx resolves the upstreams' names when it reads them: the services' names stand
    # for loopback here.
    local = re.sub(r"\b(rasa|actions|desk)-[0-9]+:", "127.0.0.1:", compose)
    (tmp_path / "nginx.conf").write_text(local)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [nginx, "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
         "-g", f"pid {tmp_path / 'nginx.pid'};"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert checked.returncode == 0, checked.stderr
