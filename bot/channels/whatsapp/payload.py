"""What Meta's WhatsApp Cloud API webhook sends: signature check and parsing. Pure.

- GET is Meta's verify handshake: the verify token is compared in constant time.
- POST is checked before it is parsed: `X-Hub-Signature-256` must be the HMAC-SHA256 of
  the raw body with the app secret; a body that is not the webhook's JSON shape is an
  InvalidPayload (a 400), never a 500. One message of it that cannot be read does not
  cost the others: without a message id or a phone number (Meta's usernames may come
  without one) it is skipped and logged; with content of an unknown shape it is MEDIA.
- Text and button presses are messages for the assistant; photos, voice, files,
  locations and the like are MEDIA (the assistant asks for text); reactions and system
  notices are IGNORED; delivery statuses are only logged.
"""
import hashlib
import hmac
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
# The list title of a row that was shortened ends with it (see bot.channels.whatsapp.render).
ELLIPSIS = "\u2026"
# Message types acknowledged without an answer: an answer to a reaction, to "this
# person changed their number" or to opening the chat would only be noise.
IGNORED_TYPES = frozenset({"reaction", "system", "request_welcome"})
_MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
# A WhatsApp id is the phone number in international form, digits only.
_WA_ID = re.compile(r"^[0-9]{1,20}$")


class InvalidPayload(ValueError):
    """The webhook body is not what Meta sends; the message says what is wrong."""


def signature_ok(secret: str, body: bytes, header: Optional[str]) -> bool:
    """Whether `header` is "sha256=<hex HMAC-SHA256 of body with secret>"."""
    if not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8", "replace"))


def verify_challenge(verify_token: str, args: Mapping[str, Any]) -> Optional[str]:
    """The challenge to echo if Meta's verify request is right, else None."""
    token = args.get("hub.verify_token") or ""
    challenge = args.get("hub.challenge")
    token_ok = hmac.compare_digest(
        token.encode("utf-8", "replace"), verify_token.encode("utf-8", "replace")
    )
    if args.get("hub.mode") == "subscribe" and token_ok and challenge:
        return challenge
    return None


TEXT, CHOICE, MEDIA, IGNORED = "text", "choice", "media", "ignored"

@dataclass(frozen=True)
class Inbound:
    """One message from a person, as far as the assistant cares."""

    message_id: str
    wa_id: str
    kind: str  # TEXT, CHOICE (a button or list row pressed), MEDIA or IGNORED
    text: Optional[str] = None  # the text, or the id of the button pressed
    title: Optional[str] = None  # the pressed button's title, as the person saw it
    at: Optional[float] = None  # when the person sent it (Meta's timestamp)


@dataclass(frozen=True)
class Webhook:
    messages: List[Inbound]
    statuses: List[Dict[str, Any]]
    skipped: int = 0  # messages with no id or no phone number to answer


def _get(container: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = container.get(key)
    if not isinstance(value, kind):
        raise InvalidPayload(f"{where}.{key} is missing or not {kind.__name__}")
    return value


def _items(container: Mapping[str, Any], key: str, where: str) -> List[Dict[str, Any]]:
    """container[key] as a list of objects; absent is empty."""
    value = container.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidPayload(f"{where}.{key} must be a list of objects")
    return value


def _timestamp(value: Any) -> Optional[float]:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def parse_message(message: Dict[str, Any]) -> Inbound:
    """A message object of Meta's webhook as an Inbound: InvalidPayload without an id or
    a phone number to answer; MEDIA (the assistant asks for text) when its content is
    not of a shape we know."""
    message_id = _get(message, "id", str, "message")
    if not _MESSAGE_ID.match(message_id):
        raise InvalidPayload("message.id is not a message id")
    wa_id = message.get("from")
    if not isinstance(wa_id, str) or not _WA_ID.match(wa_id):
        raise InvalidPayload("message.from is not a WhatsApp id")
    at = _timestamp(message.get("timestamp"))
    common = {"message_id": message_id, "wa_id": wa_id, "at": at}
    try:
        return _content(message, common)
    except InvalidPayload as unknown:
        logger.info("WhatsApp message of an unknown shape (%s): asked for text", unknown)
        return Inbound(kind=MEDIA, **common)


def _content(message: Dict[str, Any], common: Dict[str, Any]) -> Inbound:
    where = "message"
    kind = _get(message, "type", str, where)
    if kind == "text":
        body = _get(_get(message, "text", dict, where), "body", str, "message.text")
        return Inbound(kind=TEXT, text=body, **common)
    if kind == "interactive":
        interactive = _get(message, "interactive", dict, where)
        reply_type = interactive.get("type")
        if reply_type in ("button_reply", "list_reply"):
            reply = _get(interactive, reply_type, dict, "message.interactive")
            choice = _get(reply, "id", str, f"message.interactive.{reply_type}")
            return Inbound(kind=CHOICE, text=choice, title=_shown_title(reply), **common)
        return Inbound(kind=MEDIA, **common)
    if kind == "button":
        button = _get(message, "button", dict, where)
        payload, title = button.get("payload"), button.get("text")
        if isinstance(payload, str) and payload:
            return Inbound(kind=CHOICE, text=payload, title=_str_or_none(title), **common)
        if isinstance(title, str):
            return Inbound(kind=TEXT, text=title, **common)
        raise InvalidPayload("message.button has neither payload nor text")
    if kind in IGNORED_TYPES:
        return Inbound(kind=IGNORED, **common)
    return Inbound(kind=MEDIA, **common)


def _str_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _shown_title(reply: Mapping[str, Any]) -> Optional[str]:
    """The title of the pressed button; the full one if it was shortened for a list row."""
    title, description = _str_or_none(reply.get("title")), _str_or_none(reply.get("description"))
    if title and description and title.endswith(ELLIPSIS):
        return description
    return title


def parse_webhook(payload: Any, phone_number_id: str) -> Webhook:
    """The messages and statuses for our phone number in a webhook body.

    Changes for another phone number of the same business account are skipped: they
    are not ours to answer.
    """
    if not isinstance(payload, dict):
        raise InvalidPayload("the body must be a JSON object")
    if payload.get("object") != "whatsapp_business_account":
        raise InvalidPayload("object must be 'whatsapp_business_account'")
    messages: List[Inbound] = []
    statuses: List[Dict[str, Any]] = []
    skipped = 0
    for entry in _items(payload, "entry", "body"):
        for change in _items(entry, "changes", "entry"):
            if change.get("field") != "messages":
                continue
            value = _get(change, "value", dict, "change")
            metadata = value.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise InvalidPayload("value.metadata must be an object")
            if str(metadata.get("phone_number_id", phone_number_id)) != phone_number_id:
                logger.info("WhatsApp change for another phone number skipped")
                continue
            for message in _items(value, "messages", "value"):
                try:
                    messages.append(parse_message(message))
                except InvalidPayload as unreadable:
                    logger.warning("WhatsApp message skipped: %s", unreadable)
                    skipped += 1
            statuses += _items(value, "statuses", "value")
    return Webhook(messages, statuses, skipped)


def log_statuses(statuses: Sequence[Dict[str, Any]]) -> None:
    """Failed deliveries are worth a warning; the others are routine."""
    for status in statuses:
        if status.get("status") == "failed":
            errors = status.get("errors") if isinstance(status.get("errors"), list) else []
            codes = [e.get("code") for e in errors if isinstance(e, dict)]
            logger.warning("WhatsApp could not deliver a message: error %s", codes or "unknown")
