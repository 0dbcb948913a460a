"""WhatsApp end to end: webhooks posted to the real assistant as Meta posts them (signed
with the app secret), and the replies read where the assistant sends them, the fake
Graph API (`graph_api`)."""
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import requests

from actions.content import get_content
from bot.channels.whatsapp.render import render
from tests.fakes.graph_api import (
    button_reply_payload,
    encode,
    image_payload,
    list_reply_payload,
    message_payload,
    signed,
    status_payload,
)

WEBHOOK = "/webhooks/whatsapp/webhook"
SECRET = "wa-test-secret"
VERIFY_TOKEN = "wa-verify-token"
SIGNATURE_HEADER = "X-Hub-Signature-256"
HOUR = 3600
TIMEOUT_S = 20
FORGED = {"error": "the signature is wrong or missing"}


def new_wa_id() -> str:
    """A WhatsApp id (a phone number) no earlier run has used."""
    return "36" + str(10**9 + uuid.uuid4().int % (9 * 10**9))


def post(assistant, payload: Any = None, body: Optional[bytes] = None, signature="sign"):
    body = encode(payload) if body is None else body
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers[SIGNATURE_HEADER] = signed(body, SECRET)
    elif signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return requests.post(assistant.url + WEBHOOK, data=body, headers=headers, timeout=60)


def sent(graph_api, wa_id: str) -> List[Dict[str, Any]]:
    """What the assistant sent to `wa_id`, without the envelope."""
    messages = []
    for message in graph_api.sent_to(wa_id):
        assert message["messaging_product"] == "whatsapp"
        messages.append({k: v for k, v in message.items() if k not in ("messaging_product", "to")})
    return messages


def shown(message: Dict[str, Any]) -> str:
    if message["type"] == "text":
        return message["text"]["body"]
    if message["type"] == "interactive":
        return message["interactive"]["body"]["text"]
    return f"<{message['type']}>"


def offered(message: Dict[str, Any]) -> List[str]:
    """The payloads of an interactive message's buttons or list rows."""
    if message["type"] != "interactive":
        return []
    action = message["interactive"]["action"]
    if message["interactive"]["type"] == "button":
        return [b["reply"]["id"] for b in action["buttons"]]
    return [row["id"] for section in action["sections"] for row in section["rows"]]


def bot_messages(tracker: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [e for e in tracker["events"] if e["event"] == "bot" and e.get("text")]


def recorded(tracker: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The Graph API messages the bot's recorded replies make. A reply without buttons
    goes paragraph by paragraph (Rasa's collector splits it)."""
    messages = []
    for event in bot_messages(tracker):
        buttons = (event.get("data") or {}).get("buttons") or []
        if buttons:
            messages += render(event["text"], buttons)
        else:
            for part in event["text"].strip().split("\n\n"):
                messages += render(part)
    return messages


def user_texts(tracker: Dict[str, Any]) -> List[str]:
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


def conversation(wa_id: str) -> str:
    return f"whatsapp:{wa_id}"


def replies(assistant, graph_api, wa_id: str) -> List[Dict[str, Any]]:
    """All messages sent to `wa_id` once its send queue is empty: exactly the replies
    recorded."""
    assistant.drained(conversation(wa_id))
    got = sent(graph_api, wa_id)
    assert got == recorded(assistant.tracker(conversation(wa_id))), (
        "the messages sent differ from the replies recorded")
    return got


def content_texts(language: str) -> set:
    """Every answer text of `language`, with its placeholders filled."""
    content = get_content()
    texts = set()
    for key in content.language_file(language)["answers"]:
        values = {"position": "1", "opening": "-"}
        texts.update(reply.text for reply in content.replies(key, language, values=values))
    return texts


def test_the_verify_handshake_echoes_the_challenge_for_the_right_token(assistant):
    url = assistant.url + WEBHOOK
    right = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8814"}

    reply = requests.get(url, params=right, timeout=30)
    wrong = requests.get(url, params=dict(right, **{"hub.verify_token": "guess"}), timeout=30)

    assert (reply.status_code, reply.text) == (200, "8814")
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert wrong.status_code == 403
    assert "8814" not in wrong.text


def test_a_greeting_is_answered_in_english_with_buttons(assistant, graph_api):
    wa_id = new_wa_id()

    reply = post(assistant, message_payload(wa_id, "Hello"))

    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    messages = replies(assistant, graph_api, wa_id)
    assert messages[0]["type"] == "text"
    assert shown(messages[0]).startswith("Hello! I am the IOM Hungary assistant")
    interactive = [m for m in messages if m["type"] == "interactive"]
    assert interactive and interactive[0]["interactive"]["type"] in ("button", "list")
    assert "/ask_eligibility" in offered(interactive[0])
    tracker = assistant.tracker(conversation(wa_id))
    assert user_texts(tracker) == ["Hello"]
    assert tracker["latest_input_channel"] == "whatsapp"
    assert tracker["slots"]["language"] == "en"


def test_a_turkish_question_is_answered_in_turkish(assistant, graph_api):
    wa_id = new_wa_id()
    question = "Merhaba, ülkeme geri dönmek istiyorum, başvurabilir miyim?"

    assert post(assistant, message_payload(wa_id, question)).status_code == 200

    messages = replies(assistant, graph_api, wa_id)
    tracker = assistant.tracker(conversation(wa_id))
    assert tracker["slots"]["language"] == "tr"
    turkish, english = content_texts("tr"), content_texts("en")
    answers = [event["text"] for event in bot_messages(tracker)]
    assert answers and all(text in turkish for text in answers), answers
    assert not any(shown(m) in english for m in messages)


def test_a_message_longer_than_we_read_is_answered_from_its_beginning(assistant, graph_api):
    wa_id = new_wa_id()
    question = "how much does the return cost? " + "I have waited for months. " * 200

    assert post(assistant, message_payload(wa_id, question)).status_code == 200

    assert replies(assistant, graph_api, wa_id)  # answered, not dropped
    [text] = user_texts(assistant.tracker(conversation(wa_id)))
    assert len(text) == 4096 and question.startswith(text)


def test_a_forged_or_unsigned_webhook_is_refused_and_leaves_no_trace(assistant, graph_api):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello")
    body = encode(payload)

    for signature in (None, "", "sha256=" + "0" * 64, signed(body, "not-the-app-secret")):
        reply = post(assistant, body=body, signature=signature)
        assert (reply.status_code, reply.json()) == (403, FORGED)
    tampered = post(
        assistant, body=encode(message_payload(wa_id, "Hellp")), signature=signed(body, SECRET)
    )
    assert (tampered.status_code, tampered.json()) == (403, FORGED)

    assert assistant.queued(conversation(wa_id)) == 0
    assert sent(graph_api, wa_id) == []
    assert user_texts(assistant.tracker(conversation(wa_id))) == []
    # Nothing was claimed either: Meta's own delivery of that message is handled.
    assert post(assistant, body=body).status_code == 200
    assert replies(assistant, graph_api, wa_id)


def test_a_body_that_is_not_a_webhook_is_a_400(assistant):
    for body in (b"{not json", b"[1, 2]", b'{"object": "page"}'):
        reply = post(assistant, body=body)
        assert reply.status_code == 400
        assert set(reply.json()) == {"error"}


def test_a_message_delivered_twice_is_answered_once(assistant, graph_api):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello")

    first = post(assistant, payload)
    again = post(assistant, payload)

    assert (first.status_code, again.status_code) == (200, 200)
    replies(assistant, graph_api, wa_id)
    assert user_texts(assistant.tracker(conversation(wa_id))) == ["Hello"]


def test_a_message_delivered_three_times_at_once_is_answered_once(assistant, graph_api):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "How much does it cost?")

    with ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda _: post(assistant, payload).status_code, range(3)))

    # While one delivery is being handled the others are not acknowledged (503): Meta
    # sends them again, and by then the message is recorded.
    assert 200 in statuses and set(statuses) <= {200, 503}
    assert post(assistant, payload).status_code == 200
    replies(assistant, graph_api, wa_id)
    assert user_texts(assistant.tracker(conversation(wa_id))) == ["How much does it cost?"]


def test_a_status_callback_is_acknowledged_and_nothing_sent(assistant, graph_api):
    wa_id = new_wa_id()

    for status in ("sent", "delivered", "read", "failed"):
        reply = post(assistant, status_payload(wa_id, status=status))
        assert (reply.status_code, reply.json()) == (200, {"status": "ok"})

    assert assistant.queued(conversation(wa_id)) == 0
    assert sent(graph_api, wa_id) == []
    assert user_texts(assistant.tracker(conversation(wa_id))) == []


def test_a_photo_gets_the_text_only_answer(assistant, graph_api):
    wa_id = new_wa_id()

    assert post(assistant, image_payload(wa_id)).status_code == 200

    messages = replies(assistant, graph_api, wa_id)
    assert shown(messages[0]).startswith("Sorry, I can only read text messages")
    tracker = assistant.tracker(conversation(wa_id))
    assert tracker["latest_message"]["intent"]["name"] == "unsupported_media"


def test_pressing_an_offered_button_is_handled(assistant, graph_api):
    wa_id = new_wa_id()
    post(assistant, message_payload(wa_id, "Hello"))
    greeting = replies(assistant, graph_api, wa_id)
    menu = next(m for m in greeting if "/ask_cost" in offered(m))

    if menu["interactive"]["type"] == "button":
        press = button_reply_payload(wa_id, "/ask_cost", "Does it cost money?")
    else:
        press = list_reply_payload(wa_id, "/ask_cost", "Does it cost money?")
    assert post(assistant, press).status_code == 200

    messages = replies(assistant, graph_api, wa_id)[len(greeting):]
    tracker = assistant.tracker(conversation(wa_id))
    assert user_texts(tracker) == ["Hello", "/ask_cost"]
    assert tracker["latest_message"]["intent"]["name"] == "ask_cost"
    first_answer = get_content().replies("ask_cost", "en")[0].text
    assert shown(messages[0]) == first_answer


def test_the_eligibility_check_is_answered_with_a_list_row_and_reply_buttons(
    assistant, graph_api
):
    wa_id = new_wa_id()
    question = "Hello, can I apply for the voluntary return programme?"
    post(assistant, message_payload(wa_id, question))
    fear = replies(assistant, graph_api, wa_id)
    assert fear[-1]["interactive"]["type"] == "button"  # yes, no, not sure
    assert post(assistant, button_reply_payload(wa_id, "/deny", "No")).status_code == 200
    asked = replies(assistant, graph_api, wa_id)
    situation = next(m for m in asked[len(fear):]
                     if any("elig_situation" in p for p in offered(m)))
    assert situation["interactive"]["type"] == "list"  # four situations
    row = situation["interactive"]["action"]["sections"][0]["rows"][0]

    assert post(assistant, list_reply_payload(wa_id, row["id"], row["title"])).status_code == 200

    asked_again = replies(assistant, graph_api, wa_id)[len(asked):]
    previous = next(m for m in asked_again if "/deny" in offered(m))
    assert previous["interactive"]["type"] == "button"  # yes, no, not sure

    assert post(assistant, button_reply_payload(wa_id, "/deny", "No")).status_code == 200

    after = replies(assistant, graph_api, wa_id)[len(asked) + len(asked_again):]
    assert user_texts(assistant.tracker(conversation(wa_id))) == [
        question, "/deny", row["id"], "/deny"]
    documents_question = get_content().replies("elig_ask_documents", "en")[0].text
    assert documents_question in [shown(m) for m in after]


def counsellor_says(assistant, wa_id: str, text: str) -> None:
    """A message sent later into the conversation through Rasa's HTTP API (queued)."""
    reply = assistant.api(
        "POST", f"/conversations/{conversation(wa_id)}/tracker/events",
        params={"output_channel": "latest", "execute_side_effects": "true"},
        json={"event": "bot", "text": text, "metadata": {"counsellor": True}},
    )
    assert reply.status_code == 200, reply.text


def test_a_later_message_within_24_hours_is_sent_as_text(assistant, graph_api):
    wa_id = new_wa_id()
    post(assistant, message_payload(wa_id, "Hello"))
    before = len(replies(assistant, graph_api, wa_id))

    counsellor_says(assistant, wa_id, "This is Anna from IOM. How can I help?")

    later = graph_api.wait_for(before + 1, to=wa_id)[before:]
    assert [(m["type"], shown(m)) for m in later] == [
        ("text", "This is Anna from IOM. How can I help?")
    ]


def test_after_24_hours_the_template_goes_and_the_text_waits_for_the_person(
    assistant, graph_api
):
    wa_id = new_wa_id()
    post(assistant, message_payload(wa_id, "Merhaba, gönüllü geri dönüş programı ücretli mi?"))
    before = len(replies(assistant, graph_api, wa_id))
    with sqlite3.connect(assistant.data_dir / "channels.db") as records:
        records.execute(
            "UPDATE last_inbound SET at = at - ? WHERE conversation = ?",
            (25 * HOUR, conversation(wa_id)),
        )

    counsellor_says(assistant, wa_id, "Merhaba, ben IOM'dan Anna.")
    counsellor_says(assistant, wa_id, "Pazartesi görüşebiliriz.")

    [template] = graph_api.wait_for(before + 1, to=wa_id)[before:]
    assert template["type"] == "template"
    assert template["template"] == {"name": "counsellor_reply", "language": {"code": "tr"}}
    deadline = time.monotonic() + TIMEOUT_S
    while assistant.queue(conversation(wa_id)) != {"held": 2}:  # both wait for the person
        assert time.monotonic() < deadline, assistant.queue(conversation(wa_id))
        time.sleep(0.1)
    assert len(graph_api.sent_to(wa_id)) == before + 1  # one template, no free text

    assert post(assistant, message_payload(wa_id, "Tamam, teşekkürler")).status_code == 200

    after = [shown(m) for m in graph_api.wait_for(before + 4, to=wa_id)[before + 1 :]]
    assert after[:2] == ["Merhaba, ben IOM'dan Anna.", "Pazartesi görüşebiliriz."]
    assert len(after) > 2  # then the answer to the person's message
