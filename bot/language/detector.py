"""Which of our twelve languages a message is written in. Pure logic, no Rasa imports.

langdetect alone fails on what people here send: two-word messages, Pashto (it has no
Pashto profile), Persian or Urdu typed with Arabic letters, Ukrainian against Russian,
Vietnamese without tones, and any of them typed in Latin letters. So the evidence is,
strongest first:
1. letters that only one language uses (Pashto ښ, Urdu ے, Ukrainian ї, Vietnamese ơ ...);
2. a character and word n-gram model learnt from our own training data, one class per
   language and one per romanized language ("fa-Latn");
3. langdetect, seeded so it is deterministic, on the languages it knows;
4. the channel's hint (Telegram's language_code, the browser's language).
A message too short or too mixed to tell gives no language, so the conversation keeps
the one it has.
"""
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from avrr.vocabulary import CODES as LANGUAGES
from avrr.vocabulary import (
    EVERY_LANGUAGE,
    LANGDETECT_KNOWN,
    NO_WORDS,
    ROMANIZED,
    primary_language,
    scripts,
)

LATIN_SUFFIX = "-Latn"

ARABIC_SCRIPT = scripts("arabic")
CYRILLIC_SCRIPT = scripts("cyrillic")
LATIN_SCRIPT = scripts("latin") + tuple(c + LATIN_SUFFIX for c in ROMANIZED)

# Letters that settle the question on their own (within their script).
DECISIVE_LETTERS: Mapping[str, str] = {
    **dict.fromkeys("ټډړښږځڅڼېۍګ", "ps"),
    **dict.fromkeys("ٹڈڑںےۓ", "ur"),
    **dict.fromkeys("іїєґ", "uk"),
    **dict.fromkeys("ыэъё", "ru"),
    **dict.fromkeys("ơưăđ", "vi"),
    **dict.fromkeys("őű", "hu"),
    **dict.fromkeys("ğşı", "tr"),
    **dict.fromkeys("ë", "sq"),
}
# Latin Extended Additional, U+1EA0-U+1EF9: vowels with stacked or Vietnamese-only
# tone marks (ạ ả ấ ầ ẩ ẫ ậ ... ỹ), used by no other language here.
_VIETNAMESE_TONED = (0x1EA0, 0x1EF9)
# Words people write in any language: on their own they tell nothing.
NEUTRAL_WORDS = frozenset(
    "ok okay okey oki okk yes no hi hello bye thanks thx salam salaam merci iom "
    "passport pasport".split()
)

TEMPERATURE = 4.0
MIN_LETTERS = 2
SHORT_WORDS = 3
SHORT_CONFIDENCE = 0.8
# Digits stay inside words: romanized Arabic writes letters as digits ("3arabi").
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")


@dataclass(frozen=True)
class Detection:
    """The language found (None: cannot tell) and why."""

    language: Optional[str]
    confidence: float
    reason: str
    romanized: bool = False


def words_of(text: str) -> List[str]:
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


def script_of(words: Sequence[str]) -> Optional[str]:
    """'arabic', 'cyrillic' or 'latin': the script of most letters."""
    counts: Counter = Counter()
    for char in "".join(words):
        name = unicodedata.name(char, "")
        for script in ("ARABIC", "CYRILLIC", "LATIN"):
            if name.startswith(script):
                counts[script.lower()] += 1
    return counts.most_common(1)[0][0] if counts else None


def candidates_for(script: Optional[str]) -> Tuple[str, ...]:
    return {"arabic": ARABIC_SCRIPT, "cyrillic": CYRILLIC_SCRIPT, "latin": LATIN_SCRIPT}.get(
        script or "", ()
    )


def decisive_language(words: Sequence[str]) -> Optional[str]:
    """A language whose own letters appear, when only one such language does."""
    text = "".join(words)
    found = {DECISIVE_LETTERS[c] for c in text if c in DECISIVE_LETTERS}
    if any(_VIETNAMESE_TONED[0] <= ord(c) <= _VIETNAMESE_TONED[1] for c in text):
        found.add("vi")
    return found.pop() if len(found) == 1 else None


def features(words: Sequence[str]) -> Counter:
    """Character 1-3-grams inside word boundaries, and the words themselves."""
    found: Counter = Counter()
    for word in words:
        padded = f" {word} "
        for n in (1, 2, 3):
            found.update(padded[i : i + n] for i in range(len(padded) - n + 1))
        found[f"w:{word}"] += 2
    return found


class NgramModel:
    """Multinomial naive Bayes over `features`, trained on labelled example texts."""

    def __init__(self, counts: Mapping[str, Mapping[str, int]], alpha: float = 0.5) -> None:
        self.counts = {label: dict(c) for label, c in counts.items()}
        self.alpha = alpha
        self.totals = {label: sum(c.values()) for label, c in self.counts.items()}
        self.known = {f for c in self.counts.values() for f in c}
        self.vocabulary = len(self.known)

    @classmethod
    def train(cls, examples: Iterable[Tuple[str, str]]) -> "NgramModel":
        counts: Dict[str, Counter] = {}
        for label, text in examples:
            counts.setdefault(label, Counter()).update(features(words_of(text)))
        return cls(counts)

    def probabilities(self, words: Sequence[str], labels: Sequence[str]) -> Dict[str, float]:
        """P(label | words) among `labels`, from the features some language has."""
        found = {f: n for f, n in features(words).items() if f in self.known}
        scores = {}
        for label in labels:
            if label not in self.counts:
                continue
            counts, total = self.counts[label], self.totals[label]
            denominator = math.log(total + self.alpha * self.vocabulary)
            log_likelihood = sum(
                n * (math.log(counts.get(f, 0) + self.alpha) - denominator)
                for f, n in found.items()
            )
            # Tempered: n-grams of one text are far from independent.
            scores[label] = log_likelihood / TEMPERATURE
        return softmax(scores)


def softmax(scores: Mapping[str, float]) -> Dict[str, float]:
    if not scores:
        return {}
    top = max(scores.values())
    exps = {label: math.exp(score - top) for label, score in scores.items()}
    total = sum(exps.values())
    return {label: value / total for label, value in exps.items()}


class LanguageDetector:
    """Combine the evidence above into one decision per message."""

    def __init__(self, model: NgramModel, langdetect_probabilities=None) -> None:
        self.model = model
        # A callable text -> {code: probability}; None leaves langdetect out.
        self.langdetect = langdetect_probabilities

    def detect(self, text: str, hint: Optional[str] = None) -> Detection:
        words = words_of(text)
        letters = sum(c.isalpha() for w in words for c in w)
        if letters < MIN_LETTERS:
            return Detection(None, 0.0, NO_WORDS)
        if len(words) <= SHORT_WORDS and all(word in NEUTRAL_WORDS for word in words):
            return Detection(None, 0.0, EVERY_LANGUAGE)
        candidates = candidates_for(script_of(words))
        if not candidates:
            return Detection(None, 0.0, "script of none of our languages")
        decisive = decisive_language(words)
        if decisive in candidates:
            return Detection(decisive, 1.0, "letters")

        probabilities = self.model.probabilities(words, candidates)
        if self.langdetect is not None:
            probabilities = self._with_langdetect(text, probabilities)
        label, confidence = max(probabilities.items(), key=lambda item: item[1])
        language, romanized = label.replace(LATIN_SUFFIX, ""), label.endswith(LATIN_SUFFIX)

        if len(words) <= SHORT_WORDS and confidence < SHORT_CONFIDENCE:
            hinted = hint_in(hint, candidates)
            if hinted:
                return Detection(hinted, confidence, "channel hint")
            return Detection(None, confidence, f"too short to tell (best: {label})")
        return Detection(language, confidence, "n-grams and langdetect", romanized)

    def _with_langdetect(self, text: str, model: Dict[str, float]) -> Dict[str, float]:
        """Average with langdetect over the languages it knows, keeping the others' mass."""
        known = {label: p for label, p in model.items() if label in LANGDETECT_KNOWN}
        if not known:
            return model
        detected = self.langdetect(text)
        mass = sum(known.values())
        in_known = {label: detected.get(label, 0.0) for label in known}
        total = sum(in_known.values())
        if total == 0:
            return model
        mixed = dict(model)
        for label in known:
            mixed[label] = 0.5 * model[label] + 0.5 * mass * in_known[label] / total
        return mixed


def hint_in(hint: Optional[str], candidates: Sequence[str]) -> Optional[str]:
    """The hinted language ('fa-IR' -> 'fa') if the message's script allows it."""
    code = primary_language(hint)
    if code and (code in candidates or code + LATIN_SUFFIX in candidates):
        return code
    return None


def supported(languages: Iterable[str]) -> Set[str]:
    return set(languages) & set(LANGUAGES)
