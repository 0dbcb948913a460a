"""The Rasa server's process-wide objects, made on first use (never at import time)."""
from functools import cache

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


def reset() -> None:
    """Forget the objects made so far (tests that change the environment)."""
    records.cache_clear()
    settings.cache_clear()
