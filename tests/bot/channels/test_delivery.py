"""The deliverer: one message per person at a time, retries, holds and drops."""
import logging

import pytest

from bot.channels.delivery import SENT, Deliverer, Outcome, Verdict, backoff
from bot.channels.records import HELD, QUEUED
from tests.bot.channels.harness import new_records, settle


@pytest.fixture
def records(tmp_path):
    return new_records(tmp_path)


class Platform:
    """A stand-in for a platform's API: what it was sent, and what it answers each person
    (people are served at once, so answers are scripted per person)."""

    def __init__(self) -> None:
        self.sent = []
        self.answers = {}

    async def __call__(self, message):
        script = self.answers.get(message.conversation)
        if script:
            answer = script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            if answer is not SENT:
                return answer
        self.sent.append((message.conversation, message.payload["text"]))
        return SENT


async def test_everything_due_is_sent_in_order_per_person(records):
    platform = Platform()
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}, {"text": "a2"}])
    records.enqueue("telegram", "telegram:2", [{"text": "b1"}])

    await settle(Deliverer(records, "telegram", platform))

    assert [text for who, text in platform.sent if who == "telegram:1"] == ["a1", "a2"]
    assert ("telegram:2", "b1") in platform.sent
    assert records.pending() == {QUEUED: 0, HELD: 0}


async def test_a_retry_keeps_the_message_and_the_persons_order(records):
    platform = Platform()
    platform.answers = {"telegram:1": [Outcome(Verdict.RETRY, 60.0, "429")]}
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}, {"text": "a2"}])

    await settle(Deliverer(records, "telegram", platform))

    assert platform.sent == []  # a2 waits behind a1
    assert records.pending() == {QUEUED: 2, HELD: 0}


async def test_an_unexpected_error_is_retried_later(records, caplog):
    platform = Platform()
    platform.answers = {"telegram:1": [RuntimeError("the API moved")]}
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}])

    with caplog.at_level(logging.INFO):
        await settle(Deliverer(records, "telegram", platform))

    assert records.pending() == {QUEUED: 1, HELD: 0}
    assert "RuntimeError" in caplog.text


async def test_a_hold_keeps_all_the_persons_messages(records):
    platform = Platform()
    platform.answers = {"whatsapp:1": [Outcome(Verdict.HOLD)]}
    records.enqueue("whatsapp", "whatsapp:1", [{"text": "a1"}, {"text": "a2"}])
    records.enqueue("whatsapp", "whatsapp:2", [{"text": "b1"}])

    await settle(Deliverer(records, "whatsapp", platform))

    assert platform.sent == [("whatsapp:2", "b1")]
    assert records.pending() == {QUEUED: 0, HELD: 2}


async def test_a_refusal_drops_only_that_message(records):
    platform = Platform()
    platform.answers = {"telegram:1": [Outcome(Verdict.DROP, reason="blocked")]}
    records.enqueue("telegram", "telegram:1", [{"text": "a1"}, {"text": "a2"}])

    await settle(Deliverer(records, "telegram", platform))

    assert platform.sent == [("telegram:1", "a2")]


def test_backoff_grows_to_a_cap():
    assert [backoff(n) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(40) == 300.0
