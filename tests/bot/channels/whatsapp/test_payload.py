"""What Meta's webhook sends, checked and parsed: signatures, messages, statuses."""
import time
from typing import Any, Callable, Dict

import pytest

from bot.channels.whatsapp.payload import (
    CHOICE,
    IGNORED,
    MEDIA,
    TEXT,
    InvalidPayload,
    parse_webhook,
    signature_ok,
    verify_challenge,
)
from tests.fakes.graph_api import (
    PHONE_NUMBER_ID,
    button_reply_payload,
    encode,
    image_payload,
    list_reply_payload,
    location_payload,
    message_payload,
    reaction_payload,
    signed,
    status_payload,
)

SECRET = "wa-test-secret"
VERIFY = "wa-verify-token"

BODY = encode(message_payload("36201234567", "Hello"))


def test_a_signature_of_the_raw_body_with_the_app_secret_is_accepted():
    assert signature_ok(SECRET, BODY, signed(BODY, SECRET))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        signed(BODY, "another-secret"),
        signed(BODY + b" ", SECRET),
        signed(BODY, SECRET)[len("sha256="):],
        signed(BODY, SECRET).replace("sha256=", "sha1="),
        "sha256=ünïcode",
    ],
    ids=["missing", "empty", "wrong-secret", "other-body", "no-prefix", "sha1", "non-ascii"],
)
def test_any_other_signature_is_refused(header):
    assert not signature_ok(SECRET, BODY, header)


def test_a_body_altered_after_signing_is_refused():
    header = signed(BODY, SECRET)
    altered = BODY.replace(b"Hello", b"Hellp")

    assert not signature_ok(SECRET, altered, header)


def test_the_verify_handshake_needs_the_verify_token():
    asked = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}

    assert verify_challenge(VERIFY, asked) == "1158201444"
    assert verify_challenge(VERIFY, dict(asked, **{"hub.verify_token": "guess"})) is None
    assert verify_challenge(VERIFY, dict(asked, **{"hub.mode": "unsubscribe"})) is None
    unasked = {k: v for k, v in asked.items() if k != "hub.challenge"}
    assert verify_challenge(VERIFY, unasked) is None


# -- what each message becomes --


def only_message(payload: Dict[str, Any]):
    webhook = parse_webhook(payload, PHONE_NUMBER_ID)
    assert len(webhook.messages) == 1 and webhook.statuses == []
    return webhook.messages[0]


def test_a_text_message_is_its_text_from_the_persons_wa_id():
    message = only_message(message_payload("36201234567", "Hello", message_id="wamid.A1"))

    assert (message.kind, message.text, message.wa_id, message.message_id) == (
        TEXT, "Hello", "36201234567", "wamid.A1"
    )
    assert abs(message.at - time.time()) < 5


def test_a_reply_button_is_its_id_with_the_title_it_showed():
    message = only_message(button_reply_payload("361", "/ask_cost", "Does it cost money?"))

    assert (message.kind, message.text, message.title) == (
        CHOICE, "/ask_cost", "Does it cost money?"
    )


def test_a_list_row_is_its_id_and_a_shortened_title_reads_as_the_full_one():
    short = only_message(list_reply_payload("361", "/ask_cost", "Ücretli mi?"))
    long = only_message(
        list_reply_payload("361", "/ask_process", "How do I apply for the…",
                           description="How do I apply for the programme?")
    )

    assert (short.kind, short.text, short.title) == (CHOICE, "/ask_cost", "Ücretli mi?")
    assert (long.text, long.title) == ("/ask_process", "How do I apply for the programme?")


def test_a_template_quick_reply_is_its_payload():
    content = {"text": "Reply", "payload": "/greet"}
    message = only_message(message_payload("361", kind="button", content=content))

    assert (message.kind, message.text, message.title) == (CHOICE, "/greet", "Reply")


@pytest.mark.parametrize(
    "payload",
    [
        image_payload("361"),
        location_payload("361"),
        message_payload("361", kind="audio", content={"id": "1", "mime_type": "audio/ogg"}),
        message_payload("361", kind="sticker", content={"id": "1", "animated": False}),
        message_payload("361", kind="document", content={"id": "1", "filename": "a.pdf"}),
        message_payload("361", kind="contacts", content=[{"name": {"formatted_name": "A"}}]),
        message_payload("361", kind="unsupported", content={}),
    ],
    ids=["image", "location", "audio", "sticker", "document", "contacts", "unsupported"],
)
def test_anything_but_text_or_a_button_asks_for_text(payload):
    assert only_message(payload).kind == MEDIA


@pytest.mark.parametrize(
    "payload",
    [
        reaction_payload("361", "wamid.X"),
        message_payload("361", kind="system", content={"body": "changed number", "type": "x"}),
        message_payload("361", kind="request_welcome", content={}),
    ],
    ids=["reaction", "system", "request_welcome"],
)
def test_reactions_and_notices_are_ignored(payload):
    assert only_message(payload).kind == IGNORED


@pytest.mark.parametrize("timestamp", ["nan", "inf", "-5", "", None, "soon"])
def test_a_timestamp_that_is_no_time_is_left_out(timestamp):
    payload = message_payload("361", "Hello")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = timestamp

    assert only_message(payload).at is None


def test_a_status_callback_has_no_message():
    webhook = parse_webhook(status_payload("361", status="read"), PHONE_NUMBER_ID)

    assert webhook.messages == []
    assert [s["status"] for s in webhook.statuses] == ["read"]


def test_messages_to_another_phone_number_are_not_ours():
    payload = message_payload("361", "Hello", phone_number_id="999")

    assert parse_webhook(payload, PHONE_NUMBER_ID).messages == []


def test_changes_of_other_fields_are_skipped():
    payload = message_payload("361", "Hello")
    payload["entry"][0]["changes"][0]["field"] = "account_update"

    assert parse_webhook(payload, PHONE_NUMBER_ID).messages == []


def malformed(edit) -> Dict[str, Any]:
    payload = message_payload("361", "Hello")
    edit(payload, payload["entry"][0]["changes"][0]["value"]["messages"][0])
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "hello",
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": "x"},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]},
        malformed(lambda p, m: p["entry"][0]["changes"][0]["value"].update({"messages": [1]})),
    ],
)
def test_a_body_that_is_not_a_whatsapp_webhook_is_refused(payload):
    with pytest.raises(InvalidPayload):
        parse_webhook(payload, PHONE_NUMBER_ID)


def beside_a_good_one(change: Callable[[Dict[str, Any]], Any]) -> Dict[str, Any]:
    """A webhook of two messages, the first changed by `change`."""
    payload = message_payload("36201234567", "hello", message_id="wamid.ODD")
    good = message_payload("36207654321", "Please help", message_id="wamid.GOOD")
    odd = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    change(odd)
    payload["entry"][0]["changes"][0]["value"]["messages"].append(
        good["entry"][0]["changes"][0]["value"]["messages"][0])
    return payload


@pytest.mark.parametrize("change", [
    lambda m: m.pop("from"),
    lambda m: m.update({"from": "36 20 123"}),
    lambda m: m.update({"from_user_id": "HU.1502576394655843"}) or m.pop("from"),
    lambda m: m.pop("id"),
])
def test_a_message_with_no_one_to_answer_is_skipped_and_the_others_are_kept(change):
    parsed = parse_webhook(beside_a_good_one(change), PHONE_NUMBER_ID)

    assert [(m.message_id, m.kind, m.text) for m in parsed.messages] == [
        ("wamid.GOOD", "text", "Please help")]
    assert parsed.skipped == 1


@pytest.mark.parametrize("change", [
    lambda m: m.update({"type": 5}),
    lambda m: m.update({"text": {"body": None}}),
    lambda m: m.update({"text": "hello"}),
    lambda m: m.update({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"title": "x"}}}),
    lambda m: m.update({"type": "button", "button": {}}),
])
def test_a_message_of_an_unknown_shape_is_asked_for_text_and_the_others_are_kept(change):
    parsed = parse_webhook(beside_a_good_one(change), PHONE_NUMBER_ID)

    assert [(m.message_id, m.kind) for m in parsed.messages] == [
        ("wamid.ODD", "media"), ("wamid.GOOD", "text")]
    assert parsed.skipped == 0
