"""The danger lexicon: words and phrases that mean danger now. Pure, no Rasa imports.

The second of two independent nets (the first is the intent classifier): whatever the
classifier makes of a message, a match makes it a safety message. The phrases live in
the content files (`danger_lexicon:` in content/<lang>.yml), where operators and
translators extend them without training.

Both the phrases and the message are normalised the same way, so that informal spelling
still matches: lower case; accents, tone marks and harakat dropped (é -> e, ş -> s,
ạ -> a, ً -> nothing); letters people type interchangeably folded (Arabic ي ى ی ې ۍ ئ ->
ی, ك ک -> ک, ة ہ ھ -> ه, أ إ آ -> ا, ё -> е, ı -> i, đ -> d); the tatweel and the
zero-width non-joiner dropped. A phrase matches whole words, in order, however they are
spaced ("می کشند" and "میکشند" are one); a word of a phrase ending in `*` matches any word
that starts with it ("kill*" matches "killing").

Arabic writes "and", "so", "with", "to", "like", the future and "the" as one word with
what follows ("وضربني", "and he hit me"; "بالسكين", "with the knife"): a message is also
matched with those prefixes taken off each word that keeps three letters or more, so
that "ضربني" and "سكين" need no phrase for each prefix. A letter typed three times or
more for emphasis is also read once and twice ("heeeelp" as "help", "killlll" as
"kill", "ساعدووووني" as "ساعدوني"). A number between the words of a phrase does not
break it: "swallowed 30 pills" matches "swallowed pills".
"""
import re
import unicodedata
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from avrr.vocabulary import SAFETY_INTENTS

# When several match, the first of these wins: its answer is the most specific.
PRIORITY = ("report_suicidal_thoughts", "report_emergency", "report_exploitation",
            "express_fear_of_return")
assert set(PRIORITY) == set(SAFETY_INTENTS)  # noqa: S101 - a vocabulary invariant

_FOLD = str.maketrans(
    {
        **dict.fromkeys("يىیېۍئےۓ", "ی"),
        **dict.fromkeys("كک", "ک"),
        "ګ": "گ",
        **dict.fromkeys("ةہھۃ", "ه"),
        **dict.fromkeys("أإآٱ", "ا"),
        "ؤ": "و",
        "ё": "е",
        "ı": "i",
        "đ": "d",
        "ł": "l",
        "ß": "ss",
        "\u0640": None,  # tatweel
        "\u200c": None,  # zero-width non-joiner
        "\u200d": None,  # zero-width joiner
        "\u200f": None,  # right-to-left mark
        "\u200e": None,  # left-to-right mark
        "\u02bc": " ",  # Ukrainian apostrophe as some keyboards type it: like ' and ’
    }
)
_WORD = re.compile(r"[^\W_]+")
PREFIX = "*"
# Arabic proclitics, on normalised text (ك is ک): a conjunction, then a preposition, the
# future or the article.
_PROCLITICS = re.compile(r"^[وف]?(?:بال|کال|وال|لل|ال|[بکلس])?")
_STEM_LETTERS = 3
_REPEATED = re.compile(r"(.)\1{2,}")


def without_proclitics(word: str) -> str:
    """`word` without its Arabic proclitics, if at least three letters remain."""
    stem = word[_PROCLITICS.match(word).end():]  # type: ignore[union-attr]
    return stem if len(stem) >= _STEM_LETTERS else word


def normalise(text: str) -> str:
    """`text` folded as described in the module docstring, words separated by one space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = unicodedata.normalize("NFC", stripped).translate(_FOLD)
    return " ".join(_WORD.findall(folded))


def variants(words: List[str]) -> List[List[str]]:
    """The message's words as typed, without numbers, without Arabic prefixes, and with
    emphasis undone."""
    found: List[List[str]] = []
    lettered = [w for w in words if not w.isdigit()]
    for typed in (words, lettered, [without_proclitics(w) for w in lettered]):
        for made in (typed, [_REPEATED.sub(r"\1", w) for w in typed],
                     [_REPEATED.sub(r"\1\1", w) for w in typed]):
            if made not in found:
                found.append(made)
    return found


@dataclass(frozen=True)
class Phrase:
    words: Tuple[str, ...]
    prefix_last: Tuple[bool, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> Optional["Phrase"]:
        raw = text.split()
        words, prefixes = [], []
        for word in raw:
            folded = normalise(word.rstrip(PREFIX))
            if not folded:
                continue
            # A word that normalises into several ("l'argent") keeps each part.
            parts = folded.split()
            words += parts
            prefixes += [False] * (len(parts) - 1) + [word.endswith(PREFIX)]
        return cls(tuple(words), tuple(prefixes), text) if words else None

    def found_in(self, words: Sequence[str]) -> bool:
        size = len(self.words)
        for start in range(len(words) - size + 1):
            if all(
                words[start + i].startswith(w) if prefix else words[start + i] == w
                for i, (w, prefix) in enumerate(zip(self.words, self.prefix_last, strict=True))
            ):
                return True
        return False


@dataclass(frozen=True)
class Match:
    intent: str
    phrase: str


class Lexicon:
    """Phrases by safety intent, for one or more languages.

    Matching looks up the joined letters of consecutive words in two tables (whole
    phrases, and phrases ending in `*`), so its cost grows with the message, not with
    the thousands of phrases; the rare phrase with `*` inside is scanned word by word.
    """

    def __init__(self, phrases: Mapping[str, Iterable[str]]) -> None:
        unknown = set(phrases) - set(PRIORITY)
        if unknown:
            raise ValueError(f"danger_lexicon has keys that are not safety intents: {unknown}")
        self.phrases: Dict[str, List[Phrase]] = {
            intent: [p for p in map(Phrase.parse, phrases.get(intent) or ()) if p]
            for intent in PRIORITY
        }
        self._whole: Dict[str, Tuple[int, Phrase]] = {}
        self._starts: Dict[str, Tuple[int, Phrase]] = {}
        # Phrases with `*` inside, by one of their whole words (scanned if that word occurs).
        self._scanned: Dict[str, List[Tuple[int, Phrase]]] = {}
        self._scanned_always: List[Tuple[int, Phrase]] = []
        for rank, intent in enumerate(PRIORITY):
            for phrase in self.phrases[intent]:
                joined = "".join(phrase.words)
                if any(phrase.prefix_last[:-1]):
                    anchor = next((w for w, prefix in zip(phrase.words, phrase.prefix_last,
                                                          strict=True) if not prefix), None)
                    if anchor is None:
                        self._scanned_always.append((rank, phrase))
                    else:
                        self._scanned.setdefault(anchor, []).append((rank, phrase))
                elif phrase.prefix_last[-1]:
                    self._starts.setdefault(joined, (rank, phrase))
                else:
                    self._whole.setdefault(joined, (rank, phrase))
        self._longest = max((len(k) for k in [*self._whole, *self._starts]), default=0)
        self._start_lengths = sorted({len(k) for k in self._starts})

    def match(self, text: str) -> Optional[Match]:
        """The safety intent the message's words point to, if any."""
        words = normalise(text).split()
        best = None
        for variant in variants(words):
            found = self._best(variant)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        if best is None:
            return None
        return Match(PRIORITY[best[0]], best[1].text)

    def _best(self, words: List[str]) -> Optional[Tuple[int, Phrase]]:
        """The phrase of the highest priority found in `words`, with its rank."""
        best: Optional[Tuple[int, Phrase]] = None
        for start in range(len(words)):
            joined = ""
            for word in words[start:]:
                joined += word
                # A phrase ending in `*` ends inside this word, its stem within it: "kill
                # mys*" fits "kill myself", not "kill my son".
                in_word = len(joined) - len(word)
                found = [self._whole.get(joined)]
                for n in self._start_lengths:
                    hit = self._starts.get(joined[:n]) if in_word < n <= len(joined) else None
                    if hit is not None and n - len(hit[1].words[-1]) >= in_word:
                        found.append(hit)
                for hit in found:
                    if hit is not None and (best is None or hit[0] < best[0]):
                        best = hit
                if len(joined) >= self._longest:
                    break
        candidates = [c for word in set(words) for c in self._scanned.get(word, ())]
        for rank, phrase in candidates + self._scanned_always:
            if (best is None or rank < best[0]) and phrase.found_in(words):
                best = (rank, phrase)
        return best
