"""The names the assistant's processes share. Pure: no Rasa, no I/O, no environment.

The Rasa server, the action server, the desk, the channels, the evaluation and the tests
all refer to these names; each is spelt here once. Adding a language is one line in
LANGUAGES (and in the subsets that apply to it), plus its content and data files: see
"Adding a language" in the README.
"""
import re
from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple

# The twelve languages of ../shared/CONTRACT.md, ISO 639-1, with their script.
LANGUAGES: Mapping[str, str] = MappingProxyType(
    {
        "en": "latin",
        "hu": "latin",
        "ar": "arabic",
        "fa": "arabic",
        "ps": "arabic",
        "ur": "arabic",
        "sq": "latin",
        "ru": "cyrillic",
        "uk": "cyrillic",
        "tr": "latin",
        "fr": "latin",
        "vi": "latin",
    }
)
CODES: Tuple[str, ...] = tuple(LANGUAGES)
DEFAULT_LANGUAGE = "en"
# Written right to left.
RIGHT_TO_LEFT: Tuple[str, ...] = ("ar", "fa", "ps", "ur")
# Also typed in Latin letters ("salam, man mikhaham bargardam"): romanized NLU data.
ROMANIZED: Tuple[str, ...] = ("ar", "fa", "ps", "ur", "ru", "uk")
# Those that langdetect has a profile for (it has none for Pashto).
LANGDETECT_KNOWN: Tuple[str, ...] = tuple(code for code in CODES if code != "ps")
# Why the language detection told no language when nothing in the message speaks against
# the channel's hint (the app's language): no words at all, or only words every language
# uses ("ok", "hello"). Set by bot/language/detector.py, read by actions/answers.py.
NO_WORDS, EVERY_LANGUAGE = "no words", "words of every language"
# Meta's template language for each of ours; Meta has no Pashto: English instead.
WHATSAPP_TEMPLATE_LANGUAGES: Mapping[str, str] = MappingProxyType(
    {code: code for code in CODES if code != "ps"}
)
# The languages a counsellor can read the assistant's messages in (glosses).
GLOSS_LANGUAGES: Tuple[str, ...] = ("en", "hu")


_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*")


def primary_language(tag: Any) -> Optional[str]:
    """The primary subtag of a client's language tag, in lower case ("pt-BR" -> "pt",
    "fa_IR" -> "fa"), whether or not it is one of ours; None for anything else."""
    if not isinstance(tag, str):
        return None
    found = _LANGUAGE_TAG.fullmatch(tag.strip())
    return found.group(1).lower() if found else None


def scripts(script: str) -> Tuple[str, ...]:
    """Our languages written in `script` ('latin', 'arabic', 'cyrillic')."""
    return tuple(code for code, written in LANGUAGES.items() if written == script)


# The intents of ../shared/CONTRACT.md, copied in its order (the domain must keep them).
CONTRACT_INTENTS: Tuple[str, ...] = (
    "greet", "goodbye", "thank_you", "affirm", "deny", "bot_challenge", "ask_what_is_avr",
    "ask_eligibility", "ask_process", "ask_cost", "ask_documents", "ask_duration",
    "ask_reintegration", "ask_voluntariness", "ask_confidentiality", "ask_asylum_impact",
    "ask_special_needs", "ask_family", "ask_reentry", "ask_contact", "request_human",
    "report_emergency", "express_fear_of_return", "change_language", "delete_my_data",
    "out_of_scope",
)


class Channel:
    """Input channel names (Rasa's `input_channel`), and their conversation-id prefixes.

    A conversation id carries its channel, so that no channel can reach another's
    conversations: `telegram:<chat id>`, `whatsapp:<wa_id>`, `web-<random>`.
    """

    REST = "rest"
    SOCKETIO = "socketio"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"


CONVERSATION_PREFIXES: Mapping[str, str] = MappingProxyType(
    {Channel.TELEGRAM: "telegram:", Channel.WHATSAPP: "whatsapp:", Channel.SOCKETIO: "web-"}
)


def conversation_id(channel: str, platform_id: str) -> str:
    """The conversation id of a person known to `channel` by `platform_id`."""
    return f"{CONVERSATION_PREFIXES[channel]}{platform_id}"


def platform_id(channel: str, conversation: str) -> str:
    """The id `channel` knows the person by; ValueError for another channel's conversation."""
    prefix = CONVERSATION_PREFIXES[channel]
    if not conversation.startswith(prefix) or len(conversation) == len(prefix):
        raise ValueError(f"not a {channel} conversation")
    return conversation[len(prefix) :]


def channel_of(conversation: str) -> str:
    """The channel a conversation id belongs to (REST for an id without a prefix)."""
    for channel, prefix in CONVERSATION_PREFIXES.items():
        if conversation.startswith(prefix):
            return channel
    return Channel.REST


class Slots:
    # The answers of the eligibility check, in the order asked (eligibility_form).
    ELIGIBILITY = ("elig_fear", "elig_situation", "elig_previous_return", "elig_documents",
                   "elig_special_needs")
    LANGUAGE = "language"
    HANDOFF_TICKET = "handoff_ticket"
    HANDOFF_ACKNOWLEDGED = "handoff_acknowledged"
    HANDOFF_URGENCY = "handoff_urgency"
    HANDOFF_TOPIC = "handoff_topic"
    HANDOFF_CONSENT = "handoff_consent"
    DATA_DELETED = "data_deleted"


class Intents:
    ASK_ELIGIBILITY = "ask_eligibility"
    GREET = "greet"
    GOODBYE = "goodbye"
    THANK_YOU = "thank_you"
    INFORM = "inform"
    AFFIRM = "affirm"
    DENY = "deny"
    REQUEST_HUMAN = "request_human"
    DELETE_MY_DATA = "delete_my_data"
    CHANGE_LANGUAGE = "change_language"
    REPORT_EMERGENCY = "report_emergency"
    REPORT_EXPLOITATION = "report_exploitation"
    REPORT_SUICIDAL_THOUGHTS = "report_suicidal_thoughts"
    EXPRESS_FEAR_OF_RETURN = "express_fear_of_return"
    UNSUPPORTED_MEDIA = "unsupported_media"
    NLU_FALLBACK = "nlu_fallback"
    OUT_OF_SCOPE = "out_of_scope"


# A message about any of these gets its safety answer, with the emergency number, at once.
SAFETY_INTENTS: Tuple[str, ...] = (
    Intents.REPORT_EMERGENCY,
    Intents.REPORT_EXPLOITATION,
    Intents.REPORT_SUICIDAL_THOUGHTS,
    Intents.EXPRESS_FEAR_OF_RETURN,
)
URGENT_INTENTS: Tuple[str, ...] = (
    Intents.REPORT_EMERGENCY,
    Intents.REPORT_EXPLOITATION,
    Intents.REPORT_SUICIDAL_THOUGHTS,
)
LEGAL_INTENTS: Tuple[str, ...] = (Intents.EXPRESS_FEAR_OF_RETURN,)


class Actions:
    LISTEN = "action_listen"
    ANSWER = "action_answer"
    OFFER_HANDOFF = "action_offer_handoff"
    HANDOFF_START = "action_handoff_start"
    HANDOFF_RELAY = "action_handoff_relay"
    HANDOFF_END = "action_handoff_end"
    HANDOFF_FAILED = "action_handoff_failed"
    RELAY_FAILED = "action_relay_failed"
    CONFIRM_DELETE = "action_confirm_delete"
    ELIGIBILITY_RESULT = "action_eligibility_result"
    DELETE_MY_DATA = "action_delete_my_data"


class Metadata:
    """Keys of a message's metadata and parse data."""

    LANGUAGE_HINT = "language_hint"  # the app's or browser's language, from the channel
    LANGUAGE_DETECTION = "language_detection"  # set by bot.language.component
    SAFETY_NET = "safety_net"  # set by bot.safety.component
    SENTENCE_QUESTION = "sentence_question"  # set by bot.safety.component
    # Which content a bot message says ({"key", "part", "values"}): the desk glosses it.
    CONTENT_KEY = "content_key"
    COUNSELLOR = "counsellor"  # a bot message a counsellor wrote


# Commands our channels send on the person's behalf (not typed by them).
UNSUPPORTED_MEDIA_COMMAND = f"/{Intents.UNSUPPORTED_MEDIA}"
LANGUAGE_MENU_COMMAND = f"/{Intents.CHANGE_LANGUAGE}"
