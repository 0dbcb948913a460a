"""Polling mode: forward Telegram's updates to the webhook, moving on only once taken."""
import copy
from types import SimpleNamespace

from telegram import Update

from avrr.settings import TelegramSettings
from bot.channels.telegram.polling import MAX_ATTEMPTS, relay
from bot.channels.telegram.sender import new_bot
from tests.bot.channels.telegram.updates import TEXT_UPDATE, parsed
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "123456:TEST-TOKEN"


async def test_polling_moves_past_an_update_only_once_rasa_took_it():
    api = FakeTelegramApi(token=TOKEN)
    api.start()
    settings = TelegramSettings(bot_token=TOKEN, webhook_secret="telegram-test-secret",
                                api_base_url=api.url)
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


class Batch:
    """The Bot API's getUpdates, as far as relay uses it: the updates from the offset."""

    def __init__(self, numbers):
        self.pending = [SimpleNamespace(update_id=number, to_dict=lambda n=number: {
            "update_id": n}) for number in numbers]

    async def get_updates(self, offset=None, **_):
        return [u for u in self.pending if offset is None or u.update_id >= offset]


async def test_an_update_that_always_fails_is_skipped_once_later_ones_are_handled(caplog):
    """One update Rasa fails on (a shape it cannot handle, say) held everyone's messages
    back for good: it is tried MAX_ATTEMPTS times, then skipped once a later one works."""
    bot, forwarded, attempts = Batch([100, 101, 102]), [], {}

    async def post(update):
        forwarded.append(update["update_id"])
        return 503 if update["update_id"] == 100 else 200

    offset = None
    for _ in range(MAX_ATTEMPTS):
        offset = await relay(bot, post, offset, retry_delay_s=0, attempts=attempts)

    assert forwarded == [100] * MAX_ATTEMPTS + [101, 102]
    assert offset == 103 and attempts == {}
    assert "update 100 failed 6 times (HTTP 503) while a later one was handled: skipped" in (
        caplog.text)


async def test_while_nothing_is_handled_nothing_is_skipped():
    bot, forwarded, attempts = Batch([100, 101]), [], {}

    async def post(update):  # Rasa's database is down: every update fails
        forwarded.append(update["update_id"])
        return 503

    offset = None
    for _ in range(MAX_ATTEMPTS + 3):
        offset = await relay(bot, post, offset, retry_delay_s=0, attempts=attempts)

    assert offset is None
    assert forwarded[:MAX_ATTEMPTS] == [100] * MAX_ATTEMPTS
    assert set(forwarded[MAX_ATTEMPTS:]) == {100, 101}  # 101 is tried, 100 never let go


async def test_two_updates_in_a_row_that_always_fail_are_skipped_once_a_later_one_works(
    caplog
):
    bot, forwarded, attempts = Batch([100, 101, 102]), [], {}

    async def post(update):
        forwarded.append(update["update_id"])
        return 200 if update["update_id"] == 102 else 500

    offset = None
    for _ in range(2 * MAX_ATTEMPTS):
        offset = await relay(bot, post, offset, retry_delay_s=0, attempts=attempts)

    assert offset == 103 and attempts == {}
    assert forwarded.count(102) == 1
    assert forwarded.count(101) == MAX_ATTEMPTS  # 100 is tried once more each time
    assert forwarded.count(100) == 2 * MAX_ATTEMPTS - 1
    assert "update 100 failed 11 times (HTTP 500) while a later one was handled" in caplog.text
    assert "update 101 failed 6 times (HTTP 500) while a later one was handled" in caplog.text


async def test_an_update_the_webhook_refuses_is_skipped_once_a_later_one_is_handled(caplog):
    bot, forwarded = Batch([100, 101]), []

    async def post(update):
        forwarded.append(update["update_id"])
        return 400 if update["update_id"] == 100 else 200

    assert await relay(bot, post, None, retry_delay_s=0) == 102
    assert forwarded == [100, 101]
    assert "update 100 refused (HTTP 400) while a later one was handled: skipped" in caplog.text
