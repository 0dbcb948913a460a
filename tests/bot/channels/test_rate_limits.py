"""The rate limits of the REST and web chat channels: counted in memory by one server, in
Redis by several replicas together (on the tests' own Redis), and by each replica alone
while Redis is down."""
import asyncio
import hashlib

import pytest
import redis

from bot import runtime
from bot.channels import rate_limits as rate_limits_module
from bot.channels.rate_limits import RateLimits, SharedRateLimits, rate_limits
from tests.ports import free_port

SECRET = "the replicas' socket session secret"


def shared(url: str, name: str, rate: int, secret: str = SECRET) -> SharedRateLimits:
    return SharedRateLimits(url, name, rate, 60.0, secret)


async def sent(limits, key: str, times: int):
    return [await limits.wait_for(key) for _ in range(times)]


def allowed(limits, key: str, times: int):
    return asyncio.run(sent(limits, key, times))


def test_one_server_counts_each_key_alone():
    limits = RateLimits(3, 60.0)

    assert allowed(limits, "a", 4) == [None, None, None, 20.0]
    assert allowed(limits, "b", 1) == [None]


@pytest.mark.integration
def test_two_replicas_count_one_sender_together_and_redis_keeps_no_sender_id(redis_url):
    first = shared(redis_url, "rest-sender", 3)
    second = shared(redis_url, "rest-sender", 3)
    sender = "rest:+36301234567"

    async def alternate():
        waits = [await replica.wait_for(sender) for replica in (first, second, first, second)]
        return waits, await sent(second, "rest:another", 1)

    waits, another = asyncio.run(alternate())
    assert waits[:3] == [None, None, None]
    assert 19.9 < waits[3] <= 20.0  # one message's share of the minute
    assert another == [None]
    client = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in client.keys("*"))
    assert len(keys) == 2 and all(k.startswith("avrr:rate:rest-sender:") for k in keys)
    assert not any("36301234567" in k or "another" in k for k in keys)
    assert 0 < client.pttl(keys[0]) <= 60_000  # forgotten once back to full capacity
    client.close()


@pytest.mark.integration
def test_redis_keys_cannot_be_found_again_without_the_secret(redis_url):
    """Hashing every phone number or IPv4 address does not reveal whose key is whose."""
    sender = "rest:+36301234567"
    ours, theirs = shared(redis_url, "rest-sender", 3), shared(redis_url, "rest-sender", 3, "x")

    async def one_each():
        return await sent(ours, sender, 1), await sent(theirs, sender, 1)

    assert asyncio.run(one_each()) == ([None], [None])  # two keys: counted apart
    client = redis.Redis.from_url(redis_url)
    keys = {k.decode().rsplit(":", 1)[1] for k in client.keys("avrr:rate:rest-sender:*")}
    client.close()
    unkeyed = hashlib.blake2b(sender.encode(), digest_size=16, person=b"avrr-rate")
    assert len(keys) == 2 and unkeyed.hexdigest() not in keys


@pytest.mark.integration
def test_kinds_of_key_are_counted_apart(redis_url):
    senders = shared(redis_url, "rest-sender", 1)
    addresses = shared(redis_url, "rest-address", 1)

    async def both():
        return await sent(senders, "127.0.0.1", 2), await sent(addresses, "127.0.0.1", 1)

    by_sender, by_address = asyncio.run(both())
    assert by_sender[0] is None and 59.9 < by_sender[1] <= 60.0
    assert by_address == [None]


def test_without_redis_each_replica_still_counts_alone(caplog):
    down = shared(f"redis://127.0.0.1:{free_port()}/0", "rest-sender", 2)

    assert allowed(down, "rest:+36301234567", 3) == [None, None, 30.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["rate limits (rest-sender) counted by this replica alone: Redis "
                        "failed (ConnectionError)"]  # once, not once a message
    assert "36301234567" not in caplog.text


@pytest.mark.integration
def test_a_replica_counts_in_redis_again_once_redis_answers_again(redis_url, monkeypatch,
                                                                   caplog):
    monkeypatch.setattr(rate_limits_module, "RETRY_S", 0.0)  # try Redis at every message
    limits = shared(redis_url, "rest-sender", 2)
    admin = redis.Redis.from_url(redis_url)
    admin.config_set("requirepass", "not-ours")  # Redis refuses our client from now on
    try:
        async def through_the_failure():
            refused = await sent(limits, "rest:a", 1)
            admin.execute_command("AUTH", "not-ours")
            admin.config_set("requirepass", "")
            return refused, await sent(limits, "rest:a", 3)

        refused, answered = asyncio.run(through_the_failure())
    finally:
        admin.config_set("requirepass", "")
        admin.close()
    assert refused == [None]  # counted by the replica alone
    assert answered[:2] == [None, None] and answered[2] is not None  # counted in Redis
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "rate limits (rest-sender) counted by this replica alone: Redis failed "
        "(AuthenticationError)",
        "rate limits (rest-sender) counted in Redis again"]


def test_redis_is_used_only_when_the_replicas_have_one(monkeypatch):
    monkeypatch.delenv("AVRR_REDIS_URL", raising=False)
    runtime.reset()
    assert isinstance(rate_limits("rest-sender", 20), RateLimits)
    monkeypatch.setenv("AVRR_REDIS_URL", "redis://127.0.0.1:6390/0")
    monkeypatch.setenv("SOCKET_SESSION_SECRET", "s" * 32)
    runtime.reset()
    shared = rate_limits("rest-sender", 20)
    assert isinstance(shared, SharedRateLimits) and shared.rate == 20
    runtime.reset()


@pytest.mark.integration
def test_closing_lets_go_of_the_connections_to_redis(redis_url):
    limits = shared(redis_url, "rest-sender", 2)
    client = redis.Redis.from_url(redis_url)

    def connections():
        return {c["id"] for c in client.client_list()}

    before = connections()

    async def send_then_close():
        await sent(limits, "rest:a", 1)
        during = connections()
        await limits.close()
        return during

    assert len(asyncio.run(send_then_close()) - before) == 1
    assert connections() == before
    client.close()
