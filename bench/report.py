"""The Markdown report: context, one row per (server, concurrency level), ratios, targets."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.generate import LevelResult

RESULTS_FILE = Path(__file__).resolve().parent / "results.md"

TARGET_P95_MS = 100.0
TARGET_THROUGHPUT_RATIO = 0.7
TARGET_RSS_GIB = 1.5

MIB = 1024**2
GIB = 1024**3


def fmt(value: float | None, digits: int = 1) -> str:
    """Format a number for the table; "n/a" when it was not measured."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_mib(value: int | None) -> str:
    """Format a byte count in MiB."""
    return fmt(None if value is None else value / MIB, 0)


def verdict(ok: bool | None) -> str:
    """PASS / FAIL / not measured."""
    if ok is None:
        return "not measured"
    return "PASS" if ok else "FAIL"


def machine() -> str:
    """This machine and its software, for the report's context."""
    nproc = len(os.sched_getaffinity(0))
    rasa_version = importlib.metadata.version("rasa")
    return (
        f"nproc {nproc}, {platform.machine()}, "
        f"Python {platform.python_version()}, Rasa {rasa_version}"
    )


def result_row(r: LevelResult) -> str:
    """One table row."""
    action = fmt_mib(r.action_rss_peak) if r.has_action_server else "—"
    return (
        f"| {r.server} | {r.concurrency} | {r.throughput:.1f} "
        f"| {fmt(r.latency_ms(0.50))} | {fmt(r.latency_ms(0.95))} "
        f"| {fmt(r.latency_ms(0.99))} | {r.messages} | {r.error_count} "
        f"| {fmt_mib(r.rasa_rss_peak)} | {action} |"
    )


def target_rows(results: Sequence[LevelResult], levels: Sequence[int]) -> list[str]:
    """The ratios-and-targets table: throughput ratio, single-user p95, peak RSS."""
    ours = {r.concurrency: r for r in results if r.server == "ours"}
    starter = {r.concurrency: r for r in results if r.server == "starter"}
    top = max(levels)

    ratio: float | None = None
    ratio_text = "n/a (needs both servers)"
    if top in ours and top in starter:
        base = starter[top].throughput
        if base > 0:
            ratio = ours[top].throughput / base
            ratio_text = f"{ratio:.2f} ({ours[top].throughput:.1f} / {base:.1f} msg/s)"
        else:
            ratio_text = "n/a (starter throughput 0)"

    p95 = ours[1].latency_ms(0.95) if 1 in ours else None
    p95_text = f"{p95:.1f} ms" if p95 is not None else "n/a (ours not run at C=1)"

    peaks = [r.rasa_rss_peak for r in ours.values() if r.rasa_rss_peak is not None]
    rss_gib = max(peaks) / GIB if peaks else None
    rss_text = f"{rss_gib:.2f} GiB" if rss_gib is not None else "n/a"

    return [
        "| Metric | Value | Target | Result |",
        "|---|--:|--:|---|",
        f"| Throughput ours / starter at C={top} (saturated) | {ratio_text} "
        f"| >= {TARGET_THROUGHPUT_RATIO} "
        f"| {verdict(None if ratio is None else ratio >= TARGET_THROUGHPUT_RATIO)} |",
        f"| Ours p95 latency at C=1 (single conversation) | {p95_text} "
        f"| <= {TARGET_P95_MS:.0f} ms "
        f"| {verdict(None if p95 is None else p95 <= TARGET_P95_MS)} |",
        f"| Ours Rasa server peak RSS | {rss_text} | <= {TARGET_RSS_GIB} GiB "
        f"| {verdict(None if rss_gib is None else rss_gib <= TARGET_RSS_GIB)} |",
    ]


def render_report(
    results: Sequence[LevelResult], args: argparse.Namespace, started: datetime.datetime
) -> str:
    """Build the Markdown report: context, the per-level table, ratios, targets."""
    lines = [
        "# Load benchmark: assistant under test vs `rasa init` starter",
        "",
        f"- Command: `{shlex.join(sys.orig_argv)}`",
        f"- Date: {started.isoformat(timespec='seconds')}",
        f"- Machine: {machine()}",
        f"- Per level: {args.warmup:g} s warm-up (not counted), then "
        f"{args.duration:g} s measured. C simulated users at once, each sending "
        "the script's messages one after the other, waiting for every reply; "
        + (
            "one sender id per user for the whole run (--keep-sender)"
            if args.keep_sender
            else "every pass through the script is a new conversation with a fresh sender id"
        ),
        "- Counted: HTTP 200 with a JSON list body. Latency: wall clock per "
        "request, send to full response. RSS: peak VmRSS sampled every 0.5 s",
        "- Ours runs with its rate limits lifted (all the load comes from one address)",
        "",
        "| Server | C | Throughput (msg/s) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| Messages | Errors | Rasa RSS (MiB) | Action server RSS (MiB) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [result_row(r) for r in results]
    errors = sum(r.error_count for r in results)
    lines += [
        "",
        "## Ratios and targets",
        "",
        *target_rows(results, args.concurrency),
        "",
        f"Errors over all measured windows: {errors}.",
        "",
    ]
    return "\n".join(lines)
