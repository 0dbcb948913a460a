"""The Telegram webhook, `POST /webhooks/telegram/webhook`, and its output channel.

- Only Telegram, which knows TELEGRAM_WEBHOOK_SECRET (given to it with setWebhook), can
  post updates: anything else gets a 403. Without a secret the channel does not start.
- Each update id is handled once (`bot.channels.base.once`): a 200 means the conversation
  recorded the message and its replies are queued; a redelivery of an update still in
  hand, or any failure, is a 503, and Telegram delivers the update again.
- The replies go out from the durable queue, at Telegram's pace (`bot.channels.delivery`).
  Messages that reach Rasa later (a counsellor's reply through the HTTP API) take the
  same way, through `get_output_channel`.
"""
import asyncio
import hmac
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ExtBot

from avrr.settings import TelegramSettings
from avrr.vocabulary import Channel, conversation_id
from bot.channels.base import (
    QueuedInput,
    QueuedOutput,
    Turn,
    disarm,
    error,
    handled_once,
)
from bot.channels.delivery import Deliverer
from bot.channels.records import ChannelRecords, Outgoing
from bot.channels.telegram import sender
from bot.channels.telegram.updates import inbound, render
from bot.text import InvalidMessage, clean_text

logger = logging.getLogger(__name__)

CHANNEL = Channel.TELEGRAM
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


class TelegramOutput(QueuedOutput):
    channel = CHANNEL

    def render(self, message: Dict[str, Any]) -> List[Dict[str, Any]]:
        return render(message)


class TelegramInput(QueuedInput):
    """Telegram webhook; see the module docstring."""

    settings_class = TelegramSettings
    output_class = TelegramOutput

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def __init__(self, settings: TelegramSettings,
                 records: Optional[ChannelRecords] = None) -> None:
        super().__init__(settings, records)
        self._bot: Optional[ExtBot] = None
        self._bot_lock: Optional[asyncio.Lock] = None

    async def bot(self) -> ExtBot:
        """The Bot, made and initialised once, in the running loop (Sanic's)."""
        if self._bot_lock is None:
            self._bot_lock = asyncio.Lock()
        async with self._bot_lock:
            if self._bot is None:
                bot = sender.new_bot(self.settings)
                await bot.initialize()
                self._bot = bot
            return self._bot

    async def send(self, message: Outgoing) -> Any:
        return await sender.send(await self.bot(), message)

    def new_deliverer(self) -> Deliverer:
        return Deliverer(self.records, CHANNEL, self.send, sender.CHAT_INTERVAL_S)

    async def close(self) -> None:
        await super().close()
        if self._bot is not None:
            await self._bot.shutdown()
            self._bot = None

    def authentic(self, secret: Optional[str]) -> bool:
        """True if `secret` (the header Telegram sends) is the webhook's secret."""
        return secret is not None and hmac.compare_digest(
            secret.encode("utf-8", "surrogateescape"),
            self.settings.webhook_secret.get_secret_value().encode(),
        )

    async def parse(self, body: Any) -> Update:
        """The update in a webhook body; ValueError if it is none."""
        if not isinstance(body, dict) or not isinstance(body.get("update_id"), int):
            raise ValueError("the body must be a Telegram update")
        bot = await self.bot()
        try:
            return Update.de_json(body, bot)
        except Exception as malformed:  # noqa: BLE001 - whatever ptb cannot read is malformed
            raise ValueError("the body must be a Telegram update") from malformed

    async def answer_callback(self, query_id: str) -> None:
        """Stop the button's spinner; a failure here does not stop the message."""
        try:
            await (await self.bot()).answer_callback_query(query_id)
        except TelegramError as failure:
            logger.warning("Telegram callback query not answered: %s", type(failure).__name__)

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = self.webhook_blueprint("guarded_telegram_webhook")

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.authentic(request.headers.get(SECRET_HEADER)):
                logger.warning("Telegram webhook refused: wrong or missing secret token")
                return error("the secret token is wrong or missing", 403)
            try:
                update = await self.parse(request.json)
            except (SanicException, ValueError):
                return error("the body must be a Telegram update", 400)
            except TelegramError as failure:  # the bot could not be set up (getMe)
                logger.error("Telegram bot unavailable: %s", type(failure).__name__)
                return error("not ready, please deliver the update again", 503)
            status = await self.handle(request, update, on_new_message)
            if status != 200:
                return error("the update could not be processed, please deliver it again", status)
            self.wake()
            return response.json({"ok": True})

        return webhook

    async def handle(
        self,
        request: Request,
        update: Update,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> int:
        """Hand the update's message to Rasa once and queue its replies; the HTTP status."""

        async def work(turn: Turn) -> None:
            message = inbound(update)
            if message is None:
                logger.debug("Telegram update %s ignored: not a private message",
                             update.update_id)
                return
            try:
                text = clean_text(message.text, cut=True)
            except InvalidMessage as invalid:
                logger.info("Telegram update %s ignored: %s", update.update_id, invalid)
                return
            conversation = conversation_id(CHANNEL, message.chat_id)
            if message.callback_query_id:
                await self.answer_callback(message.callback_query_id)
            if not message.ours:
                text = await disarm(request.app, conversation, text)
            collector = CollectingOutputChannel()
            await on_new_message(
                UserMessage(
                    text,
                    collector,
                    conversation,
                    input_channel=CHANNEL,
                    message_id=f"{CHANNEL}-{update.update_id}",
                    metadata=message.metadata,
                )
            )
            turn.reply(conversation, [p for m in collector.messages for p in render(m)])

        return await handled_once(self.records, CHANNEL, str(update.update_id), work)
