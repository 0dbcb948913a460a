import itertools
import sqlite3
import time

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.serve import TrackerStoreUnavailable, durable_tracker_store
from bot.tracker_store import PrivacySQLTrackerStore

DOMAIN = Domain.from_yaml("version: '3.1'\nintents: [greet, affirm]")


@pytest.fixture
def store(tmp_path):
    return PrivacySQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(tmp_path / "t.db"))


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
