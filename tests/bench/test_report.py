"""bench/report.py: the Markdown report, rendered from given results."""
import argparse
import datetime
from collections import Counter

import pytest

from bench.generate import LevelResult
from bench.report import GIB, MIB, fmt, fmt_mib, render_report, verdict
from tests.bench.markdown import table

STARTED = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)


def args(concurrency=(1, 4), keep_sender=False):
    return argparse.Namespace(concurrency=list(concurrency), warmup=3.0, duration=20.0,
                              keep_sender=keep_sender)


def ours(concurrency, latencies_ms, rss=600 * MIB, action=200 * MIB, errors=None):
    return LevelResult(
        server="ours", concurrency=concurrency, measured_s=2.0,
        latencies_s=[ms / 1000 for ms in latencies_ms], errors=Counter(errors or {}),
        rasa_rss_peak=rss, action_rss_peak=action, has_action_server=True,
    )


def starter(concurrency, messages, rss=400 * MIB):
    return LevelResult(server="starter", concurrency=concurrency, measured_s=2.0,
                       latencies_s=[0.01] * messages, rasa_rss_peak=rss)


def test_formatting_helpers():
    assert fmt(None) == "n/a"
    assert fmt(12.345) == "12.3"
    assert fmt(12.5, 0) == "12"
    assert fmt_mib(None) == "n/a"
    assert fmt_mib(512 * MIB) == "512"
    assert [verdict(v) for v in (True, False, None)] == ["PASS", "FAIL", "not measured"]


def test_the_report_has_its_context_and_one_row_per_level():
    results = [ours(1, [10, 20, 30, 40, 50]), ours(4, [50] * 8, errors={"HTTP 503": 2}),
               starter(1, 6), starter(4, 10)]
    report = render_report(results, args(), STARTED)
    lines = report.splitlines()
    assert lines[0] == "# Load benchmark: assistant under test vs `rasa init` starter"
    assert lines[2].startswith("- Command: `")
    assert lines[3] == "- Date: 2024-05-06T07:08:09+00:00"
    assert lines[4].startswith("- Machine: nproc ") and ", Rasa 3.6" in lines[4]
    assert lines[5].startswith("- Per level: 3 s warm-up (not counted), then 20 s measured.")
    assert lines[5].endswith("a new conversation with a fresh sender id")
    assert table(report, "| Server |") == [
        "| ours | 1 | 2.5 | 30.0 | 48.0 | 49.6 | 5 | 0 | 600 | 200 |",
        "| ours | 4 | 4.0 | 50.0 | 50.0 | 50.0 | 8 | 2 | 600 | 200 |",
        "| starter | 1 | 3.0 | 10.0 | 10.0 | 10.0 | 6 | 0 | 400 | — |",
        "| starter | 4 | 5.0 | 10.0 | 10.0 | 10.0 | 10 | 0 | 400 | — |",
    ]
    assert report.endswith("\n\nErrors over all measured windows: 2.\n")


def test_targets_are_judged_at_the_top_level_and_at_one_conversation():
    results = [ours(1, [10, 20, 30, 40, 50], rss=2 * GIB), ours(4, [50] * 8),
               starter(1, 6), starter(4, 10)]
    assert table(render_report(results, args(), STARTED), "| Metric |") == [
        "| Throughput ours / starter at C=4 (saturated) | 0.80 (4.0 / 5.0 msg/s) "
        "| >= 0.7 | PASS |",
        "| Ours p95 latency at C=1 (single conversation) | 48.0 ms | <= 100 ms | PASS |",
        "| Ours Rasa server peak RSS | 2.00 GiB | <= 1.5 GiB | FAIL |",
    ]


def test_what_was_not_run_is_not_measured():
    results = [ours(4, [], rss=None, action=None)]
    report = render_report(results, args(concurrency=[4]), STARTED)
    assert table(report, "| Server |") == [
        "| ours | 4 | 0.0 | n/a | n/a | n/a | 0 | 0 | n/a | n/a |"]
    assert table(report, "| Metric |") == [
        "| Throughput ours / starter at C=4 (saturated) | n/a (needs both servers) "
        "| >= 0.7 | not measured |",
        "| Ours p95 latency at C=1 (single conversation) | n/a (ours not run at C=1) "
        "| <= 100 ms | not measured |",
        "| Ours Rasa server peak RSS | n/a | <= 1.5 GiB | not measured |",
    ]


def test_a_silent_starter_gives_no_ratio():
    results = [ours(1, [10]), starter(1, 0)]
    assert "| n/a (starter throughput 0) | >= 0.7 | not measured |" in render_report(
        results, args(concurrency=[1]), STARTED)


@pytest.mark.parametrize("keep_sender", [True, False])
def test_the_sender_mode_is_stated(keep_sender):
    report = render_report([], args(keep_sender=keep_sender), STARTED)
    assert ("one sender id per user for the whole run (--keep-sender)" in report) is keep_sender
