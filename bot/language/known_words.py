"""KnownWords: a Rasa NLU component that takes a message without one known word for not
understood.

The classifier always names an intent, and a message none of whose features it ever saw
gets its prior: keyboard mashing ("asdfgh", "ljkh nmbv"), "..." or an emoji it was never
taught came out as `affirm` (0.36 to 0.45), which after a counsellor offer shares the
conversation and after a deletion question deletes it. A message is understood only if
one of its words is a word of the training data or shares at least half of its
four-letter pieces (the word's edges count as letters) with them: typos ("pasport"),
inflections and missing diacritics still count, mashed keys do not ("qwer" ends like
"answer", one piece of three). Otherwise it becomes `nlu_fallback` and gets the
clarification, which names the emergency number when danger is among the classifier's
guesses. A message the classifier took for a safety intent is left as it is, and the
safety net after this component checks every message. Words are compared normalised as
the danger lexicon does (bot/safety/lexicon.py); numbers are not words. A message of
emoji or punctuation alone is one word, as Rasa's tokenizer makes it: known if a
training example is the same.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, FrozenSet, Iterable, List, Set, Text

import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.constants import INTENT_MESSAGE_PREFIX
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from avrr.vocabulary import SAFETY_INTENTS, Intents
from bot.safety.lexicon import normalise

logger = logging.getLogger(__name__)

MODEL_FILE = "known_words.json"
PIECE = 4  # letters, counting each edge of the word as one
EDGE = "\x00"
# Skin tones and the emoji presentation selector: "👍🏽" and "👍️" are "👍".
MODIFIERS = frozenset(map(chr, [0xFE0F, *range(0x1F3FB, 0x1F400)]))
NOT_UNDERSTOOD = Intents.NLU_FALLBACK


def words_of(text: Text) -> List[Text]:
    """The message's words, normalised; numbers are not words. Without any word, a message
    of emoji or punctuation is one word: its signs, each once, in order ("👍👍" is "👍")."""
    found = [w for w in normalise(text).split() if not w.isdigit()]
    if found or any(c.isdigit() for c in text):
        return found
    signs = dict.fromkeys(c for c in text if not c.isspace() and c not in MODIFIERS)
    return ["".join(signs)] if signs else []


def pieces(word: Text) -> Set[Text]:
    marked = f"{EDGE}{word}{EDGE}"
    return {marked[i : i + PIECE] for i in range(len(marked) - PIECE + 1)}


class Vocabulary:
    """The training data's words, and their four-letter pieces."""

    def __init__(self, words: Iterable[Text]) -> None:
        self.words: FrozenSet[Text] = frozenset(words)
        self._pieces: FrozenSet[Text] = frozenset(
            piece for word in self.words for piece in pieces(word)
        )

    def knows(self, word: Text) -> bool:
        if word in self.words:
            return True
        mine = pieces(word)
        return bool(mine) and 2 * len(mine & self._pieces) >= len(mine)

    def understands(self, text: Text) -> bool:
        return any(self.knows(word) for word in words_of(text))


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class KnownWords(GraphComponent):
    """Makes a message without one known word not understood; see the module docstring."""

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        vocabulary: Vocabulary,
    ) -> None:
        self._model_storage = model_storage
        self._resource = resource
        self.vocabulary = vocabulary

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> KnownWords:
        return cls(config, model_storage, resource, Vocabulary(()))

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> KnownWords:
        with model_storage.read_from(resource) as path:
            words = rasa.shared.utils.io.read_json_file(path / MODEL_FILE)
        return cls(config, model_storage, resource, Vocabulary(words))

    def train(self, training_data: TrainingData) -> Resource:
        words = {w for m in training_data.intent_examples for w in words_of(m.get(TEXT) or "")}
        self.vocabulary = Vocabulary(words)
        with self._model_storage.write_to(self._resource) as path:
            rasa.shared.utils.io.dump_obj_as_json_to_file(path / MODEL_FILE, sorted(words))
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self.check(message)
        return messages

    def check(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        name = (message.get(INTENT) or {}).get("name")
        if text.startswith(INTENT_MESSAGE_PREFIX) or name in (*SAFETY_INTENTS, NOT_UNDERSTOOD):
            return
        if self.vocabulary.understands(text):
            return
        fallback = {"name": NOT_UNDERSTOOD, "confidence": 1.0}
        message.set(INTENT, fallback, add_to_output=True)
        ranking = message.get(INTENT_RANKING_KEY) or []
        ranking = [r for r in ranking if r.get("name") != NOT_UNDERSTOOD]
        message.set(INTENT_RANKING_KEY, [fallback] + ranking, add_to_output=True)
        logger.debug("no known word: a message taken for %s is not understood", name)
