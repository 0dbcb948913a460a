"""Answers to the person's questions, in the language they write in."""
from typing import Any, Dict, List, Optional, Sequence, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.content import get_content
from avrr.content import Button, Reply
from avrr.vocabulary import (
    DEFAULT_LANGUAGE,
    EVERY_LANGUAGE,
    NO_WORDS,
    SAFETY_INTENTS,
    Intents,
    Metadata,
    Slots,
    primary_language,
)

# Set by bot.language.component.LanguageDetection on every message NLU reads.
LANGUAGE_DETECTION = Metadata.LANGUAGE_DETECTION
# A "yes" that shares the conversation or deletes it must be meant: typed words the
# classifier is less sure of ("what?" was "yes" at 0.34) get the question again. A
# button's payload is 1.0; "yes", "igen", "да", "بله", "oui" are above 0.9.
SURE_YES = 0.5


def latest_intent(tracker: Tracker) -> str:
    """The intent of the person's latest message."""
    return (tracker.latest_message.get("intent") or {}).get("name") or ""


def unsure_yes(tracker: Tracker) -> bool:
    """Whether the latest message was taken for "yes", but with less than `SURE_YES`."""
    intent = tracker.latest_message.get("intent") or {}
    confidence = intent.get("confidence")
    return intent.get("name") == Intents.AFFIRM and confidence is not None and (
        confidence < SURE_YES)


def detected_language(tracker: Tracker) -> Optional[str]:
    """The language of the latest message, if it could be told and we have content in it."""
    detection = tracker.latest_message.get(LANGUAGE_DETECTION) or {}
    found = detection.get("language")
    return found if found in get_content().languages() else None


def hinted_language(tracker: Tracker) -> Optional[str]:
    """The channel's hint (the app's or browser's language), for a first message that
    says nothing of its language: a sticker, Telegram's /start, "hello" or an emoji. Not
    when its script speaks against the hint ("سلام" from an English app: the menu asks);
    later, such messages keep the conversation's language."""
    detection = tracker.latest_message.get(LANGUAGE_DETECTION)
    if detection is not None and detection.get("reason") not in (NO_WORDS, EVERY_LANGUAGE):
        return None
    if sum(1 for e in tracker.events if e.get("event") == "user") > 1:
        return None
    metadata = tracker.latest_message.get("metadata") or {}
    code = primary_language(metadata.get(Metadata.LANGUAGE_HINT))
    return code if code in get_content().languages() else None


def language_of(tracker: Tracker) -> str:
    """The language to answer in: the latest message's, else the conversation's."""
    language = (
        detected_language(tracker) or hinted_language(tracker) or tracker.get_slot(Slots.LANGUAGE)
    )
    return language if language in get_content().languages() else DEFAULT_LANGUAGE


def language_events(tracker: Tracker) -> List[Dict[Text, Any]]:
    """Set the `language` slot to the language now answered in, if it changed."""
    language = language_of(tracker)
    if language == tracker.get_slot(Slots.LANGUAGE):
        return []
    return [SlotSet(Slots.LANGUAGE, language)]


def language_unclear(tracker: Tracker) -> bool:
    """The person's first message did not tell us their language, nor did their app."""
    detection = tracker.latest_message.get(LANGUAGE_DETECTION)
    users = [e for e in tracker.events if e.get("event") == "user"]
    return (bool(detection) and detection.get("language") is None and len(users) <= 1
            and hinted_language(tracker) is None)


def send(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    key: str,
    buttons: Sequence[Button] = (),
) -> None:
    """Send the answer `key` in the language of the conversation."""
    for reply in get_content().replies(key, language_of(tracker), buttons):
        utter(dispatcher, reply)


def utter(dispatcher: CollectingDispatcher, reply: Reply) -> None:
    """Send one reply, saying in its metadata which content it is (for the desk's glosses)."""
    dispatcher.utter_message(
        text=reply.text, buttons=list(reply.buttons), **{Metadata.CONTENT_KEY: reply.source()}
    )


def language_menu(languages: Dict[str, str]) -> List[Button]:
    """One button per language, titled in that language."""
    return [
        {"title": name, "payload": f'/change_language{{"language":"{code}"}}'}
        for code, name in languages.items()
    ]


def asked_besides(parsed: Dict[Text, Any]) -> Optional[Text]:
    """The question a safety message asked besides: what the classifier took it for before
    the safety net caught it, or a sentence's question (bot/safety/component.py)."""
    intent = (parsed.get("intent") or {}).get("name")
    if intent not in SAFETY_INTENTS:
        return None
    net = parsed.get(Metadata.SAFETY_NET) or {}
    sentence = parsed.get(Metadata.SENTENCE_QUESTION) or {}
    for asked in (net.get("original_intent"), sentence.get("intent")):
        if asked and asked.startswith("ask_") and asked != intent:
            return asked
    return None


class ActionAnswer(Action):
    """Answer the intent of the latest message.

    During the eligibility check an answer may have a shorter variant, `<intent>_in_form`.
    When the first message does not tell the language, the language menu follows. When
    a safety message also asked a question, the question is answered too, after the safety
    answer. A check that starts forgets the answers of one that was stopped or broken off
    (by "stop", a safety message, a handoff): else it would go on from where that one was,
    and a "no fear" given before a fear message would stand.
    """

    def name(self) -> Text:
        return "action_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        key = latest_intent(tracker)
        if tracker.active_loop_name and get_content().has(
            f"{key}_in_form", language_of(tracker)
        ):
            key = f"{key}_in_form"
        send(dispatcher, tracker, key)
        asked = asked_besides(tracker.latest_message)
        if asked is not None and get_content().has(asked, language_of(tracker)):
            send(dispatcher, tracker, asked)
        if language_unclear(tracker):
            send(dispatcher, tracker, "language_unsure", language_menu(get_content().languages()))
        events = language_events(tracker)
        if latest_intent(tracker) == Intents.ASK_ELIGIBILITY and not tracker.active_loop_name:
            events += [SlotSet(slot, None) for slot in Slots.ELIGIBILITY
                       if tracker.get_slot(slot) is not None]
        return events
