import json
import threading

import pytest

from bot.channels.ledger import CLAIM_TIMEOUT_S, DONE, PENDING, Ledger, get_ledger


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "channels.db")


def test_a_claimed_update_is_refused_until_released(ledger):
    assert ledger.claim("whatsapp", "wamid.1") is True
    assert ledger.state("whatsapp", "wamid.1") == PENDING
    assert ledger.claim("whatsapp", "wamid.1") is False

    ledger.release("whatsapp", "wamid.1")

    assert ledger.state("whatsapp", "wamid.1") is None
    assert ledger.claim("whatsapp", "wamid.1") is True


def test_a_done_update_is_never_claimed_again_even_after_the_timeout(ledger):
    ledger.claim("whatsapp", "wamid.1", now=1000.0)
    ledger.done("whatsapp", "wamid.1")
    ledger.release("whatsapp", "wamid.1")  # too late: it is recorded

    assert ledger.state("whatsapp", "wamid.1") == DONE
    assert ledger.claim("whatsapp", "wamid.1") is False
    assert ledger.claim("whatsapp", "wamid.1", now=10**12) is False


def test_a_pending_claim_left_by_a_crash_expires(ledger):
    assert ledger.claim("whatsapp", "wamid.1", now=1000.0)

    assert ledger.claim("whatsapp", "wamid.1", now=1000.0 + CLAIM_TIMEOUT_S - 1) is False
    assert ledger.claim("whatsapp", "wamid.1", now=1000.0 + CLAIM_TIMEOUT_S + 1) is True


def test_claims_are_per_channel(ledger):
    assert ledger.claim("whatsapp", "42")
    assert ledger.claim("telegram", "42")
    assert ledger.state("rest", "42") is None


def test_only_one_of_many_simultaneous_claims_wins(ledger):
    results = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        results.append(ledger.claim("whatsapp", "wamid.same"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 7 + [True]


def test_last_wrote_keeps_the_latest_time(ledger):
    assert ledger.last_wrote("whatsapp", "36201234567") is None

    ledger.wrote("whatsapp", "36201234567", at=2000.0)
    ledger.wrote("whatsapp", "36201234567", at=1000.0)  # a late redelivery of an older message

    assert ledger.last_wrote("whatsapp", "36201234567") == 2000.0
    assert ledger.last_wrote("telegram", "36201234567") is None


def test_held_messages_are_taken_once_in_order(ledger):
    for number in range(3):
        ledger.hold("whatsapp", "361", json.dumps({"n": number}))
    ledger.hold("whatsapp", "362", json.dumps({"n": "other"}))

    assert [json.loads(m) for m in ledger.take_held("whatsapp", "361")] == [
        {"n": 0}, {"n": 1}, {"n": 2}
    ]
    assert ledger.take_held("whatsapp", "361") == []
    assert ledger.take_held("whatsapp", "362") == [json.dumps({"n": "other"})]


def test_the_notice_of_held_messages_is_kept_until_they_are_taken(ledger):
    assert ledger.notified("whatsapp", "361") is False

    ledger.hold("whatsapp", "361", "{}")
    ledger.set_notified("whatsapp", "361")

    assert ledger.notified("whatsapp", "361") is True
    assert ledger.notified("whatsapp", "362") is False
    ledger.take_held("whatsapp", "361")
    assert ledger.notified("whatsapp", "361") is False


def test_the_language_of_a_person_is_kept(ledger):
    assert ledger.language("whatsapp", "361") is None

    ledger.set_language("whatsapp", "361", "tr")
    ledger.set_language("whatsapp", "361", "fa")

    assert ledger.language("whatsapp", "361") == "fa"
    assert ledger.language("telegram", "361") is None


def test_forget_deletes_all_that_is_kept_about_a_person(ledger):
    for channel in ("whatsapp", "telegram"):
        ledger.wrote(channel, "361")
        ledger.hold(channel, "361", "{}")
        ledger.set_notified(channel, "361")
        ledger.set_language(channel, "361", "ar")
    ledger.wrote("whatsapp", "362")
    ledger.hold("whatsapp", "362", "{}")

    ledger.forget("361")

    for channel in ("whatsapp", "telegram"):
        assert ledger.last_wrote(channel, "361") is None
        assert ledger.take_held(channel, "361") == []
        assert ledger.notified(channel, "361") is False
        assert ledger.language(channel, "361") is None
    assert ledger.last_wrote("whatsapp", "362") is not None
    assert ledger.take_held("whatsapp", "362") == ["{}"]


def test_the_ledger_survives_a_restart(tmp_path):
    Ledger(tmp_path / "channels.db").hold("whatsapp", "361", "{}")
    first = Ledger(tmp_path / "channels.db")
    first.claim("whatsapp", "wamid.1")
    first.done("whatsapp", "wamid.1")

    again = Ledger(tmp_path / "channels.db")

    assert again.claim("whatsapp", "wamid.1") is False
    assert again.take_held("whatsapp", "361") == ["{}"]


def test_get_ledger_uses_avrr_channel_db(tmp_path, monkeypatch):
    monkeypatch.setenv("AVRR_CHANNEL_DB", str(tmp_path / "sub" / "ledger.db"))

    ledger = get_ledger()

    assert ledger is get_ledger()
    assert (tmp_path / "sub" / "ledger.db").exists()
