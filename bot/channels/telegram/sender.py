"""Sending to Telegram: the Bot, and what each Bot API answer means for a queued message.

PTB's AIORateLimiter keeps us under Telegram's overall limit; the deliverer
(`bot.channels.delivery`) keeps each chat's messages in order, one per second, and
retries. https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
"""
import logging
import warnings
from datetime import timedelta
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import AIORateLimiter, ExtBot
from telegram.warnings import PTBDeprecationWarning

from avrr.settings import TelegramSettings
from avrr.vocabulary import Channel, platform_id
from bot.channels.delivery import SENT, Outcome, Verdict, backoff
from bot.channels.records import Outgoing

logger = logging.getLogger(__name__)

CHAT_INTERVAL_S = 1.0
GLOBAL_RATE_PER_S = 25.0
# A refused token is a configuration problem: try again, slowly, until it is mended.
CONFIGURATION_RETRY_S = 60.0


def new_bot(settings: TelegramSettings) -> ExtBot:
    """The Bot (not yet initialised): Telegram's root from the settings, paced overall."""
    root = settings.api_base_url
    return ExtBot(
        settings.bot_token.get_secret_value(),
        base_url=f"{root}/bot",
        base_file_url=f"{root}/file/bot",
        rate_limiter=AIORateLimiter(overall_max_rate=GLOBAL_RATE_PER_S, overall_time_period=1),
    )


def seconds(period: Any) -> float:
    return period.total_seconds() if isinstance(period, timedelta) else float(period)


async def send(bot: ExtBot, message: Outgoing) -> Outcome:
    """Send one queued message; what the deliverer should do with it."""
    chat_id = platform_id(Channel.TELEGRAM, message.conversation)
    markup = message.payload.get("reply_markup")
    try:
        await bot.send_message(
            chat_id,
            message.payload["text"],
            reply_markup=InlineKeyboardMarkup.de_json(markup, bot) if markup else None,
        )
    except RetryAfter as flood:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PTBDeprecationWarning)
            delay = seconds(flood.retry_after)
        return Outcome(Verdict.RETRY, delay, "429: Telegram asks to wait")
    except InvalidToken:
        logger.error("Telegram refuses the bot token: check TELEGRAM_BOT_TOKEN")
        return Outcome(Verdict.RETRY, CONFIGURATION_RETRY_S, "the bot token is refused")
    except (BadRequest, Forbidden) as refused:  # no such chat, blocked by the person...
        return Outcome(Verdict.DROP, reason=type(refused).__name__)
    except NetworkError as unreachable:  # includes timeouts and Telegram's 5xx
        return Outcome(Verdict.RETRY, backoff(message.attempts), type(unreachable).__name__)
    except TelegramError as refused:
        return Outcome(Verdict.DROP, reason=type(refused).__name__)
    return SENT
