"""A message without one known word is not understood, whatever the classifier's prior
made of it; typos, inflections and taught emoji still count as known."""
import pytest
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.language.known_words import KnownWords, Vocabulary, words_of

TRAINING = [
    ("affirm", "yes please"),
    ("affirm", "👍"),
    ("deny", "no thanks"),
    ("ask_documents", "I lost my passport"),
    ("ask_cost", "mennyibe kerül a repülőjegy"),
    ("report_emergency", "help me now"),
]


def taken_for(text, intent, confidence=0.42):
    message = Message({"text": text})
    message.set("intent", {"name": intent, "confidence": confidence})
    message.set("intent_ranking", [{"name": intent, "confidence": confidence},
                                   {"name": "deny", "confidence": 0.2}])
    return message


@pytest.fixture()
def trained(tmp_path):
    storage = LocalModelStorage(tmp_path)
    resource = Resource("known_words")
    component = KnownWords.create({}, storage, resource, None)
    component.train(TrainingData([Message({"text": t, "intent": i}) for i, t in TRAINING]))
    return KnownWords.load({}, storage, resource, None)


@pytest.mark.parametrize("text", [
    "asdfgh", "ljkh nmbv", "asdf qwer", "...", "🤔", "?!", "+36 30 123 4567"])
def test_mashed_keys_punctuation_and_untaught_emoji_are_not_understood(trained, text):
    message = taken_for(text, "affirm")

    trained.process([message])

    assert message.get("intent") == {"name": "nlu_fallback", "confidence": 1.0}
    assert message.get("intent_ranking") == [
        {"name": "nlu_fallback", "confidence": 1.0},
        {"name": "affirm", "confidence": 0.42},
        {"name": "deny", "confidence": 0.2},
    ]


@pytest.mark.parametrize("text", [
    "yes", "pasport", "PASSPORTS lost", "mennyibe kerul", "repülőjegyet", "👍", "👍🏽👍",
    "yes asdfgh 123",
])
def test_known_words_typos_inflections_and_taught_emoji_are_left_to_the_classifier(
        trained, text):
    message = taken_for(text, "affirm")

    trained.process([message])

    assert message.get("intent") == {"name": "affirm", "confidence": 0.42}


@pytest.mark.parametrize("intent", ["report_emergency", "report_suicidal_thoughts"])
def test_a_safety_intent_is_never_taken_back(trained, intent):
    message = taken_for("zxqv jjjk", intent)

    trained.process([message])

    assert message.get("intent")["name"] == intent


def test_a_typed_command_is_left_to_rasa(trained):
    message = taken_for("/affirm", "affirm")

    trained.process([message])

    assert message.get("intent")["name"] == "affirm"


def test_numbers_are_not_words_and_emoji_count_once():
    assert words_of("Pásport 2024, 36!") == ["pasport"]
    assert words_of("👍🏽 👍️👍") == ["👍"]
    assert words_of("  ") == []


def test_a_word_is_known_by_half_its_four_letter_pieces_its_edges_counting():
    vocabulary = Vocabulary(["passport", "ok", "answer"])

    assert vocabulary.knows("pasport")  # "\0pas", "spor", "port", "ort\0": 4 of 6
    assert not vocabulary.knows("qwer")  # "wer\0" only: 1 of 3
    assert vocabulary.knows("ok")
    assert not vocabulary.knows("ko")
    assert not vocabulary.knows("okay")  # "\0oka", "okay", "kay\0": none is a piece
