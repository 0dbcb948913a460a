"""Statistics and the unanswered questions: the desk's job reads what Rasa's own SQL
tracker store wrote (a real one, on SQLite), counts it once, and keeps no person in it."""
import threading
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from avrr.db import engine
from desk.insight import SETTLE_S, read_source, redact, source_events
from desk.store import Store
from tests.desk.conftest import BEARER

BUDAPEST = ZoneInfo("Europe/Budapest")  # content/settings.yml, office_hours.timezone
TODAY = datetime.now(BUDAPEST).date().isoformat()


def said(key, part=0):
    return BotUttered(f"({key})", metadata={"content_key": {"key": key, "part": part,
                                                            "values": {}}})


def heard(text, intent, language, confidence=0.9, timestamp=None):
    return UserUttered(text, intent={"name": intent, "confidence": confidence},
                       parse_data={"language_detection": {"language": language}},
                       timestamp=timestamp)


def started():
    return [ActionExecuted("action_session_start"), SessionStarted(),
            ActionExecuted("action_listen")]


async def save(store, sender, events):
    tracker = await store.retrieve(sender) or DialogueStateTracker(sender, [])
    for event in events:
        tracker.update(event)
    await store.save(tracker)


@pytest.fixture
def conversations(client, tmp_path):
    """The Rasa server's tracker store, where the desk's settings look for it (the
    client's data folder is tmp_path)."""
    return SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "conversations.db"))


async def morning(conversations):
    """An English web chat that is not understood twice and asks for a counsellor; a
    Pashto Telegram chat that asks the cost and does the eligibility check."""
    await save(conversations, "web-a", [
        *started(), heard("hello", "greet", "en"), SlotSet("language", "en"), said("greet"),
        heard("call me on +36 30 123 4567 or mail a.b@example.org", "nlu_fallback", "en", 0.2),
        said("clarify"), heard("zzz qqq", "nlu_fallback", "en", 0.1), said("clarify_again"),
        said("handoff_offer"), heard("/affirm", "affirm", "en"),
        ActionExecuted("action_handoff_start"), said("handoff_queued"),
    ])
    await save(conversations, "telegram:42", [
        *started(), heard("لګښت څومره دی؟", "ask_cost", "ps"), SlotSet("language", "ps"),
        said("ask_cost"), said("ask_cost", part=1), ActiveLoop("eligibility_form"),
        said("elig_result_likely"), said("elig_conditions"),
    ])


async def refresh(client) -> int:
    reply = await client.post("/api/stats/refresh", headers=BEARER)
    assert reply.status == 200
    return (await reply.json())["events_read"]


async def test_a_morning_of_conversations_is_counted_once_by_day_channel_and_language(
    client, conversations
):
    await morning(conversations)
    await refresh(client)  # (the desk's own loop may have counted them already)
    assert await refresh(client) == 0  # nothing new: nothing counted twice

    stats = await (await client.get(f"/api/stats?from={TODAY}&to={TODAY}",
                                    headers=BEARER)).json()
    assert stats["by_language"]["en"] == {
        "conversations": 1, "messages": 4, "not_understood": 2, "clarifications": 1,
        "second_misses": 1, "handoff_offers": 1, "consents": 1}
    assert stats["by_language"]["ps"] == {
        "conversations": 1, "messages": 1, "eligibility_started": 1, "eligibility_finished": 1}
    assert stats["by_channel"]["socketio"]["messages"] == 4
    assert stats["by_channel"]["telegram"]["messages"] == 1
    assert stats["topics"] == {"en": {"nlu_fallback": 2, "greet": 1, "affirm": 1},
                               "ps": {"ask_cost": 1}}
    assert stats["fallback_rate"] == {"en": 0.5, "ps": 0.0}
    assert stats["eligibility"] == {"likely": 1}

    # The inbox holds the two misses, with the phone number and address redacted.
    inbox = await (await client.get("/api/unanswered?language=en", headers=BEARER)).json()
    assert [(q["text"], q["channel"], q["label"]) for q in inbox] == [
        ("zzz qqq", "socketio", None),
        ("call me on [phone] or mail [e-mail]", "socketio", None)]
    assert "web-a" not in str(inbox)

    # A later message of the same conversation adds to it; its session was counted.
    await save(conversations, "web-a", [heard("how much does it cost", "ask_cost", "en")])
    await refresh(client)
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["by_language"]["en"]["messages"] == 5
    assert stats["by_language"]["en"]["conversations"] == 1

    csv = await (await client.get("/api/stats.csv", headers=BEARER)).text()
    assert csv.splitlines()[0] == "day,channel,language,metric,value"
    assert f"{TODAY},telegram,ps,topic:ask_cost,1" in csv.splitlines()


async def test_a_day_of_counts_is_a_day_in_hungary_summer_and_winter(client, conversations):
    # 23:30 UTC is already the next day in Budapest (UTC+1 in winter, UTC+2 in summer).
    winter = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc).timestamp()
    summer = datetime(2026, 7, 1, 22, 30, tzinfo=timezone.utc).timestamp()
    await save(conversations, "telegram:77", [
        heard("hello", "greet", "en", timestamp=winter), SlotSet("language", "en"),
        heard("hello again", "greet", "en", timestamp=summer)])
    await refresh(client)

    csv = (await (await client.get("/api/stats.csv?from=2026-03-01&to=2026-07-02",
                                   headers=BEARER)).text()).splitlines()
    assert [line for line in csv if line.endswith(",messages,1")] == [
        "2026-03-02,telegram,en,messages,1", "2026-07-02,telegram,en,messages,1"]


async def test_a_deletion_request_removes_the_persons_questions_and_counts_stay(
    client, conversations
):
    await morning(conversations)
    await refresh(client)
    for _ in range(2):  # the request, and its retry
        deleted = await client.delete("/api/conversations/web-a?language=en", headers=BEARER)
        assert deleted.status == 200

    assert await (await client.get("/api/unanswered", headers=BEARER)).json() == []
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["by_language"]["en"]["messages"] == 4  # no person in the counts
    assert stats["by_language"]["en"]["deletion_requests"] == 1
    # Events the job had not read yet when the person asked are not counted.
    await save(conversations, "web-a", [heard("qqq again", "nlu_fallback", "en")])
    await refresh(client)
    assert await (await client.get("/api/unanswered", headers=BEARER)).json() == []
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["by_language"]["en"]["messages"] == 4


async def test_an_administrator_labels_a_question_with_an_intent(client, conversations):
    await morning(conversations)
    await refresh(client)
    [newest, older] = await (await client.get("/api/unanswered", headers=BEARER)).json()
    path = f"/api/unanswered/{older['id']}/label"
    assert (await client.post(path, json={"intent": "nonsense"}, headers=BEARER)).status == 400
    assert (await client.post("/api/unanswered/99999/label", json={"intent": "ask_cost"},
                              headers=BEARER)).status == 404
    intents = await (await client.get("/api/intents?gloss=hu", headers=BEARER)).json()
    assert {"intent": "ask_cost", "name": "A hazatérés költsége"} in intents
    assert "not_understood" not in {entry["intent"] for entry in intents}
    labelled = await client.post(path, json={"intent": "request_human"}, headers=BEARER)
    assert labelled.status == 200
    assert (await labelled.json())["label"] == "request_human"
    waiting = await (await client.get("/api/unanswered?labelled=false", headers=BEARER)).json()
    assert [q["id"] for q in waiting] == [newest["id"]]


async def test_the_charts_are_svg_drawn_on_the_server(client, conversations):
    await morning(conversations)
    await refresh(client)
    for name in ("conversations", "fallback", "topics", "handoffs"):
        chart = await client.get(f"/api/stats/charts/{name}.svg", headers=BEARER)
        assert chart.status == 200
        assert chart.content_type == "image/svg+xml"
        assert (await chart.text()).lstrip().startswith("<?xml")
    assert (await client.get("/api/stats/charts/pie.svg", headers=BEARER)).status == 404
    for bad in ("from=2026-13-01", "from=2026-12-06&to=2026-12-01", "from=2020-01-01",
                "to=0001-01-01", "from=0001-01-01", "to=9999-12-31"):
        assert (await client.get(f"/api/stats?{bad}", headers=BEARER)).status == 400, bad


def test_two_desks_counting_at_once_count_each_event_once(tmp_path):
    import asyncio

    conversations = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "conversations.db"))
    asyncio.run(morning(conversations))
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    desks = [Store(url), Store(url)]
    source = f"sqlite:///{tmp_path / 'conversations.db'}"
    read = []
    threads = [threading.Thread(target=lambda s=s: read.append(s.run_insight(source)))
               for s in desks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read) == [0, sum(read)] and sum(read) > 0
    rows = desks[0].statistics(date.fromisoformat(TODAY), date.fromisoformat(TODAY))["counts"]
    assert sum(r["count"] for r in rows if r["metric"] == "messages") == 5


@pytest.mark.parametrize("text, redacted", [
    ("my number is +36 30 123 4567", "my number is [phone]"),
    ("call 06-30-123-45-67 now", "call [phone] now"),
    ("رقمي ٠٦٣٠١٢٣٤٥٦٧", "رقمي [phone]"),
    ("write to amina.k@mail.example.hu", "write to [e-mail]"),
    ("(+36) 30 123 4567 is mine", "[phone] is mine"),
    ("شماره‌ام ۰۹۱۲\u200e ۳۴۵\u200e ۶۷۸۹ است", "شماره‌ام [phone] است"),  # Persian, with LRMs
    ("ring 06–30–123–4567", "ring [phone]"),  # en dashes
    ("I am 25 years old and came in 2019", "I am 25 years old and came in 2019"),
    ("my telegram is @ahmad_k92, write", "my telegram is [account], write"),
    ("https://t.me/ahmad_k or wa.me/36301234567", "[account] or [account]"),
    ("find me on facebook.com/amina.k.77", "find me on [account]"),
    ("@amina.k.77 here", "[account] here"),
    ("https://t.me/s/ahmad and facebook.com/people/Amina-Karimi/100012345",
     "[account] and [account]"),
    ("write on chat.me/xy or to @ali.", "write on chat.me/xy or to [account]."),
    ("meet me @ 5 at the station", "meet me @ 5 at the station"),
])
def test_phone_numbers_and_addresses_are_redacted(text, redacted):
    assert redact(text) == redacted


async def test_a_message_that_is_not_unicode_text_is_kept_and_stops_no_count(
    client, conversations
):
    await save(conversations, "web-s", [
        *started(), heard("bus \ud800 zoo", "nlu_fallback", "en", 0.2), said("clarify")])
    await save(conversations, "web-t", [heard("how much does it cost", "ask_cost", "en")])

    await refresh(client)

    inbox = await (await client.get("/api/unanswered?language=en", headers=BEARER)).json()
    assert [q["text"] for q in inbox] == ["bus ? zoo"]
    stats = await (await client.get(f"/api/stats?from={TODAY}&to={TODAY}",
                                    headers=BEARER)).json()
    assert stats["by_language"]["en"]["messages"] == 2


async def test_tickets_and_the_wait_for_the_first_reply_are_counted(client):
    from tests.desk.conftest import new_ticket

    reply = await client.post("/api/tickets", json=new_ticket(urgency="legal"), headers=BEARER)
    ticket = await reply.json()
    for text in ("first", "second"):
        sent = await client.post(f"/api/tickets/{ticket['id']}/messages", json={"text": text},
                                 headers=BEARER)
        assert sent.status == 201
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["by_language"]["ar"] == {"tickets": 1, "tickets:legal": 1}
    assert stats["wait"]["count"] == 1  # the first reply only
    assert stats["wait"]["by_language"]["ar"]["count"] == 1
    assert 0 <= stats["wait"]["median_s"] < 60


async def test_what_a_person_writes_to_a_counsellor_stays_out_of_the_inbox(client, conversations):
    await save(conversations, "web-h", [
        *started(), heard("I want to talk to a person", "request_human", "en"),
        SlotSet("language", "en"), said("handoff_offer"), heard("/affirm", "affirm", "en"),
        ActionExecuted("action_handoff_start"), SlotSet("handoff_ticket", "key-1"),
        heard("my brother Karim knows the address", "nlu_fallback", "en", 0.2),
        SlotSet("handoff_ticket", None),
        heard("qqq zzz after the handoff", "nlu_fallback", "en", 0.2),
    ])
    await refresh(client)
    inbox = await (await client.get("/api/unanswered", headers=BEARER)).json()
    assert [q["text"] for q in inbox] == ["qqq zzz after the handoff"]
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["by_language"]["en"]["relayed_to_counsellor"] == 1
    assert stats["by_language"]["en"]["not_understood"] == 1


def test_no_csv_cell_is_read_as_a_formula():
    from avrr.sheets import cell

    assert [cell(v) for v in ("=cmd", "+1", "-2", "@x", "en", "topic:ask_cost")] == [
        "'=cmd", "'+1", "'-2", "'@x", "en", "topic:ask_cost"]


async def test_events_that_reuse_the_ids_of_deleted_ones_are_still_counted(
    client, conversations, tmp_path
):
    """Rasa's own SQLite table (as here) reuses the ids of the newest deleted events; the
    assistant's store no longer does (bot/tracker_store.py), and the job copes with both."""
    import sqlite3

    await morning(conversations)
    await refresh(client)
    with sqlite3.connect(tmp_path / "conversations.db") as db:
        db.execute("DELETE FROM events WHERE sender_id = 'telegram:42'")  # the newest
    await refresh(client)
    await save(conversations, "web-new", [*started(), heard("hello there", "greet", "en")])
    await refresh(client)
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["by_channel"]["socketio"]["conversations"] == 2


async def test_an_event_of_an_unknown_shape_is_skipped_and_counting_goes_on(
    client, conversations, tmp_path
):
    import sqlite3

    await save(conversations, "web-x", [*started(), heard("hello there", "greet", "en")])
    with sqlite3.connect(tmp_path / "conversations.db") as db:
        for data in ("null", '{"parse_data": {"intent": ["not", "a", "dict"]}}', "{nope"):
            db.execute("INSERT INTO events (sender_id, type_name, timestamp, data) "
                       "VALUES ('web-x', 'user', 1.0, ?)", (data,))
    await save(conversations, "web-x", [heard("how much does it cost", "ask_cost", "en")])
    await refresh(client)
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["topics"]["en"] == {"greet": 1, "ask_cost": 1}



async def test_a_language_of_anyone_s_choosing_is_counted_as_none_of_ours(
    client, conversations
):
    """A language label reaches the charts' legends (matplotlib reads "$...$" as maths:
    a 500); only the twelve codes are counted as languages."""
    await save(conversations, "rest-x", [
        *started(), heard("hello", "greet", "$\\frac$"), SlotSet("language", "$\\frac$"),
        said("greet"), heard("how much", "ask_cost", "en")])
    await refresh(client)
    stats = await (await client.get("/api/stats", headers=BEARER)).json()
    assert stats["topics"] == {"en": {"greet": 1, "ask_cost": 1}}
    chart = await client.get("/api/stats/charts/conversations.svg", headers=BEARER)
    assert chart.status == 200


@pytest.mark.integration
@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_on_postgresql_the_job_waits_at_a_gap_an_event_committed_late_may_fill(
    database, request, tmp_path,
):
    # Replicas store at once: id 3 was drawn before 4 but is not committed yet.
    url = (request.getfixturevalue("postgres_url") if database == "postgresql"
           else f"sqlite:///{tmp_path / 'conversations.db'}")
    now = 1_800_000_000.0
    made = engine(url)
    source_events.metadata.create_all(made, tables=[source_events])
    with made.begin() as db:
        for event_id in (1, 2, 4):
            db.execute(source_events.insert().values(
                id=event_id, sender_id="web-a", type_name="user", timestamp=now, data="{}"))

    def ids(at: float):
        return [row.id for row in read_source(url, 0, clock=lambda: at)]

    if database == "sqlite":  # one writer at a time: no gap is ever filled later
        assert ids(now) == [1, 2, 4]
    else:
        assert ids(now) == [1, 2]
        assert ids(now + SETTLE_S + 1) == [1, 2, 4]  # rolled back, or deleted
        with made.begin() as db:
            db.execute(source_events.insert().values(
                id=3, sender_id="web-a", type_name="user", timestamp=now, data="{}"))
        assert ids(now) == [1, 2, 3, 4]
