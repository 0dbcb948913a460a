"""The REST channel, hardened: `POST /webhooks/rest/webhook` with {"sender", "message"}.

Differences from Rasa's own RestInput, on purpose:
- bad input gets a 4xx with a JSON reason, never a 500;
- typed "/intent{...}" text is read as words unless it is a button payload just offered;
- a failure to process or store the message is a 503 the client can retry, and the
  message text is never logged;
- the client cannot name another channel (`input_channel`) to receive the replies.
"""
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.text import InvalidMessage, clean_sender, clean_text, disarm_command, offered_payloads

logger = logging.getLogger(__name__)


def error(reason: str, status: int) -> HTTPResponse:
    return response.json({"error": reason}, status=status)


async def disarm(app: Sanic, sender_id: str, text: str) -> str:
    """`text`, with a typed command turned into words (see `bot.text.disarm_command`).

    Every channel calls this with Rasa's Sanic app, whose agent holds the tracker store.
    """
    if not text.startswith("/"):
        return text
    tracker = await app.ctx.agent.tracker_store.retrieve(sender_id)
    offered = offered_payloads(e.as_dict() for e in tracker.events) if tracker else set()
    return disarm_command(text, offered)


class GuardedRestInput(InputChannel):
    """Synchronous REST channel: the reply holds the bot's messages for this message."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = Blueprint("guarded_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                body = request.json
            except SanicException:
                return error("the body must be JSON", 400)
            if not isinstance(body, dict):
                return error('the body must be a JSON object: {"sender": ..., "message": ...}', 400)
            try:
                sender_id = clean_sender(body.get("sender"))
                text = clean_text(body.get("message"))
            except InvalidMessage as invalid:
                return error(str(invalid), invalid.status)
            metadata = body.get("metadata")
            collector = CollectingOutputChannel()
            try:
                text = await disarm(request.app, sender_id, text)
                await on_new_message(
                    UserMessage(
                        text,
                        collector,
                        sender_id,
                        input_channel=self.name(),
                        metadata=metadata if isinstance(metadata, dict) else None,
                    )
                )
            except Exception as failure:  # noqa: BLE001 - any failure: the client retries
                # The exception's text may quote the message or the sender (a database
                # error quotes its parameters): only its type is logged above DEBUG.
                logger.error("REST message could not be processed: %s", type(failure).__name__)
                logger.debug("REST message failure", exc_info=True)
                return error("the message could not be processed, please send it again", 503)
            return response.json(collector.messages)

        return webhook

    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        return None
