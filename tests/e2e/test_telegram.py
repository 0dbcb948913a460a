"""Telegram end to end: updates posted to the real assistant as Telegram posts them, and
the replies read where the assistant sends them, the fake Bot API (`telegram_api`)."""
import copy
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from actions.content import get_content
from avrr.vocabulary import CODES

WEBHOOK = "/webhooks/telegram/webhook"
SECRET = "telegram-test-secret"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ARABIC_LETTERS = re.compile("[\u0621-\u064a]")
TIMEOUT_S = 15


def new_id() -> int:
    """A chat or update id no earlier run has used (the channel ledger outlives runs)."""
    return 10**9 + uuid.uuid4().int % 2**31


def person(chat_id: int, language_code=None) -> dict:
    user = {"id": chat_id, "is_bot": False, "first_name": "Amina"}
    return dict(user, language_code=language_code) if language_code else user


def message_update(chat_id: int, language_code="en", **content) -> dict:
    return {
        "update_id": new_id(),
        "message": {
            "message_id": 1 + uuid.uuid4().int % 1000,
            "from": person(chat_id, language_code),
            "chat": {"id": chat_id, "first_name": "Amina", "type": "private"},
            "date": int(time.time()),
            **content,
        },
    }


def post(assistant, update: dict, secret=SECRET) -> requests.Response:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return requests.post(assistant.url + WEBHOOK, json=update, headers=headers, timeout=30)


def first_text(key: str, language: str) -> str:
    return get_content().replies(key, language)[0].text


def sent(telegram_api, chat_id: int):
    """What the assistant sent to the chat: (text, [callback data of each button row])."""
    return [
        (
            c.params["text"],
            [row[0]["callback_data"]
             for row in (c.params.get("reply_markup") or {}).get("inline_keyboard", [])],
        )
        for c in telegram_api.sent_to(chat_id)
    ]


def recorded(tracker: dict):
    """The bot's messages in the tracker, as the channel sends them: a message without
    buttons goes paragraph by paragraph (Rasa's collector splits it)."""
    messages = []
    for event in tracker["events"]:
        if event["event"] != "bot" or not event.get("text"):
            continue
        buttons = [b["payload"] for b in (event.get("data") or {}).get("buttons") or []]
        if buttons:
            messages.append((event["text"], buttons))
        else:
            messages += [(part, []) for part in event["text"].strip().split("\n\n")]
    return messages


def user_texts(tracker: dict):
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


def conversation(chat_id: int) -> str:
    return f"telegram:{chat_id}"


def replies(assistant, telegram_api, chat_id: int):
    """All replies sent to the chat once its send queue is empty: exactly those recorded."""
    assistant.drained(conversation(chat_id))
    got = sent(telegram_api, chat_id)
    assert got == recorded(assistant.tracker(conversation(chat_id))), (
        "the replies sent differ from the ones recorded")
    return got


def test_a_greeting_is_answered_in_english(assistant, telegram_api):
    chat_id = new_id()

    reply = post(assistant, message_update(chat_id, text="Hello"))

    assert (reply.status_code, reply.json()) == (200, {"ok": True})
    messages = replies(assistant, telegram_api, chat_id)
    assert messages[0][0].startswith("Hello! I am the IOM Hungary assistant")
    assert any(buttons for _, buttons in messages)
    tracker = assistant.tracker(conversation(chat_id))
    assert user_texts(tracker) == ["Hello"]
    assert tracker["latest_input_channel"] == "telegram"


def test_a_first_hello_is_answered_in_the_language_of_the_persons_telegram(
    assistant, telegram_api,
):
    """"hello" is a word of every language: the app's language tells, and no menu asks."""
    chat_id = new_id()

    assert post(assistant, message_update(chat_id, language_code="fa", text="hello")
                ).status_code == 200

    messages = replies(assistant, telegram_api, chat_id)
    assert [text for text, _ in messages] == [r.text for r in get_content().replies("greet", "fa")]
    assert assistant.tracker(conversation(chat_id))["slots"]["language"] == "fa"


def test_arabic_is_answered_in_arabic_without_a_telegram_language(assistant, telegram_api):
    chat_id = new_id()
    update = message_update(chat_id, language_code=None, text="مرحبا، هل يمكنني العودة إلى بلدي؟")

    assert post(assistant, update).status_code == 200

    messages = replies(assistant, telegram_api, chat_id)
    assert all(ARABIC_LETTERS.search(text) for text, _ in messages)
    assert assistant.tracker(conversation(chat_id))["slots"]["language"] == "ar"


def test_a_message_that_grows_past_what_we_read_is_answered_from_its_beginning(
    assistant, telegram_api,
):
    chat_id = new_id()
    # 1,500 characters Telegram takes; each is three once composed (NFC): 4,500.
    text = "\ufb2c" * 1500

    assert post(assistant, message_update(chat_id, text=text)).status_code == 200

    assert replies(assistant, telegram_api, chat_id)  # answered, not dropped
    [read] = user_texts(assistant.tracker(conversation(chat_id)))
    assert len(read) == 4096


def test_a_forged_update_is_refused_and_leaves_no_trace(assistant, telegram_api):
    chat_id = new_id()
    update = message_update(chat_id, text="Hello")

    for secret in ("not-the-secret", None, ""):
        reply = post(assistant, update, secret=secret)
        assert reply.status_code == 403
        assert reply.json() == {"error": "the secret token is wrong or missing"}

    assert assistant.queued(conversation(chat_id)) == 0
    assert sent(telegram_api, chat_id) == []
    assert user_texts(assistant.tracker(conversation(chat_id))) == []
    # Nothing was claimed either: Telegram's own delivery of that update is handled.
    assert post(assistant, update).status_code == 200
    assert replies(assistant, telegram_api, chat_id)


def test_an_update_is_handled_once_however_often_it_arrives(assistant, telegram_api):
    chat_id = new_id()
    update = message_update(chat_id, text="how much does the return cost?")

    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: post(assistant, update), range(3))]
    # One is handled; one that arrives while it is in hand is a 503 (Telegram delivers it
    # again later); one that arrives after it is done is a 200.
    assert 200 in statuses and set(statuses) <= {200, 503}
    assert post(assistant, copy.deepcopy(update)).status_code == 200  # Telegram's retry
    first = replies(assistant, telegram_api, chat_id)

    assert post(assistant, copy.deepcopy(update)).status_code == 200  # a late redelivery
    assistant.drained(conversation(chat_id))
    assert sent(telegram_api, chat_id) == first
    said = user_texts(assistant.tracker(conversation(chat_id)))
    assert said == ["how much does the return cost?"]


def test_a_sticker_gets_one_reply_asking_for_text(assistant, telegram_api):
    chat_id = new_id()
    sticker = {
        "width": 512, "height": 512, "emoji": "\U0001F44D", "set_name": "HotCherry",
        "is_animated": False, "is_video": False, "type": "regular",
        "file_id": "CAACAgIAAxkBAAIBY2VhZ", "file_unique_id": "AgADYQADr8ZRGg", "file_size": 22000,
    }

    assert post(assistant, message_update(chat_id, sticker=sticker)).status_code == 200

    messages = replies(assistant, telegram_api, chat_id)
    assert len(messages) == 1
    assert messages[0][0].startswith("Sorry, I can only read text messages")
    assert messages[0][0] == first_text("unsupported_media", "en")


def test_start_shows_the_language_menu_and_a_press_switches_to_french(
    assistant, telegram_api
):
    chat_id = new_id()
    start = message_update(
        chat_id, text="/start", entities=[{"offset": 0, "length": 6, "type": "bot_command"}]
    )

    assert post(assistant, start).status_code == 200

    menu = [m for m in replies(assistant, telegram_api, chat_id) if m[1]][-1]
    assert len(menu[1]) == 12
    codes = {re.fullmatch(r'/change_language\{"language":"([a-z]{2})"\}', p).group(1)
             for p in menu[1]}
    assert codes == set(CODES)

    query_id = uuid.uuid4().hex
    french = '/change_language{"language":"fr"}'
    press = {
        "update_id": new_id(),
        "callback_query": {
            "id": query_id,
            "from": person(chat_id, "en"),
            "message": {
                "message_id": 2,
                "from": {"id": 123456, "is_bot": True, "first_name": "AVRR test bot",
                         "username": "avrr_test_bot"},
                "chat": {"id": chat_id, "first_name": "Amina", "type": "private"},
                "date": int(time.time()),
                "text": menu[0],
                "reply_markup": {"inline_keyboard": [
                    [{"text": p.split('"')[3], "callback_data": p}] for p in menu[1]
                ]},
            },
            "chat_instance": "-3217863513946329911",
            "data": french,
        },
    }
    before = len(sent(telegram_api, chat_id))

    assert post(assistant, press).status_code == 200

    answered = [c.params for c in telegram_api.calls if c.method == "answerCallbackQuery"]
    assert [a for a in answered if a.get("callback_query_id") == query_id] == [
        {"callback_query_id": query_id}
    ]
    after = replies(assistant, telegram_api, chat_id)[before:]
    assert after[0][0] == first_text("language_changed", "fr")
    tracker = assistant.tracker(conversation(chat_id))
    assert tracker["slots"]["language"] == "fr"
    assert user_texts(tracker)[-1] == french


def test_a_counsellor_reply_telegram_has_not_confirmed_yet_is_a_503_then_arrives(
    assistant, telegram_api
):
    """Rasa's API waits 10 s for the platform: Telegram says "retry after 12 s", so the
    desk gets a 503 to retry (not a 500), and the reply still goes out, once."""
    chat = new_id()
    assert post(assistant, message_update(chat, text="hello")).status_code == 200
    assistant.drained(f"telegram:{chat}")
    replies = len(telegram_api.sent_to(chat))
    telegram_api.fail_next("sendMessage", retry_after=12)

    answer = assistant.api(
        "POST", f"/conversations/telegram:{chat}/tracker/events",
        params={"output_channel": "latest", "execute_side_effects": "true"},
        json={"event": "bot", "text": "A counsellor is here.",
              "metadata": {"counsellor": True, "reply_key": f"probe-{chat}"}},
    )

    assert answer.status_code == 503, answer.text
    assert answer.json()["reason"] == "NotYetSent"
    calls = telegram_api.wait_for("sendMessage", replies + 2, chat_id=chat, timeout=30)
    assert [c.params["text"] for c in calls[replies:]] == ["A counsellor is here."] * 2
    assert len(telegram_api.refused) >= 1  # the first of the two was refused with 429
    assistant.drained(f"telegram:{chat}")


def test_a_counsellor_reply_to_a_person_who_blocked_the_bot_is_a_410_once_and_for_all(
    assistant, telegram_api
):
    """Telegram refuses it for good (403): the desk was told "not yet" (a 500) for ever and
    offered it again and again; now Rasa's API says 410, at once when offered again."""
    chat = new_id()
    assert post(assistant, message_update(chat, text="hello")).status_code == 200
    assistant.drained(f"telegram:{chat}")
    telegram_api.blocked.add(str(chat))
    tried = len(telegram_api.sent_to(chat))

    def offer():
        return assistant.api(
            "POST", f"/conversations/telegram:{chat}/tracker/events",
            params={"output_channel": "latest", "execute_side_effects": "true"},
            json={"event": "bot", "text": "A counsellor is here.",
                  "metadata": {"counsellor": True, "reply_key": f"blocked-{chat}"}},
        )

    for _ in range(2):
        answer = offer()
        assert (answer.status_code, answer.json()["reason"]) == (410, "Undeliverable")
    assert len(telegram_api.sent_to(chat)) == tried + 1  # refused once, not tried again
    assistant.drained(f"telegram:{chat}")
