"""`python -m bot.channels.telegram.polling`: Telegram without a public address.

Long-polls the Bot API and forwards each update to the local Rasa server's webhook, with
the webhook's secret, so that it is handled exactly as a pushed one. The offset moves
past an update only once the webhook answered 200: an update that failed is fetched
again.
"""
import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

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


async def relay(
    bot: Bot,
    post: Callable[[Dict[str, Any]], Awaitable[int]],
    offset: Optional[int] = None,
    poll_timeout_s: int = POLL_TIMEOUT_S,
    retry_delay_s: float = 2.0,
) -> Optional[int]:
    """Forward one batch of updates with `post` (which returns the HTTP status); the new offset."""
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
        offset = None
        while True:
            try:
                offset = await relay(bot, post, offset)
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
