"""`python -m tests.bot.channels.socketio_replica PORT`: one replica of the Rasa server's
web chat, for tests/bot/channels/test_socketio.py. The channel is mounted as Rasa mounts
it, with the stand-in agent of harness.py, and `POST /say/<conversation id>` sends a
reply through the channel's output channel, as Rasa's HTTP API sends a counsellor's."""
import sys
from types import SimpleNamespace

from sanic import Sanic, response
from sanic.request import Request

from avrr.logs import configure
from bot.channels.socketio import GuardedSocketIOInput
from tests.bot.channels.harness import Rasa


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

    app.run(host="127.0.0.1", port=port, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
