"""Deleting a person's conversation on request, and saying so only when it is done.

`action_delete_my_data` deletes the person's tickets at the desk (at once, not through the
outbox: the person is told the truth now), then what the action server keeps (the
outbox's requests, which hold what the person wrote). The requests are held from before
the DELETE (one being sent is waited for), so none reaches the desk after it, and dropped
only once the desk confirmed: if the desk fails, they are still sent, and a handoff the
person was promised still happens (actions/outbox.py, `delete_conversation`). Only when
both succeeded does it set `data_deleted`, and the Rasa server then deletes its part as
it saves the conversation (the channels' records, then every stored event:
bot/tracker_store.py). If a step fails, the person is told that nothing is deleted yet
and can ask again; every step is idempotent. A typed
"yes" the classifier is unsure of (`SURE_YES`, actions/answers.py) deletes nothing: the
question is asked again.
"""
import asyncio
import urllib.parse
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import language_events, language_of, send, unsure_yes
from actions.content import get_content
from actions.eligibility import NO, YES
from actions.handoff import message_key
from actions.outbox import get_outbox
from avrr.vocabulary import Actions, Slots


class ActionConfirmDelete(Action):
    """Ask the person to confirm before anything is deleted."""

    def name(self) -> Text:
        return Actions.CONFIRM_DELETE

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
    """Delete the person's data here and at the desk; see the module docstring."""

    def name(self) -> Text:
        return Actions.DELETE_MY_DATA

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        if unsure_yes(tracker):
            return [FollowupAction(Actions.CONFIRM_DELETE)]
        # The language only counts the request in the desk's statistics.
        path = (f"/api/conversations/{urllib.parse.quote(tracker.sender_id, safe='')}"
                f"?language={language_of(tracker)}")
        deleted = await asyncio.to_thread(
            get_outbox().delete_conversation, tracker.sender_id, message_key(tracker), path)
        if not deleted:
            send(dispatcher, tracker, "delete_failed")
            return language_events(tracker)
        send(dispatcher, tracker, "delete_done")
        return [SlotSet(Slots.DATA_DELETED, True)]
