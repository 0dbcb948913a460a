"""Logging for every process: what libraries may write above DEBUG."""
import logging

# Access lines carry conversation ids (a WhatsApp one is a phone number), and httpx's
# request lines carry the Telegram bot token: neither belongs in the log.
CHATTY = ("aiohttp.access", "httpx", "sanic.access")


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


def configure(name: str) -> None:
    """INFO lines prefixed by the process `name`, without the libraries' personal data."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name}: %(message)s")
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(NoRawRequests())
