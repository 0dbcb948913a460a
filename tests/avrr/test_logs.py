import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage

from avrr.logs import MalformedPackets, NoRawRequests, NoSenderIds


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


def logged(handler_failing) -> logging.LogRecord:
    try:
        handler_failing()
    except Exception:  # noqa: BLE001 - as engine.io catches what a handler raises
        return logging.LogRecord("engineio.server", logging.ERROR, __file__, 1,
                                 "message async handler error", (), sys.exc_info())
    raise AssertionError("the handler did not fail")


def test_a_packet_the_library_cannot_decode_is_one_info_line():
    from socketio.packet import Packet

    record = logged(lambda: Packet(encoded_packet='2["user_uttered", {"message": "canary'))

    assert MalformedPackets().filter(record)
    assert record.getMessage() == "refused a malformed socket.io packet (JSONDecodeError)"
    assert record.exc_info is None and record.levelno == logging.INFO
    assert "canary" not in record.getMessage()


def test_a_failure_in_our_handlers_keeps_its_traceback():
    from bot.text import clean_text

    record = logged(lambda: clean_text(None))  # a bug of ours, as a handler might have

    assert MalformedPackets().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_rasa_stopping_a_loop_of_predictions_does_not_name_the_conversation():
    sender = "whatsapp:36201234567"
    record = logging.LogRecord(
        "rasa.core.processor", logging.WARNING, __file__, 1,
        f"Circuit breaker tripped. Stopped predicting more actions for sender '{sender}'.",
        (), None)
    assert NoSenderIds().filter(record)
    assert record.getMessage() == (
        "Circuit breaker tripped. Stopped predicting more actions for a sender.")


def test_every_process_filters_rasas_processor(caplog):
    from avrr.logs import configure

    configure("test")
    logging.getLogger("rasa.core.processor").warning(
        "Circuit breaker tripped. Stopped predicting more actions for sender '%s'.",
        "whatsapp:36201234567")
    assert "36201234567" not in caplog.text and "for a sender" in caplog.text
