"""`python -m bot.replica`: one Rasa server as a container runs it (Dockerfile,
docker-compose.yml).

It is the command `make run` and `make cluster` start (bot.launch), with what a container
needs: it listens on every interface of the container's own network, where nginx
reaches it (only nginx publishes a port), and the credentials file it names (REST and
socket.io always, Telegram and WhatsApp when their settings are given) is written into
AVRR_DATA_DIR first, as bot.launch writes it. This process then becomes the Rasa server,
so that the container's stop signal reaches it directly.
"""
import os
from typing import List

from avrr.settings import LaunchSettings, load
from bot.launch import credentials, rasa_command

# A container's network is its own: only the ports nginx publishes are reachable outside.
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104


def command(settings: LaunchSettings) -> List[str]:
    """The Rasa server's command line, its credentials file written."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return rasa_command(settings, settings.rasa_port, credentials(settings),
                        interface=EVERY_INTERFACE)


def main() -> None:
    server = command(load(LaunchSettings))
    os.execv(server[0], server)  # noqa: S606 - our own server, our arguments


if __name__ == "__main__":
    main()
