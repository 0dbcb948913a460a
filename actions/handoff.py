"""Handing the conversation to a human counsellor, with the person's consent.

1. `action_offer_handoff` says what the counsellor will see and asks for consent. It
   follows request_human, the safety answers (danger and exploitation: urgent; fear of
   return: legal) and a second message in a row that was not understood (as urgent as
   the safety answer it got first, if any).
2. Yes: `action_handoff_start` records the consent (time, language) and opens a ticket
   at the desk through the durable outbox; the person learns their place in the queue,
   or when the office opens; if the desk refuses the ticket for good, that it could not
   reach a counsellor, with the hotline (now, or later through `action_handoff_failed`,
   which the outbox runs through Rasa's API). No: `action_handoff_declined` gives the
   hotline and the office instead, and nothing is shared. A typed "yes" the classifier
   is unsure of (`SURE_YES`, actions/answers.py) gets the offer again instead.
3. While the ticket is open, bot.handoff_policy sends every message to
   `action_handoff_relay`, which passes it to the ticket and acknowledges once. A safety
   message, or one not understood that may be about danger, is also answered at once (the
   emergency number), and marked urgent.
4. The desk's hand-back runs `action_handoff_end` (Rasa's /execute), which tells the
   person the assistant is back.
"""

import asyncio
import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import (
    language_events,
    language_of,
    latest_intent,
    send,
    unsure_yes,
    utter,
)
from actions.content import get_content
from actions.fallback import possible_danger
from actions.outbox import INBOUND_PATH, TICKETS_PATH, get_outbox
from avrr.vocabulary import (
    LEGAL_INTENTS,
    SAFETY_INTENTS,
    URGENT_INTENTS,
    Actions,
    Channel,
    Intents,
    Slots,
)
from bot.transcript import history

HANDOFF_YES = ("handoff_yes", "/affirm")
HANDOFF_NO = ("handoff_no", "/deny")
SPEAKERS = {"user": "person", "bot": "assistant"}
# What the counsellor is told beside the text: what the assistant understood of the
# person's message (intent, confidence), and which content each reply says.
ANNOTATIONS = ("intent", "confidence", "content")
# The desk takes at most 500 transcript entries in a body of at most 1 MiB
# (desk/app.py MAX_BODY_BYTES); the ticket's other fields take far less than the rest.
MAX_TRANSCRIPT_ENTRIES = 200
MAX_TRANSCRIPT_BYTES = 1_000_000
HANDOFF_SLOTS = (Slots.HANDOFF_TICKET, Slots.HANDOFF_ACKNOWLEDGED, Slots.HANDOFF_URGENCY,
                 Slots.HANDOFF_TOPIC)


def urgency_of(intent: str) -> str:
    if intent in URGENT_INTENTS:
        return "urgent"
    if intent in LEGAL_INTENTS:
        return "legal"
    return "normal"


def topic_of(intent: str) -> str:
    return "not_understood" if intent == Intents.NLU_FALLBACK else intent or Intents.REQUEST_HUMAN


def transcript(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The conversation as the person saw it, with times, for the counsellor: its latest
    part, as much as the desk takes in one request."""
    lines = [
        dict(
            {k: line[k] for k in ANNOTATIONS if line.get(k) is not None},
            sender=SPEAKERS[line["sender"]], text=line["text"], at=iso(line["at"]),
        )
        for line in history(events, annotate=True)
        if line["text"]
    ][-MAX_TRANSCRIPT_ENTRIES:]
    # Measured as the outbox encodes it: JSON escapes a non-ASCII character to 6 bytes.
    sizes = [len(json.dumps(line)) + len(", ") for line in lines]
    while sum(sizes) > MAX_TRANSCRIPT_BYTES:
        lines, sizes = lines[1:], sizes[1:]
    return lines


def iso(timestamp: Optional[float]) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else now()
    return moment.isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(timezone.utc)


def message_key(tracker: Tracker) -> str:
    """A key for the person's latest message, the same however often it is retried.

    The channels give a platform's redelivery the same message id, so a message handled
    again after a failure makes the same requests to the desk, which takes them once.
    """
    user = next(e for e in reversed(tracker.events) if e.get("event") == "user")
    seed = f"{tracker.sender_id}|{user.get('message_id') or user.get('timestamp')}"
    return hashlib.sha256(seed.encode()).hexdigest()[:40]


class ActionOfferHandoff(Action):
    """Say what a counsellor would see, and ask whether the person agrees."""

    def name(self) -> Text:
        return Actions.OFFER_HANDOFF

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        intent = latest_intent(tracker)
        if tracker.latest_action_name == Actions.ELIGIBILITY_RESULT:
            intent = Intents.EXPRESS_FEAR_OF_RETURN  # its only reason to offer a counsellor
        # Not understood twice, but maybe about danger: as urgent as the safety answer
        # that actions/fallback.py gave first.
        ranking = tracker.latest_message.get("intent_ranking") or []
        danger = possible_danger(ranking) if intent == Intents.NLU_FALLBACK else None
        buttons = get_content().choice_buttons(language_of(tracker), (HANDOFF_YES, HANDOFF_NO))
        send(dispatcher, tracker, "handoff_offer", buttons)
        if tracker.latest_action_name == Actions.HANDOFF_START:
            return language_events(tracker)  # asked again: the reason is the first one's
        return language_events(tracker) + [
            SlotSet(Slots.HANDOFF_URGENCY, urgency_of(danger or intent)),
            SlotSet(Slots.HANDOFF_TOPIC, topic_of(intent)),
        ]


class ActionDeclineHandoff(Action):
    """No consent: the hotline and the office instead; nothing is shared."""

    def name(self) -> Text:
        return "action_handoff_declined"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        send(dispatcher, tracker, "handoff_declined")
        return language_events(tracker) + [SlotSet(Slots.HANDOFF_URGENCY, None)]


class ActionStartHandoff(Action):
    """Record the consent, open the ticket, and tell the person what happens next."""

    def name(self) -> Text:
        return Actions.HANDOFF_START

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        if unsure_yes(tracker):
            return [FollowupAction(Actions.OFFER_HANDOFF)]
        language = language_of(tracker)
        consent_at = iso(None)
        key = message_key(tracker)
        outbox = get_outbox()
        outbox.put(
            key,
            tracker.sender_id,
            "POST",
            TICKETS_PATH,
            {
                "idempotency_key": key,
                "conversation_id": tracker.sender_id,
                "channel": tracker.get_latest_input_channel() or Channel.REST,
                "language": language,
                "topic": tracker.get_slot(Slots.HANDOFF_TOPIC) or Intents.REQUEST_HUMAN,
                "urgency": tracker.get_slot(Slots.HANDOFF_URGENCY) or "normal",
                "consent": {"at": consent_at, "language": language},
                "transcript": transcript(tracker.events),
            },
        )
        await asyncio.to_thread(outbox.flush, tracker.sender_id, key)
        if outbox.state(key) == "dead":
            send(dispatcher, tracker, "handoff_failed")
            return language_events(tracker) + [SlotSet(slot, None) for slot in HANDOFF_SLOTS]
        self.tell(dispatcher, tracker, language, outbox.answer(key))
        return language_events(tracker) + [
            SlotSet(Slots.HANDOFF_TICKET, key),
            SlotSet(Slots.HANDOFF_CONSENT, f"{consent_at} {language}"),
            SlotSet(Slots.HANDOFF_ACKNOWLEDGED, False),
        ]

    @staticmethod
    def tell(
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        language: str,
        ticket: Optional[Dict[str, Any]],
    ) -> None:
        content = get_content()
        opening = content.office_hours().next_opening(now())
        if opening:
            values = {"opening_day": opening.day, "opening_time": opening.time}
            if opening.far:
                values["opening_date"] = opening.date.isoformat()
            for reply in content.replies("handoff_office_closed", language, values=values):
                utter(dispatcher, reply)
        elif ticket and "queue_position" in ticket:
            values = {"position": str(ticket["queue_position"])}
            for reply in content.replies("handoff_queued", language, values=values):
                utter(dispatcher, reply)
        else:
            send(dispatcher, tracker, "handoff_saved")


class ActionRelayToCounsellor(Action):
    """Pass the person's message to the counsellor; acknowledge the first one only, and
    say so when the desk refused it for good."""

    def name(self) -> Text:
        return Actions.HANDOFF_RELAY

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        text = tracker.latest_message.get("text") or ""
        intent = latest_intent(tracker)
        # A message not understood that may be about danger gets the safety answer, as
        # outside the handoff (actions/fallback.py), and reaches the counsellor as urgent.
        ranking = tracker.latest_message.get("intent_ranking") or []
        danger = intent if intent in SAFETY_INTENTS else (
            possible_danger(ranking) if intent == Intents.NLU_FALLBACK else None)
        outbox = get_outbox()
        lost = False  # the desk refused the message for good
        if text:
            key = message_key(tracker)
            outbox.put(
                key,
                tracker.sender_id,
                "POST",
                INBOUND_PATH,
                {
                    "ticket_key": tracker.get_slot(Slots.HANDOFF_TICKET),
                    # A re-sent "yes" without a message id opens the ticket under a key
                    # the desk does not know: it then finds the conversation's open one.
                    "conversation_id": tracker.sender_id,
                    "idempotency_key": key,
                    "text": text,
                    "at": iso(None),
                    "urgent": danger is not None,
                    "intent": intent or None,
                    "confidence": (tracker.latest_message.get("intent") or {}).get("confidence"),
                },
            )
            await asyncio.to_thread(outbox.flush, tracker.sender_id, key)
            lost = outbox.state(key) == "dead"
        if danger:
            # Whatever the hour, the person is not left waiting for a counsellor in danger.
            send(dispatcher, tracker, danger)
        if lost:
            send(dispatcher, tracker, "handoff_message_failed")
            return []
        if danger:
            send(dispatcher, tracker, "handoff_relayed_urgent")
            return [SlotSet(Slots.HANDOFF_ACKNOWLEDGED, True)]
        if tracker.get_slot(Slots.HANDOFF_ACKNOWLEDGED):
            return []
        send(dispatcher, tracker, "handoff_relayed")
        return [SlotSet(Slots.HANDOFF_ACKNOWLEDGED, True)]


class ActionEndHandoff(Action):
    """The counsellor closed the ticket: the assistant answers again, and says so."""

    answer = "handoff_ended"
    ends = True  # the handoff is over: the assistant answers again

    def name(self) -> Text:
        return Actions.HANDOFF_END

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        # Rasa's /execute runs this action alone: the assistant then waits for the
        # person, as after any turn, so that rules apply to their next message; also when
        # a repeated notice (the desk's retry after a lost answer) finds nothing to end.
        listen = [ActionExecuted(Actions.LISTEN)]
        if not tracker.get_slot(Slots.HANDOFF_TICKET):
            return listen
        send(dispatcher, tracker, self.answer)
        cleared = [SlotSet(slot, None) for slot in HANDOFF_SLOTS] if self.ends else []
        return cleared + listen


class ActionHandoffFailed(ActionEndHandoff):
    """The desk refused the ticket for good: the person is told, with the hotline, and the
    assistant answers again (run by the outbox through Rasa's API)."""

    answer = "handoff_failed"

    def name(self) -> Text:
        return Actions.HANDOFF_FAILED


class ActionRelayFailed(Action):
    """The desk refused one message of the handoff for good: the person is told it did not
    reach the counsellor, with the hotline (run by the outbox through Rasa's API); the
    handoff goes on. Told also when the handoff has ended meanwhile: a message that waited
    for the desk and found its ticket closed was promised to the counsellor."""

    def name(self) -> Text:
        return Actions.RELAY_FAILED

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        send(dispatcher, tracker, "handoff_message_failed")
        return [ActionExecuted(Actions.LISTEN)]
