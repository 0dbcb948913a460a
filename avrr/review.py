"""Native-speaker review of the content files: status, sheets, and marking a review.

Every answer, ready reply, button title (`topics`, `choices`), topic name, day name,
glossary term and danger-lexicon group of every language carries a review status in its
file's `review:` section: `unreviewed`, or who reviewed it, when, and fingerprints of the
text they read and of the English it translates (the danger lexicon has no one-to-one
English: only its own phrases are fingerprinted, a group as a whole). An entry whose text
(or whose English) changed after its review is stale; tests/actions/test_review.py fails
when a stale entry is a safety or legal one (see `sensitivity`).

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


# The sections of a content file a native speaker reviews, in the sheet's order, with the
# sheet's heading for each.
SECTIONS: Dict[str, str] = {
    "answers": "Answers",
    "ready_replies": "Ready replies (sent by counsellors)",
    "topics": "Topic buttons (titles)",
    "choices": "Answer buttons (titles)",
    "topic_names": "Topic names (what a counsellor reads beside each message)",
    "days": "Day names (opening hours)",
    "glossary": "Glossary (one term per concept)",
    "danger_lexicon": "Danger lexicon (phrases that give a safety answer at once)",
}
# Sections of short texts keyed like English's: reviewed as `<section>.<key>`.
TERMS = ("topics", "choices", "topic_names", "days", "glossary")
LEXICON = "danger_lexicon"
LEVELS = ("safety", "legal", "general")  # most harmful first
# The answers each answer button answers or leads to (actions/eligibility.py,
# actions/privacy.py, actions/handoff.py): a button is as sensitive as the most sensitive
# of them. "yes", "no" and "not sure" answer the fear question, whose answer decides
# whether the person gets the safety answer `elig_result_fear`; the handoff buttons give
# or refuse consent to show the conversation to a counsellor (`handoff_offer`).
CHOICE_ANSWERS: Dict[str, Tuple[str, ...]] = {
    "yes": ("elig_result_fear", "delete_my_data", "delete_done"),
    "no": ("elig_result_fear", "delete_my_data", "delete_cancelled"),
    "not_sure": ("elig_result_fear", "elig_result_previous_unsure"),
    "situation_asylum": ("elig_note_asylum", "elig_conditions"),
    "situation_protection": ("elig_note_protection", "elig_conditions"),
    "situation_irregular": ("elig_result_likely", "elig_conditions"),
    "situation_other": ("elig_result_other", "elig_conditions"),
    "documents_expired_or_lost": ("elig_note_documents",),
    "handoff_yes": ("handoff_offer",),
    "handoff_no": ("handoff_offer", "handoff_declined"),
}


def _section(content: Dict[str, Any], name: str) -> Dict[str, Any]:
    found = content.get(name)
    return found if isinstance(found, dict) else {}


def entries(content: Dict[str, Any]) -> Iterator[Tuple[str, str, str]]:
    """(section, review key, text) of everything a native speaker reviews: each answer
    (its messages joined), ready reply, button title, topic name, day name and glossary
    term, and each group of the danger lexicon (its phrases, one a line)."""
    for key, messages in _section(content, "answers").items():
        yield "answers", key, "\n\n".join(m["text"] for m in messages)
    for key, text in _section(content, "ready_replies").items():
        yield "ready_replies", READY + key, text
    for name in TERMS:
        for key, text in _section(content, name).items():
            yield name, f"{name}.{key}", str(text)
    for group, phrases in _section(content, LEXICON).items():
        yield LEXICON, f"{LEXICON}.{group}", "\n".join(map(str, phrases or []))


def items(content: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    """(review key, text) of every entry of `entries`."""
    for _, key, text in entries(content):
        yield key, text


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _level(english: Dict[str, Any], key: str) -> str:
    for level, keys in (english.get("sensitivity") or {}).items():
        if key in (keys or []):
            return level
    return "general"


def sensitivity(english: Dict[str, Any], key: str) -> str:
    """How much harm a wrong translation of `key` could do: an answer's level is given in
    content/en.yml; a danger-lexicon phrase is safety; a topic button and a topic name
    are as sensitive as their topic's answer, an answer button as the answers it leads
    to (CHOICE_ANSWERS); day names and glossary terms are general."""
    section, _, name = key.partition(".")
    if section == LEXICON:
        return "safety"
    if section in ("topics", "topic_names"):
        return _level(english, name)
    if section == "choices":
        found = {_level(english, answer) for answer in CHOICE_ANSWERS.get(name, ())}
        return next((level for level in LEVELS if level in found), "general")
    if section in ("days", "glossary"):
        return "general"
    return _level(english, key)


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
    """One row per answer, ready reply, button title, topic name, day name and glossary
    term, and per danger-lexicon phrase: section, English, translation, sources, status.
    The phrases of a lexicon group share the group's review (key, status, reviewer)."""
    english, content = load(DEFAULT_LANGUAGE, folder), load(language, folder)
    sources = english.get("sources") or {}
    source_texts = dict(items(english))
    names = _section(english, "topic_names")
    reviews = content.get("review") or {}
    found = []
    for section, key, text in entries(content):
        lexicon = section == LEXICON
        source = None if language == DEFAULT_LANGUAGE or lexicon else source_texts.get(key, "")
        entry = reviews.get(key)
        row = {
            "section": section,
            "key": key,
            "sensitivity": sensitivity(english, key),
            "english": source_texts.get(key, ""),
            "translation": text,
            "sources": str(sources.get(key, "")),
            "status": status(entry, text, source),
            "reviewed_by": entry.get("by", "") if isinstance(entry, dict) else "",
            "reviewed_at": str(entry.get("at", "")) if isinstance(entry, dict) else "",
        }
        if not lexicon:
            found.append(row)
            continue
        # No one-to-one English: each phrase with what its group means.
        group = key[len(LEXICON) + 1:]
        meaning = f"(no one-to-one English) a phrase for: {names.get(group, group)}"
        found += [{**row, "english": meaning, "translation": phrase}
                  for phrase in text.split("\n") if phrase]
    return found


COLUMNS = ["section", "key", "sensitivity", "status", "english", "translation", "sources",
           "reviewed_by", "reviewed_at", "reviewer_notes"]
NOTES = {
    "answers": "Safety and legal answers first.",
    "topics": "The buttons under the answers; each opens the answer of its topic.",
    "choices": "The buttons of the eligibility questions, the deletion and the offer of a "
               "counsellor. A \"yes\" read as \"no\" changes the answer a person gets.",
    "topic_names": "Shown to a counsellor beside each message of the person.",
    "days": "Used in the office's opening hours.",
    "glossary": "The one term each answer of this language uses for the concept.",
    LEXICON: "A message that contains one of these phrases gets the safety answer of its "
             "group, with the emergency number, and the offer of a counsellor, whatever "
             "else the assistant understood. Matched without accents and capitals; a word "
             "ending in * matches every word that starts with it. Note a phrase that is "
             "wrong, too broad (it would match a calm question) or missing. A group is "
             "reviewed as a whole: record it only when every phrase was read.",
}


def write_sheet(language: str, out: Path, folder: Path = CONTENT) -> Tuple[Path, Path]:
    """The review sheet of `language` as CSV and HTML in `out`, grouped by section."""
    found = rows(language, folder)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{language}.csv"
    # With a byte order mark: Excel, opened by a double click, reads the file as UTF-8
    # (Arabic, Pashto, Cyrillic) only then.
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in found:
            writer.writerow({**{name: cell(str(value)) for name, value in row.items()},
                             "reviewer_notes": ""})
    direction = "rtl" if language in RIGHT_TO_LEFT else "ltr"
    name = load(language, folder).get("name", language)
    columns = COLUMNS[1:]  # the section is the heading
    header = "<tr>" + "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns) + "</tr>"
    grouped: Dict[str, List[Dict[str, str]]] = {}
    for row in found:
        grouped.setdefault(row["section"], []).append(row)
    lines = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Review: {html.escape(name)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:.4em;vertical-align:top;white-space:pre-wrap}"
        ".safety{background:#fde2e2}.legal{background:#fff3cd}"
        ".notes{min-width:14em}</style></head><body>",
        f"<h1>Review sheet: {html.escape(name)} ({html.escape(language)})</h1>",
        "<p>Read each translation against the English and the sources. Safety and legal "
        "entries first. Write what is wrong in the notes; the content owner records the "
        "review with <code>python -m avrr.review "
        f"{html.escape(language)} --reviewed-by NAME KEY</code>.</p>",
        "<ul>" + "".join(
            f'<li><a href="#{html.escape(section)}">{html.escape(SECTIONS[section])}</a> '
            f"({len(grouped[section])})</li>" for section in SECTIONS if section in grouped)
        + "</ul>",
    ]
    for section in SECTIONS:
        if section not in grouped:
            continue
        lines += [f'<h2 id="{html.escape(section)}">{html.escape(SECTIONS[section])}</h2>',
                  f"<p>{html.escape(NOTES.get(section, ''))}</p>"]
        keys = list(dict.fromkeys(row["key"] for row in grouped[section]))
        for key in keys if section == LEXICON else [None]:
            part = [row for row in grouped[section] if key is None or row["key"] == key]
            if key is not None:
                meaning = part[0]["english"].rpartition(": ")[2]
                lines.append(f"<h3>{html.escape(key)}: {html.escape(meaning)} ({len(part)} "
                             f"phrases, {html.escape(part[0]['status'])})</h3>")
            lines += ["<table>", header]
            lines += [_html_row(row, language, direction) for row in part]
            lines.append("</table>")
    lines += ["</body></html>"]
    html_path = out / f"{language}.html"
    html_path.write_text("\n".join(lines), encoding="utf-8")
    return csv_path, html_path


def _html_row(row: Dict[str, str], language: str, direction: str) -> str:
    cells = [
        html.escape(row["key"]), html.escape(row["sensitivity"]), html.escape(row["status"]),
        html.escape(row["english"]),
        f'<div dir="{direction}" lang="{html.escape(language)}">'
        f'{html.escape(row["translation"])}</div>',
        html.escape(row["sources"]), html.escape(row["reviewed_by"]),
        html.escape(row["reviewed_at"]), '<div class="notes" contenteditable="true"></div>',
    ]
    return (f'<tr class="{html.escape(row["sensitivity"])}">'
            + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")


def mark_reviewed(language: str, by: str, keys: List[str], folder: Path = CONTENT,
                  day: Optional[datetime.date] = None) -> None:
    """Record in the content file that `by` reviewed `keys` (their text as it is now)."""
    english, content = load(DEFAULT_LANGUAGE, folder), load(language, folder)
    texts, sources = dict(items(content)), dict(items(english))
    unknown = [key for key in keys if key not in texts]
    if unknown:
        raise SystemExit(f"{language} has no entry {', '.join(unknown)}")
    path = folder / f"{language}.yml"
    lines = path.read_text(encoding="utf-8").splitlines()
    when = (day or datetime.date.today()).isoformat()
    for key in keys:
        entry = {"status": REVIEWED, "by": by, "at": when, "text": fingerprint(texts[key])}
        if language != DEFAULT_LANGUAGE and not key.startswith(LEXICON + "."):
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
        if line.strip().split(":", 1)[0].strip('"') == key:
            lines[index] = f"  {key}: {value}"
            return lines
    raise SystemExit(f"no review line for {key}: add '  {key}: unreviewed' first")


def summary(folder: Path = CONTENT) -> List[Tuple[str, int, int, int, int, int, int]]:
    """Per language: its answers (and ready replies), its other entries (button titles,
    topic and day names, glossary terms), its danger-lexicon groups, and of all of them
    how many are reviewed, stale, and safety or legal but not reviewed."""
    found = []
    for language in CODES:
        # One row per review entry (a lexicon group's phrases share one).
        sheet = list({row["key"]: row for row in rows(language, folder)}.values())
        sections = [row["section"] for row in sheet]
        found.append((
            language,
            sum(s in ("answers", "ready_replies") for s in sections),
            sum(s in TERMS for s in sections),
            sum(s == LEXICON for s in sections),
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
        print("| language | answers | buttons, names, days, glossary | danger-lexicon groups "
              "| reviewed | stale | safety or legal not reviewed |")
        print("|---|---|---|---|---|---|---|")
        for language, *counts in summary():
            print(f"| {language} | " + " | ".join(map(str, counts)) + " |")
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
