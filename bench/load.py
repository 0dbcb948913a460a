"""Load benchmark: the assistant under test against a vanilla ``rasa init`` starter.

Run from anywhere with the project's virtual environment::

    .venv/bin/python bench/load.py [--concurrency 1,4,16] [--duration 20]
        [--warmup 3] [--skip-starter] [--skip-ours] [--keep-sender] [-v]

For each server, one after the other, and for each concurrency level C, the
benchmark runs C simulated users at once (bench/generate.py). It reports
throughput, latency percentiles, errors and the peak resident memory of the server
processes, prints a Markdown report and writes it to ``bench/results.md``
(bench/report.py).

The assistant under test is started with ``python -m bot.launch`` (Rasa server and
action server); the baseline is the ``rasa init`` starter project, created once
under ``bench/.starter/`` and served with ``rasa run``; both on free ports the
kernel picks. Every process the benchmark starts is stopped on exit, Ctrl-C or
error (bench/processes.py).

Exit status: 0 when the benchmark ran (whether or not targets were met), 1 when a
server failed, 2 when a prerequisite is missing, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, only bench/ is on the path: the repository's packages too.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import processes  # noqa: E402
from bench.generate import LevelResult, LoadPlan, bench_server  # noqa: E402
from bench.report import RESULTS_FILE, render_report  # noqa: E402

logger = logging.getLogger(__name__)


def parse_concurrency(text: str) -> list[int]:
    """Parse "1,4,16" into a list of distinct positive integers, in order."""
    levels: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {part!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError("concurrency levels must be >= 1")
        if value not in levels:
            levels.append(value)
    if not levels:
        raise argparse.ArgumentTypeError("give at least one concurrency level")
    return levels


def non_negative_float(text: str) -> float:
    """Argparse type: a float >= 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Load benchmark of the assistant against a rasa init starter."
    )
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=[1, 4, 16],
        help="comma-separated numbers of simultaneous conversations (default 1,4,16)",
    )
    parser.add_argument(
        "--duration",
        type=processes.positive_float,
        default=20.0,
        help="measured seconds per level (default 20)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_float,
        default=3.0,
        help="uncounted seconds before each measured window (default 3)",
    )
    parser.add_argument(
        "--skip-starter", action="store_true", help="do not run the starter baseline"
    )
    parser.add_argument(
        "--skip-ours", action="store_true", help="do not run the assistant under test"
    )
    parser.add_argument(
        "--keep-sender",
        action="store_true",
        help="keep one sender id per simulated user for the whole run instead of "
        "a fresh one per pass through the script (the tracker then grows, and "
        "latency with it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (to stderr)")
    args = parser.parse_args(argv)
    if args.skip_ours and args.skip_starter:
        parser.error("--skip-ours and --skip-starter leave nothing to benchmark")
    return args


def run(args: argparse.Namespace, logs_dir: Path) -> list[LevelResult]:
    """Load each server in turn; every server is stopped before the next starts."""
    if not args.skip_ours:
        processes.check_our_prerequisites()
    if not args.skip_starter:
        # Train before any server runs: never a training and a server at once.
        processes.ensure_starter(logs_dir)
    plan = LoadPlan(
        levels=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        keep_sender=args.keep_sender,
    )
    results: list[LevelResult] = []
    if not args.skip_ours:
        with processes.our_assistant(logs_dir) as server:
            results += bench_server(server, plan)
    if not args.skip_starter:
        with processes.starter(logs_dir) as server:
            results += bench_server(server, plan)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()

    def produce(logs_dir: Path) -> tuple[str, bool]:
        return render_report(run(args, logs_dir), args, started), False

    return processes.run_and_report(args.verbose, "bench", produce, RESULTS_FILE)


if __name__ == "__main__":
    sys.exit(main())
