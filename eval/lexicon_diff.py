"""`python eval/lexicon_diff.py REV`: what the danger lexicon of the working tree catches on
the training data that the lexicon of commit REV did not (its phrases and its matching,
both read from git), per language: danger messages newly caught, calm messages newly
flagged (each listed). Training data only: the held-out set is never read.
"""
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avrr.vocabulary import CODES, SAFETY_INTENTS  # noqa: E402
from bot.safety.lexicon import Lexicon  # noqa: E402
from eval.lexicon import training  # noqa: E402


def shown(rev: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"],  # noqa: S603,S607
                          capture_output=True, text=True, check=True).stdout


def phrases(read) -> Dict[str, List[str]]:  # noqa: ANN001 - a function of a language code
    found: Dict[str, List[str]] = {}
    for code in CODES:
        for intent, listed in (yaml.safe_load(read(code)).get("danger_lexicon") or {}).items():
            found.setdefault(intent, []).extend(map(str, listed or []))
    return found


def lexicon_at(rev: str) -> Lexicon:
    """The lexicon as commit `rev` had it: its matching code and its phrases."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "lexicon_then.py"
        source.write_text(shown(rev, "bot/safety/lexicon.py"), encoding="utf-8")
        spec = importlib.util.spec_from_file_location("lexicon_then", source)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.Lexicon(phrases(lambda code: shown(rev, f"content/{code}.yml")))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    then = lexicon_at(sys.argv[1])
    now = Lexicon(phrases(lambda code: (ROOT / "content" / f"{code}.yml").read_text("utf-8")))
    print("| language | danger newly caught | calm newly flagged |\n|---|--:|--:|")
    flagged = []
    for code in CODES:
        caught = calm = 0
        for intent, text in training(code):
            if now.match(text) is None or then.match(text) is not None:
                continue
            if intent in SAFETY_INTENTS:
                caught += 1
            else:
                calm += 1
                flagged.append(f"[{code}] {text} ({intent})")
        print(f"| {code} | {caught} | {calm} |")
    for line in flagged:
        print("flagged:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
