"""`python eval/known_words.py`: how KnownWords (bot/language/known_words.py) tells real
words it never saw from mashed keys, without the held-out set.

Real words: the words of the answers in content/<lang>.yml (all twelve languages) that
the trained model's vocabulary lacks, three letters or more. Mashed keys: 3,000 runs of
three to seven keys of one row of a Latin, Cyrillic or Persian/Arabic keyboard, half of
them adjacent keys ("asdf"), half random keys of the row (fixed seed). For each rule,
the share of each that counts as known: one shared four-letter piece, or half of the
word's pieces (the rule in use).
"""
import json
import random
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avrr.vocabulary import CODES  # noqa: E402
from bot.language.known_words import MODEL_FILE, Vocabulary, pieces, words_of  # noqa: E402

ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю",
        "ضصثقفغعهخحجچ", "شسیبلاتنمکگ", "ظطزرذدپو")
MASHED = 3000


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def vocabulary(model: Path) -> Vocabulary:
    with tarfile.open(model) as archive:
        name = next(n for n in archive.getnames() if n.endswith(MODEL_FILE))
        return Vocabulary(json.load(archive.extractfile(name)))  # type: ignore[arg-type]


def unseen_words(known: Vocabulary) -> List[str]:
    found = set()
    for code in CODES:
        content = yaml.safe_load((ROOT / "content" / f"{code}.yml").read_text("utf-8"))
        for text in strings(content.get("answers", {})):
            found.update(w for w in words_of(text)
                         if w not in known.words and len(w) >= 3 and w.isalpha())
    return sorted(found)


def mashed_keys() -> List[str]:
    chance = random.Random(0)  # noqa: S311 - a fixed sample, not a secret
    made = []
    for _ in range(MASHED):
        row, length = chance.choice(ROWS), chance.randint(3, 7)
        if chance.random() < 0.5:
            start = chance.randint(0, max(0, len(row) - length))
            keys = row[start:start + length]
        else:
            keys = "".join(chance.choice(row) for _ in range(length))
        made.extend(words_of(keys)[:1])
    return made


def main() -> int:
    known = vocabulary(ROOT / "models" / "avrr.tar.gz")

    def one_piece(word: str) -> bool:
        return word in known.words or not pieces(word).isdisjoint(known._pieces)

    rules: Dict[str, Callable[[str], bool]] = {
        "one shared piece": one_piece, "half of the pieces (in use)": known.knows}
    words, mashed = unseen_words(known), mashed_keys()
    print(f"| rule | real words known (of {len(words)}) | mashed keys known "
          f"(of {len(mashed)}) |\n|---|--:|--:|")
    for name, rule in rules.items():
        print(f"| {name} | {sum(map(rule, words)) / len(words):.3f} | "
              f"{sum(map(rule, mashed)) / len(mashed):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
