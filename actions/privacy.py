"""Deleting a person's conversation on request.

The deletion itself happens in the tracker store (bot/tracker_store.py): when it saves a
conversation in which `action_delete_my_data` ran, it deletes every stored event of that
sender and stores nothing of it. This action deletes the person's tickets at the desk
and what the channels keep about them, and tells the person.
"""
import asyncio
import urllib.parse
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import language_events, language_of, send
from actions.content import get_content
from actions.eligibility import NO, YES
from actions.handoff import message_key
from actions.outbox import get_outbox
from bot.channels.ledger import get_ledger

ACTION_DELETE_MY_DATA = "action_delete_my_data"


class ActionConfirmDelete(Action):
    """Ask the person to confirm before anything is deleted."""

    def name(self) -> Text:
        return "action_confirm_delete"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        buttons = get_content().choice_buttons(language_of(tracker), (YES, NO))
        send(dispatcher, tracker, "delete_my_data", buttons)
        return language_events(tracker)


class ActionCancelDelete(Action):
    """Tell the person nothing was deleted."""

    def name(self) -> Text:
        return "action_cancel_delete"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        send(dispatcher, tracker, "delete_cancelled")
        return language_events(tracker)


class ActionDeleteMyData(Action):
    """Confirm the deletion, which the tracker store carries out as it saves."""

    def name(self) -> Text:
        return ACTION_DELETE_MY_DATA

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        # Tickets at the desk go too; what the outbox still holds is never sent.
        outbox = get_outbox()
        outbox.forget(tracker.sender_id)
        outbox.put(
            message_key(tracker), tracker.sender_id, "DELETE",
            f"/api/conversations/{urllib.parse.quote(tracker.sender_id, safe='')}", None,
        )
        await asyncio.to_thread(outbox.flush)
        get_ledger().forget(tracker.sender_id)
        send(dispatcher, tracker, "delete_done")
        return language_events(tracker)
