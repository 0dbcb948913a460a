"""How many messages a sender or an address may send on the REST and web chat channels.

At most `rate` messages per `period_s` per key, `rate` of them at once. One Rasa server
counts in its own memory (`RateLimits`). Several replicas behind nginx count together
in their Redis (`SharedRateLimits`): counted per replica, a flood spread by the proxy
over N replicas would get N times the limit. Redis keeps one timestamp per key (the
generic cell rate algorithm, in one Lua script, on Redis's clock), under a hash of the
key keyed with SOCKET_SESSION_SECRET (no address or sender id in Redis, and none that a
reader of Redis could find again by hashing every IPv4 address or phone number),
expiring when the key is back to full capacity.
If Redis does not answer, each replica counts alone (and tries Redis again after
`RETRY_S`, so a message waits for a dead Redis at most once in that time): a person's
message is never refused because the counter is down.
"""
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, Optional, Union

import redis
import redis.asyncio
from aiolimiter import AsyncLimiter
from redis.commands.core import AsyncScript
from sanic import Blueprint

from bot import runtime

logger = logging.getLogger(__name__)

# KEYS[1]: the key's theoretical arrival time; ARGV: interval and period, in microseconds.
# Returns 0 if this message may be sent (and counts), else the microseconds to wait.
GCRA = """
local now_s, now_us = unpack(redis.call("TIME"))
local now = now_s * 1000000 + now_us
local interval, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = math.max(tonumber(redis.call("GET", KEYS[1]) or now), now) + interval
if due - now > period then
  return math.max(1, due - now - period)
end
redis.call("SET", KEYS[1], string.format("%d", due), "PX", math.ceil((due - now) / 1000))
return 0
"""
MICROSECONDS = 1_000_000
RETRY_S = 5.0


class RateLimits:
    """Counted in this process: one leaky bucket per key (aiolimiter's AsyncLimiter); the
    buckets of the keys seen least recently are forgotten beyond `max_keys`, so memory
    stays bounded."""

    def __init__(self, rate: int, period_s: float, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.period_s = period_s
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, AsyncLimiter] = OrderedDict()

    async def wait_for(self, key: str) -> Optional[float]:
        """None if `key` may send now (and this one counts), else the seconds to wait."""
        bucket = self._bucket(key)
        if not bucket.has_capacity():
            return self.period_s / self.rate
        await bucket.acquire()
        return None

    async def close(self) -> None:
        """Nothing to let go of: the buckets are in memory."""

    def _bucket(self, key: str) -> AsyncLimiter:
        bucket = self._buckets.pop(key, None) or AsyncLimiter(self.rate, self.period_s)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return bucket


class SharedRateLimits:
    """Counted in Redis, by every replica together; see the module docstring."""

    def __init__(self, url: str, name: str, rate: int, period_s: float, secret: str) -> None:
        self.name = name
        self._secret = hashlib.sha256(secret.encode()).digest()
        self.rate = rate
        self.period_s = period_s
        self.local = RateLimits(rate, period_s)
        self._url = url
        self._client: Optional[redis.asyncio.Redis] = None
        self._script: Optional[AsyncScript] = None
        self._down_until = 0.0

    async def wait_for(self, key: str) -> Optional[float]:
        """None if `key` may send now (and this one counts), else the seconds to wait."""
        if time.monotonic() < self._down_until:
            return await self.local.wait_for(key)
        try:
            wait_us = await self._gcra()(
                keys=[self._key(key)],
                args=[round(self.period_s / self.rate * MICROSECONDS),
                      round(self.period_s * MICROSECONDS)])
        except redis.RedisError as failure:
            if not self._down_until:
                logger.warning("rate limits (%s) counted by this replica alone: Redis "
                               "failed (%s)", self.name, type(failure).__name__)
            self._down_until = time.monotonic() + RETRY_S
            return await self.local.wait_for(key)
        if self._down_until:
            logger.warning("rate limits (%s) counted in Redis again", self.name)
            self._down_until = 0.0
        return int(wait_us) / MICROSECONDS if wait_us else None

    async def close(self) -> None:
        """Closes the connections to Redis (when the server stops)."""
        if self._client is not None:
            client, self._client, self._script = self._client, None, None
            await client.close(close_connection_pool=True)

    def _key(self, key: str) -> str:
        digest = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=16,
                                 key=self._secret, person=b"avrr-rate").hexdigest()
        return f"avrr:rate:{self.name}:{digest}"

    def _gcra(self) -> AsyncScript:
        # Made on first use, in the server's event loop (the client binds to it).
        if self._script is None:
            self._client = redis.asyncio.Redis.from_url(
                self._url, socket_timeout=2, socket_connect_timeout=2)
            self._script = self._client.register_script(GCRA)
        return self._script


Limits = Union[RateLimits, SharedRateLimits]


def close_on_stop(blueprint: Blueprint, *limits: Limits) -> None:
    """Lets `limits` close their connections when the server that runs `blueprint` stops."""

    @blueprint.listener("after_server_stop")
    async def close(*_: Any) -> None:
        for each in limits:
            await each.close()


def rate_limits(name: str, rate: int, period_s: float = 60.0) -> Limits:
    """Limits for one kind of key (e.g. "rest-sender"): shared through Redis when the
    replicas have one (AVRR_REDIS_URL), else counted by this process."""
    settings = runtime.settings()
    if settings.redis_url is None:
        return RateLimits(rate, period_s)
    # The settings refuse AVRR_REDIS_URL without SOCKET_SESSION_SECRET.
    secret = settings.socket_session_secret
    assert secret is not None  # noqa: S101
    return SharedRateLimits(settings.redis_url.get_secret_value(), name, rate, period_s,
                            secret.get_secret_value())
