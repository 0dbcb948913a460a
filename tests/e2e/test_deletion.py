"""After "delete my data", on every channel: the person was told the truth, and no row of
any table of any store names them (conversations, channel records, the outbox, the desk)."""
import sqlite3
import uuid
from contextlib import closing

import requests

from tests.assistant import CHANNEL_ENV
from tests.fakes.graph_api import encode, message_payload, signed

DONE = "Done: this conversation and everything stored about it are deleted."
STORES = ("conversations.db", "channels.db", "outbox.db", "desk.db")


def rows_naming(data_dir, *needles):
    """(store, table) of every row, in every table of every store, that holds a needle."""
    found = []
    for store in STORES:
        with closing(sqlite3.connect(data_dir / store)) as db:
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - our tables
                    text = " ".join(str(value) for value in row)
                    if any(needle in text for needle in needles):
                        found.append((store, table))
    return found


def with_a_ticket(say, marker):
    """A conversation with personal words and an open ticket at the desk."""
    say(f"my name is {marker}, I need help")
    say("I want to talk to a counsellor")
    say("/affirm")
    say(f"{marker} writes again during the handoff")


def test_rest_deletion_leaves_no_row_naming_the_person(assistant, desk):
    marker = f"Zor{uuid.uuid4().hex[:8]}"
    sender = f"del-{uuid.uuid4().hex[:10]}"
    with_a_ticket(lambda text: assistant.say(sender, text), marker)
    assert rows_naming(assistant.data_dir, marker, sender)
    desk.open_ticket_of(sender)

    assistant.say(sender, "delete my data")
    done = assistant.say(sender, "/affirm")

    assert done[0][0].startswith(DONE)
    assert rows_naming(assistant.data_dir, marker, sender) == []


def test_a_typed_yes_the_classifier_is_unsure_of_deletes_nothing_and_asks_again(assistant):
    marker = f"Zor{uuid.uuid4().hex[:8]}"
    sender = f"del-{uuid.uuid4().hex[:10]}"
    assistant.say(sender, f"my name is {marker}, I need help")
    question = assistant.say(sender, "delete my data")

    again = assistant.say(sender, "what?")

    taken_for = assistant.tracker(sender)["latest_message"]["intent"]
    assert taken_for["name"] == "affirm" and taken_for["confidence"] < 0.5, taken_for
    assert again == question
    assert rows_naming(assistant.data_dir, marker, sender)
    assert assistant.say(sender, "/affirm")[0][0].startswith(DONE)
    assert rows_naming(assistant.data_dir, marker, sender) == []


def test_web_chat_deletion_leaves_no_row_naming_the_person(assistant, web_chat, desk):
    marker = f"Zor{uuid.uuid4().hex[:8]}"
    chat = web_chat()
    with_a_ticket(chat.say_and_wait, marker)
    desk.open_ticket_of(chat.session_id)

    chat.say_and_wait("delete my data")
    assert chat.forgotten.empty()  # asked, not yet confirmed
    done = chat.say_and_wait("/affirm")

    assert done[0]["text"].startswith(DONE)
    assert rows_naming(assistant.data_dir, marker, chat.session_id) == []
    # The session ends, as after "End and forget": the widget drops its id and secret.
    forgotten = chat.forgotten.get(timeout=10)
    assert forgotten["deleted"] is True and forgotten["text"].startswith(DONE)


def telegram_say(assistant, chat_id, text):
    update = {
        "update_id": uuid.uuid4().int % 2**31,
        "message": {"message_id": 1, "date": 1700000000, "text": text,
                    "from": {"id": chat_id, "is_bot": False, "first_name": "A"},
                    "chat": {"id": chat_id, "first_name": "A", "type": "private"}},
    }
    reply = requests.post(f"{assistant.url}/webhooks/telegram/webhook", json=update, timeout=30,
                          headers={"X-Telegram-Bot-Api-Secret-Token":
                                   CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"]})
    assert reply.status_code == 200, reply.text
    assistant.drained(f"telegram:{chat_id}")


def test_telegram_deletion_leaves_no_row_naming_the_person(assistant, telegram_api, desk):
    marker = f"Zor{uuid.uuid4().hex[:8]}"
    chat_id = 10**9 + uuid.uuid4().int % 10**8
    with_a_ticket(lambda text: telegram_say(assistant, chat_id, text), marker)
    desk.open_ticket_of(f"telegram:{chat_id}")

    telegram_say(assistant, chat_id, "delete my data")
    telegram_say(assistant, chat_id, "/affirm")

    assert telegram_api.sent_to(chat_id)[-1].params["text"].startswith(DONE)
    assert rows_naming(assistant.data_dir, marker, str(chat_id)) == []


def whatsapp_say(assistant, wa_id, text):
    body = encode(message_payload(wa_id, text))
    reply = requests.post(
        f"{assistant.url}/webhooks/whatsapp/webhook", data=body, timeout=30,
        headers={"Content-Type": "application/json",
                 "X-Hub-Signature-256": signed(body, CHANNEL_ENV["WHATSAPP_APP_SECRET"])})
    assert reply.status_code == 200, reply.text
    assistant.drained(f"whatsapp:{wa_id}")


def test_whatsapp_deletion_confirms_in_the_window_and_keeps_nothing(assistant, graph_api, desk):
    marker = f"Zor{uuid.uuid4().hex[:8]}"
    wa_id = "36" + str(10**9 + uuid.uuid4().int % (9 * 10**9))
    with_a_ticket(lambda text: whatsapp_say(assistant, wa_id, text), marker)
    desk.open_ticket_of(f"whatsapp:{wa_id}")

    whatsapp_say(assistant, wa_id, "delete my data")
    whatsapp_say(assistant, wa_id, "/affirm")

    last = graph_api.sent_to(wa_id)[-1]
    assert last["type"] == "text" and last["text"]["body"].startswith(DONE)
    assert all(m["type"] != "template" for m in graph_api.sent_to(wa_id))
    assert rows_naming(assistant.data_dir, marker, wa_id) == []
