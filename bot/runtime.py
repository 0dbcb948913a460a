"""The Rasa server's process-wide objects, made on first use (never at import time)."""
from functools import cache

import redis

from avrr.db import engine
from avrr.settings import RasaSettings, load
from bot.channels.records import ChannelRecords


@cache
def settings() -> RasaSettings:
    return load(RasaSettings)


@cache
def records() -> ChannelRecords:
    """The channels' records (bot.channels.records), with their tables."""
    made = ChannelRecords(engine(settings().channels_url))
    made.create_schema()
    return made


@cache
def redis_client() -> redis.Redis:
    """A client of the replicas' Redis (AVRR_REDIS_URL), for the readiness check."""
    url = settings().redis_url
    if url is None:
        raise RuntimeError("AVRR_REDIS_URL is not set")
    return redis.Redis.from_url(url.get_secret_value(), socket_timeout=2,
                                socket_connect_timeout=2)


def reset() -> None:
    """Forget the objects made so far (tests that change the environment)."""
    records.cache_clear()
    redis_client.cache_clear()
    settings.cache_clear()
