"""The Telegram channel: webhook at `POST /webhooks/telegram/webhook`, replies by the Bot API.

- Only Telegram, which knows TELEGRAM_WEBHOOK_SECRET (given to it with setWebhook), can
  post updates: anything else gets a 403. Without a secret the channel does not start.
- Telegram delivers an update again when it gets no 200 in time, even while the first
  delivery is still being handled: each update id is handled once (`bot.channels.ledger`),
  and a 200 is given only once the conversation has recorded the message. A failure is
  a 503, and Telegram delivers the update again.
- Replies are sent after that, at Telegram's pace (one message per second per chat, 25
  per second in all), waiting as long as a 429 asks. Messages that reach Rasa later (a
  counsellor's reply through the HTTP API) go the same way, via `get_output_channel`.
- Typed "/intent{...}" text is disarmed as in the REST channel. "/start", and anything
  that is not text (sticker, photo, voice, location, file...), become commands of ours.
- Only private chats are served: in a group, several people would share one conversation.

`python -m bot.channels.telegram` is the polling mode for a machine without a public
address: it long-polls Telegram and forwards each update to the local Rasa webhook.
"""
import asyncio
import hmac
import logging
import os
import re
import sqlite3
import warnings
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Awaitable, Callable, Deque, Dict, List, Mapping, Optional, Tuple

import aiohttp
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Bot, Chat, InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.channels.ledger import get_ledger
from bot.channels.rest import disarm, error
from bot.text import InvalidMessage, clean_text

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
DEFAULT_API_ROOT = "https://api.telegram.org"
# Telegram's limits: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
CHAT_INTERVAL_S = 1.0
GLOBAL_RATE_PER_S = 25.0
MAX_ATTEMPTS = 5
CALLBACK_DATA_MAX_BYTES = 64
MESSAGE_MAX_CHARS = 4096
# setWebhook accepts 1-256 of these characters as secret_token.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_START = re.compile(r"^/start(@\w+)?(\s|$)")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")

# Commands of this channel, not typed by the person: they are not disarmed.
LANGUAGE_MENU = "/change_language"
UNSUPPORTED_MEDIA = "/unsupported_media"
MEDIA = (
    "sticker", "photo", "voice", "audio", "video", "video_note",
    "location", "document", "contact", "animation",
)


@dataclass(frozen=True)
class TelegramSettings:
    token: str
    webhook_secret: str
    api_root: str = DEFAULT_API_ROOT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "TelegramSettings":
        token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        secret = env.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
        if not token:
            raise RasaException("TELEGRAM_BOT_TOKEN is not set: the Telegram channel cannot start")
        if not secret:
            raise RasaException(
                "TELEGRAM_WEBHOOK_SECRET is not set: without it anyone could post forged "
                "updates to the Telegram webhook, so the channel does not start"
            )
        if not _SECRET.match(secret):
            raise RasaException(
                "TELEGRAM_WEBHOOK_SECRET must be 1-256 letters, digits, _ or - "
                "(what Telegram's setWebhook accepts as secret_token)"
            )
        root = env.get("TELEGRAM_API_BASE_URL", "").strip() or DEFAULT_API_ROOT
        return cls(token=token, webhook_secret=secret, api_root=root.rstrip("/"))

    def new_bot(self) -> Bot:
        return Bot(
            self.token,
            base_url=f"{self.api_root}/bot",
            base_file_url=f"{self.api_root}/file/bot",
        )


# -- from an update to a message for the assistant (pure) --


@dataclass(frozen=True)
class Inbound:
    """What one update asks of the assistant."""

    chat_id: str
    text: str
    metadata: Dict[str, str] = field(default_factory=dict)
    ours: bool = False  # a command this channel made, not text the person typed
    callback_query_id: Optional[str] = None


def language_hint(user: Optional[User]) -> Dict[str, str]:
    """The primary subtag of the person's Telegram language ("pt-br" -> "pt"), if any."""
    code = ((user.language_code if user else None) or "").split("-")[0].strip().lower()
    return {"language_hint": code} if _LANGUAGE.match(code) else {}


def inbound(update: Update) -> Optional[Inbound]:
    """The message an update brings, or None for updates the assistant ignores."""
    query = update.callback_query
    if query is not None:
        chat = query.message.chat if query.message else None
        if chat is None or chat.type != Chat.PRIVATE:
            return None
        return Inbound(
            str(chat.id), query.data or "", language_hint(query.from_user),
            callback_query_id=query.id,
        )
    message = update.message  # not edited messages, channel posts, polls...
    if message is None or message.chat.type != Chat.PRIVATE:
        return None
    chat_id, hint = str(message.chat.id), language_hint(message.from_user)
    if message.text is not None:
        if _START.match(message.text):
            return Inbound(chat_id, LANGUAGE_MENU, hint, ours=True)
        return Inbound(chat_id, message.text, hint)
    if any(getattr(message, kind) for kind in MEDIA):
        return Inbound(chat_id, UNSUPPORTED_MEDIA, hint, ours=True)
    return None


def inline_keyboard(buttons: List[Dict[str, Any]]) -> Optional[InlineKeyboardMarkup]:
    """One button per row; the payload is the callback data, which Telegram caps at 64 bytes."""
    rows = []
    for button in buttons:
        title, payload = str(button.get("title") or ""), str(button.get("payload") or "")
        if not title or not payload or len(payload.encode()) > CALLBACK_DATA_MAX_BYTES:
            logger.debug("Telegram button left out: empty or over 64 bytes: %r", payload)
            continue
        rows.append([InlineKeyboardButton(title, callback_data=payload)])
    return InlineKeyboardMarkup(rows) if rows else None


def _seconds(period: Any) -> float:
    return period.total_seconds() if isinstance(period, timedelta) else float(period)


# -- out: every message to Telegram goes through one sender --


@dataclass
class _Outgoing:
    chat_id: str
    text: str
    markup: Optional[InlineKeyboardMarkup]
    delivered: "asyncio.Future[bool]"


class TelegramSender:
    """Sends messages in order per chat, at Telegram's pace, retrying what it may retry.

    One queue per chat, drained by a task that lives while the chat has messages. The
    Bot is made on first use, in the running event loop (Sanic's).
    """

    def __init__(
        self,
        settings: TelegramSettings,
        chat_interval_s: float = CHAT_INTERVAL_S,
        global_rate_per_s: float = GLOBAL_RATE_PER_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.settings = settings
        self.chat_interval_s = chat_interval_s
        self.global_interval_s = 1.0 / global_rate_per_s
        self.max_attempts = max_attempts
        self._bot: Optional[Bot] = None
        self._bot_lock = asyncio.Lock()
        self._pace_lock = asyncio.Lock()
        self._next_slot = 0.0
        self._queues: Dict[str, Deque[_Outgoing]] = {}
        self._workers: Dict[str, asyncio.Task[None]] = {}

    async def bot(self) -> Bot:
        async with self._bot_lock:
            if self._bot is None:
                bot = self.settings.new_bot()
                await bot.initialize()
                self._bot = bot
            return self._bot

    def send(
        self, chat_id: str, text: str, markup: Optional[InlineKeyboardMarkup] = None
    ) -> "asyncio.Future[bool]":
        """Queue a message; the future tells whether it was delivered (failures are logged)."""
        loop = asyncio.get_running_loop()
        item = _Outgoing(chat_id, text, markup, loop.create_future())
        self._queues.setdefault(chat_id, deque()).append(item)
        if chat_id not in self._workers:
            self._workers[chat_id] = loop.create_task(self._drain(chat_id))
        return item.delivered

    async def _drain(self, chat_id: str) -> None:
        queue = self._queues[chat_id]
        try:
            while queue:
                item = queue.popleft()
                try:
                    delivered = await self._deliver(item)
                except Exception as failure:  # noqa: BLE001 - the worker must go on
                    logger.error("Telegram message not sent: %s", type(failure).__name__)
                    logger.debug("Telegram send failure", exc_info=True)
                    delivered = False
                if not item.delivered.done():
                    item.delivered.set_result(delivered)
                # Also after the last one: a new worker for this chat starts no sooner.
                await asyncio.sleep(self.chat_interval_s)
        finally:
            del self._queues[chat_id], self._workers[chat_id]

    async def _deliver(self, item: _Outgoing) -> bool:
        failure: Optional[Exception] = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._global_slot()
                bot = await self.bot()
                await bot.send_message(item.chat_id, item.text, reply_markup=item.markup)
                return True
            except RetryAfter as flood:
                failure = flood
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PTBDeprecationWarning)
                    delay = _seconds(flood.retry_after)
                logger.warning("Telegram asks to wait %.0f s (attempt %d)", delay, attempt)
            except BadRequest as refused:  # e.g. chat not found: sending again won't help
                failure = refused
                break
            except NetworkError as unreachable:  # includes timeouts
                failure, delay = unreachable, float(attempt)
            except TelegramError as refused:  # blocked by the person, invalid token...
                failure = refused
                break
            if attempt < self.max_attempts:
                await asyncio.sleep(delay)
        logger.error("Telegram message not delivered: %s", type(failure).__name__)
        logger.debug("Telegram refused a message to chat %s: %s", item.chat_id, failure)
        return False

    async def _global_slot(self) -> None:
        async with self._pace_lock:
            loop = asyncio.get_running_loop()
            wait = self._next_slot - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_slot = max(loop.time(), self._next_slot) + self.global_interval_s

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let queued messages go out for a while, then stop."""
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=timeout_s)
            for worker in pending:
                worker.cancel()
        if self._bot is not None:
            await self._bot.shutdown()
            self._bot = None


class TelegramOutput(OutputChannel):
    """Rasa's view of the sender; sending returns once the message is queued."""

    def __init__(self, sender: TelegramSender) -> None:
        self.sender = sender

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def _queue(self, chat_id: str, text: str, markup: Optional[InlineKeyboardMarkup]) -> None:
        text = (text or "").strip()
        if not text:
            logger.debug("empty Telegram message not sent")
            return
        parts = [text[i : i + MESSAGE_MAX_CHARS] for i in range(0, len(text), MESSAGE_MAX_CHARS)]
        for part in parts[:-1]:
            self.sender.send(chat_id, part)
        self.sender.send(chat_id, parts[-1], markup)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        self._queue(recipient_id, text, None)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        self._queue(recipient_id, text, inline_keyboard(buttons))


# -- in: the webhook --


class TelegramInput(InputChannel):
    """Telegram webhook; see the module docstring."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        if credentials:
            logger.warning(
                "Telegram settings in the credentials file are ignored: "
                "they are read from the environment (TELEGRAM_*)"
            )
        return cls(TelegramSettings.from_env(os.environ))

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.sender = TelegramSender(settings)

    def get_output_channel(self) -> OutputChannel:
        return TelegramOutput(self.sender)

    def authentic(self, secret: Optional[str]) -> bool:
        """True if `secret` (the header Telegram sends) is the webhook's secret."""
        return secret is not None and hmac.compare_digest(
            secret.encode("utf-8", "surrogateescape"), self.settings.webhook_secret.encode()
        )

    async def parse(self, body: Any) -> Update:
        """The update in a webhook body; ValueError if it is none."""
        if not isinstance(body, dict) or not isinstance(body.get("update_id"), int):
            raise ValueError("the body must be a Telegram update")
        bot = await self.sender.bot()
        try:
            return Update.de_json(body, bot)
        except Exception as malformed:  # noqa: BLE001 - whatever ptb cannot read is malformed
            raise ValueError("the body must be a Telegram update") from malformed

    async def answer_callback(self, query_id: str) -> None:
        """Stop the button's spinner; a failure here does not stop the message."""
        try:
            bot = await self.sender.bot()
            await bot.answer_callback_query(query_id)
        except TelegramError as failure:
            logger.warning("Telegram callback query not answered: %s", type(failure).__name__)

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = Blueprint("guarded_telegram_webhook", __name__)

        @webhook.listener("after_server_stop")
        async def close(*_: Any) -> None:
            await self.sender.close()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

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
            status, outgoing = await self.handle(request, update, on_new_message)
            if status != 200:
                return error("the update could not be processed, please deliver it again", status)
            output = TelegramOutput(self.sender)
            for message in outgoing:
                await output.send_response(message.pop("recipient_id"), message)
            return response.json({"ok": True})

        return webhook

    async def handle(
        self,
        request: Request,
        update: Update,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> Tuple[int, List[Dict[str, Any]]]:
        """Hand the update's message to Rasa once; the status and the replies to send."""
        update_id = str(update.update_id)
        message = inbound(update)
        if message is None:
            logger.debug("Telegram update %s ignored: not a private message", update_id)
            return 200, []
        try:
            text = clean_text(message.text)
        except InvalidMessage as invalid:
            logger.info("Telegram update %s ignored: %s", update_id, invalid)
            return 200, []
        try:
            ledger = get_ledger()
            if not ledger.claim(CHANNEL, update_id):
                logger.info("Telegram update %s: already handled or in hand", update_id)
                return 200, []
        except sqlite3.Error as failure:
            logger.error("Telegram ledger unavailable: %s", type(failure).__name__)
            return 503, []
        collector = CollectingOutputChannel()
        try:
            ledger.wrote(CHANNEL, message.chat_id)
            if message.callback_query_id:
                await self.answer_callback(message.callback_query_id)
            if not message.ours:
                text = await disarm(request.app, message.chat_id, text)
            await on_new_message(
                UserMessage(
                    text,
                    collector,
                    message.chat_id,
                    input_channel=CHANNEL,
                    metadata=message.metadata,
                )
            )
        except Exception as failure:  # noqa: BLE001 - any failure: Telegram delivers again
            ledger.release(CHANNEL, update_id)
            # The exception's text may quote the message or the chat id: only its type.
            logger.error(
                "Telegram update %s could not be processed: %s", update_id, type(failure).__name__
            )
            logger.debug("Telegram update failure", exc_info=True)
            return 503, []
        try:
            ledger.done(CHANNEL, update_id)
        except sqlite3.Error as failure:  # the message is recorded: still a 200
            logger.error("Telegram update %s not marked: %s", update_id, type(failure).__name__)
        return 200, collector.messages


# -- polling mode --

POLL_TIMEOUT_S = 50


async def relay(
    bot: Bot,
    post: Callable[[Dict[str, Any]], Awaitable[int]],
    offset: Optional[int] = None,
    poll_timeout_s: int = POLL_TIMEOUT_S,
    retry_delay_s: float = 2.0,
) -> Optional[int]:
    """Forward one batch of updates with `post` (which returns the HTTP status); the new offset.

    The offset moves past an update only once the webhook answered 200, so an update
    that failed is fetched again.
    """
    updates = await bot.get_updates(
        offset=offset, timeout=poll_timeout_s, allowed_updates=["message", "callback_query"]
    )
    for update in updates:
        status = await post(update.to_dict())
        if status == 403:
            raise SystemExit("the Rasa webhook refused the secret: check TELEGRAM_WEBHOOK_SECRET")
        if status != 200:
            logger.warning("Rasa answered %s to update %s: again soon", status, update.update_id)
            await asyncio.sleep(retry_delay_s)
            return offset
        offset = update.update_id + 1
    return offset


async def poll(settings: TelegramSettings, rasa_url: str) -> None:
    """Delete any webhook, then long-poll Telegram and forward each update to Rasa."""
    webhook = f"{rasa_url.rstrip('/')}/webhooks/{CHANNEL}/webhook"
    headers = {SECRET_HEADER: settings.webhook_secret}
    async with settings.new_bot() as bot, aiohttp.ClientSession() as http:

        async def post(update: Dict[str, Any]) -> int:
            try:
                async with http.post(webhook, json=update, headers=headers) as reply:
                    return reply.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as failure:
                logger.warning("Rasa unreachable at %s: %s", webhook, type(failure).__name__)
                return 503

        await bot.delete_webhook()
        logger.info("Polling Telegram; forwarding to %s", webhook)
        offset = None
        while True:
            try:
                offset = await relay(bot, post, offset)
            except NetworkError as failure:
                logger.warning("Telegram unreachable: %s", type(failure).__name__)
                await asyncio.sleep(5)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = TelegramSettings.from_env(os.environ)
    except RasaException as missing:
        raise SystemExit(str(missing)) from None
    try:
        asyncio.run(poll(settings, os.environ.get("RASA_URL", "http://127.0.0.1:5005")))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
