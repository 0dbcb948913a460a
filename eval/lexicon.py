"""`python eval/lexicon.py [LANG ...]`: how the danger lexicon does, without a model.

For each language: the share of held-out messages that are not about safety which the
lexicon wrongly flags (false alarms; target under 2%), and the share of safety messages,
held-out and training, that it catches (the classifier is the other net, so this need
not be 1). Lists the false alarms and the misses, for whoever extends the lexicon.
"""
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avrr.vocabulary import CODES, SAFETY_INTENTS  # noqa: E402
from bot.safety.lexicon import Lexicon  # noqa: E402

FALSE_ALARM_TARGET = 0.02


def examples(path: Path) -> List[Tuple[str, str]]:
    """(intent, text) of an NLU YAML file."""
    if not path.exists():
        return []
    found = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
        for line in (block.get("examples") or "").splitlines():
            text = line.strip()[2:].strip() if line.strip().startswith("- ") else ""
            if text and "intent" in block:
                found.append((block["intent"], text))
    return found


def lexicon_of(language: str) -> Lexicon:
    content = yaml.safe_load((ROOT / "content" / f"{language}.yml").read_text(encoding="utf-8"))
    return Lexicon(content.get("danger_lexicon") or {})


def held_out(language: str) -> List[Tuple[str, str]]:
    return examples(ROOT / "tests" / "nlu" / f"{language}.yml") + examples(
        ROOT / "tests" / "nlu" / "romanized" / f"{language}.yml"
    )


def training(language: str) -> List[Tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "data" / "nlu" / language).glob("*.yml")):
        found += examples(path)
    return found


def report(language: str, lexicon: Lexicon) -> Dict[str, float]:
    test = held_out(language)
    calm = [text for intent, text in test if intent not in SAFETY_INTENTS]
    alarms = [(text, lexicon.match(text)) for text in calm]
    alarms = [(text, found) for text, found in alarms if found]
    danger = [text for intent, text in test + training(language) if intent in SAFETY_INTENTS]
    misses = [text for text in danger if not lexicon.match(text)]
    rate = len(alarms) / max(1, len(calm))
    caught = 1 - len(misses) / max(1, len(danger))
    print(f"{language}: false alarms {len(alarms)}/{len(calm)} = {rate:.1%} "
          f"(target < {FALSE_ALARM_TARGET:.0%}); safety messages caught "
          f"{len(danger) - len(misses)}/{len(danger)} = {caught:.1%}")
    for text, found in alarms:
        print(f"  false alarm: {text!r} <- {found.phrase!r} ({found.intent})")
    for text in misses:
        print(f"  missed: {text!r}")
    return {"false_alarms": rate, "caught": caught}


def main(languages: List[str]) -> int:
    # Every language's phrases apply to every message: the detector may be wrong.
    phrases: Dict[str, List[str]] = {}
    for language in CODES:
        for intent, listed in (lexicon_of(language).phrases.items()):
            phrases.setdefault(intent, []).extend(p.text for p in listed)
    lexicon = Lexicon(phrases)
    failed = False
    for language in languages or CODES:
        failed |= report(language, lexicon)["false_alarms"] >= FALSE_ALARM_TARGET
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
