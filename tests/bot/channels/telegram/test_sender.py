"""Sending to Telegram from the queue: in order per chat at Telegram's pace, 429 waited
out, refusals dropped, against a fake Bot API over real HTTP."""
import asyncio
import logging

import pytest

from avrr.settings import TelegramSettings
from bot.channels.delivery import Deliverer, Verdict
from bot.channels.records import HELD, QUEUED, Outgoing
from bot.channels.telegram import sender
from tests.bot.channels.harness import new_records, settle
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "123456:TEST-TOKEN"


@pytest.fixture(scope="module")
def api():
    fake = FakeTelegramApi(token=TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def bot(api):
    api.calls.clear()
    api.refused.clear()
    settings = TelegramSettings(bot_token=TOKEN, webhook_secret="telegram-test-secret",
                                api_base_url=api.url)
    made = sender.new_bot(settings)
    await made.initialize()
    yield made
    await made.shutdown()


def test_the_bot_talks_to_the_configured_root():
    settings = TelegramSettings(bot_token=TOKEN, webhook_secret="telegram-test-secret",
                                api_base_url="http://127.0.0.1:8081/")
    bot = sender.new_bot(settings)

    assert (bot.base_url, bot.base_file_url) == (
        f"http://127.0.0.1:8081/bot{TOKEN}", f"http://127.0.0.1:8081/file/bot{TOKEN}"
    )


async def test_messages_to_one_chat_go_in_order_one_per_second(bot, api, tmp_path):
    records = new_records(tmp_path)
    deliverer = Deliverer(records, "telegram", lambda m: sender.send(bot, m),
                          sender.CHAT_INTERVAL_S)
    records.enqueue("telegram", "telegram:101", [{"text": t} for t in ("one", "two", "three")])
    records.enqueue("telegram", "telegram:202", [{"text": "elsewhere"}])

    deliverer.start()
    try:
        to_101 = await asyncio.to_thread(api.wait_for, "sendMessage", 3, 10, chat_id=101)
    finally:
        await deliverer.stop()

    assert [c.params["text"] for c in to_101] == ["one", "two", "three"]
    gaps = [b.at - a.at for a, b in zip(to_101, to_101[1:], strict=False)]
    assert min(gaps) >= sender.CHAT_INTERVAL_S * 0.95
    # Another chat does not wait for the first one's pace.
    assert api.sent_to(202)[0].at < to_101[1].at


def outgoing(text: str, attempts: int = 0) -> Outgoing:
    return Outgoing(1, "telegram:303", {"text": text}, None, attempts)


async def test_a_429_is_a_retry_after_the_wait_telegram_asks(bot, api):
    api.fail_next("sendMessage", retry_after=7)

    outcome = await sender.send(bot, outgoing("after the flood"))

    assert (outcome.verdict, outcome.delay_s) == (Verdict.RETRY, 7.0)
    assert len(api.refused) == 1
    assert (await sender.send(bot, outgoing("after the flood"))).verdict is Verdict.SENT
    assert len(api.sent_to(303)) == 2 and len(api.refused) == 1


async def test_a_flood_is_waited_out_and_the_message_delivered_once(bot, api, tmp_path):
    records = new_records(tmp_path)
    deliverer = Deliverer(records, "telegram", lambda m: sender.send(bot, m))
    api.fail_next("sendMessage", retry_after=1)
    records.enqueue("telegram", "telegram:303", [{"text": "after the flood"}])

    deliverer.start()
    try:
        refused, sent = await asyncio.to_thread(api.wait_for, "sendMessage", 2, 10, chat_id=303)
    finally:
        await deliverer.stop()

    assert api.refused.snapshot() == [refused]
    assert refused.params["text"] == sent.params["text"] == "after the flood"
    assert sent.at - refused.at >= 0.95
    assert records.pending() == {QUEUED: 0, HELD: 0}


async def test_a_chat_telegram_refuses_is_dropped_without_its_text_in_the_log(
    bot, api, tmp_path, caplog
):
    records = new_records(tmp_path)
    deliverer = Deliverer(records, "telegram", lambda m: sender.send(bot, m))
    api.blocked.add("404404")
    records.enqueue("telegram", "telegram:404404", [{"text": "secret words"}])

    with caplog.at_level(logging.INFO):
        await settle(deliverer)

    assert records.pending() == {QUEUED: 0, HELD: 0}
    assert "Forbidden" in caplog.text
    assert "secret words" not in caplog.text and "404404" not in caplog.text
