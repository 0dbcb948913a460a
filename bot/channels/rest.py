"""The REST channel, hardened: `POST /webhooks/rest/webhook` with {"sender", "message"}.

Differences from Rasa's own RestInput, on purpose:
- bad input gets a 4xx with a JSON reason, never a 500;
- a `sender` naming another channel's conversation (`telegram:`, `whatsapp:`, `web-`)
  is refused: the REST channel can neither read nor write nor redirect those;
- with REST_CHANNEL_TOKEN set, every request needs `Authorization: Bearer <token>`;
- typed "/intent{...}" text is read as words unless it is a button payload just offered;
- only the metadata the assistant uses (`language_hint`) is kept;
- at most RATE_LIMIT_PER_SENDER messages a minute per sender and RATE_LIMIT_PER_ADDRESS
  per client address (429 with Retry-After beyond);
- a failure to process or store the message is a 503 the client can retry, and the
  message text is never logged;
- a client that hangs up mid-turn does not stop the turn: it runs to its end (an
  action's side effect and the conversation's record stay together).
"""
import hmac
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from avrr.vocabulary import CONVERSATION_PREFIXES, Channel, Metadata
from bot import runtime
from bot.channels.base import (
    add_health,
    client_address,
    disarm,
    error,
    language_hint,
    message_id_of,
    to_its_end,
    too_many,
)
from bot.channels.rate_limits import close_on_stop, rate_limits
from bot.text import InvalidMessage, clean_sender, clean_text

logger = logging.getLogger(__name__)



def rest_sender(sender: Any) -> str:
    """A REST conversation id; InvalidMessage for one of another channel's."""
    sender_id = clean_sender(sender)
    if sender_id.startswith(tuple(CONVERSATION_PREFIXES.values())):
        raise InvalidMessage(
            "'sender' must not start with telegram:, whatsapp: or web-: "
            "those conversations belong to their own channels"
        )
    return sender_id


class GuardedRestInput(InputChannel):
    """Synchronous REST channel: the reply holds the bot's messages for this message."""

    @classmethod
    def name(cls) -> str:
        return Channel.REST

    def __init__(self, token: Optional[str] = None) -> None:
        if token is None:
            secret = runtime.settings().rest_channel_token
            token = secret.get_secret_value() if secret else None
        self.token = token
        settings = runtime.settings()
        self.per_sender = rate_limits("rest-sender", settings.rate_per_sender)
        self.per_address = rate_limits("rest-address", settings.rate_per_address)

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.token}"
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = Blueprint("guarded_rest_webhook", __name__)
        add_health(webhook)
        close_on_stop(webhook, self.per_sender, self.per_address)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.authorized(request):
                return error("Authorization: Bearer <REST_CHANNEL_TOKEN> is required", 401)
            try:
                body = request.json
            except SanicException:
                return error("the body must be JSON", 400)
            if not isinstance(body, dict):
                return error('the body must be a JSON object: {"sender": ..., "message": ...}', 400)
            try:
                sender_id = rest_sender(body.get("sender"))
                text = clean_text(body.get("message"))
            except InvalidMessage as invalid:
                return error(str(invalid), invalid.status)
            wait = await self.per_address.wait_for(client_address(request))
            if wait is None:
                wait = await self.per_sender.wait_for(sender_id)
            if wait:
                return too_many(wait)
            metadata = body.get("metadata")
            hint = language_hint(metadata.get(Metadata.LANGUAGE_HINT)) if isinstance(
                metadata, dict) else {}
            return await to_its_end(turn(request, sender_id, text, hint, message_id_of(body)))

        async def turn(
            request: Request, sender_id: str, text: str, hint: Dict[str, str],
            message_id: Optional[str],
        ) -> HTTPResponse:
            collector = CollectingOutputChannel()
            try:
                text = await disarm(request.app, sender_id, text)
                await on_new_message(
                    UserMessage(text, collector, sender_id, input_channel=self.name(),
                                metadata=hint, message_id=message_id)
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
