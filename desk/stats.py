"""The statistics the desk shows: summaries of the daily counts, CSV, and charts drawn on
the server (matplotlib's SVG: no script, within the desk's Content-Security-Policy)."""
import csv
import io
import math
import statistics
from collections import defaultdict
from datetime import date, timedelta
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from avrr.sheets import cell
from avrr.vocabulary import SAFETY_INTENTS

DEFAULT_DAYS = 30
MAX_DAYS = 366
FIRST_YEAR, LAST_YEAR = 2020, 2100
TOP_TOPICS = 10
CHARTS = ("conversations", "fallback", "topics", "handoffs")
# A viewer sees no count under this for one day, channel, language and metric, nor the
# waits of fewer tickets: "1 deletion request in Pashto on Tuesday" points at a person.
SMALL_COUNT = 5
# Counts that are sums of others of the same day, channel and language (desk/insight.py,
# desk/store.py): shown with all their parts but one, they would tell that one.
PARTS: Dict[str, Callable[[str], bool]] = {
    "messages": lambda m: m.startswith("topic:") or m == "relayed_to_counsellor",
    "eligibility_finished": lambda m: m.startswith("eligibility:"),
    "tickets": lambda m: m.startswith("tickets:"),
    # and safety messages relayed to a counsellor, which are not counted apart
    "safety_messages": lambda m: m.startswith("topic:") and m[len("topic:"):] in SAFETY_INTENTS,
}


def period(first: Optional[str], last: Optional[str], today: date) -> tuple:
    """The days asked for (YYYY-MM-DD, inclusive); the last 30 days by default.
    ValueError with the reason when they are not a valid period."""
    end = date.fromisoformat(last) if last else today
    if not FIRST_YEAR <= end.year <= LAST_YEAR:
        raise ValueError(f"days from {FIRST_YEAR} to {LAST_YEAR}")
    start = date.fromisoformat(first) if first else end - timedelta(days=DEFAULT_DAYS - 1)
    if not FIRST_YEAR <= start.year <= LAST_YEAR:
        raise ValueError(f"days from {FIRST_YEAR} to {LAST_YEAR}")
    if start > end:
        raise ValueError("'from' is after 'to'")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days at once")
    return start, end


def percentile(values: Sequence[float], share: float) -> Optional[float]:
    """The nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], 1)


def wait_summary(seconds: Sequence[float]) -> Dict[str, Any]:
    return {
        "count": len(seconds),
        "median_s": round(statistics.median(seconds), 1) if seconds else None,
        "p90_s": percentile(seconds, 0.9),
    }


def summary(first: date, last: date, rows: Mapping[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """What GET /api/stats answers."""
    totals: Dict[str, int] = defaultdict(int)
    by_language: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_channel: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    topics: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    eligibility: Dict[str, int] = defaultdict(int)
    for row in rows["counts"]:
        metric, n = row["metric"], row["count"]
        if metric.startswith("topic:"):
            topics[row["language"]][metric[len("topic:"):]] += n
            continue
        if metric.startswith("eligibility:"):
            eligibility[metric[len("eligibility:"):]] += n
            continue
        totals[metric] += n
        by_language[row["language"]][metric] += n
        by_channel[row["channel"]][metric] += n
    waits_by_language: Dict[str, List[float]] = defaultdict(list)
    for wait in rows["waits"]:
        waits_by_language[wait["language"]].append(wait["seconds"])
    every_wait = [w["seconds"] for w in rows["waits"]]
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "totals": dict(totals),
        "by_language": {k: dict(v) for k, v in sorted(by_language.items())},
        "by_channel": {k: dict(v) for k, v in sorted(by_channel.items())},
        "topics": {k: dict(sorted(v.items(), key=lambda item: -item[1]))
                   for k, v in sorted(topics.items())},
        "fallback_rate": {
            language: round(counts.get("not_understood", 0) / counts["messages"], 3)
            for language, counts in sorted(by_language.items()) if counts.get("messages")
        },
        "eligibility": dict(eligibility),
        "wait": dict(wait_summary(every_wait), by_language={
            k: wait_summary(v) for k, v in sorted(waits_by_language.items())}),
        "daily": [
            {k: (v.isoformat() if k == "day" else v) for k, v in row.items()}
            for row in rows["counts"]
        ],
    }


def finished_days(rows: Mapping[str, List[Dict[str, Any]]],
                  today: date) -> Dict[str, List[Dict[str, Any]]]:
    """The rows of the days before `today`. Today's counts grow while a viewer looks:
    read twice, a count going from 5 to 6 would tell one new safety message."""
    return {kind: [row for row in found if row["day"] < today] for kind, found in rows.items()}


def for_viewers(rows: Mapping[str, List[Dict[str, Any]]]) -> Dict[str, List[Dict[str, Any]]]:
    """The rows a viewer may see: counts of SMALL_COUNT or more per day, channel, language
    and metric, and the waits of a day, channel and language with as many tickets. What
    is left out is left out of every total too, and a count that is a sum of others
    (PARTS) is left out when it would tell a small remainder, so that no small count can
    be found by subtracting."""
    groups: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for row in rows["counts"]:
        groups[(row["day"], row["channel"], row["language"])].append(row)
    counts = []
    for group in groups.values():
        shown = {row["metric"]: row["count"] for row in group if row["count"] >= SMALL_COUNT}
        for whole, is_part in PARTS.items():
            told = sum(n for metric, n in shown.items() if is_part(metric))
            if whole in shown and 0 < shown[whole] - told < SMALL_COUNT:
                del shown[whole]
        if "messages" not in shown:  # a share of messages without its messages is wrong
            shown.pop("not_understood", None)
        counts += [row for row in group if row["metric"] in shown]
    tickets: Dict[tuple, int] = defaultdict(int)
    for wait in rows["waits"]:
        tickets[(wait["day"], wait["channel"], wait["language"])] += 1
    return {
        "counts": counts,
        "waits": [wait for wait in rows["waits"]
                  if tickets[(wait["day"], wait["channel"], wait["language"])] >= SMALL_COUNT],
    }


def as_csv(rows: Mapping[str, List[Dict[str, Any]]]) -> str:
    """One line per day, channel, language and metric; the waits as their median and 90th
    percentile per day, channel and language."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "channel", "language", "metric", "value"])
    for row in rows["counts"]:
        writer.writerow([row["day"].isoformat(), cell(row["channel"]), cell(row["language"]),
                         cell(row["metric"]), row["count"]])
    grouped: Dict[tuple, List[float]] = defaultdict(list)
    for wait in rows["waits"]:
        grouped[(wait["day"].isoformat(), wait["channel"], wait["language"])].append(
            wait["seconds"])
    for (day, channel, language), seconds in sorted(grouped.items()):
        summary_ = wait_summary(seconds)
        writer.writerow([day, cell(channel), cell(language), "first_reply_wait_median_s",
                         summary_["median_s"]])
        writer.writerow([day, cell(channel), cell(language), "first_reply_wait_p90_s",
                         summary_["p90_s"]])
    return out.getvalue()


def plain(label: str) -> str:
    """A label matplotlib draws as it is: "$...$" would be read as maths (or fail)."""
    return label.replace("$", r"\$")


def chart(name: str, first: date, last: date, rows: Mapping[str, List[Dict[str, Any]]],
          topic_name: Callable[[str], str]) -> bytes:
    """One chart as SVG: conversations by language over time, the share of messages not
    understood per language, the top topics, or handoffs and waits per day."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    stats = summary(first, last, rows)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    figure, axes = pyplot.subplots(figsize=(8, 3.6), dpi=100)
    try:
        if name == "conversations":
            per_day: Dict[str, Dict[date, int]] = defaultdict(lambda: defaultdict(int))
            for row in rows["counts"]:
                if row["metric"] == "conversations":
                    per_day[row["language"]][row["day"]] += row["count"]
            for language, counts in sorted(per_day.items()):
                axes.plot(days, [counts.get(day, 0) for day in days], marker="o",
                          label=plain(language))
            axes.set_title("Conversations by language")
            if per_day:
                axes.legend(ncol=6, fontsize="small")
            figure.autofmt_xdate()
        elif name == "fallback":
            rates = stats["fallback_rate"]
            axes.bar([plain(language) for language in rates],
                     [100 * rate for rate in rates.values()], color="#b35c00")
            axes.set_title("Messages not understood, % per language")
            axes.set_ylim(0, 100)
        elif name == "topics":
            merged: Dict[str, int] = defaultdict(int)
            for counts in stats["topics"].values():
                for intent, n in counts.items():
                    merged[intent] += n
            top = sorted(merged.items(), key=lambda item: -item[1])[:TOP_TOPICS][::-1]
            axes.barh([plain(topic_name(intent)) for intent, _ in top], [n for _, n in top])
            axes.set_title("Top topics")
        elif name == "handoffs":
            tickets: Dict[date, int] = defaultdict(int)
            for row in rows["counts"]:
                if row["metric"] == "tickets":
                    tickets[row["day"]] += row["count"]
            axes.bar(days, [tickets.get(day, 0) for day in days], color="#1f5f99",
                     label="tickets")
            waited: Dict[date, List[float]] = defaultdict(list)
            for wait in rows["waits"]:
                waited[wait["day"]].append(wait["seconds"] / 60)
            other = axes.twinx()
            other.plot([d for d in days if waited[d]],
                       [statistics.median(waited[d]) for d in days if waited[d]],
                       color="#b35c00", marker="o", label="median wait (min)")
            other.set_ylabel("median wait until the first reply (min)")
            axes.set_title("Handoffs per day, and the wait for a counsellor")
            figure.autofmt_xdate()
        else:
            raise ValueError(f"no chart '{name}'")
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="svg")
        return out.getvalue()
    finally:
        pyplot.close(figure)
