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

The phrases are reread when a content file changes: operators and translators extend the
lexicon without training.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from avrr.vocabulary import CODES, SAFETY_INTENTS, Metadata
from bot.safety.lexicon import Lexicon

logger = logging.getLogger(__name__)

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LexiconFiles:
    """The union of every language's `danger_lexicon`, reread when a file changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: Optional[Tuple[float, ...]] = None
        self._lexicon = Lexicon({})

    def _paths(self) -> List[Path]:
        return [self.folder / f"{code}.yml" for code in CODES]

    def lexicon(self) -> Lexicon:
        paths = [p for p in self._paths() if p.exists()]
        stamp = tuple(p.stat().st_mtime for p in paths)
        if stamp != self._stamp:
            phrases: Dict[str, List[str]] = {}
            for path in paths:
                with path.open(encoding="utf-8") as handle:
                    content = yaml.load(handle, Loader=SAFE_LOADER) or {}  # noqa: S506
                for intent, listed in (content.get("danger_lexicon") or {}).items():
                    phrases.setdefault(intent, []).extend(str(p) for p in listed or ())
            self._lexicon = Lexicon(phrases)
            self._stamp = stamp
        return self._lexicon


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class SafetyNet(GraphComponent):
    """Makes a message whose words mean danger a safety message; see the module docstring."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # None: the lexicon only. See config.yml for the value chosen and its measurement.
        return {"danger_belief": None}

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
        for message in messages:
            self.check(message)
        return messages

    def check(self, message: Message) -> None:
        intent = message.get(INTENT) or {}
        if intent.get("name") in SAFETY_INTENTS:
            return
        found = self.files.lexicon().match(message.get(TEXT) or "")
        if found is not None:
            self.make_safety(message, found.intent, "lexicon")
            return
        believed = self.believed_danger(message.get(INTENT_RANKING_KEY) or [])
        if believed is not None:
            self.make_safety(message, believed, "classifier")

    def believed_danger(self, ranking: List[Dict[Text, Any]]) -> Optional[Text]:
        """The likeliest safety intent, when the safety intents together reach
        `danger_belief`."""
        threshold = self._config["danger_belief"]
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
