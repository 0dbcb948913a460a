"""The Telegram webhook without a Rasa server: the secret, once-only handling (a redelivery
in hand is a 503, a failure is handled on Telegram's retry), the durable send queue, and
the output channel, against a fake Bot API over real HTTP on loopback."""
import asyncio
import copy
import logging

import pytest
from rasa.shared.core.events import BotUttered

from avrr.db import engine
from avrr.settings import TelegramSettings
from bot.channels import base
from bot.channels.records import HELD, QUEUED, ChannelRecords, Claim
from bot.channels.telegram.channel import CHANNEL, TelegramInput, TelegramOutput
from tests.bot.channels.harness import Rasa, Tracker, mounted, new_records, settle
from tests.bot.channels.telegram.updates import (
    CALLBACK_UPDATE,
    CHAT_ID,
    LANGUAGE_MENU_FR,
    START_UPDATE,
    TEXT_UPDATE,
    media_update,
    text_update,
)
from tests.fakes.telegram_api import FakeTelegramApi

pytestmark = pytest.mark.filterwarnings("ignore:You have set a listener:UserWarning")

TOKEN = "123456:TEST-TOKEN"
SECRET = "telegram-test-secret"
WEBHOOK = "/webhooks/telegram/webhook"
CONVERSATION = f"telegram:{CHAT_ID}"


@pytest.fixture(scope="module")
def api():
    fake = FakeTelegramApi(token=TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(api):
    api.calls.clear()
    api.refused.clear()
    return TelegramSettings(bot_token=TOKEN, webhook_secret=SECRET, api_base_url=api.url)


@pytest.fixture
def records(tmp_path):
    return new_records(tmp_path)


class Webhook:
    def __init__(self, channel: TelegramInput, rasa: Rasa, client) -> None:
        self.channel = channel
        self.rasa = rasa
        self.client = client

    async def post(self, update, secret=SECRET):
        headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
        return await self.client.post(WEBHOOK, json=update, headers=headers)

    async def settle(self) -> None:
        self.channel.deliverer.pace_s = 0.0
        await settle(self.channel.deliverer)


@pytest.fixture
async def webhook(settings, records, monkeypatch):
    rasa = Rasa()
    rasa.answers = [("Hi!", ()), ("Ask me.", ())]
    channel = TelegramInput(settings, records=records)
    async with mounted(channel, rasa, monkeypatch) as client:
        yield Webhook(channel, rasa, client)


# -- the secret and the body --


@pytest.mark.parametrize(
    "header, accepted",
    [(SECRET, True), ("telegram-test-secreT", False), (SECRET + "x", False), ("", False),
     (None, False), ("t\u00e9l\u00e9gram", False)],
)
def test_only_the_webhook_secret_is_accepted(settings, header, accepted):
    channel = TelegramInput(settings)
    assert channel.authentic(header) is accepted


async def test_a_post_without_the_secret_is_refused_and_nothing_happens(webhook, records):
    reply = await webhook.post(TEXT_UPDATE, secret="guess")

    assert (reply.status_code, reply.json()) == (
        403, {"error": "the secret token is wrong or missing"})
    assert webhook.rasa.received == []
    assert records.claim(CHANNEL, str(TEXT_UPDATE["update_id"])) is Claim.NEW


@pytest.mark.parametrize(
    "body", [[1, 2], "hello", {}, {"update_id": "1"}, {"update_id": 1, "message": "hi"},
             {"update_id": 1, "message": {"message_id": 1}}],
)
async def test_a_body_that_is_not_an_update_is_refused(webhook, body):
    reply = await webhook.post(body)

    assert reply.status_code == 400
    assert reply.json() == {"error": "the body must be a Telegram update"}
    assert webhook.rasa.received == []


# -- once, recorded, then answered from the queue --


async def test_a_message_is_handed_to_rasa_and_its_replies_queued_then_sent(
    webhook, records, api
):
    reply = await webhook.post(copy.deepcopy(TEXT_UPDATE))

    assert (reply.status_code, reply.json()) == (200, {"ok": True})
    [message] = webhook.rasa.received
    assert (message.text, message.sender_id, message.input_channel, message.metadata) == (
        "Hello", CONVERSATION, "telegram", {"language_hint": "en"}
    )
    assert message.message_id == f"telegram-{TEXT_UPDATE['update_id']}"
    assert records.pending(CHANNEL) == {QUEUED: 2, HELD: 0}

    await webhook.settle()

    assert [c.params["text"] for c in api.sent_to(CHAT_ID)] == ["Hi!", "Ask me."]
    assert records.pending(CHANNEL) == {QUEUED: 0, HELD: 0}
    assert records.last_wrote(CONVERSATION) is None  # Telegram has no window to keep


async def test_a_redelivered_update_is_handled_once(webhook, api):
    await webhook.post(copy.deepcopy(TEXT_UPDATE))

    again = await webhook.post(copy.deepcopy(TEXT_UPDATE))
    await webhook.settle()

    assert again.status_code == 200
    assert len(webhook.rasa.received) == 1
    assert len(api.sent_to(CHAT_ID)) == 2


async def test_a_redelivery_while_the_first_is_in_hand_is_a_503(webhook):
    webhook.rasa.delay = 0.3

    replies = await asyncio.gather(*(webhook.post(copy.deepcopy(TEXT_UPDATE)) for _ in range(3)))

    # Not yet recorded: Telegram must deliver it again rather than forget it.
    assert sorted(r.status_code for r in replies) == [200, 503, 503]
    assert len(webhook.rasa.received) == 1
    assert (await webhook.post(copy.deepcopy(TEXT_UPDATE))).status_code == 200
    assert len(webhook.rasa.received) == 1


async def test_a_redelivery_minutes_later_while_rasa_still_handles_the_first_is_a_503(
    settings, tmp_path, monkeypatch
):
    """Rasa waits up to 300 s for each action: the claim is kept meanwhile, so Telegram's
    redelivery is not handled a second time alongside the first."""
    monkeypatch.setattr(base, "CLAIM_RENEW_S", 0.01)
    clock = [1_000_000.0]
    records = ChannelRecords(engine(f"sqlite:///{tmp_path / 'c.db'}"), lambda: clock[0])
    records.create_schema()
    rasa, reached, answer = Rasa(), asyncio.Event(), asyncio.Event()

    async def waiting_for_the_action_server(message):
        if not reached.is_set():  # the first delivery only
            reached.set()
            await answer.wait()
        await Rasa.handle(rasa, message)

    rasa.handle = waiting_for_the_action_server
    async with mounted(TelegramInput(settings, records=records), rasa, monkeypatch) as client:
        hook = Webhook(None, rasa, client)
        first = asyncio.create_task(hook.post(copy.deepcopy(TEXT_UPDATE)))
        await reached.wait()
        for _ in range(4):  # 200 s go by, renewed every few seconds
            clock[0] += 50
            await asyncio.sleep(0.1)
        during = await hook.post(copy.deepcopy(TEXT_UPDATE))
        answer.set()
        first = await first
        after = await hook.post(copy.deepcopy(TEXT_UPDATE))

    assert (first.status_code, during.status_code, after.status_code) == (200, 503, 200)
    assert during.json() == {"error": "the update could not be processed, please deliver it again"}
    assert rasa.texts() == ["Hello"]
    assert records.pending(CHANNEL) == {QUEUED: 2, HELD: 0}


async def test_when_the_first_attempt_fails_telegrams_redelivery_is_handled(webhook, api, caplog):
    """The first handling fails while a redelivery arrives: both are refused with a 503, and
    Telegram's next delivery is handled: the message is not lost."""
    webhook.rasa.delay = 0.2
    webhook.rasa.failures = 1

    with caplog.at_level(logging.INFO):
        first, during = await asyncio.gather(
            webhook.post(copy.deepcopy(TEXT_UPDATE)), webhook.post(copy.deepcopy(TEXT_UPDATE))
        )
    assert (first.status_code, during.status_code) == (503, 503)
    assert str(CHAT_ID) not in caplog.text and "Hello" not in caplog.text

    retry = await webhook.post(copy.deepcopy(TEXT_UPDATE))
    await webhook.settle()

    assert retry.status_code == 200
    assert webhook.rasa.texts() == ["Hello", "Hello"]
    assert [c.params["text"] for c in api.sent_to(CHAT_ID)] == ["Hi!", "Ask me."]


async def test_a_typed_command_is_disarmed_but_ours_are_not(webhook):
    typed = text_update('/inform{"elig_situation":"asylum"}', update_id=41)
    spaced = text_update('/ /inform{"elig_situation":"asylum"}', update_id=43)

    for update in (typed, START_UPDATE, media_update("sticker", update_id=42), spaced):
        assert (await webhook.post(update)).status_code == 200

    assert [(m.text, m.metadata) for m in webhook.rasa.received] == [
        ('inform{"elig_situation":"asylum"}', {"language_hint": "en"}),
        ("/change_language", {"language_hint": "ar"}),
        ("/unsupported_media", {"language_hint": "en"}),
        ('inform{"elig_situation":"asylum"}', {"language_hint": "en"}),
    ]


async def test_a_button_press_is_answered_and_its_offered_payload_passes(webhook, api):
    pressed = copy.deepcopy(CALLBACK_UPDATE)
    pressed["callback_query"]["data"] = '/inform{"elig_situation":"asylum"}'
    offered = Tracker()
    offered.events = [BotUttered("Your situation?", {"buttons": [
        {"title": "Asylum", "payload": '/inform{"elig_situation":"asylum"}'}]})]
    webhook.rasa.trackers[CONVERSATION] = offered

    await webhook.post(copy.deepcopy(pressed))
    offered.events.append(BotUttered("Which language?", {"buttons": [
        {"title": "Français", "payload": LANGUAGE_MENU_FR}]}))
    pressed["update_id"] += 1
    await webhook.post(pressed)

    assert [m.text for m in webhook.rasa.received] == [
        '/inform{"elig_situation":"asylum"}',  # offered: passes
        'inform{"elig_situation":"asylum"}',  # not offered any more: read as words
    ]
    answered = [c.params for c in api.calls if c.method == "answerCallbackQuery"]
    assert answered == [{"callback_query_id": "4382bfdwdsb323b2d9"}] * 2


async def test_updates_without_a_message_for_us_are_acknowledged_and_not_recorded(
    webhook, records
):
    edited = {"update_id": 51, "edited_message": dict(TEXT_UPDATE["message"], edit_date=1)}
    blank = text_update("\u0000 \u0007", update_id=52)

    for update in (edited, blank):
        assert (await webhook.post(update)).status_code == 200
    assert webhook.rasa.received == []
    assert records.claim(CHANNEL, "51") is Claim.DONE
    assert records.pending() == {QUEUED: 0, HELD: 0}


# -- the output channel, for messages that reach Rasa later --


def test_the_output_channel_is_telegrams(settings, records):
    output = TelegramInput(settings, records=records).get_output_channel()

    assert isinstance(output, TelegramOutput) and output.name() == "telegram"


async def test_a_counsellors_reply_is_confirmed_once_telegram_has_it(webhook, api, records):
    later = webhook.channel.get_output_channel()

    async def deliver_soon():
        await asyncio.sleep(0.05)
        await webhook.settle()

    message = {"text": "A counsellor's answer", "reply_key": "desk-9",
               "buttons": [{"title": "Français", "payload": LANGUAGE_MENU_FR}]}
    await asyncio.gather(later.send_response(CONVERSATION, dict(message)), deliver_soon())
    await later.send_response(CONVERSATION, dict(message))  # the desk asks again

    [sent] = api.sent_to(CHAT_ID)
    assert sent.params["text"] == "A counsellor's answer"
    assert sent.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Français", "callback_data": LANGUAGE_MENU_FR}]]}
    assert records.is_sent(CHANNEL, "desk-9")


async def test_a_reply_not_yet_sent_is_not_confirmed(webhook, monkeypatch):
    from bot.channels import base

    monkeypatch.setattr(base, "CONFIRM_TIMEOUT_S", 0.2)
    later = webhook.channel.get_output_channel()

    with pytest.raises(base.NotYetSent):
        await later.send_response(CONVERSATION, {"text": "later", "reply_key": "desk-10"})


async def test_the_output_channel_refuses_another_channels_conversation(webhook):
    later = webhook.channel.get_output_channel()

    for other in ("whatsapp:36201234567", "web-0123", str(CHAT_ID)):
        with pytest.raises(ValueError, match="not a telegram conversation"):
            await later.send_response(other, {"text": "Hello"})
