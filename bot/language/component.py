"""LanguageDetection: a Rasa NLU component that adds `language_detection` to parse data.

Training learns the n-gram model from the NLU examples, each labelled by its intent's
`metadata: {language: fa}` (romanized examples: `fa-Latn`). At run time the result is
{"language": code or None, "confidence", "reason", "romanized"}; the actions set the
`language` slot from it, and None keeps the conversation's language. The channel's hint
is read from the message metadata key `language_hint`.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import METADATA, METADATA_INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from avrr.vocabulary import LANGDETECT_KNOWN, Metadata
from bot.language.detector import LATIN_SUFFIX, LanguageDetector, NgramModel

logger = logging.getLogger(__name__)

LANGUAGE_DETECTION = Metadata.LANGUAGE_DETECTION
LANGUAGE_HINT = Metadata.LANGUAGE_HINT
MODEL_FILE = "ngram_counts.json"
ROMANIZED_TABLE = "romanized_"


def example_language(message: Message) -> Optional[Text]:
    """The language label of a training example, from its intent's metadata."""
    metadata = message.get(METADATA) or {}
    return (metadata.get(METADATA_INTENT) or {}).get("language")


def langdetect_probabilities(seed: int):
    """langdetect, seeded and limited to our languages, as text -> {code: probability}.

    Loading only the profiles of languages we answer in makes it about five times
    faster and keeps it from naming a language we could not answer in anyway.
    """
    from pathlib import Path

    import langdetect
    from langdetect.detector_factory import DetectorFactory
    from langdetect.lang_detect_exception import LangDetectException

    profiles = Path(langdetect.__file__).parent / "profiles"
    factory = DetectorFactory()
    factory.load_json_profile(
        [(profiles / code).read_text(encoding="utf-8") for code in LANGDETECT_KNOWN]
    )
    factory.set_seed(seed)

    def probabilities(text: Text) -> Dict[Text, float]:
        detector = factory.create()
        detector.append(text)
        try:
            return {found.lang: found.prob for found in detector.get_probabilities()}
        except LangDetectException:
            return {}

    return probabilities


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True
)
class LanguageDetection(GraphComponent):
    """Detects the language of each message among the assistant's twelve."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"use_langdetect": True, "seed": 0}

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        counts: Optional[Dict[Text, Dict[Text, int]]] = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.counts = counts or {}
        self._detector: Optional[LanguageDetector] = None

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetection:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LanguageDetection:
        with model_storage.read_from(resource) as path:
            counts = rasa.shared.utils.io.read_json_file(path / MODEL_FILE)
        return cls(config, model_storage, resource, counts)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [
            (example_language(m), m.get(TEXT))
            for m in training_data.intent_examples
            if example_language(m)
        ]
        # Lookup tables `romanized_<code>`: words typical of <code> in Latin letters.
        for table in training_data.lookup_tables:
            if table["name"].startswith(ROMANIZED_TABLE):
                label = table["name"][len(ROMANIZED_TABLE) :] + LATIN_SUFFIX
                examples += [(label, word) for word in table["elements"]]
        if not examples:
            raise ValueError("no NLU example has metadata.language: see data/nlu/README.md")
        self.counts = NgramModel.train(examples).counts
        with self._model_storage.write_to(self._resource) as path:
            rasa.shared.utils.io.dump_obj_as_json_to_file(path / MODEL_FILE, self.counts)
        return self._resource

    @property
    def detector(self) -> LanguageDetector:
        if self._detector is None:
            langdetect = (
                langdetect_probabilities(self._config["seed"])
                if self._config["use_langdetect"]
                else None
            )
            self._detector = LanguageDetector(NgramModel(self.counts), langdetect)
        return self._detector

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            hint = (message.get(METADATA) or {}).get(LANGUAGE_HINT)
            found = self.detector.detect(text, hint if isinstance(hint, str) else None)
            message.set(
                LANGUAGE_DETECTION,
                {
                    "language": found.language,
                    "confidence": round(found.confidence, 3),
                    "reason": found.reason,
                    "romanized": found.romanized,
                },
                add_to_output=True,
            )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
