"""SafetyNet: a Rasa NLU component, after the classifiers, that cannot miss danger words.

Whatever the classifier made of a message (a question, "not understood"), if its words
match the danger lexicon of any language (bot/safety/lexicon.py; the phrases are in the
content files), the message becomes the matched safety intent, so the rules give its
safety answer with the emergency number and offer a counsellor, in a form or a handoff
too. What the classifier thought is kept in `safety_net.original_intent`, so the answer
can still address the person's question after the safety answer. A message the
classifier already gave a safety intent is left as it is.

The classifier spreads its belief over the four safety intents: "my stepfather is hurting
my daughter" may rank a family question first (0.35) while the four safety intents
together hold more (0.45). With `danger_belief` set, a message whose safety intents
together reach it is a safety message too (the likeliest of them), a third net from the
classifier's own output. `safety_net.reason` says which net caught the message.

A question with danger in another sentence ("how do I apply. honestly I don't see any
reason to keep living") is taken for the question: its words outweigh the danger's. So
`Sentences`, early in the pipeline, adds each sentence of a message of several to the
messages the pipeline processes, and the classifier ranks each sentence on its own as
well; a sentence whose four safety intents together hold `sentence_belief` of the
classifier's belief makes the whole message a safety message (`reason` "sentence"). The
sentences are then dropped: the rest of Rasa sees the message alone.

The sentences also find the question of a calm message of several: a Russian "Good
afternoon. I'm from Uzbekistan, I've waited half a year for documents and I'm tired of
waiting. Tell me, is the programme free?" was taken for a statement (`inform`), while its
last sentence alone is `ask_cost`. When the whole message was taken for a greeting, a
thank-you, out of scope or not understood, the most confident question among its sentences
(ranked alone at `question_belief` or more) becomes its intent. `sentence_question` says
which sentence asked what, whatever the message became: a safety message keeps its safety
intent, and the question is answered after the safety answer.

The phrases are reread when a content file changes: operators and translators extend the
lexicon without training.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from avrr.content import ContentError, read_yaml
from avrr.logs import Once
from avrr.vocabulary import CODES, SAFETY_INTENTS, Intents, Metadata
from bot.safety.lexicon import PRIORITY, Lexicon

logger = logging.getLogger(__name__)

# On a sentence, the position of its message in the messages processed (never output).
SENTENCE_OF = "sentence_of"
# A sentence ends at . ! ? ; … (Latin, Arabic, Urdu) before a space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?;…؟؛۔])\s+|\s*\n\s*")
# A message of 4,096 characters could have hundreds: beyond this, neighbours go together.
MAX_SENTENCES = 12
# What the whole message may have been taken for when one of its sentences asks a question.
NOT_A_QUESTION = (Intents.GREET, Intents.GOODBYE, Intents.THANK_YOU, Intents.INFORM,
                  Intents.OUT_OF_SCOPE, Intents.NLU_FALLBACK)


def sentences(text: str) -> List[str]:
    """The sentences of `text` if it has several (at most MAX_SENTENCES), else none."""
    found = [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]
    if len(found) < 2:
        return []
    size = math.ceil(len(found) / MAX_SENTENCES)
    return [" ".join(found[i:i + size]) for i in range(0, len(found), size)]


class LexiconFiles:
    """The union of every language's `danger_lexicon`; a file is reread when it changes.
    A file whose edit cannot be read (YAML that does not parse, a list where phrases
    belong) keeps its last good phrases, and the reason is logged once: a translator's
    typo must not stop the understanding of every message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: Optional[Tuple[Optional[float], ...]] = None
        self._lexicon = Lexicon({})
        # Each file's phrases by safety intent, with the modification time they are of.
        self._read: Dict[Path, Tuple[float, Dict[str, List[str]]]] = {}
        self._tell = Once(logger)

    def _paths(self) -> List[Path]:
        return [self.folder / f"{code}.yml" for code in CODES]

    def lexicon(self) -> Lexicon:
        paths = self._paths()
        stamp = tuple(_mtime(p) for p in paths)
        if stamp != self._stamp:
            phrases: Dict[str, List[str]] = {}
            for path, mtime in zip(paths, stamp, strict=True):
                if mtime is None:  # no such file
                    continue
                for intent, listed in self._phrases(path, mtime).items():
                    phrases.setdefault(intent, []).extend(listed)
            self._lexicon = Lexicon(phrases)
            self._stamp = stamp
        return self._lexicon

    def _phrases(self, path: Path, mtime: float) -> Dict[str, List[str]]:
        """The danger phrases of one file by safety intent, read again only when it has
        changed; its last good ones if it cannot be read."""
        known = self._read.get(path)
        if known is not None and known[0] == mtime:
            return known[1]
        try:
            listed = read_yaml(path).get("danger_lexicon") or {}
            found = {str(intent): [str(p) for p in phrases or ()]
                     for intent, phrases in listed.items()}
        except (OSError, yaml.YAMLError, ContentError, AttributeError, TypeError) as error:
            self._tell(f"{path.name}: its danger phrases cannot be read ({type(error).__name__}); "
                       "its last good ones are used until it is mended")
            return known[1] if known is not None else {}
        for unknown in sorted(set(found) - set(SAFETY_INTENTS)):
            self._tell(f"{path.name}: danger_lexicon names {unknown!r}, which is no safety "
                       f"intent ({', '.join(SAFETY_INTENTS)}); its phrases are not used")
            del found[unknown]
        self._read[path] = (mtime, found)
        return found


def _mtime(path: Path) -> Optional[float]:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class Sentences(GraphComponent):
    """Adds the sentences of a message of several to the messages processed, for the
    classifier to rank each on its own; SafetyNet reads and drops them (see the module
    docstring). Before the tokenizer; not run on the training data."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> Sentences:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        pieces = [
            Message({TEXT: sentence, SENTENCE_OF: position})
            for position, message in enumerate(messages)
            for sentence in sentences(message.get(TEXT) or "")
        ]
        return messages + pieces


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class SafetyNet(GraphComponent):
    """Makes a message whose words mean danger a safety message; see the module docstring."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # None: the lexicon only. See config.yml for the values chosen and their measurement.
        # question_belief: a sentence ranked alone above it may be the message's question.
        return {"danger_belief": None, "sentence_belief": None, "question_belief": 0.5}

    def __init__(self, config: Dict[Text, Any], files: Optional[LexiconFiles] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._files = files

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SafetyNet:
        return cls(config)

    @property
    def files(self) -> LexiconFiles:
        if self._files is None:
            from bot import runtime

            self._files = LexiconFiles(runtime.settings().content_dir)
        return self._files

    def process(self, messages: List[Message]) -> List[Message]:
        whole = [m for m in messages if m.get(SENTENCE_OF) is None]
        for position, message in enumerate(messages):
            if message.get(SENTENCE_OF) is not None:
                continue
            pieces = [m for m in messages if m.get(SENTENCE_OF) == position]
            taken = (message.get(INTENT) or {}).get("name")
            question = self.question_in(pieces)
            if question is not None:
                message.set(Metadata.SENTENCE_QUESTION, {
                    "sentence": pieces.index(question),
                    "intent": question.get(INTENT)["name"],
                    "original_intent": taken,
                }, add_to_output=True)
            if taken in SAFETY_INTENTS:
                continue
            found = self.caught(message) or self.caught_in_a_sentence(pieces)
            if found is not None:
                self.make_safety(message, *found)
            elif question is not None and taken in NOT_A_QUESTION:
                message.set(INTENT, question.get(INTENT), add_to_output=True)
                message.set(INTENT_RANKING_KEY, question.get(INTENT_RANKING_KEY),
                            add_to_output=True)
                logger.info("a sentence asks the message's question")
        return whole

    def question_in(self, pieces: List[Message]) -> Optional[Message]:
        """The sentence ranked most confidently as a question (`is_question`), at
        `question_belief` or more; None if no sentence asks one."""
        asked = [piece for piece in pieces if is_question(piece.get(INTENT))
                 and piece.get(INTENT)["confidence"] >= self._config["question_belief"]]
        return max(asked, key=lambda p: p.get(INTENT)["confidence"], default=None)

    def caught(self, message: Message) -> Optional[Tuple[Text, Text]]:
        """The safety intent a message the classifier took for a calm one points to, and
        the net that caught it ("lexicon" or "classifier"); None if it is calm."""
        found = self.files.lexicon().match(message.get(TEXT) or "")
        if found is not None:
            return found.intent, "lexicon"
        believed = self.believed_danger(message.get(INTENT_RANKING_KEY) or [],
                                        self._config["danger_belief"])
        return (believed, "classifier") if believed is not None else None

    def caught_in_a_sentence(self, pieces: List[Message]) -> Optional[Tuple[Text, Text]]:
        """The most urgent safety intent of the sentences whose safety intents together
        hold `sentence_belief` of the classifier's belief in the sentence alone (the
        lexicon has read the whole message already)."""
        found = [self.believed_danger(piece.get(INTENT_RANKING_KEY) or [],
                                      self._config["sentence_belief"]) for piece in pieces]
        named = [name for name in found if name is not None]
        return (min(named, key=PRIORITY.index), "sentence") if named else None

    @staticmethod
    def believed_danger(ranking: List[Dict[Text, Any]],
                        threshold: Optional[float]) -> Optional[Text]:
        """The likeliest safety intent, when the safety intents together reach `threshold`
        (None: never)."""
        safety = [r for r in ranking if r.get("name") in SAFETY_INTENTS]
        if threshold is None or not safety:
            return None
        if sum(r.get("confidence") or 0.0 for r in safety) < threshold:
            return None
        return max(safety, key=lambda r: r.get("confidence") or 0.0)["name"]

    @staticmethod
    def make_safety(message: Message, intent_name: Text, reason: Text) -> None:
        original = (message.get(INTENT) or {}).get("name")
        message.set(
            Metadata.SAFETY_NET,
            {"intent": intent_name, "original_intent": original, "reason": reason},
            add_to_output=True,
        )
        message.set(INTENT, {"name": intent_name, "confidence": 1.0}, add_to_output=True)
        ranking = [
            r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != intent_name
        ]
        message.set(
            INTENT_RANKING_KEY,
            [{"name": intent_name, "confidence": 1.0}] + ranking,
            add_to_output=True,
        )
        logger.info("the safety net (%s) made a message %s", reason, intent_name)


def is_question(intent: Optional[Dict[Text, Any]]) -> bool:
    """Whether an intent asks something the assistant answers (a question, a counsellor,
    a deletion)."""
    name = (intent or {}).get("name") or ""
    return name.startswith("ask_") or name in (Intents.REQUEST_HUMAN, Intents.DELETE_MY_DATA)
