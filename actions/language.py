"""Choosing the language of the conversation from a menu."""
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import language_events, language_menu, send
from actions.content import get_content
from avrr.vocabulary import DEFAULT_LANGUAGE, Slots


class ActionChooseLanguage(Action):
    """Switch to the language the person picked, or show the menu."""

    def name(self) -> Text:
        return "action_choose_language"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        languages = get_content().languages()
        picked = next(tracker.get_latest_entity_values("language"), None)
        if picked in languages:
            send(dispatcher, tracker, "language_changed")
            return []  # the slot is already set from the menu's payload
        send(dispatcher, tracker, "change_language", language_menu(languages))
        if picked is not None:
            # Only a forged payload names a language we do not have.
            return [SlotSet(Slots.LANGUAGE, DEFAULT_LANGUAGE)]
        return language_events(tracker)
