"""Twelve languages end to end: a person greets, asks three questions, says "ok", and
asks whether they can apply; every answer comes in their language and on the topic."""
import uuid
from pathlib import Path

import pytest
import yaml

from actions.content import get_content
from tests.actions.test_content import ANSWER_TIME_VALUES

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "hu", "ar", "fa", "ps", "ur", "sq", "ru", "uk", "tr", "fr", "vi")
JOURNEY = ("greet", "ask_cost", "ask_documents", "ask_reintegration")


def typical_message(language: str, intent: str) -> str:
    """The longest training example of `intent` in `language`: a clear, natural message."""
    examples = []
    for path in (ROOT / "data" / "nlu" / language).glob("*.yml"):
        for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            if block.get("intent") == intent and path.stem != "romanized":
                examples += [line.strip()[2:] for line in block["examples"].splitlines() if line]
    return max(examples, key=len)


def texts(key: str, language: str):
    return [reply.text for reply in get_content().replies(key, language)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_conversation_in_each_language(assistant, language):
    sender = f"lang-{language}-{uuid.uuid4().hex}"
    for intent in JOURNEY:
        replies = [text for text, _ in assistant.say(sender, typical_message(language, intent))]
        assert replies[: len(texts(intent, language))] == texts(intent, language), intent
        assert assistant.tracker(sender)["slots"]["language"] == language

    # "ok" tells nothing about the language: the conversation keeps it.
    assistant.say(sender, "ok")
    assert assistant.tracker(sender)["slots"]["language"] == language

    replies = [t for t, _ in assistant.say(sender, typical_message(language, "ask_eligibility"))]
    assert replies[: len(texts("ask_eligibility", language))] == texts("ask_eligibility", language)
    assert replies[-1] == texts("elig_ask_fear", language)[0]


def test_romanized_persian_is_answered_in_persian_script(assistant):
    sender = f"roman-{uuid.uuid4().hex}"
    replies = [t for t, _ in assistant.say(sender, "salam, barname bazgasht raygan ast?")]

    assert assistant.tracker(sender)["slots"]["language"] == "fa"
    assert replies == texts("ask_cost", "fa")


def test_the_language_menu_switches_the_language(assistant):
    sender = f"menu-{uuid.uuid4().hex}"
    menu = assistant.say(sender, "change language please")[-1][1]
    assert len(menu) == 12
    hungarian = next(p for p in menu if '"hu"' in p)

    replies = assistant.say(sender, hungarian)

    assert [t for t, _ in replies] == texts("language_changed", "hu")
    assert assistant.tracker(sender)["slots"]["language"] == "hu"


def test_a_first_message_in_no_clear_language_offers_the_menu(assistant):
    sender = f"unclear-{uuid.uuid4().hex}"
    replies = assistant.say(sender, "ok")

    assert replies[-1][0] == texts("language_unsure", "en")[0]
    assert len(replies[-1][1]) == 12


# Letter strings of no language; which of them the model cannot place depends on training.
GIBBERISH = ("zzq qxv", "xq zv", "qwpzx vbnmq", "zzzq", "vbq xz", "qxqx")


def unclear_message(assistant) -> str:
    """A message whose language the running model cannot tell."""
    for text in GIBBERISH:
        sender = f"probe-{uuid.uuid4().hex}"
        assistant.say(sender, text)
        detection = assistant.tracker(sender)["latest_message"]["language_detection"]
        if detection["language"] is None:
            return text
    pytest.fail("every probe message got a language: add another to GIBBERISH")


def test_the_browser_language_decides_an_unclear_first_message(assistant):
    text = unclear_message(assistant)
    sender = f"hint-{uuid.uuid4().hex}"
    reply = assistant.post(
        {"sender": sender, "message": text, "metadata": {"language_hint": "fr-FR"}}
    )

    assert reply.status_code == 200
    assert assistant.tracker(sender)["slots"]["language"] == "fr"
    french = {
        reply.text
        for key in get_content().language_file("fr")["answers"]
        for reply in get_content().replies(key, "fr", values=ANSWER_TIME_VALUES)
    }
    assert reply.json()[0]["text"] in french


def test_words_of_every_language_take_the_hint_in_a_first_message_only(assistant):
    sender = f"neutral-{uuid.uuid4().hex}"
    first = assistant.post({"sender": sender, "message": "ok",
                            "metadata": {"language_hint": "fa"}}).json()

    assert assistant.tracker(sender)["slots"]["language"] == "fa"
    assert first[0]["text"] in texts("affirm", "fa") + texts("clarify", "fa")
    assert all(m["text"] not in texts("language_unsure", "fa") for m in first)
    assistant.post({"sender": sender, "message": "ok", "metadata": {"language_hint": "ar"}})
    assert assistant.tracker(sender)["slots"]["language"] == "fa"
