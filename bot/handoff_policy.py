"""While a counsellor has the conversation, the assistant stays silent.

When the slot `handoff_ticket` holds a ticket, every message of the person is passed to
the counsellor by `action_handoff_relay` (which acknowledges at most once), whatever
NLU made of it. Only the person's request to delete their data, with its confirmation
(a yes or a no to the question), still reaches the assistant: any other answer to the
question goes to the counsellor too, and a safety message is answered and marked urgent
there. The desk's hand-back runs `action_handoff_end` through Rasa's HTTP API.

With confidence 1 and a priority above RulePolicy's (6), this prediction wins.
"""

from typing import Any, Dict, List, Optional, Text

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from avrr.vocabulary import Actions, Intents, Slots

HANDOFF_SLOT = Slots.HANDOFF_TICKET
RELAY = Actions.HANDOFF_RELAY
PASS_THROUGH_INTENTS = (Intents.DELETE_MY_DATA,)
# After these the assistant waits for the person, whatever else is predicted.
LISTEN_AFTER = (RELAY, Actions.OFFER_HANDOFF)
# The answers to the deletion's confirmation question that still reach the assistant.
CONFIRMATION_ANSWERS = (Intents.AFFIRM, Intents.DENY)


def relays(tracker: DialogueStateTracker) -> bool:
    """Whether the person's latest message goes to the counsellor."""
    if not tracker.get_slot(HANDOFF_SLOT) or tracker.latest_action_name != ACTION_LISTEN_NAME:
        return False
    intent = (tracker.latest_message.intent or {}).get("name")
    if intent in PASS_THROUGH_INTENTS:
        return False
    previous = tracker.get_last_event_for(
        ActionExecuted, action_names_to_exclude=[ACTION_LISTEN_NAME]
    )
    asked = previous is not None and previous.action_name == Actions.CONFIRM_DELETE
    return not (asked and intent in CONFIRMATION_ANSWERS)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=False
)
class HandoffPolicy(Policy):
    """Relay the person's messages to the counsellor during a handoff."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"priority": 7}

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Optional[Any] = None,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)

    def train(
        self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any
    ) -> Resource:
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[Text, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if relays(tracker):
            probabilities[domain.index_for_action(RELAY)] = 1.0
        elif tracker.latest_action_name in LISTEN_AFTER:
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
        return self._prediction(probabilities)
