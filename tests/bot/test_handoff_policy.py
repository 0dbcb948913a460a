from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.handoff_policy import HandoffPolicy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def domain():
    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture
def policy(tmp_path):
    return HandoffPolicy.create(
        HandoffPolicy.get_default_config(),
        LocalModelStorage(tmp_path),
        Resource("handoff"),
        ExecutionContext(GraphSchema({}), "test"),
    )


def tracker(domain, *events):
    return DialogueStateTracker.from_events("someone", list(events), domain.slots)


def said(intent):
    return UserUttered("text", {"name": intent, "confidence": 1.0})


def predicted(policy, domain, current):
    prediction = policy.predict_action_probabilities(current, domain)
    if max(prediction.probabilities) == 0:
        return None
    return domain.action_names_or_texts[prediction.probabilities.index(1.0)]


def test_without_a_handoff_the_policy_abstains(policy, domain):
    current = tracker(domain, ActionExecuted("action_listen"), said("ask_cost"))
    assert predicted(policy, domain, current) is None


@pytest.mark.parametrize(
    "intent", ["ask_cost", "report_emergency", "greet", "nlu_fallback", "affirm"]
)
def test_during_a_handoff_every_message_goes_to_the_counsellor(policy, domain, intent):
    current = tracker(
        domain, SlotSet("handoff_ticket", "k"), ActionExecuted("action_listen"), said(intent)
    )
    assert predicted(policy, domain, current) == "action_handoff_relay"
    assert policy.priority > 6  # above RulePolicy


def test_after_relaying_or_offering_the_assistant_listens(policy, domain):
    for action in ("action_handoff_relay", "action_offer_handoff"):
        current = tracker(domain, SlotSet("handoff_ticket", "k"), ActionExecuted(action))
        assert predicted(policy, domain, current) == "action_listen"


def test_a_request_to_delete_ones_data_still_reaches_the_assistant(policy, domain):
    asking = tracker(
        domain,
        SlotSet("handoff_ticket", "k"),
        ActionExecuted("action_listen"),
        said("delete_my_data"),
    )
    assert predicted(policy, domain, asking) is None
    for answer in ("affirm", "deny"):
        confirming = tracker(
            domain,
            SlotSet("handoff_ticket", "k"),
            ActionExecuted("action_confirm_delete"),
            ActionExecuted("action_listen"),
            said(answer),
        )
        assert predicted(policy, domain, confirming) is None


@pytest.mark.parametrize(
    "intent", ["report_emergency", "report_exploitation", "ask_cost", "nlu_fallback"]
)
def test_any_other_answer_to_the_deletion_question_goes_to_the_counsellor(
    policy, domain, intent
):
    # The relay answers a safety message at once and marks it urgent at the desk.
    current = tracker(
        domain,
        SlotSet("handoff_ticket", "k"),
        ActionExecuted("action_listen"),
        said("delete_my_data"),
        ActionExecuted("action_confirm_delete"),
        ActionExecuted("action_listen"),
        said(intent),
    )
    assert predicted(policy, domain, current) == "action_handoff_relay"
