"""`python -m desk export-labels`: the questions administrators labelled, as Rasa NLU data.

Each language's labelled questions go to `data/nlu/<lang>/field.yml`, readable by its
owner only, rewritten from what the desk holds now: a question deleted on request or
expired leaves the file at the next export (a file left with none is removed). Move
what a native speaker has reviewed into the topic files; `make train` and `make
validate`, git and the Docker build leave this file out: redaction removes phone
numbers, e-mail addresses and messenger accounts, not names or places, and a model
keeps every word it was trained on.
A question that the training data already has, under any intent, is left out (`rasa
data validate` refuses an example labelled with two intents).
"""
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping

import yaml

from avrr.vocabulary import CODES

FIELD = "field.yml"
HEADER = (
    "# Questions from the field that the assistant did not understand, labelled by IOM's\n"
    "# administrators in the desk and written by `make export-labels`. Review before training.\n"
)


def examples_of(path: Path) -> Dict[str, str]:
    """{example: intent} of one NLU file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found = {}
    for block in data.get("nlu") or []:
        if "intent" not in block:
            continue
        for line in str(block.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                found[line[2:].strip()] = block["intent"]
    return found


# What YAML can hold (its printable set), and Rasa's entity markup: "[text](entity)",
# "[text]{...}" or "[text][...]" (the redaction's "[phone]" must not become one).
NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MARKUP = re.compile(r"\]([({\[])")


def one_line(text: str) -> str:
    """The question as one example line: one line, only what YAML holds, no markup."""
    return MARKUP.sub(r"] \1", " ".join(NOT_YAML.sub(" ", text).split()))


def render(intents: Mapping[str, Iterable[str]]) -> str:
    lines = [HEADER, 'version: "3.1"', "nlu:"]
    for intent in sorted(intents):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in sorted(intents[intent])]
    return "\n".join(lines) + "\n"


def export(questions: Iterable[Mapping[str, str]], data_dir: Path) -> Dict[str, int]:
    """Write the labelled `questions` into `<data_dir>/<lang>/field.yml`; how many
    examples each language's file holds now."""
    labelled: Dict[str, Dict[str, str]] = defaultdict(dict)
    for question in questions:
        text = one_line(question["text"])
        if question["language"] in CODES and question.get("label") and text:
            labelled[question["language"]][text] = question["label"]
    earlier = {path.parent.name for path in data_dir.glob(f"*/{FIELD}")}
    written = {}
    for language in sorted(set(labelled) | earlier):
        folder = data_dir / language
        field = folder / FIELD
        trained: Dict[str, str] = {}
        for path in sorted(folder.glob("*.yml")):
            if path.name != FIELD:
                trained.update(examples_of(path))
        intents: Dict[str, List[str]] = defaultdict(list)
        for text, intent in labelled.get(language, {}).items():
            if text not in trained:
                intents[intent].append(text)
        if intents:
            folder.mkdir(parents=True, exist_ok=True)
            write_private(field, render(intents))
        elif field.exists():
            field.unlink()
        written[language] = sum(len(texts) for texts in intents.values())
    return written


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (0600), whatever the umask or the mode of
    a file already there, at once (a new file moved into place): what people wrote
    (redacted of numbers and accounts, not of names and places), a first password."""
    fresh = path.with_name(f".{path.name}.new")
    fresh.unlink(missing_ok=True)
    descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(fresh, path)
