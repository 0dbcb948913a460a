"""bench/soak.py: replies attributed to updates, the counts, and the report, from given runs."""
import argparse
import datetime
from collections import Counter
from types import SimpleNamespace

import pytest
import requests

from bench.report import MIB
from bench.soak import (
    SCRIPT,
    Delivery,
    Kill,
    RssSample,
    Soak,
    Tally,
    attribute_replies,
    count,
    render_report,
    usual_replies,
)
from tests.bench.markdown import table
from tests.fakes.telegram_api import Call, FakeTelegramApi

STARTED = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
T0 = 1000.0  # time.monotonic() when the soak started
A, B, C = 10**9 + 1, 10**9 + 2, 10**9 + 3  # three chats

LANGUAGE = "Choose your language."
GREETING = "Hello! Ask me about returning."
FREE = "The return is free."
SORRY = "Sorry, something went wrong."


class TrackerApi:
    """All `tracker_users` asks of a running assistant: Rasa's tracker of each chat."""

    def __init__(self, users=None, failure=None):
        self.users = users or {}
        self.failure = failure
        self.asked = []

    def api(self, method, path, **kwargs):
        self.asked.append((method, path))
        if self.failure is not None:
            raise self.failure
        chat = int(path.removeprefix("/conversations/telegram:").removesuffix("/tracker"))
        events = [{"event": "user", "text": f"message {n}"} for n in range(self.users[chat])]
        events.append({"event": "bot", "text": "a reply"})
        return SimpleNamespace(json=lambda: {"events": events})


def delivery(chat_id, turn, update_id, replies_before, first_post, statuses=None,
             acknowledged=True, replies=()):
    return Delivery(
        chat_id=chat_id, turn=turn, text=SCRIPT[turn % len(SCRIPT)], update_id=update_id,
        replies_before=replies_before, first_post=first_post,
        statuses=Counter(statuses or {"200": 1}),
        acknowledged_at=first_post + 0.25 if acknowledged else None,
        replies=list(replies),
    )


def soak_of(chats, assistant=None, **fields) -> Soak:
    return Soak(assistant=assistant or TrackerApi(), telegram=FakeTelegramApi(),
                conversations=len(chats), kill_every=60.0, started=T0, stop_at=T0 + 45,
                deadline=T0 + 345, update_ids=iter(()), chats=chats, **fields)


def record(soak, chat_id, text, at, method="sendMessage"):
    """A call as the fake Telegram API records it (ptb posts chat ids as form strings)."""
    soak.telegram.calls.append(Call(method, {"chat_id": str(chat_id), "text": text}, at))


def scenario(assistant=None) -> Soak:
    """Three chats: answered, duplicated, lost, unacknowledged and odd updates among them.

    A: hello (answered); cost (two failed deliveries, then 200; its reply sent three times);
       how long (200, no reply: lost).
    B: hello, cost (answered); how long (never 200, though a reply came).
    C: hello (an error message instead of the greeting); cost (answered).
    """
    soak = soak_of({
        A: [delivery(A, 0, 101, 0, 1001.0),
            delivery(A, 1, 104, 2, 1010.0, {"connection failed": 2, "200": 1}),
            delivery(A, 2, 106, 5, 1030.0)],
        B: [delivery(B, 0, 102, 0, 1002.0),
            delivery(B, 1, 105, 2, 1012.0),
            delivery(B, 2, 107, 3, 1040.0, {"timeout": 1, "503": 3}, acknowledged=False)],
        C: [delivery(C, 0, 103, 0, 1003.0),
            delivery(C, 1, 108, 2, 1020.0)],
    }, assistant=assistant or TrackerApi({A: 3, B: 3, C: 2}))
    for chat_id, text, at in [
        (A, LANGUAGE, 1001.5), (A, GREETING, 1001.75),
        (B, LANGUAGE, 1003.0), (B, GREETING, 1003.25),
        (C, LANGUAGE, 1004.0), (C, SORRY, 1004.25),
        (B, FREE, 1012.5),
        (A, FREE, 1017.0), (A, FREE, 1017.25), (A, FREE, 1017.5),
        (C, FREE, 1020.5),
        (B, SORRY, 1045.0),
    ]:
        record(soak, chat_id, text, at)
    record(soak, A, "", 1009.0, method="sendChatAction")  # not a reply
    return soak


def args(drain_timeout=300.0):
    return argparse.Namespace(conversations=3, minutes=0.75, kill_every=60.0,
                              drain_timeout=drain_timeout)


def section(report, title):
    """The lines of the section `## title`, up to the next blank line (or the end)."""
    lines = [*report.splitlines(), ""]
    start = lines.index(f"## {title}") + 2
    return lines[start:lines.index("", start)]


def line_starting(report, prefix):
    (found,) = (line for line in report.splitlines() if line.startswith(prefix))
    return found


# --------------------------------------------------------------------------
# Replies attributed to updates
# --------------------------------------------------------------------------


def test_each_update_gets_the_replies_between_its_first_delivery_and_the_next_ones():
    soak = scenario()
    attribute_replies(soak)
    got = {chat: [(d.update_id, d.replies, d.first_reply_at) for d in deliveries]
           for chat, deliveries in soak.chats.items()}
    assert got == {
        A: [(101, [LANGUAGE, GREETING], 1001.5),
            (104, [FREE, FREE, FREE], 1017.0),
            (106, [], None)],
        B: [(102, [LANGUAGE, GREETING], 1003.0),
            (105, [FREE], 1012.5),
            (107, [SORRY], 1045.0)],
        C: [(103, [LANGUAGE, SORRY], 1004.0),
            (108, [FREE], 1020.5)],
    }


def test_replies_before_the_first_delivery_are_nobodys_and_a_missing_text_is_empty():
    soak = soak_of({A: [delivery(A, 0, 1, 1, 1001.0), delivery(A, 1, 2, 3, 1002.0)]})
    record(soak, A, "left over from before", 1000.5)
    soak.telegram.calls.append(Call("sendMessage", {"chat_id": A, "text": "hi"}, 1001.5))
    soak.telegram.calls.append(Call("sendMessage", {"chat_id": A}, 1001.75))
    record(soak, A, "", 1001.8, method="sendPhoto")
    record(soak, B, "someone else's", 1001.9)
    attribute_replies(soak)
    first, second = soak.chats[A]
    assert (first.replies, first.first_reply_at) == (["hi", ""], 1001.5)
    assert (second.replies, second.first_reply_at) == ([], None)


@pytest.mark.parametrize(
    ("replies", "duplicates"),
    [([], 0), (["a"], 0), (["a", "b"], 0), (["a", "a"], 1), (["a", "b", "a"], 0),
     (["a", "a", "a"], 2), (["a", "a", "b", "b"], 2)],
)
def test_duplicates_are_replies_equal_to_the_one_just_before(replies, duplicates):
    assert delivery(A, 0, 1, 0, T0, replies=replies).duplicates == duplicates


def test_acknowledged_means_answered_200_once():
    assert delivery(A, 0, 1, 0, T0).acknowledged
    assert not delivery(A, 0, 1, 0, T0, {"503": 4}, acknowledged=False).acknowledged


def test_the_usual_replies_are_the_commonest_per_question_first_or_later_acknowledged_only():
    deliveries = [
        delivery(A, 0, 1, 0, T0, replies=[LANGUAGE, GREETING]),
        delivery(B, 0, 2, 0, T0, replies=[LANGUAGE, GREETING]),
        delivery(C, 0, 3, 0, T0, replies=[LANGUAGE, SORRY]),
        delivery(A, 7, 4, 0, T0, replies=[GREETING]),  # "hello" again, later
        delivery(A, 6, 5, 0, T0, replies=["You're welcome."]),
        delivery(B, 6, 6, 0, T0, acknowledged=False, replies=[SORRY]),
        delivery(C, 6, 7, 0, T0, acknowledged=False, replies=[SORRY]),
        delivery(C, 13, 8, 0, T0, acknowledged=False, replies=[SORRY]),  # only unacknowledged
    ]
    assert usual_replies(deliveries) == {
        ("hello", True): (LANGUAGE, GREETING),
        ("hello", False): (GREETING,),
        ("thank you", False): ("You're welcome.",),
    }


def test_lost_updates_never_make_silence_the_usual_reply():
    deliveries = [
        delivery(A, 6, 1, 0, T0),  # acknowledged, no reply: lost
        delivery(B, 6, 2, 0, T0),
        delivery(C, 6, 3, 0, T0, replies=["You're welcome."]),
    ]
    assert usual_replies(deliveries) == {("thank you", False): ("You're welcome.",)}


# --------------------------------------------------------------------------
# The counts
# --------------------------------------------------------------------------


def test_count_tells_lost_duplicated_unacknowledged_and_different_updates_apart():
    rasa = TrackerApi({A: 3, B: 3, C: 2})
    tally = count(scenario(rasa))
    assert (tally.sent, tally.posts, tally.acknowledged, tally.answered) == (8, 13, 7, 6)
    assert (tally.lost, tally.duplicated, tally.duplicate_replies) == (1, 1, 2)
    assert (tally.unacknowledged, tally.unusual, tally.tracker_users) == (1, 2, 8)
    assert tally.failed
    assert tally.statuses == Counter({"200": 7, "503": 3, "connection failed": 2, "timeout": 1})
    assert tally.first_reply_s == [0.5, 7.0, 1.0, 0.5, 5.0, 1.0, 0.5]
    assert tally.slowest == (
        "chat 1000000001 message 2 ('how much does it cost?'), first delivered at 10 s; "
        "its deliveries: 200 × 1, connection failed × 2")
    free3 = "['The return is free.', 'The return is free.', 'The return is free.']"
    assert tally.problems == [
        f"chat 1000000001 message 2 ('how much does it cost?', update 104): 2 duplicate(s); "
        f"replies {free3}",
        f"chat 1000000001 message 2 ('how much does it cost?', update 104): answered "
        f"differently from the usual; replies {free3}",
        "chat 1000000001 message 3 ('how long does it take?', update 106): lost; replies []",
        "chat 1000000002 message 3 ('how long does it take?', update 107): never "
        "acknowledged; replies ['Sorry, something went wrong.']",
        "chat 1000000003 message 1 ('hello', update 103): answered differently from the "
        "usual; replies ['Choose your language.', 'Sorry, something went wrong.']",
    ]
    assert rasa.asked == [("GET", f"/conversations/telegram:{chat}/tracker") for chat in (A, B, C)]


def test_a_clean_run_counts_nothing_wrong_and_rasa_silent_leaves_the_trackers_unknown():
    soak = soak_of({A: [delivery(A, 0, 1, 0, 1001.0), delivery(A, 1, 2, 2, 1010.0)]},
                   assistant=TrackerApi(failure=requests.ConnectionError("refused")))
    for text, at in [(LANGUAGE, 1002.0), (GREETING, 1002.5), (FREE, 1011.0)]:
        record(soak, A, text, at)
    tally = count(soak)
    assert (tally.sent, tally.posts, tally.acknowledged, tally.answered) == (2, 2, 2, 2)
    assert (tally.lost, tally.duplicated, tally.duplicate_replies) == (0, 0, 0)
    assert (tally.unacknowledged, tally.unusual, tally.tracker_users) == (0, 0, None)
    assert tally.problems == []
    assert not tally.failed


def test_a_lost_update_is_lost_not_also_answered_differently():
    soak = soak_of({A: [delivery(A, 0, 1, 0, 1001.0)], B: [delivery(B, 0, 2, 0, 1002.0)],
                    C: [delivery(C, 0, 3, 0, 1003.0)]}, assistant=TrackerApi({A: 1, B: 1, C: 1}))
    for chat_id, text, at in [(A, LANGUAGE, 1001.5), (A, GREETING, 1001.75),
                              (B, LANGUAGE, 1002.5), (B, GREETING, 1002.75)]:
        record(soak, chat_id, text, at)
    tally = count(soak)
    assert (tally.acknowledged, tally.answered, tally.lost, tally.unusual) == (3, 2, 1, 0)
    assert tally.tracker_users == 3
    assert tally.problems == ["chat 1000000003 message 1 ('hello', update 3): lost; replies []"]


@pytest.mark.parametrize(
    ("tally", "failed"),
    [
        (Tally(), False),
        (Tally(sent=9, posts=30, acknowledged=9, answered=9, statuses=Counter({"503": 21})),
         False),
        (Tally(unusual=3, tracker_users=12, acknowledged=9), False),  # informational only
        (Tally(lost=1), True),
        (Tally(duplicated=1, duplicate_replies=1), True),
        (Tally(unacknowledged=1), True),
    ],
)
def test_only_lost_duplicated_or_unacknowledged_updates_fail_the_run(tally, failed):
    assert tally.failed is failed


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


def test_a_failed_run_reports_fail_its_counts_and_its_problems():
    soak = scenario()
    soak.drained_at = 52.4
    report = render_report(soak, count(soak), args(), STARTED, 95.2)
    lines = report.splitlines()
    assert lines[0] == "# Soak run: Telegram conversations while parts are killed"
    assert lines[2].startswith("- Command: `")
    assert lines[3] == "- Date: 2024-05-06T07:08:09+00:00"
    assert lines[4].startswith("- Machine: nproc ")
    assert lines[5] == (
        "- Plan: 3 Telegram chats for 0.75 min, each sending the 7 questions of the script "
        "in turn, one at a time, the next once the replies are out; undelivered updates are "
        "delivered again with backoff (1 s doubling to 16 s) until 200. Every 60 s one part "
        "SIGKILLed, in turn: action server, desk, Rasa server.")
    assert lines[6] == (
        "- bot.launch ready after 95 s; times below are seconds from then. Last message "
        "started before 45 s; send queues empty at 52 s.")
    assert lines[7] == "- Result: **FAIL** (1 lost, 1 duplicated, 1 unacknowledged)"
    assert table(report, "| Updates |") == [
        "| sent (distinct update ids) | 8 |",
        "| deliveries (POSTs, with redeliveries) | 13 |",
        "| acknowledged (200) | 7 |",
        "| answered (at least one reply) | 6 |",
        "| **lost** (acknowledged, never answered) | 1 |",
        "| **duplicated** (a reply sent twice in a row) | 1 (2 extra replies) |",
        "| **unacknowledged** (never 200 before the deadline) | 1 |",
        "| answered differently from the usual | 2 |",
        "| user messages in Rasa's trackers (vs acknowledged) | 8 |",
    ]
    assert line_starting(report, "Webhook answers") == (
        "Webhook answers over all deliveries: 200 × 7, 503 × 3, connection failed × 2, "
        "timeout × 1.")
    assert line_starting(report, "From an update's first delivery") == (
        "From an update's first delivery to its first reply (outages included): median "
        "1.0 s, p95 6.4 s, max 7.0 s: chat 1000000001 message 2 ('how much does it cost?'), "
        "first delivered at 10 s; its deliveries: 200 × 1, connection failed × 2.")
    assert section(report, "Kills") == [
        "No part was killed (the run was shorter than --kill-every)."]
    assert "No memory sample was taken." in lines
    assert section(report, "Problems") == [
        "- chat 1000000001 message 2 ('how much does it cost?', update 104): 2 duplicate(s); "
        "replies ['The return is free.', 'The return is free.', 'The return is free.']",
        "- chat 1000000001 message 2 ('how much does it cost?', update 104): answered "
        "differently from the usual; replies ['The return is free.', 'The return is free.', "
        "'The return is free.']",
        "- chat 1000000001 message 3 ('how long does it take?', update 106): lost; replies []",
        "- chat 1000000002 message 3 ('how long does it take?', update 107): never "
        "acknowledged; replies ['Sorry, something went wrong.']",
        "- chat 1000000003 message 1 ('hello', update 103): answered differently from the "
        "usual; replies ['Choose your language.', 'Sorry, something went wrong.']",
    ]
    assert report.endswith("'Sorry, something went wrong.']\n")


def test_a_clean_run_reports_pass_and_no_problems():
    soak = soak_of({A: [delivery(A, 0, 1, 0, 1001.0)]},
                   assistant=TrackerApi(failure=requests.ConnectionError("refused")))
    record(soak, A, LANGUAGE, 1001.5)
    report = render_report(soak, count(soak), args(drain_timeout=120.0), STARTED, 3.0)
    lines = report.splitlines()
    assert lines[6].endswith("Last message started before 45 s; send queues still not "
                             "empty 120 s later.")
    assert lines[7] == "- Result: **PASS** (0 lost, 0 duplicated, 0 unacknowledged)"
    assert table(report, "| Updates |")[-1] == (
        "| user messages in Rasa's trackers (vs acknowledged) | n/a |")
    assert "## Problems" not in lines
    assert report.endswith("No memory sample was taken.\n")


def test_answered_differently_alone_passes_and_long_problem_lists_are_cut():
    tally = Tally(sent=25, posts=25, acknowledged=25, answered=25, unusual=23,
                  statuses=Counter({"200": 25}),
                  problems=[f"problem {n}" for n in range(1, 24)])
    report = render_report(soak_of({}), tally, args(), STARTED, 3.0)
    assert line_starting(report, "- Result:") == (
        "- Result: **PASS** (0 lost, 0 duplicated, 0 unacknowledged)")
    assert "| answered differently from the usual | 23 |" in report.splitlines()
    assert "No reply was recorded." in report.splitlines()
    assert section(report, "Problems") == [
        *(f"- problem {n}" for n in range(1, 21)), "- … and 3 more"]


def test_the_kills_and_memory_tables():
    soak = soak_of({}, kills=[
        Kill("bot.action_server", at=60.2, pid=4242, new_pid=4300, restarted_at=61.0,
             back_at=63.4),
        Kill("desk", at=120.0),
        Kill("bot.serve", at=180.4, pid=4343, new_pid=4400, restarted_at=181.0),
    ], samples=[
        RssSample(at=0.0, rasa_pid=10, rasa_rss=600 * MIB, action_pid=20, action_rss=100 * MIB),
        RssSample(at=30.0, rasa_pid=10, rasa_rss=650 * MIB, action_pid=20, action_rss=110 * MIB),
        RssSample(at=61.0, rasa_pid=10, rasa_rss=640 * MIB, action_pid=None, action_rss=None),
        RssSample(at=71.0, rasa_pid=10, rasa_rss=630 * MIB, action_pid=21, action_rss=90 * MIB),
        RssSample(at=185.0, rasa_pid=11, rasa_rss=700 * MIB, action_pid=21, action_rss=95 * MIB),
    ])
    report = render_report(soak, Tally(), args(), STARTED, 3.0)
    assert table(report, "| # |") == [
        "| 1 | 60 | action server | 4242 | 61 | 63 | 3 |",
        "| 2 | 120 | desk | not running | — | — | — |",
        "| 3 | 180 | Rasa server | 4343 | 181 | — | — |",
    ]
    assert table(report, "| Minute |") == [
        "| 0-1 | 650 | 650 | 110 | 110 |  |",
        "| 1-2 | 630 | 640 | 90 | 90 | action server restarted or down |",
        "| 3-4 | 700 | 700 | 95 | 95 | Rasa restarted or down |",
    ]
