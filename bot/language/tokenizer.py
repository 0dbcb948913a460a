"""WordTokenizer: Rasa's whitespace tokenizer without the tokens that have no letter.

Rasa's featurizer turns every number into one `__NUMBER__` token, and the examples of
exploitation count hours, euros and months: a phone number, four numbers in a row, made
"call me on +36 30 123 4567" a report of exploitation. A number says nothing about what
a person asks, so the classifier does not see numbers or signs; the words around them
("hours", "forint", "a day") still tell. A message of numbers or signs alone keeps its
tokens (Rasa needs one), and is not understood (bot/language/known_words.py).
"""
from __future__ import annotations

from typing import List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False
)
class WordTokenizer(WhitespaceTokenizer):
    """Whitespace tokens with at least one letter; see the module docstring."""

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens = super().tokenize(message, attribute)
        words = [t for t in tokens if any(c.isalpha() for c in t.text)]
        return words or tokens
