"""The WhatsApp webhook, `/webhooks/whatsapp/webhook`, its output channel and its sending.

In: Meta's verify handshake (GET); signed webhooks (POST), checked before they are
parsed (bot.channels.whatsapp.payload). Each message id is handled once
(`bot.channels.base.once`): a message that could not be handled and recorded is
released and the webhook answered 503, so that Meta sends it again. Text and button
presses go to Rasa disarmed as in every channel; a button the conversation no longer
offers counts as its title; media become "/unsupported_media".

Out: free-form messages are allowed only within 24 hours of the person's last message.
A reply to the person's own message carries that window with it, so it goes out even if
the person asked for their data to be deleted meanwhile. Any other message outside the
window is held: the reply template (WHATSAPP_REPLY_TEMPLATE) is sent once, in the
person's language, and what is held goes out as soon as the person writes again, before
the answers to that message. Until the template is sent, nothing is held: the message
is tried again later, the template with it (every minute while Meta refuses the
template itself); a template refused for this person drops the message, as a refused
message is dropped.

Message text and phone numbers (the wa_id is one) are logged at DEBUG only.
"""
import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from avrr.settings import WhatsAppSettings
from avrr.vocabulary import (
    CODES,
    DEFAULT_LANGUAGE,
    UNSUPPORTED_MEDIA_COMMAND,
    WHATSAPP_TEMPLATE_LANGUAGES,
    Channel,
    Slots,
    conversation_id,
    platform_id,
)
from bot.channels.base import (
    QueuedInput,
    QueuedOutput,
    Turn,
    disarm,
    error,
    handled_once,
)
from bot.channels.delivery import SENT, Deliverer, Outcome, Verdict, backoff
from bot.channels.records import ChannelRecords, Outgoing
from bot.channels.whatsapp.graph import (
    REENGAGEMENT_REQUIRED,
    TEMPLATE_TRANSLATION_MISSING,
    GraphClient,
    GraphError,
)
from bot.channels.whatsapp.payload import (
    CHOICE,
    IGNORED,
    MEDIA,
    SIGNATURE_HEADER,
    Inbound,
    InvalidPayload,
    log_statuses,
    parse_webhook,
    signature_ok,
    verify_challenge,
)
from bot.channels.whatsapp.render import render_response, template_message
from bot.text import InvalidMessage, clean_text

logger = logging.getLogger(__name__)

CHANNEL = Channel.WHATSAPP
# Meta's customer-service window, less a margin for clocks and delivery delays.
WINDOW_S = 24 * 3600
WINDOW_MARGIN_S = 300
# A refused token or phone number id: try again, slowly, until an operator mends it.
CONFIGURATION_RETRY_S = 60.0


class WhatsAppOutput(QueuedOutput):
    channel = CHANNEL

    def render(self, message: Dict[str, Any]) -> List[Dict[str, Any]]:
        return render_response(message)


class WhatsAppSender:
    """What the deliverer does with one queued WhatsApp message: the 24-hour rule."""

    def __init__(self, client: GraphClient, settings: WhatsAppSettings,
                 records: ChannelRecords, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.settings = settings
        self.records = records
        self.clock = clock

    def window_open(self, message: Outgoing) -> bool:
        """Whether free-form messages may go to the person now."""
        now = self.clock()
        if message.window_until is not None and now < message.window_until:
            return True
        last = self.records.last_wrote(message.conversation)
        return last is not None and now - last < WINDOW_S - WINDOW_MARGIN_S

    async def __call__(self, message: Outgoing) -> Outcome:
        wa_id = platform_id(CHANNEL, message.conversation)
        if not await asyncio.to_thread(self.window_open, message):
            return await self.notify(message)
        try:
            await self.client.send(wa_id, message.payload)
        except GraphError as failure:
            if failure.code == REENGAGEMENT_REQUIRED:
                return await self.notify(message)
            if failure.transient:
                delay = max(backoff(message.attempts), failure.retry_after_s or 0.0)
                return Outcome(Verdict.RETRY, delay, f"HTTP {failure.status or 'none'}")
            if failure.configuration:
                logger.error("the Graph API refuses our token or phone number id (HTTP %s): "
                             "check WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID",
                             failure.status)
                return Outcome(Verdict.RETRY, CONFIGURATION_RETRY_S, "configuration")
            return Outcome(Verdict.DROP, reason=f"HTTP {failure.status}, error {failure.code}")
        return SENT

    async def notify(self, message: Outgoing) -> Outcome:
        """Hold `message` once the person is told by the reply template (sent once until
        the held messages are delivered); while the template cannot be sent, `message`
        stays queued and is tried again, the template with it: held untold, it would wait
        for a message the person has no reason to write."""
        conversation = message.conversation
        if await asyncio.to_thread(self.records.notified, conversation):
            return Outcome(Verdict.HOLD)
        known = await asyncio.to_thread(self.records.language, conversation)
        language = WHATSAPP_TEMPLATE_LANGUAGES.get(known or "", DEFAULT_LANGUAGE)
        name = self.settings.reply_template
        wa_id = platform_id(CHANNEL, conversation)
        try:
            try:
                await self.client.send(wa_id, template_message(name, language))
            except GraphError as failure:
                if failure.code != TEMPLATE_TRANSLATION_MISSING or language == DEFAULT_LANGUAGE:
                    raise
                logger.warning("template %s has no %s translation: sent in English", name, language)
                await self.client.send(wa_id, template_message(name, DEFAULT_LANGUAGE))
        except GraphError as failure:
            if not (failure.transient or failure.configuration or failure.template_problem):
                # Refused for this person (no WhatsApp account on the number, say): the
                # message cannot reach them either.
                return Outcome(Verdict.DROP, reason=f"template refused: HTTP "
                               f"{failure.status}, error {failure.code}")
            delay = (max(backoff(message.attempts), failure.retry_after_s or 0.0)
                     if failure.transient else CONFIGURATION_RETRY_S)
            logger.error(
                "the WhatsApp reply template could not be sent (HTTP %s, error %s); "
                "tried again in %.0f s", failure.status, failure.code, delay,
            )
            return Outcome(Verdict.RETRY, delay, "reply template not sent")
        await asyncio.to_thread(self.records.set_notified, conversation)
        return Outcome(Verdict.HOLD)


class WhatsAppInput(QueuedInput):
    """WhatsApp Cloud API webhook; see the module docstring."""

    settings_class = WhatsAppSettings
    output_class = WhatsAppOutput

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def __init__(self, settings: WhatsAppSettings,
                 records: Optional[ChannelRecords] = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, records)
        self.client = GraphClient(settings)
        self.clock = clock

    def new_deliverer(self) -> Deliverer:
        sender = WhatsAppSender(self.client, self.settings, self.records, self.clock)
        return Deliverer(self.records, CHANNEL, sender)

    async def close(self) -> None:
        await super().close()
        await self.client.close()

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = self.webhook_blueprint("whatsapp_webhook")

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            args = {name: request.args.get(name) for name in request.args}
            challenge = verify_challenge(self.settings.verify_token.get_secret_value(), args)
            if challenge is None:
                logger.warning("WhatsApp webhook verification refused")
                return error("verification failed", 403)
            return response.text(challenge)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.body or b""
            secret = self.settings.app_secret.get_secret_value()
            if not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
                logger.warning("WhatsApp webhook refused: wrong or missing signature")
                return error("the signature is wrong or missing", 403)
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                return error("the body must be JSON", 400)
            try:
                webhook_body = parse_webhook(payload, self.settings.phone_number_id)
            except (InvalidPayload, RecursionError) as invalid:
                return error(f"not a WhatsApp webhook: {invalid}", 400)
            log_statuses(webhook_body.statuses)
            statuses = [
                await self.handle(request, inbound, on_new_message)
                for inbound in webhook_body.messages
            ]
            self.wake()
            if any(status != 200 for status in statuses):
                return error("the message could not be processed, please send it again", 503)
            return response.json({"status": "ok"})

        return webhook

    async def handle(
        self,
        request: Request,
        inbound: Inbound,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> int:
        """Handle one message once and queue its replies; the HTTP status for it."""
        if inbound.kind == IGNORED:
            return 200
        conversation = conversation_id(CHANNEL, inbound.wa_id)

        async def work(turn: Turn) -> None:
            sent_at = self._sent_at(inbound)
            await asyncio.to_thread(self.records.wrote, conversation, sent_at)
            # The person's message reopens the window: what was held goes first.
            await asyncio.to_thread(self.records.release_held, conversation)
            text = await self._text(request, conversation, inbound)
            if text is None:
                return
            collector = CollectingOutputChannel()
            await on_new_message(
                UserMessage(text, collector, conversation, input_channel=CHANNEL,
                            message_id=f"{CHANNEL}-{inbound.message_id}", metadata={})
            )
            payloads = [p for m in collector.messages for p in render_response(m)]
            turn.reply(conversation, payloads, window_until=sent_at + WINDOW_S - WINDOW_MARGIN_S)
            await self._remember_language(request, conversation)

        return await handled_once(self.records, CHANNEL, inbound.message_id, work)

    async def _text(self, request: Request, conversation: str, inbound: Inbound) -> Optional[str]:
        """What the person's message says to Rasa; None if there is nothing to read."""
        if inbound.kind == MEDIA:
            return UNSUPPORTED_MEDIA_COMMAND
        try:
            text = clean_text(inbound.text, cut=True)
        except InvalidMessage:
            logger.info("WhatsApp message without readable text ignored")
            return None
        disarmed = await disarm(request.app, conversation, text)
        if disarmed != text and inbound.kind == CHOICE:
            # A button of an earlier message: read what it said, as if typed.
            disarmed = _title_or(inbound.title, disarmed)
        return disarmed

    async def _remember_language(self, request: Request, conversation: str) -> None:
        """Keep the conversation's language for a template sent later."""
        try:
            tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation)
            language = tracker.get_slot(Slots.LANGUAGE) if tracker else None
            if isinstance(language, str) and language in CODES:
                await asyncio.to_thread(self.records.set_language, conversation, language)
        except Exception:  # noqa: BLE001 - the answer stands; the template falls back to English
            logger.warning("the language of a WhatsApp conversation could not be kept")
            logger.debug("language lookup failure", exc_info=True)

    def _sent_at(self, inbound: Inbound) -> float:
        """When the person wrote: Meta's timestamp, unless it is in the future."""
        now = self.clock()
        return min(inbound.at, now) if inbound.at else now


def _title_or(title: Optional[str], fallback: str) -> str:
    try:
        return clean_text(title)
    except InvalidMessage:
        return fallback
