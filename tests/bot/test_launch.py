"""The launcher: free ports only, kept secrets, the channels to start, and supervision."""
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from avrr.settings import LaunchSettings
from bot import launch
from bot.launch import Part, PortTaken, Supervisor, check_ports, child_env, credentials


@pytest.fixture
def settings(tmp_path, monkeypatch):
    from tests.ports import free_port

    for name in launch.KEPT_SECRETS:
        monkeypatch.delenv(name, raising=False)
    return LaunchSettings(
        data_dir=tmp_path, rasa_port=free_port(), action_port=free_port(),
        desk_port=free_port(), widget_port=free_port(),
    )


def test_a_port_in_use_stops_the_start_naming_it(settings):
    check_ports(settings)  # all free
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.desk_port))
        taken.listen()

        with pytest.raises(PortTaken, match=f"port {settings.desk_port} \\(counsellor desk\\)"):
            check_ports(settings)


def test_secrets_are_generated_once_kept_private_and_given_to_every_part(settings):
    env = child_env(settings, {"PATH": "/bin"})
    again = child_env(settings, {"PATH": "/bin"})

    for name in launch.KEPT_SECRETS:
        assert len(env[name]) >= 32 and env[name] == again[name]
        kept = settings.data_dir / name.lower()
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert env["ACTION_SERVER_URL"] == f"http://127.0.0.1:{settings.action_port}/webhook"
    assert env["RASA_URL"] == f"http://127.0.0.1:{settings.rasa_port}"


def test_a_secret_given_in_the_settings_is_used_and_not_kept(settings):
    given = settings.copy(update={"rasa_api_token": LaunchSettings(
        rasa_api_token="given-token-0123456789").rasa_api_token})

    env = child_env(given, {})

    assert env["RASA_API_TOKEN"] == "given-token-0123456789"
    assert not (settings.data_dir / "rasa_api_token").exists()


def test_only_the_channels_with_settings_start(settings):
    plain = credentials(settings).read_text()
    with_telegram = credentials(settings.copy(update={
        "telegram_bot_token": LaunchSettings(telegram_bot_token="t").telegram_bot_token}))

    assert "TelegramInput" not in plain and "WhatsAppInput" not in plain
    assert "bot.channels.telegram.channel.TelegramInput:" in with_telegram.read_text()
    assert "GuardedRestInput" in plain and "GuardedSocketIOInput" in plain


def sleeper(seconds: float) -> list:
    return [sys.executable, "-c", f"import time; time.sleep({seconds})"]


def test_a_part_that_dies_is_started_again_after_a_growing_pause(settings, monkeypatch, caplog):
    supervisor = Supervisor(settings, {})
    supervisor.parts = [Part("flaky part", sleeper(0)), Part("steady part", sleeper(60))]
    supervisor.start()
    try:
        flaky, steady = supervisor.parts
        flaky.process.wait(timeout=10)
        first_pid = flaky.process.pid

        supervisor.watch_once()  # noticed: restart after 1 s
        assert flaky.deaths == 1 and flaky.restart_at is not None
        flaky.restart_at = time.monotonic()
        supervisor.watch_once()  # started again

        assert flaky.process.pid != first_pid
        assert steady.alive()  # the others keep serving
        flaky.process.wait(timeout=10)
        supervisor.watch_once()
        assert flaky.deaths == 2
        assert flaky.restart_at - time.monotonic() > 1.0  # the pause grows
        assert "starting it again" in caplog.text
    finally:
        supervisor.stop()
    assert not any(part.alive() for part in supervisor.parts)


def test_a_part_that_keeps_dying_is_reported_loudly(settings, caplog):
    part = Part("action server", sleeper(0))
    supervisor = Supervisor(settings, {})
    supervisor.parts = [part]
    for _ in range(3):
        part.start({})
        part.process.wait(timeout=10)
        supervisor.watch_once()

    assert part.deaths == 3
    assert any(r.levelname == "ERROR" and "action server" in r.getMessage()
               for r in caplog.records)


def test_the_parts_others_use_are_stopped_after_them(settings, tmp_path):
    """A database outlives its clients: each tier is stopped before the one below it."""
    record = tmp_path / "order"
    on_stop = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    time.sleep(float(sys.argv[2]))  # a server takes a moment to finish\n"
        f"    open({str(record)!r}, 'a').write(sys.argv[1] + '\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    database = Part("database", [sys.executable, "-c", on_stop, "database", "0"],
                    stop_signal=signal.SIGINT)
    server = Part("server", [sys.executable, "-c", on_stop, "server", "0.5"], tier=1)
    supervisor = Supervisor(settings, {}, [database, server])
    for part in (database, server):
        part.process = subprocess.Popen(part.command, stdout=subprocess.PIPE, text=True)
        assert part.process.stdout.readline() == "up\n"  # its handlers are set

    supervisor.stop()

    assert record.read_text().split() == ["server", "database"]
    assert database.process.returncode == 0 and server.process.returncode == 0


def test_a_part_with_an_environment_of_its_own_gets_only_that(settings, tmp_path):
    shown = tmp_path / "env"
    show = f"import os; open({str(shown)!r}, 'w').write(repr(sorted(os.environ)))"
    part = Part("database", [sys.executable, "-c", show], env={"PATH": "/usr/bin:/bin"})
    supervisor = Supervisor(settings, {"DESK_API_TOKEN": "secret-of-the-others-0123"}, [part])

    supervisor.start()
    part.process.wait(timeout=10)

    assert "DESK_API_TOKEN" not in shown.read_text()
    assert "PATH" in shown.read_text()
