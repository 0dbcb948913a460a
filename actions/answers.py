"""Answers to the person's questions, in the language of the conversation."""
from typing import Any, Dict, List, Sequence

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.content import DEFAULT_LANGUAGE, Button, get_content


def language_of(tracker: Tracker) -> str:
    """The language the assistant answers in (the `language` slot, if available)."""
    language = tracker.get_slot("language")
    return language if language in get_content().languages() else DEFAULT_LANGUAGE


def latest_intent(tracker: Tracker) -> str:
    """The intent of the person's latest message."""
    return (tracker.latest_message.get("intent") or {}).get("name") or ""


def send(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    key: str,
    buttons: Sequence[Button] = (),
) -> None:
    """Send the answer `key` in the conversation's language."""
    for reply in get_content().replies(key, language_of(tracker), buttons):
        dispatcher.utter_message(text=reply.text, buttons=list(reply.buttons))


class ActionAnswer(Action):
    """Answer the intent of the latest message.

    During the eligibility check an answer may have a shorter variant, `<intent>_in_form`.
    """

    def name(self) -> str:
        return "action_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[str, Any]]:
        key = latest_intent(tracker)
        if tracker.active_loop_name and get_content().has(
            f"{key}_in_form", language_of(tracker)
        ):
            key = f"{key}_in_form"
        send(dispatcher, tracker, key)
        return []
