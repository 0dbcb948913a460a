"""The image's Rasa server: `make run`'s command, on the container's network, with the
channels whose settings are given."""
import sys

from avrr.settings import ROOT, LaunchSettings
from bot.launch import rasa_command
from bot.replica import EVERY_INTERFACE, command


def test_it_is_the_launchers_command_listening_beyond_loopback(tmp_path, monkeypatch):
    for name in ("TELEGRAM_BOT_TOKEN", "WHATSAPP_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = LaunchSettings(data_dir=tmp_path / "var", rasa_port=5005)

    server = command(settings)

    credentials = tmp_path / "var" / "credentials.yml"
    launched = rasa_command(settings, 5005, credentials)
    assert EVERY_INTERFACE == "0.0.0.0"  # noqa: S104 - the container's network
    assert server[server.index("--interface") + 1] == EVERY_INTERFACE
    assert server == [part if part != "127.0.0.1" else EVERY_INTERFACE for part in launched]
    assert server[:5] == [sys.executable, "-m", "bot.serve", "run", "--enable-api"]
    assert server[server.index("--endpoints") + 1] == str(ROOT / "endpoints.yml")
    assert credentials.read_text() == (ROOT / "credentials.yml").read_text()


def test_a_channel_whose_settings_are_given_is_started(tmp_path, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:telegram-token-0123456789")
    settings = LaunchSettings(data_dir=tmp_path)

    server = command(settings)

    written = (tmp_path / "credentials.yml").read_text().splitlines()
    assert server[server.index("--credentials") + 1] == str(tmp_path / "credentials.yml")
    assert "bot.channels.telegram.channel.TelegramInput:" in written
    assert "123456" not in "\n".join(written)  # the token stays in the environment
