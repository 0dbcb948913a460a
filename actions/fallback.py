"""What to do with a message that was not understood.

First miss: ask which topic the person means, with buttons of the likely ones. Second
miss in a row: say so, end the eligibility check if it is under way, and offer a
counsellor (actions/handoff.py). Either way, if danger is among the likely meanings, the
safety answer comes first.
"""
from typing import Any, Dict, Iterable, List, Optional, Sequence, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT
from rasa_sdk.types import DomainDict

from actions.answers import language_events, language_of, send
from actions.content import get_content
from avrr.vocabulary import SAFETY_INTENTS, Actions, Intents

NLU_FALLBACK = Intents.NLU_FALLBACK
DEFAULT_TOPICS = ("ask_what_is_avr", "ask_eligibility", "ask_contact")
MAX_TOPIC_BUTTONS = 3
# A message that might be about danger gets the safety answer even when unsure.
SAFETY_RANK = 3


def consecutive_misses(events: Iterable[Dict[Text, Any]]) -> int:
    """How many of the latest user messages in a row were not understood."""
    misses = 0
    for event in reversed(list(events)):
        if event.get("event") != "user":
            continue
        intent = (event.get("parse_data", {}).get("intent") or {}).get("name")
        if intent != NLU_FALLBACK:
            break
        misses += 1
    return misses


def possible_danger(ranking: Sequence[Dict[Text, Any]]) -> Optional[str]:
    """A safety intent among the best-ranked guesses, if any."""
    guesses = [entry.get("name") for entry in ranking if entry.get("name") != NLU_FALLBACK]
    return next((name for name in guesses[:SAFETY_RANK] if name in SAFETY_INTENTS), None)


def likely_topics(
    ranking: Sequence[Dict[Text, Any]], topics: Sequence[str], limit: int = MAX_TOPIC_BUTTONS
) -> List[str]:
    """The best-ranked intents that have a topic button, best first."""
    likely = [entry.get("name") for entry in ranking if entry.get("name") in topics]
    return likely[:limit]


class ActionClarify(Action):
    """Ask what the person meant; the second time, point to a counsellor."""

    def name(self) -> Text:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        ranking = tracker.latest_message.get("intent_ranking") or []
        danger = possible_danger(ranking)
        if danger:
            send(dispatcher, tracker, danger)
        if consecutive_misses(tracker.events) >= 2:
            send(dispatcher, tracker, "clarify_again")
            offer = [FollowupAction(Actions.OFFER_HANDOFF)]
            if tracker.active_loop_name:
                # The form's next question would follow the counsellor's promise: it ends
                # here, as when the person asks for a counsellor during it.
                offer = [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)] + offer
            return language_events(tracker) + offer
        language = language_of(tracker)
        content = get_content()
        topics = likely_topics(ranking, content.topics(language)) or list(DEFAULT_TOPICS)
        send(dispatcher, tracker, "clarify", content.topic_buttons(language, topics))
        return language_events(tracker)
