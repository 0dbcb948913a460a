"""The action server's settings, read once, on first use (never at import time)."""
from functools import cache

from avrr.settings import ActionServerSettings, load


@cache
def settings() -> ActionServerSettings:
    return load(ActionServerSettings)
