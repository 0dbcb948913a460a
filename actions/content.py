"""The content the action server answers from: AVRR_CONTENT_DIR, or ./content."""
from functools import cache

from actions.runtime import settings
from avrr.content import Content


@cache
def get_content() -> Content:
    return Content(settings().content_dir)
