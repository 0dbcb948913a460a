"""The tracker store: saves like Rasa's SQL store; deletes a person entirely, only after
the deletion action reported success; never makes a conversation nobody wrote in;
expires old conversations."""
import itertools
import sqlite3
import time

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot import runtime
from bot.serve import TrackerStoreUnavailable, durable_tracker_store
from bot.tracker_store import ConversationGone, PrivacySQLTrackerStore

DOMAIN = Domain.from_yaml(
    "version: '3.1'\nintents: [greet, affirm]\n"
    "slots:\n  data_deleted:\n    type: bool\n    mappings: [{type: custom}]"
)


@pytest.fixture
def store():
    """The store where the settings put it (a temporary data folder, see conftest)."""
    return PrivacySQLTrackerStore(domain=DOMAIN)


def rows(store, sender_id):
    with sqlite3.connect(store.engine.url.database) as db:
        query = "SELECT count(*) FROM events WHERE sender_id = ?"
        return db.execute(query, (sender_id,)).fetchone()[0]


_clock = itertools.count()


def stamped(event):
    """`event`, timestamped after every earlier one, as Rasa's events are in a real turn."""
    event.timestamp = time.time() + next(_clock)
    return event


def conversation(sender_id, *events, tracker=None):
    """A new session of `sender_id` with `events`, continuing `tracker` if given."""
    tracker = tracker or DialogueStateTracker(sender_id, DOMAIN.slots)
    for event in (ActionExecuted("action_session_start"), SessionStarted(), *events):
        tracker.update(stamped(event))
    return tracker


async def test_a_failed_write_logs_neither_the_conversation_nor_the_words(
    store, monkeypatch, caplog
):
    """A database error quoted its statement's values, and Rasa's HTTP API logged it."""
    import logging

    import rasa.server
    import sqlalchemy as sa
    from rasa.server import ErrorResponse

    from bot.serve import QUIET_REFUSALS, retryable_error

    with sqlite3.connect(store.engine.url.database) as db:
        db.execute("CREATE TRIGGER full BEFORE INSERT ON events "
                   "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    monkeypatch.setattr(ErrorResponse, "__init__", retryable_error)
    rasa.server.logger.addFilter(QUIET_REFUSALS)
    caplog.set_level(logging.INFO)
    tracker = conversation("whatsapp:36201234567", UserUttered("my husband beats me"))
    try:
        with pytest.raises(sa.exc.IntegrityError) as failed:
            await store.save(tracker)
        try:
            raise failed.value
        except sa.exc.IntegrityError as e:  # as rasa.server answers a failed write
            answer = ErrorResponse(500, "ConversationError",
                                   f"An unexpected error occurred. Error: {e}")
    finally:
        rasa.server.logger.removeFilter(QUIET_REFUSALS)

    assert "[SQL parameters hidden due to hide_parameters=True]" in str(failed.value)
    assert "36201234567" not in str(failed.value) and "husband" not in str(failed.value)
    assert answer.status == 500
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("bot.serve", "ERROR", "the HTTP API failed a request: ConversationError (500, "
                               "IntegrityError)"),
    ]


async def test_saves_like_the_sql_store(store):
    tracker = conversation("alice", UserUttered("hello my name is Alice"), BotUttered("hi"))

    await store.save(tracker)

    assert rows(store, "alice") == 4
    assert [e.as_dict()["event"] for e in (await store.retrieve("alice")).events] == [
        "session_started", "user", "bot"
    ]


async def test_deletion_removes_every_session_and_stores_nothing_after(store):
    alice = conversation("alice", UserUttered("my phone is 0036 1 234"), BotUttered("ok"))
    await store.save(alice)
    alice = conversation("alice", UserUttered("delete my data"), UserUttered("yes"), tracker=alice)
    await store.save(alice)
    await store.save(conversation("bob", UserUttered("hello")))
    assert rows(store, "alice") > 4  # both sessions are stored

    alice.update(stamped(ActionExecuted("action_delete_my_data")))
    alice.update(stamped(BotUttered("Done")))
    alice.update(stamped(SlotSet("data_deleted", True)))
    await store.save(alice)
    # Rasa saves the same tracker again at the end of the turn: still nothing stored.
    alice.update(stamped(ActionExecuted("action_listen")))
    await store.save(alice)

    assert rows(store, "alice") == 0
    assert await store.retrieve("alice") is None
    assert await store.retrieve_full_tracker("alice") is None
    assert rows(store, "bob") == 3


def test_the_server_refuses_to_run_without_a_durable_store(store):
    assert durable_tracker_store(store, DOMAIN) is store
    with pytest.raises(TrackerStoreUnavailable):
        durable_tracker_store(InMemoryTrackerStore(DOMAIN), DOMAIN)
    with pytest.raises(TrackerStoreUnavailable):
        durable_tracker_store(None, DOMAIN)


async def test_sqlite_runs_in_write_ahead_log_mode(store):
    await store.save(conversation("carol", UserUttered("hi")))
    with sqlite3.connect(store.engine.url.database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_the_channels_records_of_the_person_go_first(store):
    records = runtime.records()
    records.wrote("whatsapp:36201234567")
    records.set_language("whatsapp:36201234567", "fa")
    person = conversation("whatsapp:36201234567", UserUttered("delete my data"))
    await store.save(person)

    person.update(stamped(ActionExecuted("action_delete_my_data")))
    person.update(stamped(SlotSet("data_deleted", True)))
    await store.save(person)

    assert rows(store, "whatsapp:36201234567") == 0
    assert records.last_wrote("whatsapp:36201234567") is None
    assert records.language("whatsapp:36201234567") is None


async def test_a_deletion_that_failed_deletes_nothing(store):
    alice = conversation("alice", UserUttered("delete my data"), UserUttered("yes"))
    alice.update(stamped(ActionExecuted("action_delete_my_data")))
    alice.update(stamped(BotUttered("Sorry, I could not delete everything right now")))

    await store.save(alice)

    assert rows(store, "alice") == 6


async def test_no_conversation_is_made_out_of_nothing(store):
    """A counsellor's reply racing the person's deletion must not bring the conversation back;
    Rasa's empty new tracker (made when a message arrives, or the API asks) is not kept."""
    orphan = conversation("gone", BotUttered("A counsellor's reply"))

    with pytest.raises(ConversationGone):
        await store.save(orphan)
    await store.save(DialogueStateTracker("asked-about", DOMAIN.slots))
    await store.save(conversation("asked-about"))
    assert rows(store, "gone") == rows(store, "asked-about") == 0

    alice = conversation("alice", UserUttered("hi"))
    await store.save(alice)
    reply = DialogueStateTracker.from_events("alice", (await store.retrieve("alice")).events,
                                             DOMAIN.slots)
    reply.update(stamped(BotUttered("A counsellor's reply")))
    await store.save(reply)
    assert rows(store, "alice") == 4


async def test_conversations_nobody_wrote_in_for_the_retention_period_expire(store):
    old = conversation("old", UserUttered("hello"))
    for event in old.events:
        event.timestamp -= 100 * 86400
    await store.save(old)
    await store.save(conversation("recent", UserUttered("hello")))

    assert await store.expire(90 * 86400) == 1

    assert rows(store, "old") == 0
    assert rows(store, "recent") == 3


async def test_a_conversation_written_in_while_it_expires_is_kept(store, caplog):
    """The retention job deletes holding the conversation's lock, and only if still old: a
    turn between reading and saving the tracker would have written the deleted
    conversation back whole, its old messages with it."""
    import asyncio
    import logging

    from rasa.core.lock_store import InMemoryLockStore

    caplog.set_level(logging.INFO)
    locks = InMemoryLockStore()
    old = conversation("back", UserUttered("hello"))
    for event in old.events:
        event.timestamp -= 100 * 86400
    await store.save(old)

    queued = asyncio.Event()
    issue = locks.issue_ticket

    def issue_and_tell(*args, **kwargs):
        ticket = issue(*args, **kwargs)
        queued.set()
        return ticket

    async with locks.lock("back"):  # the person writes again, after 100 days
        locks.issue_ticket = issue_and_tell
        expiring = asyncio.create_task(store.expire(90 * 86400, locks))
        await asyncio.wait_for(queued.wait(), 5)  # the job found it old, waits for the lock
        assert not expiring.done()
        tracker = await store.retrieve("back")
        tracker.update(stamped(UserUttered("I am back")))
        await store.save(tracker)
    assert await expiring == 0
    assert rows(store, "back") == 4

    gone = conversation("gone", UserUttered("hello"))
    for event in gone.events:
        event.timestamp -= 100 * 86400
    await store.save(gone)
    assert await store.expire(90 * 86400, locks) == 1
    assert rows(store, "gone") == 0 and rows(store, "back") == 4
    assert "Deleted a conversation nobody wrote in for the retention period" in caplog.text


async def test_secure_delete_is_on(store):
    await store.save(conversation("carol", UserUttered("hi")))
    with store.engine.connect() as db:
        assert db.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


async def test_an_event_never_gets_the_id_of_a_deleted_one(store):
    """The desk's statistics read events after the last id they saw: a new event must
    never take the id of a deleted newer one (SQLite reuses them without AUTOINCREMENT)."""
    await store.save(conversation("bob", UserUttered("hello")))
    alice = conversation("alice", UserUttered("hello"))
    await store.save(alice)
    with sqlite3.connect(store.engine.url.database) as db:
        newest = db.execute("SELECT max(id) FROM events").fetchone()[0]
    await store.delete("alice")  # the newest events go

    await store.save(conversation("carol", UserUttered("hello")))
    with sqlite3.connect(store.engine.url.database) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM events WHERE sender_id = 'carol'")]
    assert min(ids) > newest


async def test_an_older_events_table_is_rebuilt_to_never_reuse_ids(store):
    await store.save(conversation("bob", UserUttered("hello")))
    path = store.engine.url.database
    with sqlite3.connect(path) as db:  # as Rasa makes it: no AUTOINCREMENT
        db.execute("ALTER TABLE events RENAME TO events_auto")
        db.execute("CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY, sender_id "
                   "VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL, timestamp FLOAT, "
                   "intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)")
        db.execute("INSERT INTO events SELECT * FROM events_auto")
        db.execute("DROP TABLE events_auto")
    store.engine.dispose()

    again = PrivacySQLTrackerStore(domain=DOMAIN)

    assert rows(again, "bob") == 3
    assert (await again.retrieve("bob")).latest_message.text == "hello"
    with sqlite3.connect(path) as db:
        made = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "AUTOINCREMENT" in made
