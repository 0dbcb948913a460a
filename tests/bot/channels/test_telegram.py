"""The Telegram channel without Rasa: what each update becomes, the webhook's checks and
its once-only handling, and the sender against a fake Bot API over real HTTP."""
import asyncio
import copy
import logging
from types import SimpleNamespace

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import BotUttered
from rasa.shared.exceptions import RasaException
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User

from bot.channels.ledger import get_ledger
from bot.channels.telegram import (
    CHAT_INTERVAL_S,
    Inbound,
    TelegramInput,
    TelegramOutput,
    TelegramSender,
    TelegramSettings,
    inbound,
    inline_keyboard,
    language_hint,
    relay,
)
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "123456:TEST-TOKEN"
SECRET = "telegram-test-secret"
CHAT_ID = 5550001
LANGUAGE_MENU_FR = '/change_language{"language":"fr"}'

# Updates as Telegram sends them (ids and file ids changed).
TEXT_UPDATE = {
    "update_id": 731245001,
    "message": {
        "message_id": 12,
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Amina", "language_code": "en"},
        "chat": {"id": CHAT_ID, "first_name": "Amina", "type": "private"},
        "date": 1700000000,
        "text": "Hello",
    },
}
START_UPDATE = {
    "update_id": 731245002,
    "message": {
        "message_id": 1,
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Amina", "language_code": "ar"},
        "chat": {"id": CHAT_ID, "first_name": "Amina", "type": "private"},
        "date": 1700000000,
        "text": "/start",
        "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
    },
}
MEDIA = {
    "sticker": {
        "sticker": {
            "width": 512, "height": 512, "emoji": "\U0001F44D", "set_name": "HotCherry",
            "is_animated": False, "is_video": False, "type": "regular",
            "thumbnail": {"file_id": "AAMCAgADGQEAAgFj", "file_unique_id": "AQADYQADr8ZRGnI",
                          "file_size": 5416, "width": 128, "height": 128},
            "file_id": "CAACAgIAAxkBAAIBY2VhZ", "file_unique_id": "AgADYQADr8ZRGg",
            "file_size": 22000,
        }
    },
    "photo": {
        "photo": [
            {"file_id": "AgACAgQAAxkBAAIBZGVh1", "file_unique_id": "AQADq7ExG1",
             "file_size": 1260, "width": 90, "height": 67},
            {"file_id": "AgACAgQAAxkBAAIBZGVh2", "file_unique_id": "AQADq7ExG2",
             "file_size": 48213, "width": 1280, "height": 960},
        ],
        "caption": "my passport",
    },
    "voice": {
        "voice": {"duration": 2, "mime_type": "audio/ogg", "file_id": "AwACAgQAAxkBAAIBZWVh",
                  "file_unique_id": "AgADzxQAAm4", "file_size": 9817}
    },
    "location": {"location": {"latitude": 47.497913, "longitude": 19.040236}},
    "document": {
        "document": {"file_name": "passport.pdf", "mime_type": "application/pdf",
                     "file_id": "BQACAgQAAxkBAAIBZmVh", "file_unique_id": "AgADtQ",
                     "file_size": 48213}
    },
}
CALLBACK_UPDATE = {
    "update_id": 731245003,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Amina", "language_code": "pt-br"},
        "message": {
            "message_id": 13,
            "from": {"id": 123456, "is_bot": True, "first_name": "AVRR", "username": "avrr_bot"},
            "chat": {"id": CHAT_ID, "first_name": "Amina", "type": "private"},
            "date": 1700000005,
            "text": "Which language?",
            "reply_markup": {"inline_keyboard": [
                [{"text": "Français", "callback_data": LANGUAGE_MENU_FR}],
            ]},
        },
        "chat_instance": "-3217863513946329911",
        "data": LANGUAGE_MENU_FR,
    },
}


def media_update(kind: str, update_id: int = 731245010) -> dict:
    update = copy.deepcopy(TEXT_UPDATE)
    update["update_id"] = update_id
    del update["message"]["text"]
    update["message"].update(MEDIA[kind])
    return update


def text_update(text: str, update_id: int = 731245020) -> dict:
    update = copy.deepcopy(TEXT_UPDATE)
    update["update_id"] = update_id
    update["message"]["text"] = text
    return update


def parsed(data: dict) -> Update:
    return Update.de_json(copy.deepcopy(data), None)


# -- what an update becomes --


def test_a_text_message_is_its_text_with_the_language_hint():
    assert inbound(parsed(TEXT_UPDATE)) == Inbound(
        chat_id=str(CHAT_ID), text="Hello", metadata={"language_hint": "en"}
    )


def test_start_opens_the_language_menu_as_our_own_command():
    assert inbound(parsed(START_UPDATE)) == Inbound(
        str(CHAT_ID), "/change_language", {"language_hint": "ar"}, ours=True
    )


@pytest.mark.parametrize("start", ["/start", "/start campaign-7", "/start@avrr_bot"])
def test_start_with_a_parameter_or_the_bot_name_too(start):
    assert inbound(parsed(text_update(start))).text == "/change_language"


def test_other_typed_commands_stay_the_persons_text():
    assert inbound(parsed(text_update("/started"))) == Inbound(
        str(CHAT_ID), "/started", {"language_hint": "en"}
    )


@pytest.mark.parametrize("kind", sorted(MEDIA))
def test_anything_but_text_asks_for_text(kind):
    assert inbound(parsed(media_update(kind))) == Inbound(
        str(CHAT_ID), "/unsupported_media", {"language_hint": "en"}, ours=True
    )


def test_a_button_press_is_its_payload_and_names_the_query_to_answer():
    assert inbound(parsed(CALLBACK_UPDATE)) == Inbound(
        str(CHAT_ID), LANGUAGE_MENU_FR, {"language_hint": "pt"},
        callback_query_id="4382bfdwdsb323b2d9",
    )


def test_edits_channel_posts_and_groups_are_ignored():
    edited = {"update_id": 9, "edited_message": dict(TEXT_UPDATE["message"], edit_date=1700000100)}
    post = {"update_id": 10, "channel_post": {
        "message_id": 3, "chat": {"id": -1001234, "title": "News", "type": "channel"},
        "date": 1700000000, "text": "Hello"}}
    group = copy.deepcopy(TEXT_UPDATE)
    group["message"]["chat"] = {"id": -4001234, "title": "Friends", "type": "group"}

    assert [inbound(parsed(u)) for u in (edited, post, group)] == [None, None, None]


@pytest.mark.parametrize(
    "code, hint",
    [("en", {"language_hint": "en"}), ("pt-br", {"language_hint": "pt"}),
     ("AR", {"language_hint": "ar"}), ("zh-hans", {"language_hint": "zh"}),
     (None, {}), ("", {}), ("-", {}), ("x1", {})],
)
def test_language_hint_is_the_primary_language_in_lower_case(code, hint):
    assert language_hint(User(1, "Amina", False, language_code=code)) == hint


def test_no_user_no_hint():
    assert language_hint(None) == {}


# -- buttons --


def test_buttons_become_an_inline_keyboard_one_per_row():
    buttons = [{"title": "Français", "payload": LANGUAGE_MENU_FR},
               {"title": "Talk to a counsellor", "payload": "/request_human"}]

    assert inline_keyboard(buttons) == InlineKeyboardMarkup([
        [InlineKeyboardButton("Français", callback_data=LANGUAGE_MENU_FR)],
        [InlineKeyboardButton("Talk to a counsellor", callback_data="/request_human")],
    ])


def test_a_payload_over_64_bytes_is_left_out():
    arabic = "/inform{\"x\":\"" + "ع" * 26 + "\"}"  # 33 characters, 67 bytes
    buttons = [{"title": "A", "payload": "/" + "a" * 63}, {"title": "B", "payload": arabic},
               {"title": "C", "payload": "/" + "c" * 64}]

    assert inline_keyboard(buttons) == InlineKeyboardMarkup(
        [[InlineKeyboardButton("A", callback_data="/" + "a" * 63)]]
    )
    assert inline_keyboard(buttons[1:]) is None


# -- settings and the secret --


def env(**values):
    return {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, **values}


def test_settings_come_from_the_environment():
    assert TelegramSettings.from_env(env()) == TelegramSettings(
        TOKEN, SECRET, "https://api.telegram.org"
    )
    local = TelegramSettings.from_env(env(TELEGRAM_API_BASE_URL="http://127.0.0.1:8081/"))
    assert local.api_root == "http://127.0.0.1:8081"
    bot = local.new_bot()
    assert (bot.base_url, bot.base_file_url) == (
        f"http://127.0.0.1:8081/bot{TOKEN}", f"http://127.0.0.1:8081/file/bot{TOKEN}"
    )


@pytest.mark.parametrize(
    "values, reason",
    [({"TELEGRAM_WEBHOOK_SECRET": ""}, "TELEGRAM_WEBHOOK_SECRET is not set"),
     ({"TELEGRAM_BOT_TOKEN": ""}, "TELEGRAM_BOT_TOKEN is not set"),
     ({"TELEGRAM_WEBHOOK_SECRET": "has spaces"}, "must be 1-256 letters")],
)
def test_without_a_usable_secret_or_token_the_channel_does_not_start(values, reason):
    with pytest.raises(RasaException, match=reason):
        TelegramSettings.from_env(env(**values))


def test_from_credentials_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    with pytest.raises(RasaException, match="forged"):
        TelegramInput.from_credentials(None)

    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    channel = TelegramInput.from_credentials(None)
    assert channel.name() == "telegram" and channel.settings.webhook_secret == SECRET
    assert channel.get_output_channel().sender is channel.sender


@pytest.mark.parametrize(
    "header, accepted",
    [(SECRET, True), ("telegram-test-secreT", False), (SECRET + "x", False), ("", False),
     (None, False), ("t\u00e9l\u00e9gram", False)],
)
def test_only_the_webhook_secret_is_accepted(header, accepted):
    channel = TelegramInput(TelegramSettings(TOKEN, SECRET))
    assert channel.authentic(header) is accepted


# -- against the fake Bot API --


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
    return TelegramSettings(TOKEN, SECRET, api.url)


@pytest.fixture
async def channel(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("AVRR_CHANNEL_DB", str(tmp_path / "channels.db"))
    channel = TelegramInput(settings)
    yield channel
    await channel.sender.close()


@pytest.fixture
async def sender(settings):
    sender = TelegramSender(settings)
    yield sender
    await sender.close()


@pytest.mark.parametrize(
    "body", [[1, 2], "hello", {}, {"update_id": "1"}, {"update_id": 1, "message": "hi"},
             {"update_id": 1, "message": {"message_id": 1}}],
)
async def test_a_body_that_is_not_an_update_is_refused(channel, body):
    with pytest.raises(ValueError, match="the body must be a Telegram update"):
        await channel.parse(body)


async def test_an_update_is_parsed_with_the_bot(channel, api):
    update = await channel.parse(copy.deepcopy(TEXT_UPDATE))

    assert update.update_id == TEXT_UPDATE["update_id"] and update.message.text == "Hello"
    assert [c.method for c in api.calls] == ["getMe"]


async def test_messages_to_one_chat_go_in_order_one_per_second(sender, api):
    first = [sender.send("101", text) for text in ("one", "two", "three")]
    other = sender.send("202", "elsewhere")

    assert await asyncio.gather(*first, other) == [True] * 4
    to_101 = api.sent_to(101)
    assert [c.params["text"] for c in to_101] == ["one", "two", "three"]
    gaps = [b.at - a.at for a, b in zip(to_101, to_101[1:], strict=False)]
    assert min(gaps) >= CHAT_INTERVAL_S * 0.95
    # Another chat does not wait for the first one's pace.
    assert api.sent_to(202)[0].at < to_101[1].at


async def test_a_429_is_waited_out_and_the_message_delivered_once(sender, api):
    api.fail_next("sendMessage", retry_after=1)

    assert await sender.send("303", "after the flood") is True

    refused, sent = api.refused.snapshot(), api.sent_to(303)
    assert [c.params["text"] for c in refused] == ["after the flood"]
    assert [c.params["text"] for c in sent] == ["after the flood", "after the flood"]
    assert sent[1].at - sent[0].at >= 0.95
    await asyncio.sleep(CHAT_INTERVAL_S + 0.2)
    assert len(api.sent_to(303)) == 2


async def test_a_message_that_cannot_be_delivered_is_logged_without_its_text(
    settings, api, caplog
):
    sender = TelegramSender(settings, max_attempts=2)
    for _ in range(2):
        api.fail_next("sendMessage", retry_after=1)
    try:
        with caplog.at_level(logging.INFO, logger="bot.channels.telegram"):
            assert await sender.send("404", "secret words") is False
    finally:
        await sender.close()

    assert len(api.refused) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Telegram message not delivered: RetryAfter"]
    assert not any("secret words" in m or "404" in m for m in caplog.messages)


async def test_the_output_channel_sends_buttons_and_splits_long_text(settings, api):
    sender = TelegramSender(settings, chat_interval_s=0.05)
    output = TelegramOutput(sender)
    try:
        await output.send_text_with_buttons(
            "505", "x" * 4100,
            [{"title": "Français", "payload": LANGUAGE_MENU_FR},
             {"title": "Too long", "payload": "/" + "z" * 70}],
        )
        await output.send_text_message("505", "  plain  ")
        sent = await asyncio.to_thread(api.wait_for, "sendMessage", 3, 10, chat_id=505)
    finally:
        await sender.close()

    assert [(len(c.params["text"]), c.params.get("reply_markup")) for c in sent] == [
        (4096, None),
        (4, {"inline_keyboard": [[{"text": "Français", "callback_data": LANGUAGE_MENU_FR}]]}),
        (5, None),
    ]


# -- the webhook's handling: once, recorded, then answered --


class Rasa:
    """Rasa's on_new_message: records the message and answers through the collector."""

    def __init__(self, fail: int = 0, delay: float = 0.0) -> None:
        self.messages = []
        self.fail = fail
        self.delay = delay

    async def __call__(self, message: UserMessage) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise RuntimeError(f"database is locked: {message.sender_id}")
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, "Hi!\n\nAsk me.")


def request_with(events=()):
    """A Sanic request as `disarm` reads it: the tracker store of the agent."""

    async def retrieve(sender_id):
        return SimpleNamespace(events=list(events))

    store = SimpleNamespace(retrieve=retrieve)
    return SimpleNamespace(app=SimpleNamespace(ctx=SimpleNamespace(
        agent=SimpleNamespace(tracker_store=store))))


async def test_a_message_is_handed_to_rasa_and_its_replies_returned(channel):
    rasa = Rasa()

    status, replies = await channel.handle(request_with(), parsed(TEXT_UPDATE), rasa)

    assert status == 200
    assert [(m.text, m.sender_id, m.input_channel, m.metadata) for m in rasa.messages] == [
        ("Hello", str(CHAT_ID), "telegram", {"language_hint": "en"})
    ]
    assert replies == [{"recipient_id": str(CHAT_ID), "text": "Hi!"},
                       {"recipient_id": str(CHAT_ID), "text": "Ask me."}]
    assert get_ledger().last_wrote("telegram", str(CHAT_ID)) is not None


async def test_a_redelivered_update_is_handled_once(channel):
    rasa = Rasa()
    await channel.handle(request_with(), parsed(TEXT_UPDATE), rasa)

    assert await channel.handle(request_with(), parsed(TEXT_UPDATE), rasa) == (200, [])
    assert len(rasa.messages) == 1


async def test_concurrent_deliveries_of_one_update_are_handled_once(channel):
    rasa = Rasa(delay=0.2)

    results = await asyncio.gather(
        *(channel.handle(request_with(), parsed(TEXT_UPDATE), rasa) for _ in range(3))
    )

    assert sorted(status for status, _ in results) == [200, 200, 200]
    assert sorted(len(replies) for _, replies in results) == [0, 0, 2]
    assert len(rasa.messages) == 1


async def test_a_failure_is_a_503_and_the_redelivery_is_handled(channel, caplog):
    rasa = Rasa(fail=1)

    with caplog.at_level(logging.INFO):
        assert await channel.handle(request_with(), parsed(TEXT_UPDATE), rasa) == (503, [])
    assert str(CHAT_ID) not in caplog.text and "Hello" not in caplog.text

    status, replies = await channel.handle(request_with(), parsed(TEXT_UPDATE), rasa)
    assert (status, len(replies), len(rasa.messages)) == (200, 2, 1)


async def test_a_typed_command_is_disarmed_but_ours_are_not(channel):
    rasa = Rasa()
    typed = text_update('/inform{"elig_situation":"asylum"}', update_id=41)

    for update in (typed, START_UPDATE, media_update("sticker", update_id=42)):
        await channel.handle(request_with(), parsed(update), rasa)

    assert [(m.text, m.metadata) for m in rasa.messages] == [
        ('inform{"elig_situation":"asylum"}', {"language_hint": "en"}),
        ("/change_language", {"language_hint": "ar"}),
        ("/unsupported_media", {"language_hint": "en"}),
    ]


async def test_a_button_press_is_answered_and_its_offered_payload_passes(channel, api):
    rasa = Rasa()
    menu = BotUttered("Which language?", {"buttons": [
        {"title": "Français", "payload": LANGUAGE_MENU_FR}]})
    pressed = copy.deepcopy(CALLBACK_UPDATE)
    pressed["callback_query"]["data"] = '/inform{"elig_situation":"asylum"}'
    menu_with_it = BotUttered("Your situation?", {"buttons": [
        {"title": "Asylum", "payload": '/inform{"elig_situation":"asylum"}'}]})

    await channel.handle(request_with([menu_with_it]), parsed(pressed), rasa)
    pressed["update_id"] += 1
    await channel.handle(request_with([menu]), parsed(pressed), rasa)

    assert [m.text for m in rasa.messages] == [
        '/inform{"elig_situation":"asylum"}',  # offered: passes
        'inform{"elig_situation":"asylum"}',  # not offered: read as words
    ]
    answered = [c.params for c in api.calls if c.method == "answerCallbackQuery"]
    assert answered == [{"callback_query_id": "4382bfdwdsb323b2d9"}] * 2


async def test_updates_without_a_message_for_us_are_acknowledged_and_not_recorded(channel):
    rasa = Rasa()
    edited = {"update_id": 51, "edited_message": dict(TEXT_UPDATE["message"], edit_date=1)}
    blank = text_update("\u0000 \u0007", update_id=52)

    for update in (edited, blank):
        assert await channel.handle(request_with(), parsed(update), rasa) == (200, [])
    assert rasa.messages == []
    assert get_ledger().claim("telegram", "51") and get_ledger().claim("telegram", "52")


# -- polling mode --


async def test_polling_moves_past_an_update_only_once_rasa_took_it(settings, api):
    api.push_update(copy.deepcopy(TEXT_UPDATE))
    statuses, forwarded = [503, 200], []

    async def post(update):
        forwarded.append(update)
        return statuses.pop(0)

    async with settings.new_bot() as bot:
        offset = await relay(bot, post, None, poll_timeout_s=0, retry_delay_s=0)
        assert offset is None
        offset = await relay(bot, post, offset, poll_timeout_s=0, retry_delay_s=0)
        assert offset == TEXT_UPDATE["update_id"] + 1
        assert await relay(bot, post, offset, poll_timeout_s=0, retry_delay_s=0) == offset

    assert len(forwarded) == 2
    assert all(Update.de_json(u, None).to_dict() == parsed(TEXT_UPDATE).to_dict()
               for u in forwarded)
    assert forwarded[0]["message"]["from"]["language_code"] == "en"
