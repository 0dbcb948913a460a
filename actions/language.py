"""Choosing the language of the conversation from a menu."""
from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import send
from actions.content import DEFAULT_LANGUAGE, get_content


def language_menu(languages: Dict[str, str]) -> List[Dict[str, str]]:
    """One button per language, titled in that language."""
    return [
        {"title": name, "payload": f'/change_language{{"language":"{code}"}}'}
        for code, name in languages.items()
    ]


class ActionChooseLanguage(Action):
    """Switch to the language the person picked, or show the menu."""

    def name(self) -> str:
        return "action_choose_language"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[str, Any]]:
        languages = get_content().languages()
        picked = next(tracker.get_latest_entity_values("language"), None)
        if picked in languages:
            send(dispatcher, tracker, "language_changed")
            return []
        send(dispatcher, tracker, "change_language", language_menu(languages))
        if picked is not None:
            # Only a forged payload names a language we do not have.
            return [SlotSet("language", DEFAULT_LANGUAGE)]
        return []
