"""The channels' records: once-only claims, the durable send queue, what is known about a
person, and their deletion, on SQLite (and the same code on PostgreSQL in
tests/integration)."""
import os
import socket
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from avrr.db import engine
from bot.channels.records import (
    CLAIM_TIMEOUT_S,
    HELD,
    QUEUED,
    REDELIVERY_HORIZON_S,
    ChannelRecords,
    Claim,
    gone,
    metadata,
    processed,
    this_process,
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def records(tmp_path, clock):
    made = ChannelRecords(engine(f"sqlite:///{tmp_path / 'channels.db'}"), clock)
    made.create_schema()
    return made


def test_a_claimed_update_is_in_hand_until_released(records):
    assert records.claim("whatsapp", "wamid.1") is Claim.NEW
    assert records.claim("whatsapp", "wamid.1") is Claim.IN_HAND

    records.release("whatsapp", "wamid.1")

    assert records.claim("whatsapp", "wamid.1") is Claim.NEW


def test_a_done_update_is_never_claimed_again_even_after_the_timeout(records, clock):
    records.claim("whatsapp", "wamid.1")
    records.finish("whatsapp", "wamid.1", "whatsapp:361", [])
    records.release("whatsapp", "wamid.1")  # too late: it is recorded

    assert records.claim("whatsapp", "wamid.1") is Claim.DONE
    clock.now += 10 * CLAIM_TIMEOUT_S
    assert records.claim("whatsapp", "wamid.1") is Claim.DONE


def test_a_pending_claim_left_by_a_crash_expires(records, clock):
    assert records.claim("whatsapp", "wamid.1") is Claim.NEW

    clock.now += CLAIM_TIMEOUT_S - 1
    assert records.claim("whatsapp", "wamid.1") is Claim.IN_HAND
    clock.now += 2
    assert records.claim("whatsapp", "wamid.1") is Claim.NEW


def test_a_claim_of_a_process_that_died_on_this_machine_is_taken_over_at_once(
        tmp_path, clock):
    """The Rasa server was killed while handling an update, and started again: the
    platform's redelivery is handled now, not two minutes later."""
    url = f"sqlite:///{tmp_path / 'channels.db'}"
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that is gone
    child.wait()
    before = ChannelRecords(engine(url), clock, owner=f"{socket.gethostname()} {child.pid} ab")
    before.create_schema()
    assert before.claim("telegram", "7") is Claim.NEW

    assert ChannelRecords(engine(url), clock).claim("telegram", "7") is Claim.NEW


@pytest.mark.parametrize("owner", [
    f"{socket.gethostname()} {os.getppid()} ab",  # alive on this machine
    "another-host 1 ab",  # on another machine: not known to be dead
    None,  # a claim without an owner
])
def test_a_claim_whose_owner_may_be_alive_waits_for_the_timeout(tmp_path, clock, owner):
    url = f"sqlite:///{tmp_path / 'channels.db'}"
    before = ChannelRecords(engine(url), clock, owner=owner or "")
    before.create_schema()
    assert before.claim("telegram", "7") is Claim.NEW
    if owner is None:
        with before.engine.begin() as db:
            db.execute(processed.update().values(owner=None))
    records = ChannelRecords(engine(url), clock)

    assert records.claim("telegram", "7") is Claim.IN_HAND
    clock.now += CLAIM_TIMEOUT_S + 1
    assert records.claim("telegram", "7") is Claim.NEW


def test_a_claim_renewed_by_its_owner_stays_in_hand_past_the_timeout(tmp_path, clock):
    """Rasa may wait minutes for the action server: a redelivery meanwhile waits."""
    url = f"sqlite:///{tmp_path / 'channels.db'}"
    owner = ChannelRecords(engine(url), clock, owner="a-host 10 ab")
    owner.create_schema()
    other = ChannelRecords(engine(url), clock, owner="b-host 20 cd")
    assert owner.claim("telegram", "7") is Claim.NEW

    for _ in range(5):
        clock.now += CLAIM_TIMEOUT_S - 1
        owner.renew("telegram", "7")
        assert other.claim("telegram", "7") is Claim.IN_HAND

    clock.now += CLAIM_TIMEOUT_S  # its owner stopped renewing it: taken over
    assert other.claim("telegram", "7") is Claim.NEW
    owner.renew("telegram", "7")  # the former owner neither takes it back
    owner.release("telegram", "7")  # nor releases it
    clock.now += CLAIM_TIMEOUT_S - 1
    assert owner.claim("telegram", "7") is Claim.IN_HAND


def test_this_process_restarted_with_the_same_pid_is_another_owner():
    assert not gone(this_process())
    host, pid, _ = this_process().split(" ")
    assert gone(f"{host} {pid} another")


def test_claims_are_per_channel(records):
    assert records.claim("whatsapp", "42") is Claim.NEW
    assert records.claim("telegram", "42") is Claim.NEW


def test_only_one_of_many_simultaneous_claims_wins(records):
    results = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        results.append(records.claim("whatsapp", "wamid.same"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.value for r in results) == ["in hand"] * 7 + ["new"]


def test_ids_are_kept_as_hashes_only(records):
    records.claim("whatsapp", "wamid.HBgLMzYyMDEyMzQ1Njc4FQIAEhg")

    with records.engine.connect() as db:
        dump = "\n".join(db.connection.iterdump())
    assert "HBgLMzYyMDEyMzQ1Njc4" not in dump


def test_finishing_queues_the_replies_with_the_claim_done(records):
    records.claim("telegram", "7")

    records.finish("telegram", "7", "telegram:101", [{"text": "one"}, {"text": "two"}])

    due = records.due("telegram")
    assert [(m.conversation, m.payload) for m in due] == [("telegram:101", {"text": "one"})]
    assert records.claim("telegram", "7") is Claim.DONE


def test_messages_leave_the_queue_in_order_one_per_person_at_a_time(records):
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}, {"text": "a2"}])
    records.enqueue("telegram", "telegram:2", [{"text": "b1"}])
    records.enqueue("whatsapp", "whatsapp:3", [{"type": "text"}])

    first = records.due("telegram")
    assert [m.payload["text"] for m in first] == ["a1", "b1"]
    assert records.lease(first[0].id) is True
    assert records.lease(first[0].id) is False  # another deliverer has it
    records.mark_sent(first[0].id)

    assert [m.payload["text"] for m in records.due("telegram")] == ["a2", "b1"]


def test_a_retry_waits_its_delay(records, clock):
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}])
    [message] = records.due("telegram")
    records.lease(message.id)

    records.retry(message.id, 30.0)

    assert records.due("telegram") == []
    clock.now += 31
    [again] = records.due("telegram")
    assert (again.id, again.attempts) == (message.id, 1)


def test_a_lease_left_by_a_crash_expires(records, clock):
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}])
    [message] = records.due("telegram")
    records.lease(message.id)
    assert records.due("telegram") == []

    clock.now += 61

    assert [m.id for m in records.due("telegram")] == [message.id]


def test_a_keyed_message_is_queued_and_sent_once(records):
    for _ in range(2):
        records.enqueue("telegram", "telegram:1", [{"text": "reply"}], key="desk-5")
    [message] = records.due("telegram")
    records.lease(message.id)
    records.mark_sent(message.id)
    records.enqueue("telegram", "telegram:1", [{"text": "reply"}], key="desk-5")

    assert records.due("telegram") == []
    assert records.is_sent("telegram", "desk-5") is True
    assert records.is_sent("telegram", "desk-6") is False


def test_a_keyed_message_refused_for_good_is_never_queued_again(records, clock):
    records.enqueue("telegram", "telegram:1", [{"text": "reply"}], key="desk-7")
    records.enqueue("telegram", "telegram:1", [{"text": "answer"}])
    [keyed] = records.due("telegram")  # one per person: the keyed one first
    records.lease(keyed.id)
    records.drop(keyed.id)  # the person blocked the bot
    records.enqueue("telegram", "telegram:1", [{"text": "reply"}], key="desk-7")

    assert [m.payload for m in records.due("telegram")] == [{"text": "answer"}]
    assert records.is_refused("telegram", "desk-7") is True
    assert records.is_sent("telegram", "desk-7") is False
    assert records.is_refused("whatsapp", "desk-7") is False
    clock.now += 9 * 24 * 3600  # past the platforms' redelivery horizon
    records.prune(retention_s=30 * 24 * 3600)
    assert records.is_refused("telegram", "desk-7") is False


def test_held_messages_wait_for_the_person_then_go_first(records):
    records.enqueue("whatsapp", "whatsapp:361", [{"n": 1}, {"n": 2}])
    assert records.hold("whatsapp:361") == 2
    records.set_notified("whatsapp:361")
    records.enqueue("whatsapp", "whatsapp:361", [{"n": 3}])
    assert [m.payload for m in records.due("whatsapp")] == [{"n": 3}]
    assert records.pending("whatsapp") == {QUEUED: 1, HELD: 2}

    assert records.release_held("whatsapp:361") == 2

    assert [m.payload for m in records.due("whatsapp")] == [{"n": 1}]
    assert records.notified("whatsapp:361") is False


def test_last_wrote_keeps_the_latest_time(records):
    assert records.last_wrote("whatsapp:36201234567") is None

    records.wrote("whatsapp:36201234567", at=2000.0)
    records.wrote("whatsapp:36201234567", at=1000.0)  # a late redelivery of an older message

    assert records.last_wrote("whatsapp:36201234567") == 2000.0
    assert records.last_wrote("telegram:36201234567") is None


def test_the_language_of_a_person_is_kept(records):
    assert records.language("whatsapp:361") is None
    records.set_language("whatsapp:361", "fa")
    records.set_language("whatsapp:361", "ps")

    assert records.language("whatsapp:361") == "ps"


def rows_naming(records, needle):
    """Every row of every table that holds `needle` anywhere."""
    found = []
    with records.engine.connect() as db:
        for table in metadata.sorted_tables:
            for row in db.execute(sa.select(table)):
                if any(needle in str(value) for value in row):
                    found.append((table.name, tuple(row)))
    return found


def test_forget_deletes_all_that_is_kept_about_a_person(records):
    person, other = "whatsapp:36201234567", "whatsapp:36209999999"
    for who in (person, other):
        records.claim("whatsapp", f"wamid.{who}")
        records.finish("whatsapp", f"wamid.{who}", who, [{"text": "hi"}], window_until=9e9)
        records.wrote(who)
        records.enqueue("whatsapp", who, [{"text": "held"}])
        records.hold(who)
        records.set_notified(who)
        records.set_language(who, "tr")
        records.enqueue("whatsapp", who, [{"text": "reply"}], key=f"desk-{who}")
    assert rows_naming(records, "36201234567")

    records.forget(person)

    assert rows_naming(records, "36201234567") == []
    assert records.last_wrote(other) is not None and records.language(other) == "tr"
    with records.engine.connect() as db:
        assert db.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_pruning_drops_old_ids_after_the_redelivery_horizon_and_people_after_retention(
    records, clock
):
    records.claim("whatsapp", "wamid.old")
    records.wrote("whatsapp:361")
    records.set_language("whatsapp:361", "fa")
    clock.now += REDELIVERY_HORIZON_S + 1
    records.claim("whatsapp", "wamid.new")

    records.prune(retention_s=90 * 86400)

    assert records.claim("whatsapp", "wamid.old") is Claim.NEW  # forgotten
    assert records.claim("whatsapp", "wamid.new") is Claim.IN_HAND
    assert records.language("whatsapp:361") == "fa"

    clock.now += 90 * 86400
    records.prune(retention_s=90 * 86400)

    assert records.language("whatsapp:361") is None
    assert records.last_wrote("whatsapp:361") is None


def test_the_records_survive_a_restart(tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'channels.db'}"
    first = ChannelRecords(engine(url), clock)
    first.create_schema()
    first.claim("telegram", "1")
    first.finish("telegram", "1", "telegram:5", [{"text": "queued"}])

    again = ChannelRecords(engine(url), clock)
    again.create_schema()

    assert again.claim("telegram", "1") is Claim.DONE
    assert [m.payload for m in again.due("telegram")] == [{"text": "queued"}]
