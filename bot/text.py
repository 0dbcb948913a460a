"""Checks on what a person sends, before Rasa sees it. Pure helpers, no Rasa imports."""
import re
import unicodedata
from typing import Any, Dict, Iterable, Optional, Set

# Telegram and WhatsApp both cap a message at 4,096 characters.
MAX_MESSAGE_CHARS = 4096
MAX_SENDER_CHARS = 128
COMMAND_PREFIX = "/"

# C0 and C1 control characters, except tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Half of an emoji (JSON's "\ud83d" alone, or a client that cut a message inside one):
# not text, and no database, desk or platform downstream takes it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Bidirectional embeddings, overrides and isolates reorder how the text after them shows
# (to a counsellor at the desk too) and say nothing. Direction marks (U+200E/U+200F) and
# the joiners (ZWNJ/ZWJ, which Persian is spelt with) stay.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SENDER = re.compile(r"[A-Za-z0-9_.:@+=-]+")  # fullmatch: "$" would allow a final "\n"


class InvalidMessage(ValueError):
    """The request cannot be answered as it is; the message says why, for the sender."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def _invisible(text: str) -> bool:
    """Whether nothing of `text` shows: white space and format characters (zero-width
    space, byte order mark, direction marks, joiners) only, or nothing at all."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def clean_text(text: Any, cut: bool = False) -> str:
    """The text as NLU should see it: NFC, no control characters, bidirectional
    embeddings nor halves of emoji, trimmed; refused if nothing of it shows. Longer than
    MAX_MESSAGE_CHARS, refused; or, with `cut` (a message Telegram or WhatsApp has
    delivered already, which must be answered), its beginning."""
    if not isinstance(text, str):
        raise InvalidMessage("'message' must be a string")
    whole = _LONE_SURROGATE.sub("\ufffd", text)
    cleaned = _CONTROL.sub(" ", unicodedata.normalize("NFC", whole))
    cleaned = _BIDI_CONTROL.sub("", cleaned).strip()
    if _invisible(cleaned):
        raise InvalidMessage("'message' is empty")
    if len(cleaned) > MAX_MESSAGE_CHARS and cut:
        return cleaned[:MAX_MESSAGE_CHARS].rstrip()
    if len(cleaned) > MAX_MESSAGE_CHARS:
        raise InvalidMessage(
            f"'message' is longer than {MAX_MESSAGE_CHARS} characters", status=413
        )
    return cleaned


def clean_sender(sender: Any) -> str:
    """A conversation id: 1-128 letters, digits or _.:@+=-."""
    if not isinstance(sender, str) or not _SENDER.fullmatch(sender):
        raise InvalidMessage(
            "'sender' must be 1 to 128 letters, digits or _.:@+=- characters"
        )
    if len(sender) > MAX_SENDER_CHARS:
        raise InvalidMessage(f"'sender' is longer than {MAX_SENDER_CHARS} characters")
    if not sender.strip("."):  # "." and ".." are path steps in every URL that names it
        raise InvalidMessage("'sender' must not be only dots")
    return sender


def offered_payloads(events: Iterable[Dict[str, Any]]) -> Set[str]:
    """Payloads of the buttons the bot offered since the person last wrote."""
    payloads: Set[str] = set()
    for event in reversed(list(events)):
        if event.get("event") == "user":
            break
        if event.get("event") == "bot":
            for button in (event.get("data") or {}).get("buttons") or ():
                payloads.add(button.get("payload"))
    return payloads


# Choosing a language is harmless: a widget's own language menu may always send it.
_LANGUAGE_CHOICE = re.compile(r'^/change_language\{"language":"[a-z]{2}"\}$')


# Leading slashes and white space, in any combination: "/ /affirm", "/\t/restart".
_COMMAND_LEAD = re.compile(r"^[\s/]+")


def disarm_command(text: str, offered: Optional[Set[str]]) -> str:
    """Text that Rasa will read as words, unless it is a button payload we offered.

    Rasa treats "/intent{...}" as an intent with slots, bypassing NLU. Only the exact
    payload of a button the bot just showed, or a language choice, may do that; anything
    else typed with leading slashes (and white space between them) is read without them.
    """
    stripped = text.strip()
    if not stripped.startswith(COMMAND_PREFIX):
        return text
    if (offered and stripped in offered) or _LANGUAGE_CHOICE.match(stripped):
        return stripped
    return _COMMAND_LEAD.sub("", stripped) or stripped.replace(COMMAND_PREFIX, "?")
