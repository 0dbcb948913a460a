import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from rasa_sdk.events import ActionExecuted, FollowupAction, SlotSet

import actions.handoff
from actions.content import get_content
from actions.handoff import (
    ActionDeclineHandoff,
    ActionEndHandoff,
    ActionHandoffFailed,
    ActionOfferHandoff,
    ActionRelayFailed,
    ActionRelayToCounsellor,
    ActionStartHandoff,
    message_key,
    transcript,
    urgency_of,
)
from actions.outbox import get_outbox, outbox
from tests.conftest import make_tracker, sent, user_event
from tests.fakes.desk import FakeDesk

OFFER = (
    "I can pass this conversation to an IOM counsellor, a person, who will answer you here in "
    "this chat. The counsellor will see what you wrote here, my answers, your language and the "
    "app you are using. Only IOM's counsellors and the IOM staff who run this service can "
    "see it. Do you agree?"
)


def pending_bodies():
    with get_outbox().engine.connect() as db:
        rows = db.execute(
            sa.select(outbox.c.path, outbox.c.body).where(outbox.c.state == "pending")
            .order_by(outbox.c.id)
        ).fetchall()
    return [(path, json.loads(body) if body else None) for path, body in rows]


@pytest.mark.parametrize(
    "intent, urgency, topic",
    [
        ("request_human", "normal", "request_human"),
        ("report_emergency", "urgent", "report_emergency"),
        ("report_exploitation", "urgent", "report_exploitation"),
        ("report_suicidal_thoughts", "urgent", "report_suicidal_thoughts"),
        ("express_fear_of_return", "legal", "express_fear_of_return"),
        ("nlu_fallback", "normal", "not_understood"),
    ],
)
async def test_the_offer_says_what_is_shared_and_asks_for_consent(
    dispatcher, intent, urgency, topic
):
    events = await ActionOfferHandoff().run(dispatcher, make_tracker(intent), {})

    assert sent(dispatcher) == [
        (
            OFFER,
            [
                {"title": "Yes, I agree", "payload": "/affirm"},
                {"title": "No, thanks", "payload": "/deny"},
            ],
        ),
    ]
    assert events == [SlotSet("handoff_urgency", urgency), SlotSet("handoff_topic", topic)]
    assert urgency_of(intent) == urgency


async def test_without_consent_the_person_gets_the_hotline_and_nothing_is_sent(dispatcher):
    events = await ActionDeclineHandoff().run(dispatcher, make_tracker("deny"), {})

    assert sent(dispatcher) == [
        (
            "OK, nothing was shared. You can talk to a counsellor on IOM's free hotline, which "
            "speaks many languages: 06 80 20 50 18.",
            [],
        )
    ]
    assert events == [SlotSet("handoff_urgency", None)]
    assert pending_bodies() == []


def consenting_tracker(language="en"):
    events = [
        {**user_event("request_human", "I want a human"), "timestamp": 1790000000.0},
        {
            "event": "bot",
            "text": OFFER,
            "timestamp": 1790000001.0,
            "data": {"buttons": [{"title": "Yes, I agree", "payload": "/affirm"}]},
            "metadata": {"content_key": {"key": "handoff_offer", "part": 0, "values": {}}},
        },
        {**user_event("affirm", "/affirm"), "timestamp": 1790000002.0, "message_id": "m2"},
    ]
    return make_tracker(
        "affirm",
        slots={
            "language": language,
            "handoff_urgency": "legal",
            "handoff_topic": "express_fear_of_return",
        },
        events=events,
    )


async def test_consent_opens_a_ticket_kept_in_the_outbox_while_the_desk_is_down(
    dispatcher, monkeypatch
):
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    )
    tracker = consenting_tracker()

    events = await ActionStartHandoff().run(dispatcher, tracker, {})

    [(path, body)] = pending_bodies()
    assert path == "/api/tickets"
    assert body["conversation_id"] == "test-sender"
    assert (body["language"], body["urgency"], body["topic"]) == (
        "en",
        "legal",
        "express_fear_of_return",
    )
    assert body["consent"]["language"] == "en"
    # With what the assistant understood and said, for the counsellor's glosses.
    assert body["transcript"] == [
        {"sender": "person", "text": "I want a human", "at": "2026-09-21T14:13:20Z",
         "intent": "request_human", "confidence": 0.9},
        {"sender": "assistant", "text": OFFER, "at": "2026-09-21T14:13:21Z",
         "content": {"key": "handoff_offer", "part": 0, "values": {}}},
        {"sender": "person", "text": "Yes, I agree", "at": "2026-09-21T14:13:22Z",
         "intent": "affirm", "confidence": 0.9},
    ]
    assert sent(dispatcher) == [
        (
            "Thank you. Your request is saved. A counsellor will answer you here in this chat "
            "as soon as possible. If it is urgent, call IOM's free hotline: 06 80 20 50 18.",
            [],
        )
    ]
    key = body["idempotency_key"]
    assert events[0] == SlotSet("handoff_ticket", key)
    assert events[1]["name"] == "handoff_consent" and events[1]["value"].endswith(" en")
    assert events[2] == SlotSet("handoff_acknowledged", False)

    # The same step run again (a retried callback) keeps one request, with the same key.
    await ActionStartHandoff().run(dispatcher, tracker, {})
    assert [b["idempotency_key"] for _, b in pending_bodies()] == [key]


@pytest.fixture
def desk(monkeypatch):
    from tests.conftest import forget_settings

    fake = FakeDesk()
    monkeypatch.setenv("DESK_URL", fake.url)
    monkeypatch.setenv("RASA_URL", fake.url)
    forget_settings()
    yield fake
    fake.stop()


async def test_consent_opens_a_ticket_at_the_desk_and_the_person_learns_the_queue(
    dispatcher, desk, monkeypatch
):
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    )

    events = await ActionStartHandoff().run(dispatcher, consenting_tracker(), {})

    [(method, path, key, body, _)] = desk.received
    assert (method, path, key) == ("POST", "/api/tickets", body["idempotency_key"])
    assert sent(dispatcher) == [(
        "Thank you. A counsellor will answer you here in this chat. You are number 1 in "
        "the queue. Please keep this chat open or come back to it later.", [])]
    assert events[0] == SlotSet("handoff_ticket", key)
    assert pending_bodies() == []


async def test_a_typed_yes_the_classifier_is_unsure_of_gets_the_offer_again(dispatcher, desk):
    tracker = consenting_tracker()
    tracker.latest_message["intent"] = {"name": "affirm", "confidence": 0.34}  # "what?"

    events = await ActionStartHandoff().run(dispatcher, tracker, {})

    assert events == [FollowupAction("action_offer_handoff")]
    assert sent(dispatcher) == []
    assert desk.received == [] and pending_bodies() == []


async def test_the_offer_asked_again_keeps_the_first_ones_urgency(dispatcher):
    tracker = make_tracker("affirm", slots={"handoff_urgency": "urgent"})
    tracker.latest_action_name = "action_handoff_start"

    events = await ActionOfferHandoff().run(dispatcher, tracker, {})

    assert [text for text, _ in sent(dispatcher)] == [OFFER]
    assert events == []


async def test_a_ticket_the_desk_refuses_leaves_the_person_told_and_free(dispatcher, desk):
    desk.answers["/api/tickets"] = [422]

    events = await ActionStartHandoff().run(dispatcher, consenting_tracker(), {})

    assert sent(dispatcher) == [(
        "Sorry, your request could not reach a counsellor, so nothing was shared. Please call "
        "IOM's free hotline, which speaks many languages: 06 80 20 50 18. I can answer your "
        "questions again.", [])]
    assert SlotSet("handoff_ticket", None) in events
    assert not any(e.get("name") == "handoff_ticket" and e.get("value") for e in events)
    assert [path for _, path, _, _, _ in desk.received] == ["/api/tickets"]  # told here, once


async def test_a_refusal_later_is_told_through_rasa_and_clears_the_handoff(dispatcher):
    tracker = make_tracker("greet", slots={"language": "fr", "handoff_ticket": "k"})
    tracker.latest_message = {}

    events = await ActionHandoffFailed().run(dispatcher, tracker, {})

    assert sent(dispatcher)[0][0] == get_content().replies("handoff_failed", "fr")[0].text
    assert SlotSet("handoff_ticket", None) in events
    assert events[-1] == ActionExecuted("action_listen")


async def test_a_second_miss_that_may_be_about_danger_is_offered_as_urgently(
    dispatcher,
):
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.3},
        {"name": "report_emergency", "confidence": 0.25},
        {"name": "ask_cost", "confidence": 0.2},
    ]
    tracker = make_tracker("nlu_fallback", ranking=ranking)
    tracker.latest_action_name = "action_clarify"  # it gave the safety answer first

    events = await ActionOfferHandoff().run(dispatcher, tracker, {})

    assert events == [SlotSet("handoff_urgency", "urgent"),
                      SlotSet("handoff_topic", "not_understood")]


async def test_a_relayed_message_names_its_conversation_for_a_consent_sent_twice(
    dispatcher, monkeypatch
):
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    )
    keys = []
    for sent_at in (1790000002.0, 1790000009.0):
        # REST and the widget give no message id: the re-sent "yes" has another key, and
        # the desk keeps its ticket under the first.
        consenting = consenting_tracker()
        del consenting.events[-1]["message_id"]
        consenting.events[-1]["timestamp"] = sent_at
        keys.append((await ActionStartHandoff().run(dispatcher, consenting, {}))[0]["value"])
    tracker = make_tracker(
        "ask_cost",
        slots={"handoff_ticket": keys[1], "handoff_acknowledged": False},
        events=[{**user_event("ask_cost", "is it free?"), "message_id": "m3"}],
    )
    tracker.latest_message["text"] = "is it free?"

    await ActionRelayToCounsellor().run(dispatcher, tracker, {})

    assert keys[0] != keys[1]
    assert pending_bodies()[-1] == ("/api/inbound", {
        "ticket_key": keys[1],
        "conversation_id": "test-sender",  # by which the desk finds the open ticket
        "idempotency_key": message_key(tracker),
        "text": "is it free?",
        "at": "2026-11-24T10:00:00Z",
        "urgent": False,
        "intent": "ask_cost",
        "confidence": 0.9,
    })


async def test_a_long_transcript_in_arabic_fits_in_the_desks_body_limit(dispatcher):
    # JSON escapes each Arabic letter to 6 bytes (\u0633): counted in characters,
    # this body was over 1 MiB and refused (413) for hours.
    said = [
        {**user_event("ask_cost", f"{n} " + "\u0633" * 1000), "timestamp": 1790000000.0 + n}
        for n in range(196)
    ]

    await ActionStartHandoff().run(dispatcher, make_tracker("affirm", events=said), {})

    with get_outbox().engine.connect() as db:
        [body] = db.execute(sa.select(outbox.c.body)).scalars().all()
    assert len(body.encode()) <= 1024 * 1024  # desk/app.py MAX_BODY_BYTES
    kept = [line["text"] for line in json.loads(body)["transcript"]]
    assert kept == [event["text"] for event in said[-163:]]  # the oldest 33 left out


async def test_the_queue_position_comes_from_the_desk(dispatcher, monkeypatch):
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    )
    ActionStartHandoff.tell(dispatcher, consenting_tracker(), "en", {"queue_position": 4})
    assert sent(dispatcher) == [
        (
            "Thank you. A counsellor will answer you here in this chat. You are number 4 in "
            "the queue. Please keep this chat open or come back to it later.",
            [],
        )
    ]


async def test_when_the_office_is_closed_the_person_learns_when_it_opens(
    dispatcher, content_dir, monkeypatch
):
    settings = content_dir / "settings.yml"
    settings.write_text(
        settings.read_text().replace(
            "office_hours:\n  value: ~",
            'office_hours:\n  value:\n    mon: "09:00-16:00"\n    wed: "09:00-12:00"',
        )
    )
    # Tuesday 24 November 2026, 11:00 in Budapest.
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    )
    ActionStartHandoff.tell(dispatcher, consenting_tracker(), "hu", {"queue_position": 1})
    [(text, _)] = sent(dispatcher)
    assert get_content().language_file("hu")["days"]["wed"] + " 09:00" in text


def with_office_hours(content_dir, lines: str) -> None:
    settings = content_dir / "settings.yml"
    text = settings.read_text()
    assert "office_hours:\n  value: ~\n  closed_on: []" in text
    settings.write_text(text.replace("office_hours:\n  value: ~\n  closed_on: []",
                                     "office_hours:\n" + lines))


async def test_a_closed_day_is_skipped_and_an_opening_weeks_away_has_its_date(
    dispatcher, content_dir, monkeypatch
):
    with_office_hours(content_dir, '  value:\n    mon: "9-16"\n    wed: "9-12"\n'
                      '  closed_on: ["2026-12-24..2027-01-01", "2027-01-04"]')
    # Wednesday 23 December 2026, 17:00 in Budapest: next open on Wednesday 6 January.
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 12, 23, 16, tzinfo=timezone.utc)
    )
    ActionStartHandoff.tell(dispatcher, consenting_tracker(), "fr", {"queue_position": 1})
    [(text, _)] = sent(dispatcher)
    wednesday = get_content().language_file("fr")["days"]["wed"]
    assert f"{wednesday} 2027-01-06 09:00" in text


async def test_office_hours_that_cannot_be_read_promise_nothing_and_are_logged(
    dispatcher, content_dir, monkeypatch, caplog
):
    with_office_hours(content_dir, '  value:\n    mon: "9 to 5"\n  closed_on: []')
    # Tuesday 24 November 2026, 11:00 in Budapest.
    monkeypatch.setattr(
        actions.handoff, "now", lambda: datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    )
    ActionStartHandoff.tell(dispatcher, consenting_tracker(), "en", {"queue_position": 3})
    ActionStartHandoff.tell(dispatcher, consenting_tracker(), "en", {"queue_position": 4})
    texts = [text for text, _ in sent(dispatcher)]
    assert len(texts) == 2 and "number 3 in the queue" in texts[0]
    assert not any("opens" in text for text in texts)
    assert all("Opening hours" not in r.text for r in get_content().replies("ask_contact", "en"))
    logged = [r for r in caplog.records if "settings.yml" in r.getMessage()]
    assert [r.levelname for r in logged] == ["ERROR"]  # once, not at every answer
    assert "'9 to 5' is not a span" in logged[0].getMessage()


async def test_messages_during_the_handoff_go_to_the_ticket_acknowledged_once(dispatcher):
    tracker = make_tracker(
        "ask_cost",
        slots={"handoff_ticket": "ticket-key-1", "handoff_acknowledged": False},
        events=[{**user_event("ask_cost", "is it free?"), "timestamp": 1790000100.0}],
    )
    tracker.latest_message["text"] = "is it free?"

    events = await ActionRelayToCounsellor().run(dispatcher, tracker, {})

    [(path, body)] = pending_bodies()
    assert path == "/api/inbound"
    assert (body["ticket_key"], body["text"], body["urgent"]) == (
        "ticket-key-1",
        "is it free?",
        False,
    )
    # What the assistant understood, for the counsellor who may not read the language.
    assert (body["intent"], body["confidence"]) == ("ask_cost", 0.9)
    # Which content the acknowledgement says, for the counsellor's gloss.
    assert dispatcher.messages[0]["content_key"] == {
        "key": "handoff_relayed", "part": 0, "values": {}}
    assert sent(dispatcher) == [
        (
            "Your message will reach the counsellor. They will answer you here. I will not "
            "answer while the counsellor is with you.",
            [],
        )
    ]
    assert events == [SlotSet("handoff_acknowledged", True)]

    quiet = type(dispatcher)()
    tracker.slots["handoff_acknowledged"] = True
    assert await ActionRelayToCounsellor().run(quiet, tracker, {}) == []
    assert quiet.messages == []


MESSAGE_FAILED = (
    "Sorry, your last message could not reach the counsellor. Please try writing it again, or "
    "call IOM's free hotline, which speaks many languages: 06 80 20 50 18.")


@pytest.mark.parametrize("intent", ["ask_cost", "report_emergency"])
async def test_a_message_the_desk_refuses_is_told_not_acknowledged(dispatcher, desk, intent):
    desk.answers["/api/inbound"] = [422]
    tracker = make_tracker(
        intent, slots={"handoff_ticket": "ticket-key-1", "handoff_acknowledged": False},
        events=[{**user_event(intent, "is anyone there"), "timestamp": 1790000100.0}])
    tracker.latest_message["text"] = "is anyone there"

    events = await ActionRelayToCounsellor().run(dispatcher, tracker, {})

    safety = [r.text for r in get_content().replies(intent, "en")] if intent != "ask_cost" else []
    assert [text for text, _ in sent(dispatcher)] == safety + [MESSAGE_FAILED]
    assert events == []
    # Told here, once: no notice through Rasa as well.
    assert [path for _, path, _, _, _ in desk.received] == ["/api/inbound"]
    assert pending_bodies() == []


async def test_a_message_refused_later_is_told_through_rasa_and_the_handoff_goes_on(dispatcher):
    during = make_tracker("greet", slots={"language": "en", "handoff_ticket": "k"})

    events = await ActionRelayFailed().run(dispatcher, during, {})

    assert [text for text, _ in sent(dispatcher)] == [MESSAGE_FAILED]
    assert events == [ActionExecuted("action_listen")]  # the ticket stays


async def test_a_message_refused_after_the_handoff_ended_is_still_told(dispatcher):
    # It waited for the desk, which was down, and then found the ticket closed (409): the
    # person was told it would reach the counsellor.
    after = make_tracker("greet", slots={"language": "en"})

    events = await ActionRelayFailed().run(dispatcher, after, {})

    assert [text for text, _ in sent(dispatcher)] == [MESSAGE_FAILED]
    assert events == [ActionExecuted("action_listen")]


async def test_a_message_not_understood_that_may_be_danger_is_answered_and_urgent(dispatcher):
    tracker = make_tracker(
        "nlu_fallback",
        slots={"handoff_ticket": "ticket-key-1", "handoff_acknowledged": True},
        events=[{**user_event("nlu_fallback", "he hit me again kids hidden"),
                 "timestamp": 1790000100.0}],
    )
    tracker.latest_message["text"] = "he hit me again kids hidden"
    tracker.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 0.6}, {"name": "ask_family", "confidence": 0.3},
        {"name": "report_emergency", "confidence": 0.2}]

    events = await ActionRelayToCounsellor().run(dispatcher, tracker, {})

    [(_, body)] = pending_bodies()
    assert (body["text"], body["urgent"]) == ("he hit me again kids hidden", True)
    emergency = [r.text for r in get_content().replies("report_emergency", "en")]
    assert [text for text, _ in sent(dispatcher)] == emergency + [
        "Your message will reach the counsellor, marked as urgent. Please do not wait for the "
        "answer if you are in danger: call 112 now."]
    assert events == [SlotSet("handoff_acknowledged", True)]


@pytest.mark.parametrize(
    "intent",
    ["report_emergency", "report_exploitation", "report_suicidal_thoughts",
     "express_fear_of_return"],
)
async def test_danger_during_the_handoff_is_answered_at_once_and_relayed_as_urgent(
    dispatcher, intent
):
    tracker = make_tracker(
        intent,
        slots={"handoff_ticket": "ticket-key-1", "handoff_acknowledged": True},
        events=[{**user_event(intent, "he is here again"), "timestamp": 1790000100.0}],
    )
    tracker.latest_message["text"] = "he is here again"

    events = await ActionRelayToCounsellor().run(dispatcher, tracker, {})

    [(_, body)] = pending_bodies()
    assert (body["text"], body["urgent"]) == ("he is here again", True)
    texts = [text for text, _ in sent(dispatcher)]
    assert texts[: len(get_content().replies(intent, "en"))] == [
        r.text for r in get_content().replies(intent, "en")]
    assert texts[-1] == (
        "Your message will reach the counsellor, marked as urgent. Please do not wait for the "
        "answer if you are in danger: call 112 now.")
    assert any("112" in text for text in texts[:-1])
    assert events == [SlotSet("handoff_acknowledged", True)]


async def test_after_a_fear_answer_in_the_check_the_offer_is_a_legal_one(dispatcher):
    tracker = make_tracker("affirm")
    tracker.latest_action_name = "action_eligibility_result"

    events = await ActionOfferHandoff().run(dispatcher, tracker, {})

    assert events == [SlotSet("handoff_urgency", "legal"),
                      SlotSet("handoff_topic", "express_fear_of_return")]


async def test_the_hand_back_says_the_assistant_is_back_in_the_persons_language(dispatcher):
    tracker = make_tracker("greet", slots={"language": "ar", "handoff_ticket": "k"})
    tracker.latest_message = {}

    events = await ActionEndHandoff().run(dispatcher, tracker, {})

    assert sent(dispatcher)[0][0] == get_content().replies("handoff_ended", "ar")[0].text
    assert SlotSet("handoff_ticket", None) in events
    assert events[-1] == ActionExecuted("action_listen")


@pytest.mark.parametrize("action", [ActionEndHandoff, ActionHandoffFailed])
async def test_a_repeated_notice_finds_nothing_to_end_and_leaves_the_assistant_listening(
    dispatcher, action
):
    # The desk or the outbox runs it again (/execute) after a lost answer: without an
    # action_listen after it, the next message, a safety one too, is not understood.
    events = await action().run(dispatcher, make_tracker("greet"), {})

    assert events == [ActionExecuted("action_listen")]
    assert dispatcher.messages == []


def test_the_transcript_leaves_out_the_hand_back_trigger_and_shows_button_titles():
    events = [
        {
            "event": "bot",
            "text": "Choose",
            "timestamp": 1.0,
            "data": {"buttons": [{"title": "Yes, I agree", "payload": "/affirm"}]},
        },
        {"event": "user", "text": "/affirm", "timestamp": 2.0},
        {"event": "user", "text": "EXTERNAL: something", "timestamp": 3.0},
        {"event": "slot", "name": "x", "value": 1, "timestamp": 4.0},
    ]
    assert [(line["sender"], line["text"]) for line in transcript(events)] == [
        ("assistant", "Choose"),
        ("person", "Yes, I agree"),
    ]
