"""`make eval`: how well the trained model understands each language, on held-out data.

Reads tests/nlu/<lang>.yml (and tests/nlu/romanized/<lang>.yml), which the model never
trains on, parses every message with the trained model, and reports per language:
intent accuracy and macro-F1; language detection accuracy without and with the
conversation's context, by message length; the same detection figures for lingua and
cld2 on the same messages (restricted to our languages: the fairest comparison for
them); and the detector's own time per message. Writes eval/report/README.md, a
confusion matrix and a per-language chart (PNG).

Context is simulated as a conversation of the language's test messages in a fixed
shuffled order: a message the detector cannot tell keeps the language found before
(the first ones fall back to English, as the assistant does).
"""
import argparse
import asyncio
import json
import logging
import random
import statistics
import tarfile
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from avrr.vocabulary import CODES, DEFAULT_LANGUAGE, SAFETY_INTENTS

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "eval" / "report"
SHORT = 3  # words

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    language: str
    intent: str
    text: str
    romanized: bool

    @property
    def short(self) -> bool:
        return len(self.text.split()) <= SHORT


@dataclass
class Parsed:
    intent: str
    detected: Optional[str]
    ranking: Tuple[str, ...] = ()
    by_net: bool = False


SAFETY_TARGET = 0.98


def gives_emergency_number(parsed: Parsed) -> bool:
    """Whether the assistant's reply holds the emergency number: a safety intent's answer
    (every one has it, tests/actions/test_answers.py), or a clarification whose likely
    meanings include danger (actions/fallback.py)."""
    from actions.fallback import possible_danger

    if parsed.intent in SAFETY_INTENTS:
        return True
    return parsed.intent == "nlu_fallback" and possible_danger(
        [{"name": name} for name in parsed.ranking]) is not None


def read_examples(folder: Path) -> List[Example]:
    examples = []
    for path in sorted(folder.glob("*.yml")) + sorted((folder / "romanized").glob("*.yml")):
        romanized = path.parent.name == "romanized"
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            for line in block["examples"].splitlines():
                text = line.strip()[2:].strip()
                if text:
                    examples.append(Example(path.stem, block["intent"], text, romanized))
    return examples


async def parse_all(model: Path, examples: Sequence[Example]) -> List[Parsed]:
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # its debug lines would print every message
    agent = Agent.load(str(model))
    parsed = []
    for example in examples:
        data = await agent.parse_message(example.text)
        detection = data.get("language_detection") or {}
        ranking = tuple(entry["name"] for entry in data.get("intent_ranking") or [])
        parsed.append(Parsed(data["intent"]["name"], detection.get("language"), ranking,
                             "safety_net" in data))
    return parsed


def detector_from(model: Path):
    """Our detector exactly as the model holds it, to time and to use without context."""
    from bot.language.component import langdetect_probabilities
    from bot.language.detector import LanguageDetector, NgramModel

    with tempfile.TemporaryDirectory() as unpacked:
        with tarfile.open(model) as archive:
            members = [m for m in archive.getmembers() if m.name.endswith("ngram_counts.json")]
            archive.extractall(unpacked, members=members)  # noqa: S202 - our own model
        [counts_file] = Path(unpacked).rglob("ngram_counts.json")
        counts = json.loads(counts_file.read_text())
    return LanguageDetector(NgramModel(counts), langdetect_probabilities(0))


def lingua_detector() -> Callable[[str], Optional[str]]:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    ours = []
    for code in CODES:
        try:
            ours.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except (AttributeError, ValueError):
            logger.info("lingua has no %s", code)
    detector = LanguageDetectorBuilder.from_languages(*ours).build()

    def detect(text: str) -> Optional[str]:
        found = detector.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found else None

    return detect


def cld2_detector() -> Callable[[str], Optional[str]]:
    import pycld2

    def detect(text: str) -> Optional[str]:
        try:
            reliable, _, details = pycld2.detect(text)
        except pycld2.error:
            return None
        code = details[0][1]
        return code if code != "un" else None

    return detect


def in_context(examples: Sequence[Example], found: Sequence[Optional[str]]) -> List[str]:
    """What the assistant answers in, message by message, in a conversation per language."""
    answered = [""] * len(examples)
    by_language: Dict[Tuple[str, bool], List[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_language[(example.language, example.romanized)].append(index)
    for indices in by_language.values():
        order = list(indices)
        random.Random(7).shuffle(order)  # noqa: S311 - a fixed order, not a secret
        current = DEFAULT_LANGUAGE
        for index in order:
            current = found[index] or current
            answered[index] = current
    return answered


def accuracy(pairs: Sequence[Tuple[str, Optional[str]]]) -> float:
    return sum(truth == guess for truth, guess in pairs) / len(pairs) if pairs else float("nan")


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return f1_score(truth, predicted, average="macro", labels=sorted(set(truth)), zero_division=0)


def percent(value: float) -> str:
    return "—" if value != value else f"{value:.3f}"


def write_charts(languages, intent_acc, detect_acc, examples, parsed) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(10, 4))
    xs = range(len(languages))
    axes.bar([x - 0.2 for x in xs], [intent_acc[lang] for lang in languages], 0.4, label="intent")
    axes.bar([x + 0.2 for x in xs], [detect_acc[lang] for lang in languages], 0.4,
             label="language (in context)")
    axes.axhline(0.85, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(list(xs), languages)
    axes.set_ylim(0.5, 1.0)
    axes.set_title("Held-out accuracy per language")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(REPORT / "per_language.png", dpi=110)
    plt.close(figure)

    native = [(e, p) for e, p in zip(examples, parsed, strict=False) if not e.romanized]
    labels = sorted({e.intent for e, _ in native})
    figure, axes = plt.subplots(figsize=(14, 12))
    ConfusionMatrixDisplay.from_predictions(
        [e.intent for e, _ in native],
        [p.intent for _, p in native],
        labels=labels + ["nlu_fallback"],
        normalize="true", include_values=False, xticks_rotation="vertical", ax=axes,
        cmap="Blues", colorbar=True,
    )
    axes.set_title("Intent confusion, all languages (rows: true, normalised)")
    figure.tight_layout()
    figure.savefig(REPORT / "confusion.png", dpi=90)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "avrr.tar.gz"))
    parser.add_argument("--tests", default=str(ROOT / "tests" / "nlu"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    REPORT.mkdir(parents=True, exist_ok=True)

    examples = read_examples(Path(args.tests))
    model = Path(args.model)
    parsed = asyncio.run(parse_all(model, examples))
    detector = detector_from(model)
    timings, alone = [], []
    for example in examples:
        start = time.perf_counter()
        alone.append(detector.detect(example.text).language)
        timings.append((time.perf_counter() - start) * 1000)
    ours_context = in_context(examples, alone)
    peers = {"lingua": lingua_detector(), "cld2": cld2_detector()}
    peer_found = {name: [detect(e.text) for e in examples] for name, detect in peers.items()}

    languages = sorted({e.language for e in examples}, key=lambda c: (c != "en", c))
    lines = [
        "# Held-out evaluation",
        "",
        f"Model `{model.name}`, {len(examples)} messages the model never trained on "
        f"(`tests/nlu/`). Reproduce: `make eval`.",
        "",
        "## Understanding (intent), native script",
        "",
        "| language | messages | accuracy | macro-F1 |",
        "|---|---|---|---|",
    ]
    intent_acc, detect_acc = {}, {}
    native = [(e, p) for e, p in zip(examples, parsed, strict=False) if not e.romanized]
    for language in languages:
        rows = [(e, p) for e, p in native if e.language == language]
        intent_acc[language] = accuracy([(e.intent, p.intent) for e, p in rows])
        f1 = macro_f1([e.intent for e, _ in rows], [p.intent for _, p in rows])
        cells = f"{percent(intent_acc[language])} | {percent(f1)}"
        lines.append(f"| {language} | {len(rows)} | {cells} |")
    overall = accuracy([(e.intent, p.intent) for e, p in native])
    overall_f1 = macro_f1([e.intent for e, _ in native], [p.intent for _, p in native])
    lines.append(f"| **all** | {len(native)} | **{percent(overall)}** | {percent(overall_f1)} |")
    roman = [(e, p) for e, p in zip(examples, parsed, strict=False) if e.romanized]
    if roman:
        lines.append(
            f"| romanized ar fa ps ur ru uk | {len(roman)} | "
            f"{percent(accuracy([(e.intent, p.intent) for e, p in roman]))} | — |"
        )

    def detection_rows(kind: str, select: Callable[[Example], bool]) -> None:
        indices = [i for i, e in enumerate(examples) if select(e)]
        if not indices:
            return
        truth = [examples[i].language for i in indices]
        cells = [
            accuracy(list(zip(truth, [alone[i] for i in indices], strict=False))),
            accuracy(list(zip(truth, [ours_context[i] for i in indices], strict=False))),
            accuracy(list(zip(truth, [peer_found["lingua"][i] for i in indices], strict=False))),
            accuracy(list(zip(truth, [peer_found["cld2"][i] for i in indices], strict=False))),
        ]
        lines.append(f"| {kind} | {len(indices)} | " + " | ".join(percent(c) for c in cells) + " |")

    lines += [
        "",
        "## Language detection",
        "",
        "Ours without context counts \"cannot tell\" as wrong; in context it keeps the "
        "conversation's language. lingua and cld2 see each message alone.",
        "",
        "| messages | n | ours alone | ours in context | lingua | cld2 |",
        "|---|---|---|---|---|---|",
    ]
    detection_rows("1-3 words", lambda e: e.short and not e.romanized)
    detection_rows("4+ words", lambda e: not e.short and not e.romanized)
    detection_rows("romanized", lambda e: e.romanized)
    detection_rows("all", lambda e: True)
    lines += [
        "",
        "| language | n | ours alone | ours in context | lingua | cld2 |",
        "|---|---|---|---|---|---|",
    ]
    for language in languages:
        detection_rows(language, lambda e, lang=language: e.language == lang and not e.romanized)
        indices = [i for i, e in enumerate(examples) if e.language == language and not e.romanized]
        detect_acc[language] = accuracy([(examples[i].language, ours_context[i]) for i in indices])

    safety_lines, safe_enough = safety_report(languages, examples, parsed)
    lines += safety_lines

    timings.sort()
    p95 = timings[int(0.95 * (len(timings) - 1))]
    lines += [
        "",
        f"Detection time per message (this machine): median {statistics.median(timings):.2f} ms, "
        f"p95 {p95:.2f} ms.",
        "",
        "![per language](per_language.png)",
        "",
        "![intent confusion](confusion.png)",
        "",
    ]
    write_charts(languages, intent_acc, detect_acc, examples, parsed)
    text = "\n".join(lines)
    (REPORT / "README.md").write_text(text, encoding="utf-8")
    print(text)
    if not safe_enough:
        print(f"\nSafety below {SAFETY_TARGET:.0%} in some language: see the table above.")
        return 1
    return 0


def safety_report(
    languages: Sequence[str], examples: Sequence[Example], parsed: Sequence[Parsed]
) -> Tuple[List[str], bool]:
    """Per language: the recall of the safety intents, the share of danger messages whose
    reply holds the emergency number, and the safety net's false alarms on the rest."""
    lines = [
        "",
        "## Safety",
        "",
        "Danger messages are the held-out messages of report_emergency, report_exploitation, "
        "report_suicidal_thoughts and express_fear_of_return (romanized ones included). "
        "Recall: the share taken for one of them (by the classifier, or by the safety net: the "
        "danger lexicon, or the classifier's belief summed over the safety intents). 112: the "
        "share whose reply holds the emergency number. False alarms: the share of the other "
        f"messages the safety net turned into safety messages. Target: {SAFETY_TARGET:.0%} "
        "for recall and 112 in every language; under 2% false alarms.",
        "",
        "| language | danger messages | recall | 112 in the reply | by the net | "
        "other messages | false alarms |",
        "|---|---|---|---|---|---|---|",
    ]
    safe_enough = True
    for language in languages:
        rows = [(e, p) for e, p in zip(examples, parsed, strict=True) if e.language == language]
        danger = [p for e, p in rows if e.intent in SAFETY_INTENTS]
        calm = [p for e, p in rows if e.intent not in SAFETY_INTENTS]
        recall = sum(p.intent in SAFETY_INTENTS for p in danger) / max(1, len(danger))
        number = sum(gives_emergency_number(p) for p in danger) / max(1, len(danger))
        by_net = sum(p.by_net for p in danger) / max(1, len(danger))
        alarms = sum(p.by_net for p in calm) / max(1, len(calm))
        safe_enough &= recall >= SAFETY_TARGET and number >= SAFETY_TARGET and alarms < 0.02
        lines.append(
            f"| {language} | {len(danger)} | {percent(recall)} | {percent(number)} | "
            f"{percent(by_net)} | {len(calm)} | {percent(alarms)} |"
        )
    return lines, safe_enough


if __name__ == "__main__":
    raise SystemExit(main())
