"""Polling mode: forward Telegram's updates to the webhook, moving on only once taken."""
import copy

from telegram import Update

from avrr.settings import TelegramSettings
from bot.channels.telegram.polling import relay
from bot.channels.telegram.sender import new_bot
from tests.bot.channels.telegram.updates import TEXT_UPDATE, parsed
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "123456:TEST-TOKEN"


async def test_polling_moves_past_an_update_only_once_rasa_took_it():
    api = FakeTelegramApi(token=TOKEN)
    api.start()
    settings = TelegramSettings(bot_token=TOKEN, webhook_secret="s", api_base_url=api.url)
    api.push_update(copy.deepcopy(TEXT_UPDATE))
    statuses, forwarded = [503, 200], []

    async def post(update):
        forwarded.append(update)
        return statuses.pop(0)

    try:
        async with new_bot(settings) as bot:
            offset = await relay(bot, post, None, poll_timeout_s=0, retry_delay_s=0)
            assert offset is None
            offset = await relay(bot, post, offset, poll_timeout_s=0, retry_delay_s=0)
            assert offset == TEXT_UPDATE["update_id"] + 1
            assert await relay(bot, post, offset, poll_timeout_s=0, retry_delay_s=0) == offset
    finally:
        api.stop()

    assert len(forwarded) == 2
    assert all(Update.de_json(u, None).to_dict() == parsed(TEXT_UPDATE).to_dict()
               for u in forwarded)
    assert forwarded[0]["message"]["from"]["language_code"] == "en"
