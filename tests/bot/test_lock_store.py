"""bot/lock_store.py on a real Redis: tickets taken by several replicas at once are all
distinct and all kept, and one holder at a time is let in; Rasa's own Redis store, as a
control, gives two replicas the same ticket and loses tickets."""
import asyncio
import json
import logging
import threading
import time
from typing import Any, Callable, List
from urllib.parse import urlsplit

import pytest
import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockError, RedisLockStore
from rasa.shared.exceptions import ConnectionException

from avrr.settings import RasaSettings, SettingsError, load
from bot.lock_store import AtomicRedisLockStore, from_settings
from tests.ports import free_port

CONVERSATION = "web-0123456789abcdef0123456789abcdef"
SECRET = "a-shared-session-secret"
LONG = 600.0  # seconds: a lifetime no ticket reaches during a test


def stock(url: str) -> RedisLockStore:
    """Rasa's own Redis lock store on the test Redis, with a connection of its own."""
    parts = urlsplit(url)
    return RedisLockStore(host=parts.hostname, port=parts.port, db=int(parts.path[1:]))


def numbers(url: str, conversation: str = CONVERSATION) -> List[int]:
    """The ticket numbers stored in the lock, read as Rasa reads them."""
    lock = stock(url).get_lock(conversation)
    return [ticket.number for ticket in lock.tickets] if lock else None


def at_once(work: Callable[[int], None], count: int) -> None:
    """`work(0)` ... `work(count - 1)`, each in a thread of its own, started together."""
    start = threading.Barrier(count)
    failures: List[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as failure:  # noqa: BLE001 - reported below
            failures.append(failure)

    # Daemons: a thread stuck waiting for a lost ticket fails the test, not the run.
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    assert failures == []


@pytest.mark.integration
def test_tickets_taken_at_once_on_several_replicas_are_distinct_and_all_kept(redis_url):
    replicas = [AtomicRedisLockStore(redis_url) for _ in range(8)]
    issued: List[List[int]] = [[] for _ in replicas]

    def take_tickets(index: int) -> None:
        for _ in range(50):
            issued[index].append(replicas[index].issue_ticket(CONVERSATION, LONG))

    at_once(take_tickets, len(replicas))

    every = sorted(n for mine in issued for n in mine)
    assert every == list(range(every[0], every[0] + 8 * 50))  # none given twice or skipped
    assert numbers(redis_url) == every  # and every one is in the lock, in order
    assert all(mine == sorted(mine) for mine in issued)


@pytest.mark.integration
def test_the_lock_lets_one_holder_in_at_a_time_whichever_replica_it_is_on(redis_url):
    guard = threading.Lock()
    log: List[tuple] = []

    async def hold(store: AtomicRedisLockStore, who: int) -> None:
        for turn in range(8):
            async with store.lock(CONVERSATION, LONG, wait_time_in_seconds=0.005):
                with guard:
                    log.append(("enter", who, turn))
                await asyncio.sleep(0.002)  # a message being processed
                with guard:
                    log.append(("exit", who, turn))

    def replica(who: int) -> None:
        asyncio.run(asyncio.wait_for(hold(AtomicRedisLockStore(redis_url), who), 30))

    at_once(replica, 6)

    assert len(log) == 2 * 6 * 8
    # Each holder leaves before the next one enters: enter, exit of the same, enter, ...
    for entered, left in zip(log[0::2], log[1::2], strict=True):
        assert entered[0] == "enter" and left == ("exit", *entered[1:])
    assert numbers(redis_url) is None  # the last holder deleted the lock


def meanwhile(store: RedisLockStore, write: str, other: Callable[[], Any]) -> List[Any]:
    """Make `store` run `other` just before its method `write`, as another replica would
    between this one's read and write; what `other` returned is in the list returned."""
    returned: List[Any] = []
    original = getattr(store, write)

    def other_first(*args: Any) -> Any:
        returned.append(other())
        return original(*args)

    setattr(store, write, other_first)
    return returned


@pytest.mark.integration
def test_rasas_own_store_gives_two_replicas_the_same_ticket_and_loses_one(redis_url):
    """The control: replica B takes its ticket between replica A's read and write."""
    a, b = stock(redis_url), stock(redis_url)
    b_tickets = meanwhile(a, "save_lock", lambda: b.issue_ticket(CONVERSATION, LONG))

    a_ticket = a.issue_ticket(CONVERSATION, LONG)

    assert a_ticket == b_tickets[0] == 0  # both are served now: two messages at once
    assert numbers(redis_url) == [0]  # and one of the two tickets is lost


@pytest.mark.integration
def test_rasas_own_store_loses_a_ticket_taken_while_another_replica_drops_expired_ones(
    redis_url,
):
    """The control: Rasa's waiting loop drops expired tickets (update_lock) by rewriting
    the lock; a ticket taken meanwhile is gone, and its message waits for ever."""
    holder, waiting, newcomer = stock(redis_url), stock(redis_url), stock(redis_url)
    holder.issue_ticket(CONVERSATION, LONG)
    waiting.issue_ticket(CONVERSATION, LONG)
    new_tickets = meanwhile(
        waiting, "save_lock", lambda: newcomer.issue_ticket(CONVERSATION, LONG)
    )

    waiting.update_lock(CONVERSATION)

    assert new_tickets == [2] and numbers(redis_url) == [0, 1]  # ticket 2 is lost


@pytest.mark.integration
async def test_rasas_own_store_deletes_a_lock_another_replica_just_queued_in(redis_url):
    """The control: cleanup finds nobody waiting, and deletes the lock after a ticket was
    taken in it on another replica, whose message then fails."""
    holder, newcomer = stock(redis_url), stock(redis_url)
    ticket = holder.issue_ticket(CONVERSATION, LONG)
    new_tickets = meanwhile(
        holder, "delete_lock", lambda: newcomer.issue_ticket(CONVERSATION, LONG)
    )

    holder.cleanup(CONVERSATION, ticket)

    assert new_tickets == [0] and numbers(redis_url) is None
    with pytest.raises(LockError):
        await newcomer._acquire_lock(CONVERSATION, new_tickets[0], 0.01)


@pytest.mark.integration
def test_expiring_finishing_and_cleaning_up_on_other_replicas_keep_every_waiting_ticket(
    redis_url,
):
    """Replicas queue tickets while others drop expired tickets, finish and clean up their
    own, and leave tickets of dead holders behind: every queued ticket stays."""
    queued: List[List[int]] = [[] for _ in range(4)]
    dead: List[int] = []
    done = threading.Event()

    def work(index: int) -> None:
        store = AtomicRedisLockStore(redis_url)
        if index < len(queued):
            for _ in range(50):
                queued[index].append(store.issue_ticket(CONVERSATION, LONG))
            return
        rounds = 0
        while rounds < 50 or not all(len(mine) == 50 for mine in queued):
            dead.append(store.issue_ticket(CONVERSATION, 0.0001))  # a holder that dies
            mine = store.issue_ticket(CONVERSATION, LONG)
            store.update_lock(CONVERSATION)
            if rounds % 2:
                store.finish_serving(CONVERSATION, mine)
            else:
                store.cleanup(CONVERSATION, mine)
            rounds += 1
        done.set()

    at_once(work, 8)

    assert done.is_set()
    every = sorted(n for mine in queued for n in mine)
    assert len(set(every)) == len(every) == 200
    # A dead holder's ticket queued behind others outlives them (bot.lock_store): it may
    # still be there, but nothing else is, and every queued ticket is, in order.
    stored = numbers(redis_url)
    assert stored == sorted(stored)
    assert set(every) <= set(stored) and set(stored) - set(every) <= set(dead)


@pytest.mark.integration
def test_finishing_or_cleaning_up_a_ticket_keeps_the_other_holders_tickets(redis_url):
    a, b, c = (AtomicRedisLockStore(redis_url) for _ in range(3))
    tickets = [store.issue_ticket(CONVERSATION, LONG) for store in (a, b, c)]
    first = tickets[0]
    assert tickets == [first, first + 1, first + 2]

    b.finish_serving(CONVERSATION, first + 1)  # b gave up waiting
    assert numbers(redis_url) == [first, first + 2]
    a.cleanup(CONVERSATION, first)
    assert numbers(redis_url) == [first + 2]
    assert not stock(redis_url).get_lock(CONVERSATION).is_locked(first + 2)  # c's turn
    c.cleanup(CONVERSATION, first + 2)
    assert numbers(redis_url) is None


@pytest.mark.integration
def test_the_lock_is_stored_as_rasa_stores_it(redis_url):
    ours, rasas = AtomicRedisLockStore(redis_url), stock(redis_url)
    first = ours.issue_ticket(CONVERSATION, LONG)
    rasas.issue_ticket(CONVERSATION, LONG)
    ours.issue_ticket(CONVERSATION, LONG)

    stored = redis.Redis.from_url(redis_url).get(f"lock:{CONVERSATION}").decode()
    lock = TicketLock.from_dict(json.loads(stored))
    assert stored == lock.dumps()  # byte for byte what TicketLock writes
    assert lock.conversation_id == CONVERSATION
    assert [t.number for t in lock.tickets] == [first, first + 1, first + 2]
    first, second, third = lock.tickets
    assert all(time.time() + LONG - 60 < t.expires <= time.time() + LONG for t in (first, second))
    # Queued behind the others, a ticket lives a lifetime beyond the last of them.
    assert third.expires == pytest.approx(second.expires + LONG, abs=0.001)


@pytest.mark.integration
async def test_the_ticket_of_a_holder_that_died_expires_and_the_next_one_gets_in(redis_url):
    dead, alive = AtomicRedisLockStore(redis_url), AtomicRedisLockStore(redis_url)
    dead.issue_ticket(CONVERSATION, 1.0)  # its replica dies before finishing
    [expires] = [t.expires for t in stock(redis_url).get_lock(CONVERSATION).tickets]

    async def enter() -> float:
        async with alive.lock(CONVERSATION, LONG, wait_time_in_seconds=0.05):
            return time.time()

    entered = await asyncio.wait_for(enter(), timeout=20)

    assert entered > expires  # not before the dead holder's ticket expired
    assert numbers(redis_url) is None


@pytest.mark.integration
async def test_a_message_queued_just_after_a_holder_that_died_gets_in_once_it_expires(
    redis_url,
):
    # Both tickets with the same lifetime, as replicas issue them: in Rasa's own store
    # the waiter's ticket expires with the dead holder's, unserved, and it waits forever.
    dead, alive = AtomicRedisLockStore(redis_url), AtomicRedisLockStore(redis_url)
    dead.issue_ticket(CONVERSATION, 1.0)
    [expires] = [t.expires for t in stock(redis_url).get_lock(CONVERSATION).tickets]

    async def enter() -> float:
        async with alive.lock(CONVERSATION, 1.0, wait_time_in_seconds=0.3):
            return time.time()

    entered = await asyncio.wait_for(enter(), timeout=10)

    assert expires < entered < expires + 1.0
    assert numbers(redis_url) is None


@pytest.mark.integration
def test_the_rasa_server_takes_the_redis_lock_store_when_redis_is_set(redis_url, caplog):
    caplog.set_level(logging.INFO, logger="bot.lock_store")
    store = from_settings(RasaSettings(redis_url=redis_url, socket_session_secret=SECRET))

    assert isinstance(store, AtomicRedisLockStore)
    assert store.issue_ticket(CONVERSATION) in numbers(redis_url)
    assert f"lock store: Redis at {redis_url}" in caplog.text


def test_without_redis_or_when_told_the_lock_store_is_in_memory():
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: it is not even tried
    told = RasaSettings(redis_url=url, lock_store="memory", socket_session_secret=SECRET)

    assert isinstance(from_settings(RasaSettings()), InMemoryLockStore)
    assert isinstance(from_settings(told), InMemoryLockStore)
    with pytest.raises(SettingsError, match="AVRR_LOCK_STORE=redis needs AVRR_REDIS_URL"):
        load(RasaSettings, lock_store="redis")


def test_a_redis_that_does_not_answer_stops_the_start_without_showing_its_password(caplog):
    caplog.set_level(logging.DEBUG)
    url = f"redis://avrr:a-redis-password@127.0.0.1:{free_port()}/0"

    with pytest.raises(ConnectionException) as refused:
        from_settings(RasaSettings(redis_url=url, socket_session_secret=SECRET))

    assert f"avrr:***@127.0.0.1:{urlsplit(url).port}" in str(refused.value)
    assert "a-redis-password" not in str(refused.value) + caplog.text


@pytest.mark.integration
async def test_a_turn_that_outlived_its_ticket_does_not_end_the_next_holder_s_lock(redis_url):
    """Rasa lets the next message in once a holder's ticket expires, the holder still at
    work. When that holder finishes, its number must not be the next holder's: else it
    would give back the next holder's ticket and a third message would get in beside it."""
    store = AtomicRedisLockStore(redis_url)
    a_expired, b_in, a_out, b_out = (asyncio.Event() for _ in range(4))

    async def a() -> None:
        async with store.lock(CONVERSATION, 0.5, wait_time_in_seconds=0.02) as lock:
            [ticket] = lock.tickets
            while time.time() <= ticket.expires:  # it works on past its ticket's lifetime
                await asyncio.sleep(0.02)
            a_expired.set()
            await b_in.wait()
        a_out.set()

    async def b() -> None:
        await a_expired.wait()
        async with store.lock(CONVERSATION, LONG, wait_time_in_seconds=0.02):
            b_in.set()
            await b_out.wait()

    holders = asyncio.gather(a(), b())
    await asyncio.wait_for(a_out.wait(), 10)
    c = store.issue_ticket(CONVERSATION, LONG)
    try:
        assert stock(redis_url).get_lock(CONVERSATION).is_locked(c)  # B holds it still
    finally:
        b_out.set()
        await asyncio.wait_for(holders, 10)
    assert not stock(redis_url).get_lock(CONVERSATION).is_locked(c)  # C's turn now


@pytest.mark.integration
def test_redis_forgets_a_lock_a_minute_after_its_last_ticket_expires(redis_url):
    """The key names the conversation (a WhatsApp one is a phone number): a replica that
    died holding it must not leave it in Redis for good."""
    store, red = AtomicRedisLockStore(redis_url), redis.Redis.from_url(redis_url)
    store.issue_ticket(CONVERSATION, 1.0)  # its replica dies before giving it back
    assert 60_000 < red.pttl(f"lock:{CONVERSATION}") <= 61_000
    store.issue_ticket(CONVERSATION, LONG)  # queued behind it: a lifetime beyond it
    assert (LONG + 60) * 1000 < red.pttl(f"lock:{CONVERSATION}") <= (LONG + 62) * 1000


@pytest.mark.integration
async def test_a_ticket_that_cannot_be_given_back_does_not_fail_the_finished_turn(
    redis_url, caplog
):
    """Rasa gives the ticket back after the turn is stored: a Redis failure then must not
    reach the channel, which would have the message handled a second time."""
    store = AtomicRedisLockStore(redis_url)
    turns = []

    def unreachable(**_: Any) -> None:
        raise redis.ConnectionError("Error 111 connecting to 10.0.0.9:6379. Refused.")

    async with store.lock(CONVERSATION, LONG, wait_time_in_seconds=0.02):
        turns.append("done")
        store._cleanup = store._finish = unreachable

    assert turns == ["done"]
    assert "a finished turn's ticket could not be given back (ConnectionError)" in caplog.text
