"""What each update asks of the assistant, and how a reply looks on Telegram. Pure."""
import copy

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, User

from bot.channels.telegram.updates import (
    Inbound,
    hint_of,
    inbound,
    inline_keyboard,
    render,
)
from tests.bot.channels.telegram.updates import (
    CALLBACK_UPDATE,
    CHAT_ID,
    LANGUAGE_MENU_FR,
    MEDIA,
    START_UPDATE,
    TEXT_UPDATE,
    media_update,
    parsed,
    text_update,
)

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


@pytest.mark.parametrize("text", [12345, ["Hello"], {"text": "Hello"}])
def test_a_text_that_is_no_text_asks_for_text(text):
    """Not Telegram's, but signed with the secret: it was a 503, delivered again for ever."""
    update = text_update("Hello")
    update["message"]["text"] = text
    assert inbound(parsed(update)) == Inbound(
        str(CHAT_ID), "/unsupported_media", {"language_hint": "en"}, ours=True
    )


def test_a_button_press_whose_data_is_no_text_is_an_empty_message():
    update = copy.deepcopy(CALLBACK_UPDATE)
    update["callback_query"]["data"] = 42
    assert inbound(parsed(update)).text == ""


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
    assert hint_of(User(1, "Amina", False, language_code=code)) == hint


def test_no_user_no_hint():
    assert hint_of(None) == {}


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




def test_a_reply_is_its_text_with_the_buttons_on_the_last_part():
    buttons = [{"title": "Français", "payload": LANGUAGE_MENU_FR},
               {"title": "Too long", "payload": "/" + "z" * 70}]

    assert render({"text": "x" * 4100, "buttons": buttons}) == [
        {"text": "x" * 4096},
        {"text": "xxxx", "reply_markup": {
            "inline_keyboard": [[{"text": "Français", "callback_data": LANGUAGE_MENU_FR}]]}},
    ]
    assert render({"text": "  plain  "}) == [{"text": "plain"}]
    assert render({"text": "   "}) == []
    assert render({"image": "https://example.org/a.png"}) == []
