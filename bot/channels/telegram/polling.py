"""`python -m bot.channels.telegram.polling`: Telegram without a public address.

Long-polls the Bot API and forwards each update to the local Rasa server's webhook, with
the webhook's secret, so that it is handled exactly as a pushed one. The offset moves
past an update only once the webhook answered 200: an update that failed is fetched
again, with a growing pause. As Telegram does with a webhook, an update is not tried for
ever at everyone's expense: one the webhook refuses (4xx), or one that failed
MAX_ATTEMPTS times, is passed over, and skipped once a later update is handled (Rasa
works, that update does not), each with an ERROR line. While nothing is handled,
nothing is skipped.
"""
import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import aiohttp
from telegram import Bot
from telegram.error import NetworkError

from avrr.logs import configure
from avrr.settings import TelegramSettings, load
from avrr.vocabulary import Channel
from bot.channels.telegram.channel import SECRET_HEADER
from bot.channels.telegram.sender import new_bot

logger = logging.getLogger(__name__)

POLL_TIMEOUT_S = 50
MAX_ATTEMPTS = 6  # with pauses of 2, 4, 8, 16, 30 s: about a minute
MAX_PAUSE_S = 30.0


async def relay(
    bot: Bot,
    post: Callable[[Dict[str, Any]], Awaitable[int]],
    offset: Optional[int] = None,
    poll_timeout_s: int = POLL_TIMEOUT_S,
    retry_delay_s: float = 2.0,
    attempts: Optional[Dict[int, int]] = None,
) -> Optional[int]:
    """Forward one batch of updates with `post` (which returns the HTTP status); the new
    offset. `attempts` counts each failing update's tries, from one batch to the next."""
    attempts = {} if attempts is None else attempts
    updates = await bot.get_updates(
        offset=offset, timeout=poll_timeout_s, allowed_updates=["message", "callback_query"]
    )
    # Updates passed over, each with why: refused (4xx), or failed MAX_ATTEMPTS times.
    # They are skipped once a later update is handled (a 200: Rasa works, they do not).
    passed: List[Tuple[int, str]] = []
    for update in updates:
        number = update.update_id
        status = await post(update.to_dict())
        if status == 403:
            raise SystemExit("the Rasa webhook refused the secret: check TELEGRAM_WEBHOOK_SECRET")
        if status != 200:
            tried = attempts[number] = attempts.get(number, 0) + 1
            if 400 <= status < 500:
                passed.append((number, f"refused (HTTP {status})"))
                continue
            if tried >= MAX_ATTEMPTS:
                passed.append((number, f"failed {tried} times (HTTP {status})"))
                continue
            pause = min(MAX_PAUSE_S, retry_delay_s * 2 ** (tried - 1))
            logger.warning("Rasa answered %s to update %s: again in %.0f s",
                           status, number, pause)
            await asyncio.sleep(pause)
            return offset
        for skipped, why in passed:
            logger.error("update %s %s while a later one was handled: skipped", skipped, why)
            attempts.pop(skipped, None)
        passed = []
        attempts.pop(number, None)
        offset = number + 1
    if passed:  # nothing after them was handled: they are tried again, not skipped
        await asyncio.sleep(MAX_PAUSE_S * retry_delay_s / 2.0)
    return offset


async def poll(settings: TelegramSettings) -> None:
    """Delete any webhook, then long-poll Telegram and forward each update to Rasa."""
    webhook = f"{settings.rasa_url}/webhooks/{Channel.TELEGRAM}/webhook"
    headers = {SECRET_HEADER: settings.webhook_secret.get_secret_value()}
    async with new_bot(settings) as bot, aiohttp.ClientSession() as http:

        async def post(update: Dict[str, Any]) -> int:
            try:
                async with http.post(webhook, json=update, headers=headers) as reply:
                    return reply.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as failure:
                logger.warning("Rasa unreachable at %s: %s", webhook, type(failure).__name__)
                return 503

        await bot.delete_webhook()
        logger.info("Polling Telegram; forwarding to %s", webhook)
        offset, attempts = None, {}
        while True:
            try:
                offset = await relay(bot, post, offset, attempts=attempts)
            except NetworkError as failure:
                logger.warning("Telegram unreachable: %s", type(failure).__name__)
                await asyncio.sleep(5)


def main() -> None:
    configure("telegram")
    try:
        asyncio.run(poll(load(TelegramSettings)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
