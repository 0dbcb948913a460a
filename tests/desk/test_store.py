"""The desk's store on SQLite: what the retention job removes, and what it keeps."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from desk.store import Store, messages, now, tickets
from tests.desk.test_app import new_ticket


def test_the_retention_job_removes_old_closed_tickets_and_keeps_the_rest(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'desk.db'}")

    def ticket(key, conversation, closed, days_ago):
        fields = new_ticket(key, conversation)
        created = store.create_ticket(
            {"idempotency_key": key, "conversation_id": conversation, "channel": "socketio",
             "language": "ar", "topic": "request_human", "urgency": "normal",
             "consent_at": now(), "consent_language": "ar"},
            [dict(entry, at=now()) for entry in fields["transcript"]],
        )["ticket"]
        if closed:
            store.close(created["id"])
        with store.engine.begin() as db:
            db.execute(tickets.update().where(tickets.c.id == created["id"]).values(
                updated_at=now() - timedelta(days=days_ago)))
        return created["id"]

    old_closed = ticket("key-old-closed", "web-1", closed=True, days_ago=91)
    recent_closed = ticket("key-new-closed", "web-2", closed=True, days_ago=89)
    old_open = ticket("key-old-open", "web-3", closed=False, days_ago=91)
    recent_open = ticket("key-new-open", "web-4", closed=False, days_ago=89)

    assert store.expire(timedelta(days=90)) == 2

    assert store.ticket(old_closed) is None
    assert store.ticket(recent_closed)["status"] == "closed"
    # Nobody wrote on it for the retention period: its conversation is gone at the
    # assistant too, and what the person shared is kept no longer than promised.
    assert store.ticket(old_open) is None
    assert store.ticket(recent_open)["status"] == "open"
    with store.engine.connect() as db:
        left = {row.ticket_id for row in db.execute(sa.select(messages.c.ticket_id))}
    assert left == {recent_closed, recent_open}
    assert store.expire(timedelta(days=90)) == 0


def test_a_desk_made_before_roles_is_upgraded_and_keeps_an_administrator(tmp_path):
    from argon2 import PasswordHasher

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    old = sa.create_engine(url)
    with old.begin() as db:
        db.exec_driver_sql(
            "CREATE TABLE counsellors (id INTEGER PRIMARY KEY, username VARCHAR(64) UNIQUE "
            "NOT NULL, password_hash VARCHAR(255) NOT NULL, languages VARCHAR(255) NOT NULL)")
        db.exec_driver_sql(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id INTEGER, "
            "idempotency_key VARCHAR(160), sender VARCHAR(16) NOT NULL, text TEXT NOT NULL, "
            "at DATETIME NOT NULL, delivered BOOLEAN, undeliverable VARCHAR(120))")
        db.execute(sa.text(
            "INSERT INTO counsellors (username, password_hash, languages) VALUES "
            "('first', :hash, 'en'), ('second', :hash, 'hu')"),
            {"hash": PasswordHasher().hash("p" * 12)})
    old.dispose()

    store = Store(url)  # the accounts predate roles: the first becomes administrator

    assert [(a["username"], a["role"], a["disabled"]) for a in store.counsellors()] == [
        ("first", "admin", False), ("second", "counsellor", False)]
    assert store.check_password("second", "p" * 12) is not None
    with store.engine.connect() as db:
        columns = {c["name"] for c in sa.inspect(db).get_columns("messages")}
    assert {"author", "content", "intent", "confidence"} <= columns
    store.engine.dispose()
    # Starting again changes nothing, whoever is administrator by then.
    with store.engine.begin() as db:
        db.execute(sa.text("UPDATE counsellors SET role = 'admin' WHERE username = 'second'"))
        db.execute(sa.text("UPDATE counsellors SET role = 'viewer' WHERE username = 'first'"))
    again = Store(url)
    assert [a["role"] for a in again.counsellors()] == ["viewer", "admin"]


def test_one_desk_at_a_time_holds_a_lease_until_it_runs_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    first, second = Store(url), Store(url)
    assert first.lease("delivery", "host:8000", 60)
    assert first.lease("delivery", "host:8000", 60)  # renewed
    assert not second.lease("delivery", "host:8001", 60)
    assert second.lease("other-job", "host:8001", 60)
    with first.engine.begin() as db:  # the holder stopped renewing a while ago
        db.execute(sa.text("UPDATE leases SET until = :past WHERE name = 'delivery'"),
                   {"past": now() - timedelta(seconds=1)})
    assert second.lease("delivery", "host:8001", 60)
    assert not first.lease("delivery", "host:8000", 60)


def test_two_requests_for_one_conversation_at_once_make_one_ticket(tmp_path):
    import threading

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    desks = [Store(url), Store(url)]
    made = []

    def ask(store, key):
        fields = {"idempotency_key": key, "conversation_id": "web-same", "channel": "socketio",
                  "language": "ar", "topic": "request_human", "urgency": "normal",
                  "consent_at": now(), "consent_language": "ar"}
        made.append(store.create_ticket(fields, []))

    threads = [threading.Thread(target=ask, args=(store, f"key-{n:08d}"))
               for n, store in enumerate(desks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(m["created"] for m in made) == [False, True]
    assert made[0]["ticket"]["id"] == made[1]["ticket"]["id"]
    with desks[0].engine.connect() as db:
        with pytest.raises(sa.exc.IntegrityError):  # the database itself keeps the rule
            db.execute(tickets.insert().values(
                idempotency_key="key-direct", conversation_id="web-same", channel="rest",
                language="en", topic="x", urgency="normal", status="open", created_at=now(),
                updated_at=now(), consent_at=now(), consent_language="en", handed_back=False))


def test_a_time_with_an_offset_is_the_same_moment_in_utc():
    from datetime import datetime, timezone

    from desk.store import parse_time

    assert parse_time("2026-11-24T10:00:00+02:00") == datetime(2026, 11, 24, 8, tzinfo=timezone.utc)
    assert parse_time("2026-11-24T10:00:00+02:00").utcoffset() == timedelta(0)
    assert parse_time("2026-11-24T10:00:00") == datetime(2026, 11, 24, 10, tzinfo=timezone.utc)


def test_a_ticket_is_counted_on_the_day_in_hungary_as_its_wait_is(tmp_path, monkeypatch):
    from datetime import date, datetime, timezone
    from zoneinfo import ZoneInfo

    import desk.store

    moment = datetime(2026, 12, 1, 23, 30, tzinfo=timezone.utc)  # 00:30 in Budapest
    monkeypatch.setattr(desk.store, "now", lambda: moment)
    store = Store(f"sqlite:///{tmp_path / 'desk.db'}", zone=ZoneInfo("Europe/Budapest"))
    ticket = store.create_ticket(
        {"idempotency_key": "key-00000001", "conversation_id": "telegram:1",
         "channel": "telegram", "language": "ps", "topic": "request_human",
         "urgency": "urgent", "consent_at": moment, "consent_language": "ps"}, [])["ticket"]
    store.reply(ticket["id"], "api", "hello")

    rows = store.statistics(date(2026, 11, 30), date(2026, 12, 3))
    assert {w["day"] for w in rows["waits"]} == {date(2026, 12, 2)}
    assert {(r["day"], r["metric"]) for r in rows["counts"]} == {
        (date(2026, 12, 2), "tickets"), (date(2026, 12, 2), "tickets:urgent")}


@pytest.mark.integration
def test_a_ticket_half_made_when_its_conversation_is_deleted_does_not_outlive_it(postgres_url):
    """PostgreSQL: the ticket's transaction read `forgotten` before the deletion committed.
    One of the two waits for the other: the ticket is refused, or made and then deleted."""
    import threading

    store = Store(postgres_url)
    read_forgotten, deleted = threading.Event(), threading.Event()

    @sa.event.listens_for(store.engine, "after_cursor_execute")
    def pause(conn, cursor, statement, *args):
        if "FROM forgotten" in statement and threading.current_thread().name == "creator":
            read_forgotten.set()
            deleted.wait(2)  # before the fix, the deletion committed meanwhile

    fields = {"idempotency_key": "key-late0001", "conversation_id": "web-race",
              "channel": "socketio", "language": "ar", "topic": "request_human",
              "urgency": "normal", "consent_at": now(), "consent_language": "ar"}
    creator = threading.Thread(name="creator", target=store.create_ticket, args=(fields, []))
    creator.start()
    assert read_forgotten.wait(10)
    store.delete_conversation("web-race")
    deleted.set()
    creator.join(20)

    with store.engine.connect() as db:
        assert db.execute(sa.select(tickets.c.id).where(
            tickets.c.conversation_id == "web-race")).fetchall() == []


def test_a_claim_lapses_only_when_its_holder_has_been_away_as_long(tmp_path, monkeypatch):
    """bela closes his browser at 9:20 without signing out, and a password reset at 9:21
    ends his sessions; cleo is assigned a ticket at 9:00 and never signs in. Each claim
    has 30 minutes' grace, counted from the claim and from the holder's last console."""
    from datetime import datetime, timezone

    import desk.store

    clock = [datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)]
    monkeypatch.setattr(desk.store, "now", lambda: clock[0])
    store = Store(f"sqlite:///{tmp_path / 'desk.db'}")
    for name in ("amina", "bela", "cleo"):
        store.add_counsellor(name, "a-good-long-password", ["ar"])
    session = store.open_session(store.check_password("bela", "a-good-long-password"))

    def ticket(key):
        return store.create_ticket(
            {"idempotency_key": key, "conversation_id": f"web-{key}", "channel": "socketio",
             "language": "ar", "topic": "request_human", "urgency": "normal",
             "consent_at": clock[0], "consent_language": "ar"}, [])["ticket"]["id"]

    belas, cleos = ticket("key-bela-1"), ticket("key-cleo-1")
    store.claim(belas, "bela")
    store.assign(cleos, "cleo", "amina")
    idle = timedelta(minutes=30)

    def at(hour, minute):
        clock[0] = clock[0].replace(hour=hour, minute=minute)

    at(9, 20)
    assert store.release_absent(idle) == 0
    assert store.session(session["token"]) is not None  # his console's last poll
    at(9, 21)
    store.reset_password("bela", "a-temporary-password", "amina")
    at(9, 31)
    assert store.release_absent(idle) == 1  # cleo's: assigned 31 minutes ago, never seen
    assert (store.ticket(belas)["assignee"], store.ticket(cleos)["assignee"]) == ("bela", None)
    at(9, 52)
    assert store.release_absent(idle) == 1
    assert store.ticket(belas)["assignee"] is None
    history = store.ticket(belas, with_messages=True)["history"]
    assert [(e["actor"], e["action"], e["detail"]) for e in history][-1] == (
        "desk", "released", "bela away for 30 minutes or more")
    store.claim(belas, "amina")
    at(10, 30)  # amina took it, and has no console open either: her own 30 minutes
    assert store.release_absent(idle) == 1
    assert store.release_absent(idle) == 0


def test_a_ticket_is_made_urgent_once_however_many_danger_messages_come(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'desk.db'}")
    created = store.create_ticket(
        {"idempotency_key": "key-urgent-1", "conversation_id": "web-urgent",
         "channel": "socketio", "language": "ar", "topic": "request_human",
         "urgency": "normal", "consent_at": now(), "consent_language": "ar"}, [])["ticket"]

    def danger(key):
        return store.inbound("key-urgent-1", "web-urgent", key, "help", now(), urgent=True)

    first, raised = danger("message-1")
    assert (raised["id"], raised["urgency"]) == (created["id"], "urgent")
    assert danger("message-1") == (first, None)  # the same message sent again
    assert danger("message-2")[1] is None  # urgent already
    history = store.ticket(created["id"], with_messages=True)["history"]
    assert [(e["actor"], e["action"]) for e in history] == [("api", "made urgent")]
