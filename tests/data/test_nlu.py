"""The NLU data as the language detector and the contract need it."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "hu", "ar", "fa", "ps", "ur", "sq", "ru", "uk", "tr", "fr", "vi")
MIN_EXAMPLES = 25


def blocks(language):
    for path in sorted((ROOT / "data" / "nlu" / language).glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            yield path, block


def contract_intents():
    contract = (ROOT.parent / "shared" / "CONTRACT.md").read_text(encoding="utf-8")
    section = contract.split("## Intents", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1].strip() for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| intent")]


def test_every_intent_block_names_its_language():
    for language in LANGUAGES:
        for path, block in blocks(language):
            if "intent" in block:
                expected = language + ("-Latn" if path.stem == "romanized" else "")
                assert block.get("metadata") == {"language": expected}, (path.name, block["intent"])


def test_every_contract_intent_has_enough_examples_in_every_language():
    intents = contract_intents()
    assert len(intents) == 26
    for language in LANGUAGES:
        counts = {}
        for path, block in blocks(language):
            if "intent" in block and path.stem != "romanized":
                examples = [line for line in block["examples"].splitlines() if line.strip()]
                counts[block["intent"]] = counts.get(block["intent"], 0) + len(examples)
        short = {i: counts.get(i, 0) for i in intents if counts.get(i, 0) < MIN_EXAMPLES}
        assert short == {}, language


def test_no_example_is_a_typed_command():
    for language in LANGUAGES:
        for _, block in blocks(language):
            for line in block.get("examples", "").splitlines():
                assert not line.strip()[2:].startswith("/"), line
