import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage

from avrr.logs import NoRawRequests


def record_of(failure: BaseException) -> logging.LogRecord:
    try:
        raise failure
    except (BadHttpMessage, RuntimeError):
        return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                                 "Error handling request", (), sys.exc_info())


def test_a_malformed_request_is_one_line_without_its_bytes():
    record = record_of(BadHttpMessage("Invalid header value char: b'Cookie: s=secret\\x01'"))
    assert NoRawRequests().filter(record)
    assert record.getMessage() == "refused a malformed request (BadHttpMessage)"
    assert record.exc_info is None and record.levelno == logging.INFO


def test_other_failures_keep_their_traceback():
    record = record_of(RuntimeError("a bug"))
    assert NoRawRequests().filter(record)
    assert record.exc_info[0] is RuntimeError and record.levelno == logging.ERROR
