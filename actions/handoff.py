"""Handing the conversation to a human counsellor, with the person's consent.

1. `action_offer_handoff` says what the counsellor will see and asks for consent. It
   follows request_human, the safety answers (danger and exploitation: urgent; fear of
   return: legal) and a second message in a row that was not understood.
2. Yes: `action_handoff_start` records the consent (time, language) and opens a ticket
   at the desk through the durable outbox; the person learns their place in the queue,
   or when the office opens. No: `action_handoff_declined` gives the hotline and the
   office instead, and nothing is shared.
3. While the ticket is open, bot.handoff_policy sends every message to
   `action_handoff_relay`, which passes it to the ticket and acknowledges once.
4. The desk's hand-back runs `action_handoff_end` (Rasa's /execute), which tells the
   person the assistant is back.
"""

import asyncio
import hashlib
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import language_events, language_of, latest_intent, send
from actions.content import get_content, next_opening
from actions.fallback import NLU_FALLBACK
from actions.outbox import get_outbox
from bot.transcript import history

HANDOFF_YES = ("handoff_yes", "/affirm")
HANDOFF_NO = ("handoff_no", "/deny")
URGENT_INTENTS = ("report_emergency", "report_exploitation")
LEGAL_INTENTS = ("express_fear_of_return",)
SPEAKERS = {"user": "person", "bot": "assistant"}


def urgency_of(intent: str) -> str:
    if intent in URGENT_INTENTS:
        return "urgent"
    if intent in LEGAL_INTENTS:
        return "legal"
    return "normal"


def topic_of(intent: str) -> str:
    return "not_understood" if intent == NLU_FALLBACK else intent or "request_human"


def transcript(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The conversation as the person saw it, with times, for the counsellor."""
    return [
        {"sender": SPEAKERS[line["sender"]], "text": line["text"], "at": iso(line["at"])}
        for line in history(events)
        if line["text"]
    ]


def iso(timestamp: Optional[float]) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else now()
    return moment.isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(timezone.utc)


def message_key(tracker: Tracker) -> str:
    """A key for the person's latest message, the same however often it is retried."""
    user = next(e for e in reversed(tracker.events) if e.get("event") == "user")
    seed = f"{tracker.sender_id}|{user.get('timestamp')}|{user.get('message_id')}"
    return hashlib.sha256(seed.encode()).hexdigest()[:40]


class ActionOfferHandoff(Action):
    """Say what a counsellor would see, and ask whether the person agrees."""

    def name(self) -> Text:
        return "action_offer_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        intent = latest_intent(tracker)
        buttons = get_content().choice_buttons(language_of(tracker), (HANDOFF_YES, HANDOFF_NO))
        send(dispatcher, tracker, "handoff_offer", buttons)
        return language_events(tracker) + [
            SlotSet("handoff_urgency", urgency_of(intent)),
            SlotSet("handoff_topic", topic_of(intent)),
        ]


class ActionDeclineHandoff(Action):
    """No consent: the hotline and the office instead; nothing is shared."""

    def name(self) -> Text:
        return "action_handoff_declined"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        send(dispatcher, tracker, "handoff_declined")
        return language_events(tracker) + [SlotSet("handoff_urgency", None)]


class ActionStartHandoff(Action):
    """Record the consent, open the ticket, and tell the person what happens next."""

    def name(self) -> Text:
        return "action_handoff_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        language = language_of(tracker)
        consent_at = iso(None)
        key = message_key(tracker)
        outbox = get_outbox()
        outbox.put(
            key,
            tracker.sender_id,
            "POST",
            "/api/tickets",
            {
                "idempotency_key": key,
                "conversation_id": tracker.sender_id,
                "channel": tracker.get_latest_input_channel() or "rest",
                "language": language,
                "topic": tracker.get_slot("handoff_topic") or "request_human",
                "urgency": tracker.get_slot("handoff_urgency") or "normal",
                "consent": {"at": consent_at, "language": language},
                "transcript": transcript(tracker.events),
            },
        )
        await asyncio.to_thread(outbox.flush)
        ticket = outbox.answer(key)
        self.tell(dispatcher, tracker, language, ticket)
        return language_events(tracker) + [
            SlotSet("handoff_ticket", key),
            SlotSet("handoff_consent", f"{consent_at} {language}"),
            SlotSet("handoff_acknowledged", False),
        ]

    @staticmethod
    def tell(
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        language: str,
        ticket: Optional[Dict[str, Any]],
    ) -> None:
        content = get_content()
        hours, zone = content.office_hours()
        opening = next_opening(hours, zone, now())
        if opening:
            day, start = opening
            values = {"opening": f"{content.day_name(day, language)} {start}"}
            for reply in content.replies("handoff_office_closed", language, values=values):
                dispatcher.utter_message(text=reply.text)
        elif ticket and "queue_position" in ticket:
            values = {"position": str(ticket["queue_position"])}
            for reply in content.replies("handoff_queued", language, values=values):
                dispatcher.utter_message(text=reply.text)
        else:
            send(dispatcher, tracker, "handoff_saved")


class ActionRelayToCounsellor(Action):
    """Pass the person's message to the counsellor; acknowledge the first one only."""

    def name(self) -> Text:
        return "action_handoff_relay"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        text = tracker.latest_message.get("text") or ""
        outbox = get_outbox()
        if text:
            key = message_key(tracker)
            outbox.put(
                key,
                tracker.sender_id,
                "POST",
                "/api/inbound",
                {
                    "ticket_key": tracker.get_slot("handoff_ticket"),
                    "idempotency_key": key,
                    "text": text,
                    "at": iso(None),
                    "urgent": latest_intent(tracker) in URGENT_INTENTS,
                },
            )
            await asyncio.to_thread(outbox.flush)
        if tracker.get_slot("handoff_acknowledged"):
            return []
        send(dispatcher, tracker, "handoff_relayed")
        return [SlotSet("handoff_acknowledged", True)]


class ActionEndHandoff(Action):
    """The counsellor closed the ticket: the assistant answers again, and says so."""

    def name(self) -> Text:
        return "action_handoff_end"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        if not tracker.get_slot("handoff_ticket"):
            return []
        send(dispatcher, tracker, "handoff_ended")
        return [
            SlotSet("handoff_ticket", None),
            SlotSet("handoff_acknowledged", None),
            SlotSet("handoff_urgency", None),
            SlotSet("handoff_topic", None),
            # Rasa's /execute runs this action alone: the assistant then waits for the
            # person, as after any turn, so that rules apply to their next message.
            ActionExecuted("action_listen"),
        ]
