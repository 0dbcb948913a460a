"""Native-speaker review of the content files: status, sheets, and marking a review.

Every answer and ready reply of every language carries a review status in its file's
`review:` section: `unreviewed`, or who reviewed it, when, and fingerprints of the text
they read and of the English it translates. An answer whose text (or whose English)
changed after its review is stale; tests/actions/test_review.py fails when a stale answer
is a safety or legal one (sensitivity in content/en.yml).

    python -m avrr.review LANG            the side-by-side sheet: var/review/LANG.html, .csv
    python -m avrr.review --status        the review status per language (for the README)
    python -m avrr.review LANG --reviewed-by NAME KEY [KEY ...]
                                          record that NAME reviewed these keys today
"""
import argparse
import csv
import datetime
import hashlib
import html
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import yaml

from avrr.content import READY
from avrr.settings import ROOT
from avrr.sheets import cell
from avrr.vocabulary import CODES, DEFAULT_LANGUAGE, RIGHT_TO_LEFT

CONTENT = ROOT / "content"
UNREVIEWED, REVIEWED, STALE = "unreviewed", "reviewed", "stale"


def load(language: str, folder: Path = CONTENT) -> Dict[str, Any]:
    with (folder / f"{language}.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def items(content: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    """(key, text) of every answer and ready reply; an answer's messages joined."""
    for key, messages in (content.get("answers") or {}).items():
        yield key, "\n\n".join(m["text"] for m in messages)
    for key, text in (content.get("ready_replies") or {}).items():
        yield READY + key, text


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def sensitivity(english: Dict[str, Any], key: str) -> str:
    for level, keys in (english.get("sensitivity") or {}).items():
        if key in keys:
            return level
    return "general"


def status(entry: Any, text: str, source: Optional[str]) -> str:
    """UNREVIEWED, REVIEWED, or STALE (the text or its English changed since)."""
    if not isinstance(entry, dict) or entry.get("status") != REVIEWED:
        return UNREVIEWED
    if entry.get("text") != fingerprint(text):
        return STALE
    if source is not None and entry.get("source") != fingerprint(source):
        return STALE
    return REVIEWED


def rows(language: str, folder: Path = CONTENT) -> List[Dict[str, str]]:
    """One row per answer and ready reply: English, translation, sources, status."""
    english, content = load(DEFAULT_LANGUAGE, folder), load(language, folder)
    sources = english.get("sources") or {}
    source_texts = dict(items(english))
    reviews = content.get("review") or {}
    found = []
    for key, text in items(content):
        source = None if language == DEFAULT_LANGUAGE else source_texts.get(key, "")
        entry = reviews.get(key)
        found.append({
            "key": key,
            "sensitivity": sensitivity(english, key),
            "english": source_texts.get(key, ""),
            "translation": text,
            "sources": str(sources.get(key, "")),
            "status": status(entry, text, source),
            "reviewed_by": entry.get("by", "") if isinstance(entry, dict) else "",
            "reviewed_at": str(entry.get("at", "")) if isinstance(entry, dict) else "",
        })
    return found


def write_sheet(language: str, out: Path, folder: Path = CONTENT) -> Tuple[Path, Path]:
    """The review sheet of `language` as CSV and HTML in `out`."""
    found = rows(language, folder)
    out.mkdir(parents=True, exist_ok=True)
    columns = ["key", "sensitivity", "status", "english", "translation", "sources",
               "reviewed_by", "reviewed_at", "reviewer_notes"]
    csv_path = out / f"{language}.csv"
    # With a byte order mark: Excel, opened by a double click, reads the file as UTF-8
    # (Arabic, Pashto, Cyrillic) only then.
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in found:
            writer.writerow({**{name: cell(str(value)) for name, value in row.items()},
                             "reviewer_notes": ""})
    direction = "rtl" if language in RIGHT_TO_LEFT else "ltr"
    name = load(language, folder).get("name", language)
    lines = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Review: {html.escape(name)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:.4em;vertical-align:top;white-space:pre-wrap}"
        ".safety{background:#fde2e2}.legal{background:#fff3cd}"
        ".notes{min-width:14em}</style></head><body>",
        f"<h1>Review sheet: {html.escape(name)} ({html.escape(language)})</h1>",
        "<p>Read each translation against the English and the sources. Safety and legal "
        "answers first. Write what is wrong in the notes; the content owner records the "
        "review with <code>python -m avrr.review "
        f"{html.escape(language)} --reviewed-by NAME KEY</code>.</p>",
        "<table><tr>" + "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns) + "</tr>",
    ]
    for row in found:
        cells = [
            html.escape(row["key"]), html.escape(row["sensitivity"]), html.escape(row["status"]),
            html.escape(row["english"]),
            f'<div dir="{direction}" lang="{language}">{html.escape(row["translation"])}</div>',
            html.escape(row["sources"]), html.escape(row["reviewed_by"]),
            html.escape(row["reviewed_at"]), '<div class="notes" contenteditable="true"></div>',
        ]
        lines.append(f'<tr class="{html.escape(row["sensitivity"])}">'
                     + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    lines += ["</table></body></html>"]
    html_path = out / f"{language}.html"
    html_path.write_text("\n".join(lines), encoding="utf-8")
    return csv_path, html_path


def mark_reviewed(language: str, by: str, keys: List[str], folder: Path = CONTENT,
                  day: Optional[datetime.date] = None) -> None:
    """Record in the content file that `by` reviewed `keys` (their text as it is now)."""
    english, content = load(DEFAULT_LANGUAGE, folder), load(language, folder)
    texts, sources = dict(items(content)), dict(items(english))
    unknown = [key for key in keys if key not in texts]
    if unknown:
        raise SystemExit(f"{language} has no answer {', '.join(unknown)}")
    path = folder / f"{language}.yml"
    lines = path.read_text(encoding="utf-8").splitlines()
    when = (day or datetime.date.today()).isoformat()
    for key in keys:
        entry = {"status": REVIEWED, "by": by, "at": when, "text": fingerprint(texts[key])}
        if language != DEFAULT_LANGUAGE:
            entry["source"] = fingerprint(sources.get(key, ""))
        lines = set_review_line(lines, key, json.dumps(entry, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def set_review_line(lines: List[str], key: str, value: str) -> List[str]:
    """`lines` of a content file with `key: value` in its `review:` section (kept in place,
    so the comments and layout of the file stay as the translators wrote them)."""
    start = lines.index("review:")
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line and not line.startswith(" "):
            break
        if line.strip().split(":", 1)[0] == key:
            lines[index] = f"  {key}: {value}"
            return lines
    raise SystemExit(f"no review line for {key}: add '  {key}: unreviewed' first")


def summary(folder: Path = CONTENT) -> List[Tuple[str, int, int, int, int]]:
    """(language, answers, reviewed, stale, unreviewed safety or legal) per language."""
    found = []
    for language in CODES:
        sheet = rows(language, folder)
        found.append((
            language, len(sheet),
            sum(r["status"] == REVIEWED for r in sheet),
            sum(r["status"] == STALE for r in sheet),
            sum(r["status"] != REVIEWED and r["sensitivity"] in ("safety", "legal")
                for r in sheet),
        ))
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avrr.review", description=__doc__)
    parser.add_argument("language", nargs="?", choices=CODES)
    parser.add_argument("keys", nargs="*")
    parser.add_argument("--reviewed-by")
    parser.add_argument("--status", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "review")
    args = parser.parse_args(argv)
    if args.status:
        print("| language | answers | reviewed | stale | safety or legal not reviewed |")
        print("|---|---|---|---|---|")
        for language, total, reviewed, stale, open_sensitive in summary():
            print(f"| {language} | {total} | {reviewed} | {stale} | {open_sensitive} |")
        return 0
    if args.language is None:
        parser.error("name a language, or --status")
    if args.reviewed_by:
        mark_reviewed(args.language, args.reviewed_by, args.keys)
        return 0
    for path in write_sheet(args.language, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
