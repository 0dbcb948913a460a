"""Handoff to a counsellor, end to end: a person on the web chat, the real Rasa and action
servers, the real desk, all over loopback."""

import time
import uuid

import pytest
import requests

from actions.content import get_content
from tests.assistant import ACTION_TOKEN

OFFER = "I can pass this conversation to an IOM counsellor"
QUEUED = "Thank you. A counsellor will answer you here in this chat. You are number"
RELAYED = "Your message will reach the counsellor."
ENDED = "The counsellor has ended the conversation."


def texts(messages):
    return [m.get("text") for m in messages]


def ticket_with(desk, marker):
    """The open ticket whose transcript holds `marker`."""
    for ticket in desk.api("GET", "/api/tickets?status=open").json():
        detail = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
        if any(marker in m["text"] for m in detail["messages"]):
            return detail
    raise AssertionError(f"no open ticket with {marker!r}")


def ask_for_counsellor(chat, marker):
    chat.say_and_wait(f"Hello, I have a question about my case {marker}")
    offer = chat.say_and_wait("I want to talk to a counsellor")
    assert offer[-1]["text"].startswith(OFFER)
    assert [q["payload"] for q in offer[-1]["quick_replies"]] == ["/affirm", "/deny"]
    assert [q["title"] for q in offer[-1]["quick_replies"]] == ["Yes, I agree", "No, thanks"]


def test_the_whole_loop_from_request_to_hand_back(web_chat, desk, assistant, telegram_api):
    chat = web_chat()
    marker = uuid.uuid4().hex[:10]
    ask_for_counsellor(chat, marker)

    chat.say("/affirm")
    [queued] = chat.replies(1)
    assert queued["text"].startswith(QUEUED)

    ticket = ticket_with(desk, marker)
    assert (ticket["channel"], ticket["language"], ticket["urgency"], ticket["status"]) == (
        "socketio",
        "en",
        "normal",
        "open",
    )
    assert ticket["consent_language"] == "en" and ticket["consent_at"]
    shared = [(m["sender"], m["text"]) for m in ticket["messages"]]
    assert ("person", f"Hello, I have a question about my case {marker}") in shared
    assert ("person", "Yes, I agree") in shared  # the button's title, as the person saw it
    assert any(sender == "assistant" and text.startswith(OFFER) for sender, text in shared)
    # The counsellors' Telegram group hears of it: number, urgency, language only.
    announcement = f"New ticket #{ticket['id']}: normal, language en, via socketio."
    deadline = time.monotonic() + 15
    while not any(announcement in str(call) for call in telegram_api.calls):
        assert time.monotonic() < deadline, "the ticket was not announced on Telegram"
        time.sleep(0.2)
    assert all(marker not in str(c) for c in telegram_api.calls)

    reply = desk.api(
        "POST", f"/api/tickets/{ticket['id']}/messages", json={"text": "Hello, I am Anna from IOM."}
    )
    assert reply.status_code == 201
    assert reply.json()["delivered"] is True
    assert texts(chat.replies(1)) == ["Hello, I am Anna from IOM."]

    chat.say("Thank you. I lost my passport, is that a problem?")
    assert texts(chat.replies(1)) == [
        RELAYED + " They will answer you here. I will not answer while the counsellor is with you."
    ]
    assert chat.say_and_wait("how much does it cost") == []  # no talking over the counsellor

    detail = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
    assert [m["text"] for m in detail["messages"] if m["sender"] == "person"][-2:] == [
        "Thank you. I lost my passport, is that a problem?",
        "how much does it cost",
    ]
    assert detail["waiting"] is True

    closed = desk.api("POST", f"/api/tickets/{ticket['id']}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    [ended] = chat.replies(1)
    assert ended["text"].startswith(ENDED)

    chat.say("how much does it cost")
    answer = chat.replies(1)
    assert answer[0]["text"].startswith("The programme is for people who do not have the money")

    tracker = assistant.tracker(ticket["conversation_id"])
    bot_texts = [e.get("text") for e in tracker["events"] if e["event"] == "bot"]
    assert "Hello, I am Anna from IOM." in bot_texts  # the tracker holds the whole conversation
    assert tracker["slots"]["handoff_ticket"] is None
    assert tracker["slots"]["handoff_consent"].endswith(" en")


def test_without_consent_nothing_is_shared(web_chat, desk):
    chat = web_chat()
    marker = uuid.uuid4().hex[:10]
    ask_for_counsellor(chat, marker)
    chat.say("/deny")
    replies = texts(chat.replies(1))
    assert replies[0].startswith("OK, nothing was shared.") and "06 80 20 50 18" in replies[0]
    open_tickets = desk.api("GET", "/api/tickets?status=all").json()
    for ticket in open_tickets:
        detail = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
        assert all(marker not in m["text"] for m in detail["messages"])


def test_danger_makes_an_urgent_ticket_in_the_persons_language(web_chat, desk):
    chat = web_chat()
    chat.say("Aidez-moi, quelqu'un me frappe maintenant, je suis en danger")
    replies = chat.until(lambda m: m.get("quick_replies"))
    assert "112" in replies[0]["text"]
    assert [q["payload"] for q in replies[-1]["quick_replies"]] == ["/affirm", "/deny"]
    chat.say("/affirm")
    chat.replies(1)
    ticket = ticket_with(desk, "quelqu'un me frappe")
    assert (ticket["urgency"], ticket["language"], ticket["topic"]) == (
        "urgent",
        "fr",
        "report_emergency",
    )
    listed = desk.api("GET", "/api/tickets?status=open").json()
    assert listed[0]["urgency"] == "urgent"  # the most urgent first
    desk.api("POST", f"/api/tickets/{ticket['id']}/close")


def test_danger_during_a_handoff_is_answered_at_once_and_the_ticket_made_urgent(
    web_chat, desk, telegram_api,
):
    chat = web_chat()
    marker = uuid.uuid4().hex[:10]
    ask_for_counsellor(chat, marker)
    chat.say_and_wait("/affirm")
    ticket = ticket_with(desk, marker)
    assert ticket["urgency"] == "normal"

    answer = texts(chat.say_and_wait("my husband is beating me right now"))

    assert "112" in answer[0]
    assert answer[-1].startswith("Your message will reach the counsellor, marked as urgent.")
    detail = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
    assert detail["urgency"] == "urgent"
    assert detail["messages"][-1]["text"] == "my husband is beating me right now"
    assert [(e["actor"], e["action"]) for e in detail["history"]] == [("api", "made urgent")]
    # The counsellors' Telegram group hears of it as of a new ticket, without its words.
    announcement = f"Ticket #{ticket['id']} is now urgent: language en, via socketio."
    deadline = time.monotonic() + 15
    while not any(announcement in str(call) for call in telegram_api.calls):
        assert time.monotonic() < deadline, "the urgency was not announced on Telegram"
        time.sleep(0.2)
    assert all("beating" not in str(c) and marker not in str(c) for c in telegram_api.calls)
    desk.api("POST", f"/api/tickets/{ticket['id']}/close")


def test_a_typed_yes_the_classifier_is_unsure_of_gets_the_offer_again(assistant, desk):
    sender = f"unsure-{uuid.uuid4().hex[:10]}"
    marker = uuid.uuid4().hex[:10]
    assistant.say(sender, f"Hello, I have a question about my case {marker}")
    offer = assistant.say(sender, "I want to talk to a counsellor")
    assert offer[-1][0].startswith(OFFER)

    again = assistant.say(sender, "what?")

    taken_for = assistant.tracker(sender)["latest_message"]["intent"]
    assert taken_for["name"] == "affirm" and taken_for["confidence"] < 0.5, taken_for
    assert again == [offer[-1]]
    assert assistant.tracker(sender)["slots"]["handoff_consent"] is None
    for ticket in desk.api("GET", "/api/tickets?status=all").json():
        detail = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
        assert all(marker not in m["text"] for m in detail["messages"])

    assert assistant.say(sender, "/affirm")[0][0].startswith(QUEUED)
    desk.api("POST", f"/api/tickets/{ticket_with(desk, marker)['id']}/close")


@pytest.mark.parametrize("typed", ["asdfgh", "...", "🤔"])
def test_mashed_keys_or_an_untaught_sign_after_the_offer_share_nothing(
        web_chat, desk, assistant, typed):
    chat = web_chat()
    marker = uuid.uuid4().hex[:10]
    ask_for_counsellor(chat, marker)

    chat.say(typed)
    replies = chat.until(lambda m: m.get("quick_replies"))

    assert replies[-1]["text"] == get_content().replies("clarify", "en")[-1].text
    assert not any((m.get("text") or "").startswith(QUEUED) for m in replies)
    tracker = assistant.tracker(chat.session_id)
    assert tracker["latest_message"]["intent"]["name"] == "nlu_fallback"
    assert tracker["slots"]["handoff_consent"] is None
    for ticket in desk.api("GET", "/api/tickets?status=all").json():
        detail = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
        assert all(marker not in m["text"] for m in detail["messages"])


def test_two_misunderstandings_in_a_row_lead_to_the_offer(web_chat):
    chat = web_chat()
    chat.say("xqzt vbnm plkj")
    chat.until(lambda m: m.get("quick_replies"))
    chat.say("qwpf zxcv ghjk")
    replies = chat.until(lambda m: (m.get("text") or "").startswith(OFFER))
    assert replies[0]["text"].startswith("Sorry, I still do not understand.")


def test_deleting_ones_data_during_a_handoff_deletes_the_ticket(web_chat, desk):
    chat = web_chat()
    marker = uuid.uuid4().hex[:10]
    ask_for_counsellor(chat, marker)
    chat.say("/affirm")
    chat.replies(1)
    ticket = ticket_with(desk, marker)

    chat.say("delete my data")
    confirm = chat.until(lambda m: m.get("quick_replies"))
    assert confirm[-1]["text"].startswith("Do you want me to delete this conversation")
    chat.say("/affirm")
    assert texts(chat.replies(1))[0].startswith("Done: this conversation")
    assert desk.api("GET", f"/api/tickets/{ticket['id']}").status_code == 404


def test_a_repeated_callback_opens_one_ticket(assistant, desk):
    """Rasa may call the action server again for the same step: one ticket, not two."""
    sender = f"callback-{uuid.uuid4().hex[:8]}"
    call = {
        "next_action": "action_handoff_start",
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": sender,
            "slots": {
                "language": "en",
                "handoff_urgency": "legal",
                "handoff_topic": "express_fear_of_return",
            },
            "latest_message": {"text": "yes", "intent": {"name": "affirm"}},
            "events": [
                {
                    "event": "user",
                    "timestamp": 1790000000.0,
                    "text": "I am afraid to go back",
                    "parse_data": {"intent": {"name": "express_fear_of_return"}},
                    "input_channel": "rest",
                },
                {
                    "event": "user",
                    "timestamp": 1790000010.0,
                    "text": "yes",
                    "message_id": "m-1",
                    "parse_data": {"intent": {"name": "affirm"}},
                    "input_channel": "rest",
                },
            ],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }
    secret = {"Authorization": f"Bearer {ACTION_TOKEN}"}
    first = requests.post(f"{assistant.action_url}/webhook", json=call, headers=secret, timeout=30)
    second = requests.post(f"{assistant.action_url}/webhook", json=call, headers=secret,
                           timeout=30)
    assert first.status_code == second.status_code == 200
    mine = [
        t
        for t in desk.api("GET", "/api/tickets?status=all").json()
        if t["conversation_id"] == sender
    ]
    assert len(mine) == 1 and mine[0]["urgency"] == "legal"
    assert first.json()["responses"][0]["text"] == second.json()["responses"][0]["text"]


def telegram_handoff(assistant, desk, telegram_api):
    """A person on Telegram, in Ukrainian, asks for a counsellor and agrees: (chat id, the
    desk's ticket)."""
    from tests.e2e.test_telegram import message_update, new_id, post

    chat_id = new_id()
    assert post(
        assistant, message_update(chat_id, "uk", text="Я хочу поговорити з консультантом")
    ).ok
    offer = telegram_api.wait_for("sendMessage", 1, chat_id=chat_id, timeout=20)
    assert offer[-1].params.get("reply_markup"), "the offer has its two buttons"
    press = {
        "update_id": new_id(),
        "callback_query": {
            "id": str(new_id()),
            "from": {"id": chat_id, "is_bot": False, "first_name": "Olena", "language_code": "uk"},
            "message": {
                "message_id": 7,
                "date": int(time.time()),
                "chat": {"id": chat_id, "first_name": "Olena", "type": "private"},
                "text": offer[-1].params["text"],
            },
            "chat_instance": "42",
            "data": "/affirm",
        },
    }
    assert post(assistant, press).ok
    ticket = desk.open_ticket_of(f"telegram:{chat_id}")
    assert (ticket["channel"], ticket["language"]) == ("telegram", "uk")
    return chat_id, ticket


def test_a_counsellors_reply_reaches_a_person_on_telegram(assistant, desk, telegram_api):
    """One reply path: the desk writes through Rasa, which sends on the person's channel."""
    chat_id, ticket = telegram_handoff(assistant, desk, telegram_api)
    reply = desk.api(
        "POST",
        f"/api/tickets/{ticket['id']}/messages",
        json={"text": "Добрий день, це Марія з МОМ."},
    )
    # Delivered means Telegram has it: the channel confirms only once it is sent.
    assert reply.status_code == 201 and reply.json()["delivered"] is True
    assert "Добрий день, це Марія з МОМ." in [
        c.params["text"] for c in telegram_api.sent_to(chat_id)]
    desk.api("POST", f"/api/tickets/{ticket['id']}/close")


def test_a_message_whose_ticket_is_gone_is_told_to_the_person_not_lost_in_silence(
        web_chat, desk):
    """The desk no longer has the ticket (deleted through its API): the person's message is
    tried a few times (about 30 s), then the person hears it did not reach the counsellor,
    with the hotline, through Rasa's API; the handoff is not ended for them."""
    chat = web_chat()
    marker = uuid.uuid4().hex[:10]
    ask_for_counsellor(chat, marker)
    chat.say_and_wait("/affirm")
    ticket = ticket_with(desk, marker)
    deleted = desk.api("DELETE", f"/api/conversations/{ticket['conversation_id']}")
    assert deleted.json() == {"deleted_tickets": 1}

    chat.say("are you still there?")

    assert texts(chat.replies(1))[0].startswith(RELAYED)  # the outbox keeps trying
    [told] = chat.replies(1, timeout=90)
    assert told["text"] == get_content().replies("handoff_message_failed", "en")[0].text
    assert "06 80 20 50 18" in told["text"]
    assert chat.say_and_wait("hello?") == []  # still with the counsellor: no bot answer


def test_a_person_on_telegram_is_told_when_their_message_cannot_reach_the_counsellor(
        assistant, desk, telegram_api):
    """The notice goes through Rasa's API to a conversation id with a colon
    ("telegram:42"), which the outbox sends percent-encoded: it must still find it."""
    from tests.e2e.test_telegram import message_update, post

    chat_id, ticket = telegram_handoff(assistant, desk, telegram_api)
    deleted = desk.api("DELETE", f"/api/conversations/{ticket['conversation_id']}")
    assert deleted.json() == {"deleted_tickets": 1}

    assert post(assistant, message_update(chat_id, "uk", text="Ви ще тут?")).ok

    failed = get_content().replies("handoff_message_failed", "uk")[0].text
    assert telegram_api.calls.wait(lambda calls: any(
        c.method == "sendMessage" and str(c.params.get("chat_id")) == str(chat_id)
        and c.params.get("text") == failed for c in calls), 90)
