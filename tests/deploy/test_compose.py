"""docker-compose.yml, read as compose reads it (YAML, its anchors, `${VAR}`): the topology
of `make cluster`, started in order, healthy by readiness, with secrets from the
environment only. No container engine runs here: what compose itself would check at
`up` (that images build, that containers become healthy) is not tested."""
import os
import re
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from avrr.settings import ROOT, ActionServerSettings, DeskSettings, LaunchSettings, RasaSettings
from bot.launch import ACTION_SERVER, DESK, KEPT_SECRETS

COMPOSE = ROOT / "docker-compose.yml"
RASA, ACTIONS, DESKS = ["rasa-1", "rasa-2"], ["actions-1", "actions-2"], ["desk-1", "desk-2"]
SERVERS = RASA + ACTIONS + DESKS
# Where each kind listens in its container: the settings' defaults (RASA_PORT, ...).
PORTS = {"rasa": 5005, "actions": 5055, "desk": 8000}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a "$".
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z0-9_]+)(?P<how>:?[-?])?(?P<rest>[^}]*)\}")
REQUIRED_SECRETS = set(KEPT_SECRETS) | {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|KEY)$")


@pytest.fixture(scope="module")
def compose() -> Dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> Dict[str, Dict]:
    return compose["services"]


def kind(service: str) -> str:
    return service.rsplit("-", 1)[0]


def example_names() -> set:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {found.group(1) for line in lines if (found := re.match(r"([A-Z0-9_]+)=", line))}


def interpolate(text: str, values: Dict[str, str]) -> str:
    """`text` as compose interpolates it with `values` as its environment."""

    def value(found: re.Match) -> str:
        name, how, rest = found.group("name", "how", "rest")
        given = values.get(name)
        if how in (":?", "?") and (given is None or (how == ":?" and not given)):
            raise KeyError(f"compose would refuse: {rest}")
        if how in (":-", "-") and (given is None or (how == ":-" and not given)):
            return rest
        return given or ""

    return INTERPOLATION.sub(value, text).replace("$$", "$")


def test_the_topology_is_make_clusters(services):
    assert set(services) == {"postgres", "redis", "nginx", "migrate", *SERVERS}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["nginx"]["image"].startswith("nginx:")
    for name in ["migrate", *SERVERS]:
        assert services[name]["build"] == {"context": "."}
        assert services[name]["image"] == services["migrate"]["image"]  # one image


def test_each_server_runs_the_command_make_cluster_runs(services):
    python = ["python" if part == sys.executable else part for part in ACTION_SERVER]
    for name in ACTIONS:
        assert services[name]["command"] == python
    for name in DESKS:
        assert services[name]["command"] == ["python" if p == sys.executable else p for p in DESK]
    for name in RASA:
        # bot.launch's rasa_command, on the container's network (tests/bot/test_replica.py).
        assert services[name]["command"] == ["python", "-m", "bot.replica"]
    assert services["migrate"]["command"] == ["python", "-m", "bot.migrate"]


def test_migrate_runs_once_before_any_server_and_after_postgres_is_up(services):
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in SERVERS:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}
    for name in RASA:
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_nginx_starts_once_every_server_is_ready_and_again_when_one_is_recreated(services):
    assert services["nginx"]["depends_on"] == {
        name: {"condition": "service_healthy", "restart": True} for name in SERVERS}


def test_only_nginx_publishes_ports_and_only_on_loopback(services):
    for name, service in services.items():
        assert "network_mode" not in service, name
        if name != "nginx":
            assert "ports" not in service, name
    # Rasa and the desks; the action servers' front (:8501) stays inside.
    assert services["nginx"]["ports"] == ["127.0.0.1:8500:8500", "127.0.0.1:8502:8502"]


def test_what_runs_is_restarted_and_the_one_shot_migration_is_not(services):
    for name, service in services.items():
        expected = "no" if name == "migrate" else "unless-stopped"
        assert service["restart"] == expected, name


def test_every_server_is_healthy_when_ready_on_the_port_it_listens_on(services):
    for name in SERVERS:
        check = services[name]["healthcheck"]
        port = PORTS[kind(name)]
        assert check["test"] == ["CMD", "python", "-m", "avrr.probe",
                                 f"http://127.0.0.1:{port}/ready"], name
        assert {"interval", "timeout", "retries", "start_period"} <= set(check), name
    for name in ("postgres", "redis", "nginx"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    # Over TCP: the image's first set-up listens on a socket only (see the file).
    assert "127.0.0.1" in services["postgres"]["healthcheck"]["test"]
    assert "healthcheck" not in services["migrate"]


def test_the_application_containers_run_without_privileges(services):
    for name in ["migrate", *SERVERS]:
        assert services[name]["cap_drop"] == ["ALL"], name
        assert services[name]["security_opt"] == ["no-new-privileges:true"], name
        assert services[name]["init"] is True, name


def test_every_variable_used_is_documented_in_env_example():
    used = {found.group("name") for found in INTERPOLATION.finditer(COMPOSE.read_text())}
    assert used, "no ${VAR} found: the pattern is wrong"
    assert used - example_names() == set()


def test_every_secret_comes_from_the_environment_and_the_needed_ones_are_required(services):
    text = COMPOSE.read_text()
    for found in INTERPOLATION.finditer(text):
        if found.group("name") in REQUIRED_SECRETS:
            assert found.group("how") == ":?", found.group(0)
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(variable):
                assert INTERPOLATION.fullmatch(value), (name, variable)
            if "@" in value:  # a URL's password
                assert re.search(r"://[a-z]*:\$\{[A-Z_]+:\?[^}]*\}@", value), (name, variable)
        assert "env_file" not in service, name  # only what is named reaches a container


def settings_of(service: Dict, values: Dict[str, str], monkeypatch) -> None:
    """The environment a container of `service` gets from compose, as ours."""
    for name in list(os.environ):
        if name.startswith(("AVRR_", "DESK_", "RASA_", "ACTION_", "TELEGRAM_", "WHATSAPP_",
                            "SOCKET_", "REST_", "WIDGET_", "RATE_")):
            monkeypatch.delenv(name)
    for variable, value in service["environment"].items():
        monkeypatch.setenv(variable, interpolate(str(value), values))


@pytest.fixture
def dot_env() -> Dict[str, str]:
    """A .env with every required secret, as an operator writes it."""
    values = {name: f"{name.lower()}-0123456789abcdef" for name in REQUIRED_SECRETS}
    values.update(POSTGRES_PASSWORD="0123456789abcdef", REDIS_PASSWORD="fedcba9876543210")
    return values


def test_each_server_starts_with_the_environment_compose_gives_it(services, dot_env,
                                                                  monkeypatch):
    checked: Dict[str, List] = {"rasa": [RasaSettings, LaunchSettings],
                                "actions": [ActionServerSettings], "desk": [DeskSettings],
                                "migrate": [RasaSettings, DeskSettings]}
    for name in ["migrate", *SERVERS]:
        settings_of(services[name], dot_env, monkeypatch)
        for settings in checked[kind(name)]:
            settings(_env_file=None)  # raises when a required setting is missing or wrong

    settings_of(services["rasa-1"], dot_env, monkeypatch)
    rasa = RasaSettings(_env_file=None)
    assert rasa.redis_lock_store and rasa.proxies_count == 1
    assert rasa.tracker_url == "postgresql://avrr:0123456789abcdef@postgres:5432/avrr"
    settings_of(services["desk-1"], dot_env, monkeypatch)
    desk = DeskSettings(_env_file=None)
    assert desk.database == "postgresql://avrr:0123456789abcdef@postgres:5432/desk"
    assert desk.conversations_url == rasa.tracker_url  # the statistics read Rasa's events
    assert desk.action_server_status_url == "http://nginx:8501/status"


def test_without_a_secret_compose_refuses_to_start(services, dot_env):
    del dot_env["DESK_INSIGHT_KEY"]
    with pytest.raises(KeyError, match="DESK_INSIGHT_KEY"):
        interpolate(COMPOSE.read_text(), dot_env)


def test_the_redis_and_postgres_passwords_are_the_ones_the_servers_are_given(services, dot_env):
    redis = services["redis"]
    assert interpolate(redis["environment"]["REDISCLI_AUTH"], dot_env) == "fedcba9876543210"
    assert "fedcba9876543210" in [interpolate(part, dot_env) for part in redis["command"]]
    postgres = services["postgres"]["environment"]
    assert interpolate(postgres["POSTGRES_PASSWORD"], dot_env) == "0123456789abcdef"
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("avrr", "avrr")
    init = Path(ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE desk;" in init


def test_nginx_takes_forwarded_addresses_from_the_networks_pinned_gateway_only(compose):
    """Trusted from all of 172.16.0.0/12, a client on another of Docker's networks could
    name its own address (and dodge the limits per address)."""
    [network] = compose["networks"]["default"]["ipam"]["config"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.findall(r"^\s*set_real_ip_from\s+(\S+);", nginx, re.MULTILINE) == [
        network["gateway"]]
