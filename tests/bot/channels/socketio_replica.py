"""`python -m tests.bot.channels.socketio_replica PORT`: one replica of the Rasa server's
web chat, for tests/bot/channels/test_socketio.py and the widget's tests. The channel is
mounted as Rasa mounts it, with the stand-in agent of harness.py (it answers at once);
`POST /say/<conversation id>` sends a reply through the channel's output channel, as
Rasa's HTTP API sends a counsellor's, and `GET /received` lists the texts it was given
(`GET /message_ids`, their message ids).
`Replica` runs it in a process of its own."""
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import httpx
from sanic import Sanic, response
from sanic.request import Request

from avrr.logs import configure
from avrr.settings import ROOT
from bot.channels.socketio import GuardedSocketIOInput
from tests.bot.channels.harness import Rasa

SHARED_SECRET = "a-session-secret-of-every-replica"


def main(port: int) -> None:
    configure("replica")  # as the Rasa server logs
    app = Sanic("socketio_replica", configure_logging=False)
    rasa = Rasa()
    app.ctx.agent = SimpleNamespace(tracker_store=rasa)
    channel = GuardedSocketIOInput()
    app.blueprint(channel.blueprint(rasa.handle), url_prefix="/webhooks/socketio")

    @app.post("/say/<conversation_id>")
    async def say(request: Request, conversation_id: str) -> response.HTTPResponse:
        await channel.get_output_channel().send_text_message(
            conversation_id, request.json["text"]
        )
        return response.json({"sent": True})

    @app.get("/received")
    async def received(request: Request) -> response.HTTPResponse:
        return response.json(rasa.texts())

    @app.get("/message_ids")
    async def message_ids(request: Request) -> response.HTTPResponse:
        return response.json([m.message_id for m in rasa.received])

    app.run(host="127.0.0.1", port=port, access_log=False)


class Replica:
    """This module in a process of its own; on Redis if `redis_url` is given."""

    def __init__(self, port: int, redis_url: Optional[str], origins: str, log: Path,
                 **settings: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = dict(os.environ, SOCKET_SESSION_SECRET=SHARED_SECRET, WIDGET_ORIGINS=origins,
                   PYTHONPATH=str(ROOT), **settings)
        env.pop("AVRR_REDIS_URL", None)
        if redis_url is not None:
            env["AVRR_REDIS_URL"] = redis_url
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.bot.channels.socketio_replica", str(port)],
                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            )

    def wait_until_up(self, deadline: float) -> None:
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/webhooks/socketio/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


if __name__ == "__main__":
    main(int(sys.argv[1]))
