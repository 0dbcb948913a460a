"""The NLU data as the language detector, the classifier and the contract need it."""
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from avrr.vocabulary import CODES, CONTRACT_INTENTS, LANGUAGES
from bot.language.detector import DECISIVE_LETTERS, LATIN_SUFFIX
from eval.lexicon import held_out

ROOT = Path(__file__).resolve().parents[2]
MIN_EXAMPLES = 25
SCRIPTS = ("ARABIC", "CYRILLIC", "LATIN")


def blocks(language):
    for path in sorted((ROOT / "data" / "nlu" / language).glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            yield path, block


def examples(language):
    """(file, intent, text, label) of every intent example; label is e.g. 'fa-Latn'."""
    for path, block in blocks(language):
        if "intent" not in block:
            continue
        label = (block.get("metadata") or {}).get("language")
        for line in block["examples"].splitlines():
            if line.strip():
                yield path.name, block["intent"], line.strip()[2:].strip(), label


def test_every_intent_block_names_its_language():
    for language in CODES:
        for path, block in blocks(language):
            if "intent" in block:
                expected = language + (LATIN_SUFFIX if path.stem == "romanized" else "")
                assert block.get("metadata") == {"language": expected}, (path.name, block["intent"])


def test_every_contract_intent_has_enough_examples_in_every_language():
    assert len(CONTRACT_INTENTS) == 26
    for language in CODES:
        counts = defaultdict(int)
        for _, intent, _, label in examples(language):
            if not label.endswith(LATIN_SUFFIX):
                counts[intent] += 1
        short = {i: counts[i] for i in CONTRACT_INTENTS if counts[i] < MIN_EXAMPLES}
        assert short == {}, language


def test_the_domain_keeps_every_contract_intent():
    """CONTRACT_INTENTS is the contract's list (CONTRACT.md, "Intents"), copied
    in order; the tests read nothing outside this repository."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert set(CONTRACT_INTENTS) <= set(domain["intents"])
    assert len(set(CONTRACT_INTENTS)) == len(CONTRACT_INTENTS) == 26


def test_no_example_is_a_typed_command():
    for language in CODES:
        for _, _, text, _ in examples(language):
            assert not text.startswith("/"), text


def scripts_in(text):
    """The scripts ('ARABIC', 'CYRILLIC', 'LATIN', 'OTHER') of the letters of `text`."""
    found = set()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            found.add(next((s for s in SCRIPTS if name.startswith(s)), "OTHER"))
    return found


# The Cyrillic letters of each Cyrillic language: Kazakh, Uzbek or Tajik lines are not ours.
CYRILLIC_ALPHABETS = {
    "ru": set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
    "uk": set("абвгґдеєжзиіїйклмнопрстуфхцчшщьюя"),
}
# Letters the detector takes as decisive for another language that are also this one's.
OWN_LETTERS = {"fr": set("ë")}


def contradictions(language, text, romanized):
    """Why `text` cannot be an example of `language`: wrong script or another's letters."""
    found = scripts_in(text)
    expected = "LATIN" if romanized else LANGUAGES[language].upper()
    if found and expected not in found:
        return f"no {expected.lower()} letters"
    if expected == "LATIN" and found - {"LATIN"}:
        return "letters of another script"
    if language in CYRILLIC_ALPHABETS and not romanized:
        foreign = {c for c in text.lower() if "CYRILLIC" in unicodedata.name(c, "")}
        if foreign - CYRILLIC_ALPHABETS[language]:
            return f"letters not in its alphabet: {sorted(foreign - CYRILLIC_ALPHABETS[language])}"
    # Proper names (Győr) keep their own letters: only words in lower case count.
    letters = {c for word in text.split() if word[:1].islower() for c in word.lower()}
    owners = {DECISIVE_LETTERS[c] for c in letters - OWN_LETTERS.get(language, set())
              if c in DECISIVE_LETTERS}
    same_script = {code for code in owners if LANGUAGES[code].upper() == expected}
    if not romanized and same_script and language not in same_script:
        return f"letters of {sorted(same_script)}"
    return None


@pytest.mark.parametrize("language", CODES)
def test_every_example_is_written_in_its_files_language(language):
    """Script and letters agree with the label: the language detector learns from them."""
    wrong = []
    for name, intent, text, label in examples(language):
        why = contradictions(language, text, label.endswith(LATIN_SUFFIX))
        if why:
            wrong.append((name, intent, text, why))
    assert wrong == []


_NOT_WORDS = re.compile(r"[\W_]+")


def folded(text):
    """`text` without case and punctuation; an example of emoji alone stays as it is."""
    return _NOT_WORDS.sub(" ", text.casefold()).strip() or text


@pytest.mark.parametrize("language", CODES)
def test_no_two_examples_differ_only_by_case_or_punctuation(language):
    seen, twins = {}, []
    for name, intent, text, _ in examples(language):
        key = folded(text)
        if key in seen:
            twins.append((seen[key], (name, intent, text)))
        else:
            seen[key] = (name, intent, text)
    assert twins == []



@pytest.mark.parametrize("language", CODES)
def test_no_training_example_is_a_held_out_message(language):
    """`make eval` measures messages the model never trained on."""
    unseen = {folded(text) for _, text in held_out(language)}
    assert unseen
    assert [text for _, _, text, _ in examples(language) if folded(text) in unseen] == []
