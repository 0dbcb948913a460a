"""`python eval/calm_sentences.py [MODEL]`: how calm messages of several sentences are
understood, on a development set (not the held-out one: choices may be made on it).

`eval/calm_sentences.tsv`: 144 calm messages of two to four sentences, 12 per language
(language, the intent to answer, message, English gloss), written by a helper apart from
the training and held-out data: a greeting or a sentence about oneself, then a question
(or none: inform, greet, thank_you). For each language: how many the whole message
alone gets right (the classifier, before the sentences' question is taken), how many the
assistant gets right, how many get a safety answer (a false alarm), and of those, how
many also get their question answered after it (bot/safety/component.py).
"""
import asyncio
import csv
import logging
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actions.answers import asked_besides  # noqa: E402
from avrr.vocabulary import CODES, SAFETY_INTENTS  # noqa: E402

DEV_SET = ROOT / "eval" / "calm_sentences.tsv"
COLUMNS = ("whole", "assistant", "safety answer", "question after it")


async def measure(model: Path) -> dict:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    counts = {code: Counter() for code in CODES}
    with DEV_SET.open(encoding="utf-8") as rows:
        for language, intent, text, _ in csv.reader(rows, delimiter="\t", quoting=csv.QUOTE_NONE):
            parsed = await agent.parse_message(text)
            taken = parsed["intent"]["name"]
            net = parsed.get("safety_net") or {}
            sentence = parsed.get("sentence_question") or {}
            whole = net.get("original_intent") or sentence.get("original_intent") or taken
            count = counts[language]
            count["messages"] += 1
            count["whole"] += whole == intent
            count["assistant"] += taken == intent
            if taken in SAFETY_INTENTS:
                count["safety answer"] += 1
                count["question after it"] += asked_besides(parsed) == intent
    return counts


def main() -> None:
    logging.disable(logging.WARNING)
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "avrr.tar.gz"
    counts = asyncio.run(measure(model))
    print("| language | messages | " + " | ".join(COLUMNS) + " |")
    print("|---|--:|" + "--:|" * len(COLUMNS))
    total = Counter()
    for code in CODES:
        total.update(counts[code])
        print(f"| {code} | {counts[code]['messages']} | "
              + " | ".join(str(counts[code][c]) for c in COLUMNS) + " |")
    print(f"| **all** | {total['messages']} | "
          + " | ".join(str(total[c]) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
