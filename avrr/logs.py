"""Logging for every process: what libraries may write above DEBUG."""
import logging
import os
import re
import traceback
from pathlib import Path
from typing import Set

# Access lines carry conversation ids (a WhatsApp one is a phone number), and httpx's
# request lines carry the Telegram bot token: neither belongs in the log.
CHATTY = ("aiohttp.access", "httpx", "sanic.access")


class Once:
    """Logs each distinct problem once, at ERROR: a problem of an operator's file is met
    at every message until it is mended, and one line says it."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.told: Set[str] = set()

    def __call__(self, problem: str) -> None:
        if problem not in self.told:
            self.told.add(problem)
            self.logger.error("%s", problem)


class NoRawRequests(logging.Filter):
    """aiohttp logs a request it cannot parse with its raw header bytes, which may hold a
    cookie or a token: keep the line, drop the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            failure = record.exc_info[1]
            if type(failure).__name__ in ("BadHttpMessage", "BadStatusLine", "LineTooLong",
                                          "InvalidHeader", "InvalidURLError"):
                record.msg, record.args = "refused a malformed request (%s)", (
                    type(failure).__name__,)
                record.exc_info = record.exc_text = None
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class RefusedPacket(ValueError):
    """A socket.io packet our code refuses on purpose (bot.channels.socketio.TextPackets);
    its one argument says why, in words that quote nothing of the packet."""


class MalformedPackets(logging.Filter):
    """python-socketio logs a packet it cannot decode (bad JSON, an event that is no name)
    at ERROR with a traceback: anyone who can open a socket could fill the log with them.
    When every frame of the failure is the library's, the line says so at INFO, without
    the traceback; a failure in our own handlers keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        malformed = ValueError | KeyError | TypeError | IndexError | RecursionError
        if isinstance(failure, RefusedPacket) or isinstance(failure, malformed) and not any(
                frame.filename.startswith(OUR_CODE)
                for frame in traceback.extract_tb(failure.__traceback__)):
            what = failure.args[0] if isinstance(failure, RefusedPacket) else type(failure).__name__
            record.msg, record.args = "refused a malformed socket.io packet (%s)", (what,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class NoSenderIds(logging.Filter):
    """Rasa's processor names the conversation when it stops a loop of predictions
    ("Circuit breaker tripped ... for sender 'whatsapp:36…'"): a WhatsApp one is a phone
    number. The line stays, without it."""

    SENDER = re.compile(r"sender '[^']*'")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.SENDER.search(message):
            record.msg, record.args = self.SENDER.sub("a sender", message), ()
        return True


class RoutineRateLimits(logging.Filter):
    """python-telegram-bot's rate limiter logs Telegram's "retry after" (429) at ERROR with
    a traceback; our deliverer waits as asked and logs it as a WARNING itself. The line
    stays, at INFO, without the traceback: no alarm at night for a routine pause."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "Rate limit hit" in record.getMessage():
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


RATE_LIMITER = "telegram.ext.AIORateLimiter"
ROUTINE_RATE_LIMITS = RoutineRateLimits()


_ROOT = Path(__file__).resolve().parent.parent
OUR_CODE = tuple(f"{_ROOT / package}{os.sep}" for package in ("actions", "avrr", "bot", "desk"))
MALFORMED_PACKETS = MalformedPackets()


def configure(name: str) -> None:
    """INFO lines prefixed by the process `name`, without the libraries' personal data."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name}: %(message)s")
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(NoRawRequests())
    logging.getLogger("rasa.core.processor").addFilter(NoSenderIds())
    logging.getLogger(RATE_LIMITER).addFilter(ROUTINE_RATE_LIMITS)
