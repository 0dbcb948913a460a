"""`python eval/crossval.py`: how the safety nets would do on messages the model never saw,
measured on the training data alone, to choose `danger_belief` (config.yml) without
looking at the held-out set.

Five-fold cross-validation of the pipeline's classifier as scikit-learn builds it (word
1-2-grams and character 2-5-grams, logistic regression with balanced classes, as in
config.yml; without Rasa's tokenizer, so the figures are close to the model's, not equal).
For each training message, the classifier's ranking comes from the folds that did not
train on it. Reports per language the recall of the safety intents and the share of the
other messages taken for a safety message: by the classifier alone, with the danger
lexicon, and with the lexicon plus each `danger_belief` threshold; and for
`sentence_belief`, each message's belief alone, as a sentence of a longer message would be
ranked. It takes about twenty minutes on two cores.

`python eval/crossval.py --misses misses.tsv` also writes the training messages both nets
miss (at the configured threshold) and the calm ones they flag, to find the kinds of
danger the data and the lexicon still lack without looking at the held-out set.
`--binary` adds a table comparing the belief net at lower thresholds with a second
classifier trained on danger against the rest; `--windows`, one adding each run of two
to five words, or each clause, of a message ranked alone at several beliefs, as a further
net (README, "Not yet": neither was taken).
"""
import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from scipy.sparse import hstack
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avrr.vocabulary import CODES, SAFETY_INTENTS  # noqa: E402
from bot.safety.lexicon import Lexicon  # noqa: E402
from eval.lexicon import lexicon_of, training  # noqa: E402

THRESHOLDS = (0.5, 0.4, 0.35, 0.3, 0.25)
# For `sentence_belief`: a sentence of a message of several, ranked alone.
SENTENCE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
FOLDS = 5
BINARY_THRESHOLDS = (0.5, 0.7, 0.8, 0.9)


# For `--windows`: the parts of a message ranked alone, each run of a few words (of a
# message of at most MAX_WINDOWED_WORDS) and each clause between commas or dashes.
WINDOW_SIZES = (2, 3, 4, 5)
WINDOW_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MAX_WINDOWED_WORDS = 20
_CLAUSE_END = re.compile(r"[,،:–—]|\s-\s")


def words_of(size: int) -> Callable[[str], List[str]]:
    """Each run of `size` words of a message longer than that."""
    def cut(text: str) -> List[str]:
        words = text.split()
        if len(words) <= size or len(words) > MAX_WINDOWED_WORDS:
            return []
        return [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]
    return cut


def clauses_of(text: str) -> List[str]:
    """The clauses of a message of several (between commas, colons and dashes)."""
    parts = [p.strip() for p in _CLAUSE_END.split(text) if p.strip()]
    return parts if len(parts) > 1 else []


PARTS: Dict[str, Callable[[str], List[str]]] = {
    **{f"{size} words": words_of(size) for size in WINDOW_SIZES}, "clause": clauses_of}


def out_of_fold(texts: Sequence[str], intents: np.ndarray, binary: bool = False,
                windows: bool = False
                ) -> Tuple[List[str], np.ndarray, Optional[np.ndarray], Dict[str, np.ndarray]]:
    """The classes and each message's probabilities from the folds that did not train on
    it; with `binary`, also each message's probability of danger from a second model
    trained on danger (the four safety intents) against the rest, on the same features;
    with `windows`, for each kind of PARTS, the highest belief in the safety intents of
    any part of each message ranked alone (0 for a message without such parts)."""
    classes = sorted(set(intents))
    probabilities = np.zeros((len(texts), len(classes)))
    danger = np.zeros(len(texts)) if binary else None
    is_danger = np.isin(intents, list(SAFETY_INTENTS))
    parts = {name: np.zeros(len(texts)) for name in PARTS} if windows else {}
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0)
    for train, test in folds.split(texts, intents):
        words = CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b")  # noqa: S106
        chars = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5))
        seen = [texts[i] for i in train]
        unseen = [texts[i] for i in test]
        x_seen = hstack([words.fit_transform(seen), chars.fit_transform(seen)]).tocsr()
        x_unseen = hstack([words.transform(unseen), chars.transform(unseen)]).tocsr()
        model = LogisticRegression(max_iter=300, class_weight="balanced", random_state=42)
        model.fit(x_seen, intents[train])
        probabilities[test] = model.predict_proba(x_unseen)
        safety_columns = [list(model.classes_).index(name) for name in SAFETY_INTENTS]
        for name, found in parts.items():
            owners, pieces = [], []
            for i in test:
                for piece in PARTS[name](texts[i]):
                    owners.append(i)
                    pieces.append(piece)
            if pieces:
                x = hstack([words.transform(pieces), chars.transform(pieces)]).tocsr()
                beliefs = model.predict_proba(x)[:, safety_columns].sum(1)
                np.maximum.at(found, np.array(owners), beliefs)
        if danger is not None:
            second = LogisticRegression(max_iter=300, class_weight="balanced", random_state=42)
            danger[test] = second.fit(x_seen, is_danger[train]).predict_proba(x_unseen)[:, 1]
        print(f"fold done ({len(test)} messages)", flush=True)
    return classes, probabilities, danger, parts


def configured_belief() -> float:
    """SafetyNet's `danger_belief` in config.yml."""
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    return next(c["danger_belief"] for c in config["pipeline"] if "danger_belief" in c)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=Path, help="write missed and flagged messages here")
    parser.add_argument("--windows", action="store_true",
                        help="also its runs of 2-5 words and its clauses ranked alone (not used)")
    parser.add_argument("--binary", action="store_true",
                        help="also a danger-or-not classifier as a further net (not used)")
    args = parser.parse_args()
    rows = [(language, intent, text) for language in CODES for intent, text in training(language)]
    languages = np.array([r[0] for r in rows])
    intents = np.array([r[1] for r in rows])
    texts = [r[2] for r in rows]
    phrases: Dict[str, List[str]] = {}
    for language in CODES:
        for intent, listed in lexicon_of(language).phrases.items():
            phrases.setdefault(intent, []).extend(p.text for p in listed)
    lexicon = Lexicon(phrases)

    classes, probabilities, binary, parts = out_of_fold(texts, intents, args.binary,
                                                        args.windows)
    safety = [classes.index(name) for name in SAFETY_INTENTS]
    danger = np.isin(intents, list(SAFETY_INTENTS))
    top = np.array(classes)[probabilities.argmax(1)]
    taken = np.isin(top, list(SAFETY_INTENTS))
    by_lexicon = np.array([lexicon.match(text) is not None for text in texts])
    belief = probabilities[:, safety].sum(1)

    def line(name: str, flagged: np.ndarray, threshold: Optional[float] = None) -> None:
        cells = []
        for language in CODES:
            mine = languages == language
            recall = (flagged & danger & mine).sum() / (danger & mine).sum()
            alarms = (flagged & ~danger & mine).sum() / (~danger & mine).sum()
            cells.append(f"{recall:.3f} / {alarms:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\nRecall of the safety intents / share of the other messages taken for danger\n")
    print("| nets | " + " | ".join(CODES) + " |")
    print("|---" * (len(CODES) + 1) + "|")
    line("classifier", taken)
    line("+ lexicon", taken | by_lexicon)
    for threshold in THRESHOLDS:
        line(f"+ lexicon + belief >= {threshold}", taken | by_lexicon | (belief >= threshold))
    if binary is not None:
        print("\nWithout the lexicon: the belief net at lower thresholds, against a second"
              " classifier trained on danger or not (`--binary`)\n")
        print("| nets | " + " | ".join(CODES) + " |")
        print("|---" * (len(CODES) + 1) + "|")
        for threshold in THRESHOLDS:
            line(f"classifier + belief >= {threshold}", taken | (belief >= threshold))
        for threshold in BINARY_THRESHOLDS:
            line(f"classifier + belief >= {configured_belief()} + danger-or-not >= {threshold}",
                 taken | (belief >= configured_belief()) | (binary >= threshold))
    if parts:
        every = np.max(np.vstack(list(parts.values())), axis=0)
        for lexicon_too in (False, True):
            base = taken | (belief >= configured_belief()) | (by_lexicon & lexicon_too)
            print(f"\n{'With' if lexicon_too else 'Without'} the lexicon: each run of words"
                  " (or comma clause) ranked alone (`--windows`)\n")
            print("| nets | " + " | ".join(CODES) + " |")
            print("|---" * (len(CODES) + 1) + "|")
            line(f"classifier + belief >= {configured_belief()}", base)
            for name, values in [*parts.items(), ("any", every)]:
                for threshold in WINDOW_THRESHOLDS:
                    line(f"+ {name} >= {threshold}", base | (values >= threshold))
    print("\nA sentence of a message of several, ranked alone (`sentence_belief`): each"
          " training message taken as such a sentence\n")
    print("| belief | " + " | ".join(CODES) + " |")
    print("|---" * (len(CODES) + 1) + "|")
    for threshold in SENTENCE_THRESHOLDS:
        line(f">= {threshold}", belief >= threshold)
    if args.misses:
        flagged = taken | by_lexicon | (belief >= configured_belief())
        with args.misses.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, delimiter="\t")
            writer.writerow(["kind", "language", "intent", "taken_for", "confidence", "belief",
                             "text"])
            for i in np.flatnonzero(danger != flagged):
                kind = "missed" if danger[i] else "flagged"
                writer.writerow([kind, languages[i], intents[i], top[i],
                                 f"{probabilities[i].max():.2f}", f"{belief[i]:.2f}", texts[i]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
