"""The REST channel refuses bad input clearly, keeps secrets out of logs, and never
pretends a message was stored when it was not."""
import json
import sqlite3
import uuid

import pytest
import requests

WEBHOOK = "/webhooks/rest/webhook"
SENDER_RULE = "'sender' must be 1 to 128 letters, digits or _.:@+=- characters"
NOT_AN_OBJECT = 'the body must be a JSON object: {"sender": ..., "message": ...}'


@pytest.mark.parametrize(
    "body, status, error",
    [
        (b"{not json", 400, "the body must be JSON"),
        (b"[1, 2]", 400, NOT_AN_OBJECT),
        (b'"hello"', 400, NOT_AN_OBJECT),
        (b'{"message": "hi"}', 400, SENDER_RULE),
        (b'{"sender": "a b", "message": "hi"}', 400, SENDER_RULE),
        (b'{"sender": "x"}', 400, "'message' must be a string"),
        (b'{"sender": "x", "message": ""}', 400, "'message' is empty"),
        (b'{"sender": "x", "message": "   \\n\\t "}', 400, "'message' is empty"),
        (b'{"sender": "x", "message": "\\u0000\\u0007"}', 400, "'message' is empty"),
        (b'{"sender": "x", "message": ["hi"]}', 400, "'message' must be a string"),
        (b'{"sender": "x", "message": "' + b"a" * 20000 + b'"}', 413,
         "'message' is longer than 4096 characters"),
    ],
)
def test_bad_requests_get_a_clear_4xx(assistant, body, status, error):
    reply = requests.post(
        assistant.url + WEBHOOK, data=body, headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert (reply.status_code, reply.json()) == (status, {"error": error})


@pytest.mark.parametrize("text", ["😀😀😀", "hi\u0001\u0002 there", "?!?!", "1", "a" * 4096])
def test_odd_but_valid_messages_get_a_reply(assistant, text):
    reply = assistant.post({"sender": f"odd-{uuid.uuid4().hex}", "message": text})

    assert reply.status_code == 200
    assert reply.json() and all(m["text"] for m in reply.json())


def test_half_an_emoji_does_not_stop_a_later_handoff(assistant, desk):
    sender = f"half-{uuid.uuid4().hex[:10]}"
    body = json.dumps({"sender": sender, "message": "cost \ud83d"})  # a lone surrogate
    first = requests.post(assistant.url + "/webhooks/rest/webhook", data=body.encode(),
                          headers={"Content-Type": "application/json"}, timeout=60)
    assert first.status_code == 200

    offer = assistant.say(sender, "I want to talk to a human counsellor")
    assert offer[-1][1] == ["/affirm", "/deny"]
    assistant.say(sender, "/affirm")

    ticket = desk.open_ticket_of(sender)
    messages = desk.api("GET", f"/api/tickets/{ticket['id']}").json()["messages"]
    assert "cost \ufffd" in [m["text"] for m in messages]


def test_message_text_never_reaches_the_logs(assistant):
    marker = f"Zorana{uuid.uuid4().hex[:8]}"
    sender = f"log-{uuid.uuid4().hex}"
    assistant.say(sender, f"my name is {marker}, i am afraid to go back")
    assistant.say(sender, f"/{marker}")
    assistant.post({"sender": sender, "message": f"{marker} " * 2000})

    log = assistant.log.read_text()
    assert "Starting Rasa server" in log
    assert marker not in log


def test_a_storage_failure_is_a_503_not_a_lost_message(assistant):
    sender = f"store-{uuid.uuid4().hex}"
    with sqlite3.connect(assistant.db) as db:
        db.execute("ALTER TABLE events RENAME TO events_away")
    try:
        reply = assistant.post({"sender": sender, "message": "hello"})
        # The database error quotes the query's parameters: the log must not.
        assert sender not in assistant.log.read_text()
        assert reply.status_code == 503
        assert reply.json() == {"error": "the message could not be processed, please send it again"}
    finally:
        with sqlite3.connect(assistant.db) as db:
            db.execute("ALTER TABLE events_away RENAME TO events")

    # The client sends it again and this time it is answered and stored.
    assert assistant.post({"sender": sender, "message": "hello"}).status_code == 200
    with sqlite3.connect(assistant.db) as db:
        users = db.execute(
            "SELECT count(*) FROM events WHERE sender_id = ? AND type_name = 'user'", (sender,)
        ).fetchone()[0]
    assert users == 1
