"""The eligibility pre-check: five questions, then a pointer, never a decision.

The published criteria (shared/CONTENT.md) decide what is asked. Fear of return is asked
first, with "not sure" (treated as fear): a person afraid to go back is not asked about
documents next, but told that return is voluntary and offered a counsellor (a legal
ticket), as after a fear message. Otherwise the answer says the person appears to be in a
group IOM can help and names the conditions IOM checks after counselling (the crime
condition included), or why they should talk to a counsellor first.
"""
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import language_events, language_of, latest_intent, send, unsure_yes
from actions.content import get_content
from avrr.vocabulary import Actions, Intents

YES = ("yes", "/affirm")
NO = ("no", "/deny")

# The slots of eligibility_form in the order asked, each with its buttons:
# (title key in the content file's `choices`, payload).
QUESTIONS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "elig_fear": (
        YES,
        NO,
        ("not_sure", '/inform{"elig_fear":"unsure"}'),
    ),
    "elig_situation": (
        ("situation_asylum", '/inform{"elig_situation":"asylum"}'),
        ("situation_protection", '/inform{"elig_situation":"protection"}'),
        ("situation_irregular", '/inform{"elig_situation":"irregular"}'),
        ("situation_other", '/inform{"elig_situation":"other"}'),
    ),
    "elig_previous_return": (
        YES,
        NO,
        ("not_sure", '/inform{"elig_previous_return":"unsure"}'),
    ),
    "elig_documents": (
        YES,
        ("documents_expired_or_lost", '/inform{"elig_documents":"expired_or_lost"}'),
        NO,
    ),
    "elig_special_needs": (YES, NO),
}

ALLOWED_VALUES: Dict[str, Tuple[str, ...]] = {
    "elig_situation": ("asylum", "protection", "irregular", "other"),
    "elig_previous_return": ("used_before", "never", "unsure"),
    "elig_documents": ("valid", "expired_or_lost", "none"),
    "elig_special_needs": ("needs", "no_needs"),
    "elig_fear": ("fear", "no_fear", "unsure"),
}
AFRAID = ("fear", "unsure")
# Questions offering "not sure": a typed "no" counts only when it is plainly no, the "No"
# button's title in one of our languages. The classifier reads "not sure", "I don't know",
# "no idea", "nem tudom", "не знаю" as "no" (the reviewer measured 0.43 to 0.99), and a
# fear or a doubt taken for "no fear" would send a person afraid to go back on to
# questions about documents. Anything else is asked again, with the buttons.
UNSURE_ALLOWED = tuple(slot for slot, buttons in QUESTIONS.items()
                       if any(key == "not_sure" for key, _ in buttons))
# After a fear answer the other questions are not asked: they are filled with this.
SKIPPED = "skipped"


@dataclass(frozen=True)
class Assessment:
    """What the answers point to: the keys of the messages that say it."""

    outcome: str
    messages: Tuple[str, ...]


def assess(answers: Mapping[str, Optional[str]]) -> Assessment:
    """Point the person to IOM or to a counsellor first; safety comes before all else."""
    if answers.get("elig_fear") in AFRAID:
        return Assessment("fear", ("elig_result_fear",))
    # What the person should know whatever the outcome: a lawyer for their asylum case or
    # their protection, documents no barrier, special needs told.
    notes = []
    if answers.get("elig_situation") == "asylum":
        notes.append("elig_note_asylum")
    if answers.get("elig_situation") == "protection":
        notes.append("elig_note_protection")
    if answers.get("elig_documents") in ("expired_or_lost", "none"):
        notes.append("elig_note_documents")
    if answers.get("elig_special_needs") == "needs":
        notes.append("elig_note_special_needs")
    counsellor_first = {
        "used_before": "elig_result_previous",
        "unsure": "elig_result_previous_unsure",
    }.get(answers.get("elig_previous_return") or "")
    if counsellor_first is None and answers.get("elig_situation") == "other":
        counsellor_first = "elig_result_other"
    if counsellor_first:
        return Assessment("counsellor_first", (
            counsellor_first, *notes, "elig_conditions", "elig_talk_to_counsellor"))
    return Assessment(
        "likely", ("elig_result_likely", *notes, "elig_conditions", "elig_next_step")
    )


class AskEligibilityQuestion(Action, ABC):
    """Ask one question of the eligibility check, with its buttons."""

    @property
    @abstractmethod
    def slot(self) -> str:
        """The slot of eligibility_form this question fills."""

    def name(self) -> Text:
        return f"action_ask_{self.slot}"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        language = language_of(tracker)
        buttons = get_content().choice_buttons(language, QUESTIONS[self.slot])
        send(dispatcher, tracker, f"elig_ask_{self.slot[len('elig_'):]}", buttons)
        return language_events(tracker)


class ActionAskEligSituation(AskEligibilityQuestion):
    slot = "elig_situation"


class ActionAskEligPreviousReturn(AskEligibilityQuestion):
    slot = "elig_previous_return"


class ActionAskEligDocuments(AskEligibilityQuestion):
    slot = "elig_documents"


class ActionAskEligSpecialNeeds(AskEligibilityQuestion):
    slot = "elig_special_needs"


class ActionAskEligFear(AskEligibilityQuestion):
    slot = "elig_fear"


class ValidateEligibilityForm(Action):
    """Accept only the values the questions offer, and only a "yes" that is meant; the
    form asks again otherwise."""

    def name(self) -> Text:
        return "validate_eligibility_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        if unsure_yes(tracker):
            return [SlotSet(slot, None) for slot in tracker.slots_to_validate()]
        if latest_intent(tracker) == Intents.DENY and not plainly_no(tracker) and any(
                slot in UNSURE_ALLOWED for slot in tracker.slots_to_validate()):
            send(dispatcher, tracker, "inform_in_form")
            return [SlotSet(slot, None) for slot in tracker.slots_to_validate()]
        events = [
            SlotSet(slot, value if value in ALLOWED_VALUES.get(slot, (value,)) else None)
            for slot, value in tracker.slots_to_validate().items()
        ]
        if tracker.slots_to_validate().get("elig_fear") in AFRAID:
            # No more questions: the result and a counsellor come next.
            events += [SlotSet(slot, SKIPPED) for slot in QUESTIONS if slot != "elig_fear"]
        return events


def plainly_no(tracker: Tracker) -> bool:
    """Whether the latest message is the "No" button, or its title typed in any of our
    languages (case, spaces and punctuation aside)."""
    text = (tracker.latest_message.get("text") or "").strip()
    if text == NO[1]:
        return True
    content = get_content()
    titles = {_bare(content.choice_buttons(code, (NO,))[0]["title"])
              for code in content.languages()}
    return _bare(text) in titles


def _bare(text: str) -> str:
    """Letters and digits only, in lower case, without accents, as a phone keyboard
    without them types the word ("hayir", "khong"); compatibility forms unfolded ("ﻻ")."""
    folded = unicodedata.normalize("NFKD", text.replace("ı", "i"))
    return "".join(c for c in folded.casefold() if c.isalnum())


class ActionEligibilityResult(Action):
    """Say what the answers point to, then forget them so the check can start afresh."""

    def name(self) -> Text:
        return Actions.ELIGIBILITY_RESULT

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        answers = {slot: tracker.get_slot(slot) for slot in QUESTIONS}
        assessment = assess(answers)
        for key in assessment.messages:
            send(dispatcher, tracker, key)
        events = language_events(tracker) + [SlotSet(slot, None) for slot in QUESTIONS]
        if assessment.outcome == "fear":
            # The counsellor offer, as after a fear message (a legal ticket).
            events.append(FollowupAction(Actions.OFFER_HANDOFF))
        return events
