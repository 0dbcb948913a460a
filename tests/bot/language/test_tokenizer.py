"""Numbers and signs are not tokens: the classifier never sees them."""
import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.language.tokenizer import WordTokenizer


def tokens(text):
    tokenizer = WordTokenizer.create(WordTokenizer.get_default_config(), None, None, None)
    return [t.text for t in tokenizer.tokenize(
        Message({"text": text}), "text")]


@pytest.mark.parametrize("text, expected", [
    ("call me on +36 30 123 4567", ["call", "me", "on"]),
    ("12 óra a földeken, 0 forint", ["óra", "a", "földeken", "forint"]),
    ("мой номер 06301234567", ["мой", "номер"]),
    ("covid19 test", ["covid19", "test"]),
])
def test_tokens_without_a_letter_are_dropped(text, expected):
    assert tokens(text) == expected


@pytest.mark.parametrize("text", ["2+2", "+36 30 123 4567"])
def test_a_message_without_a_word_keeps_its_tokens(text):
    assert tokens(text) != []
