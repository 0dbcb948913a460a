"""The WhatsApp channel (Meta's WhatsApp Cloud API): webhook at /webhooks/whatsapp/webhook.

From Meta:
- GET is Meta's verify handshake: the verify token is compared in constant time.
- POST is checked before it is parsed: `X-Hub-Signature-256` must be the HMAC-SHA256 of
  the raw body with the app secret (403 otherwise); a body that is not the webhook's JSON
  shape gets 400, never 500.
- Each message id is handled once, even when Meta delivers it again or twice at once
  (`bot.channels.ledger`). A message that could not be handled and recorded is released
  and the webhook answered 503, so that Meta sends it again.
- Text and button presses go to Rasa as in the REST channel: typed "/intent{...}" is
  read as words, and a button the conversation no longer offers counts as its title.
  Photos, voice, files, locations and the like become "/unsupported_media" (the
  assistant asks for text, in the person's language). Reactions and system notices are
  acknowledged and ignored. Delivery statuses are acknowledged; failures are logged.

To Meta, through the Graph API:
- text in parts of at most 4,096 characters; 1-3 buttons as reply buttons, 4-10 as a
  list, more as several lists of at most 10; 429 and 5xx are retried with backoff.
- Free-form messages are allowed only within 24 hours of the person's last message.
  Outside that window the reply template (WHATSAPP_REPLY_TEMPLATE) is sent once, in the
  person's language, and the messages are held in the ledger; they are delivered as soon
  as the person writes again, before the answers to that message.

Message text and phone numbers (the wa_id is one) are logged at DEBUG only.
"""
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import aiohttp
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.ledger import DONE, Ledger, get_ledger
from bot.channels.rest import disarm, error
from bot.text import MAX_MESSAGE_CHARS, InvalidMessage, clean_sender, clean_text

logger = logging.getLogger(__name__)

CHANNEL = "whatsapp"
DEFAULT_API_BASE_URL = "https://graph.facebook.com/v21.0"
DEFAULT_REPLY_TEMPLATE = "counsellor_reply"
REQUIRED_SETTINGS = (
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
)
SIGNATURE_HEADER = "X-Hub-Signature-256"
UNSUPPORTED_MEDIA = "/unsupported_media"

# Meta's customer-service window, less a margin for clocks and delivery delays.
WINDOW_S = 24 * 3600
WINDOW_MARGIN_S = 300

# Meta's limits, in characters (Unicode code points) or items.
MAX_BODY = 1024
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_ROW_ID = 200
# The list's button label; without text, so it needs no translation.
LIST_LABEL = "☰"
ELLIPSIS = "…"

# Message types acknowledged without an answer: an answer to a reaction, to "this
# person changed their number" or to opening the chat would only be noise.
IGNORED_TYPES = frozenset({"reaction", "system", "request_welcome"})

# Template languages at Meta for our languages. Meta has no Pashto template language:
# Pashto speakers get the English template.
TEMPLATE_LANGUAGES = {
    "en": "en", "hu": "hu", "ar": "ar", "fa": "fa", "ur": "ur", "sq": "sq",
    "ru": "ru", "uk": "uk", "tr": "tr", "fr": "fr", "vi": "vi",
}
DEFAULT_TEMPLATE_LANGUAGE = "en"

# Graph API error codes with a meaning here.
REENGAGEMENT_REQUIRED = 131047  # free-form message outside the 24-hour window
TEMPLATE_TRANSLATION_MISSING = 132001

# A longer wait is not worth it: the message is held and goes out with the next one.
MAX_RETRY_AFTER_S = 10.0

_LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
_MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,256}$")


class MissingWhatsAppSettings(RasaException):
    """The channel is listed in the credentials but its settings are not complete."""


class InvalidPayload(ValueError):
    """The webhook body is not what Meta sends; the message says what is wrong."""


# -- settings --


@dataclass(frozen=True)
class WhatsAppSettings:
    """The channel's settings, from the environment only; the secrets are not shown."""

    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    phone_number_id: str
    api_base_url: str = DEFAULT_API_BASE_URL
    reply_template: str = DEFAULT_REPLY_TEMPLATE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WhatsAppSettings":
        missing = [name for name in REQUIRED_SETTINGS if not env.get(name, "").strip()]
        if missing:
            raise MissingWhatsAppSettings(
                "the WhatsApp channel cannot start: set "
                + ", ".join(missing)
                + " in the environment (see docs/whatsapp.md), or remove "
                "bot.channels.whatsapp.WhatsAppInput from the credentials"
            )
        return cls(
            access_token=env["WHATSAPP_ACCESS_TOKEN"].strip(),
            app_secret=env["WHATSAPP_APP_SECRET"].strip(),
            verify_token=env["WHATSAPP_VERIFY_TOKEN"].strip(),
            phone_number_id=env["WHATSAPP_PHONE_NUMBER_ID"].strip(),
            api_base_url=(env.get("WHATSAPP_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/"),
            reply_template=env.get("WHATSAPP_REPLY_TEMPLATE") or DEFAULT_REPLY_TEMPLATE,
        )


# -- what Meta sends --


def signature_ok(secret: str, body: bytes, header: Optional[str]) -> bool:
    """Whether `header` is "sha256=<hex HMAC-SHA256 of body with secret>"."""
    if not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8", "replace"))


def verify_challenge(settings: WhatsAppSettings, args: Mapping[str, str]) -> Optional[str]:
    """The challenge to echo if Meta's verify request is right, else None."""
    token = args.get("hub.verify_token") or ""
    challenge = args.get("hub.challenge")
    token_ok = hmac.compare_digest(
        token.encode("utf-8", "replace"), settings.verify_token.encode("utf-8", "replace")
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
    """A message object of Meta's webhook as an Inbound; InvalidPayload if malformed."""
    where = "message"
    message_id = _get(message, "id", str, where)
    if not _MESSAGE_ID.match(message_id):
        raise InvalidPayload("message.id is not a message id")
    try:
        wa_id = clean_sender(message.get("from"))
    except InvalidMessage as invalid:
        raise InvalidPayload("message.from is not a WhatsApp id") from invalid
    kind = _get(message, "type", str, where)
    at = _timestamp(message.get("timestamp"))
    common = {"message_id": message_id, "wa_id": wa_id, "at": at}
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
            messages += [parse_message(m) for m in _items(value, "messages", "value")]
            statuses += _items(value, "statuses", "value")
    return Webhook(messages, statuses)


def log_statuses(statuses: Sequence[Dict[str, Any]]) -> None:
    """Failed deliveries are worth a warning; the others are routine."""
    for status in statuses:
        if status.get("status") == "failed":
            errors = status.get("errors") if isinstance(status.get("errors"), list) else []
            codes = [e.get("code") for e in errors if isinstance(e, dict)]
            logger.warning("WhatsApp could not deliver a message: error %s", codes or "unknown")


# -- what we send --

GraphMessage = Dict[str, Any]


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def _cut(text: str, limit: int) -> int:
    """Where to end the first part of `text` (at most `limit` long): after a paragraph,
    a line, a sentence or a word, if one ends in the second half."""
    for separator in ("\n\n", "\n", ". ", " "):
        found = text.rfind(separator, limit // 2, limit)
        if found != -1:
            return found + (1 if separator == ". " else len(separator))
    return limit


def split_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> List[str]:
    """`text` in parts of at most `limit` characters, cut where a reader would."""
    parts = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def split_body(text: str) -> Tuple[List[str], str]:
    """Texts to send first, and the last part (at most MAX_BODY) to carry the buttons."""
    text = text.strip()
    if len(text) <= MAX_BODY:
        return [], text or ELLIPSIS
    start = len(text) - MAX_BODY
    cut = start
    for separator in ("\n\n", "\n", ". ", " "):
        found = text.find(separator, start)
        if found != -1 and found + len(separator) < len(text):
            cut = found + len(separator)
            break
    return split_text(text[:cut]), text[cut:].strip()


def text_message(body: str) -> GraphMessage:
    return {"type": "text", "text": {"body": body}}


Choice = Tuple[str, str]  # (payload, title) of a button


def _usable(buttons: Sequence[Mapping[str, Any]], id_limit: int) -> List[Choice]:
    """(payload, title) of the buttons WhatsApp can carry; the others are left out."""
    usable = []
    for button in buttons:
        payload = button.get("payload") if isinstance(button, Mapping) else None
        if not isinstance(payload, str) or not payload.strip() or len(payload) > id_limit:
            logger.warning("a button without a payload WhatsApp can carry was left out")
            continue
        title = button.get("title")
        title = " ".join(title.split()) if isinstance(title, str) else ""
        usable.append((payload, title or payload))
    return usable


def reply_buttons(body: str, choices: Sequence[Choice]) -> GraphMessage:
    return {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {
                        "type": "reply",
                        "reply": {"id": payload, "title": shorten(title, MAX_BUTTON_TITLE)},
                    }
                    for payload, title in choices
                ]
            },
        },
    }


def list_message(body: str, choices: Sequence[Choice]) -> GraphMessage:
    rows = []
    for payload, title in choices:
        row = {"id": payload, "title": shorten(title, MAX_ROW_TITLE)}
        if len(title) > MAX_ROW_TITLE:
            row["description"] = shorten(title, MAX_ROW_DESCRIPTION)
        rows.append(row)
    return {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {"button": LIST_LABEL, "sections": [{"rows": rows}]},
        },
    }


def _groups(choices: Sequence[Choice]) -> List[Sequence[Choice]]:
    """The choices in as few groups of at most MAX_LIST_ROWS as possible, of even size."""
    count = -(-len(choices) // MAX_LIST_ROWS)
    size = -(-len(choices) // count)
    return [choices[i : i + size] for i in range(0, len(choices), size)]


def render(text: Optional[str], buttons: Sequence[Mapping[str, Any]] = ()) -> List[GraphMessage]:
    """The Graph API messages (without the recipient) that show `text` with `buttons`.

    1-3 buttons are reply buttons (a list if their shortened titles would be the same:
    WhatsApp wants them different), 4-10 a list. More than ten become several lists of
    at most ten, of even size: the first carries the text, the next ones "(2/2)" and so
    on, so that every choice stays one tap away. A text too long to carry buttons (more
    than 1,024 characters) is sent first, and its last part carries them.
    """
    text = text or ""
    id_limit = MAX_BUTTON_ID if len(buttons) <= MAX_REPLY_BUTTONS else MAX_ROW_ID
    choices = _usable(buttons, id_limit)
    if not choices:
        return [text_message(part) for part in split_text(text)]
    first, body = split_body(text)
    messages = [text_message(part) for part in first]
    titles = {shorten(title, MAX_BUTTON_TITLE) for _, title in choices}
    if len(choices) <= MAX_REPLY_BUTTONS and len(titles) == len(choices):
        return messages + [reply_buttons(body, choices)]
    groups = _groups(choices)
    for index, group in enumerate(groups):
        messages.append(list_message(body if index == 0 else f"({index + 1}/{len(groups)})", group))
    return messages


def render_response(message: Mapping[str, Any]) -> List[GraphMessage]:
    """A Rasa bot message (text, buttons or quick replies, image) as Graph API messages."""
    buttons = message.get("buttons") or message.get("quick_replies") or ()
    rendered = render(message.get("text"), buttons) if message.get("text") or buttons else []
    image = message.get("image")
    if isinstance(image, str) and image:
        rendered.append({"type": "image", "image": {"link": image}})
    if message.get("custom") or message.get("attachment") or message.get("elements"):
        logger.warning("WhatsApp: custom JSON, attachments and elements are not sent")
    return rendered


def template_message(name: str, language: str) -> GraphMessage:
    return {"type": "template", "template": {"name": name, "language": {"code": language}}}


# -- the Graph API --


class GraphError(Exception):
    """The Graph API did not take a message."""

    def __init__(self, status: Optional[int], code: Optional[int] = None) -> None:
        super().__init__(f"Graph API answered {status}, error code {code}")
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Whether the same message may go through later (rate limit, outage, network)."""
        return self.status is None or self.status == 429 or self.status >= 500


class GraphClient:
    """Sends messages from our phone number. Its HTTP session opens on first use."""

    def __init__(
        self,
        settings: WhatsAppSettings,
        attempts: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 15.0,
    ) -> None:
        self.url = f"{settings.api_base_url}/{settings.phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {settings.access_token}"}
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: Optional[aiohttp.ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def _current_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self._headers)
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def send(self, to: str, message: GraphMessage) -> Dict[str, Any]:
        """POST one message to `to`; retries 429, 5xx and network failures."""
        body = {"messaging_product": "whatsapp", "to": to, **message}
        failure = GraphError(None)
        for attempt in range(self.attempts):
            retry_after = None
            try:
                async with self._current_session().post(self.url, json=body) as reply:
                    answer = await _json_or_empty(reply)
                    if reply.status < 300:
                        logger.debug("WhatsApp %s message sent to %s", message.get("type"), to)
                        return answer
                    failure = GraphError(reply.status, _error_code(answer))
                    retry_after = _seconds(reply.headers.get("Retry-After"))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as network:
                failure = GraphError(None)
                logger.debug("Graph API request failed: %s", type(network).__name__)
            if not failure.transient or attempt == self.attempts - 1:
                break
            delay = max(self.backoff_s * 2**attempt, min(retry_after or 0.0, MAX_RETRY_AFTER_S))
            logger.warning(
                "Graph API answered %s (error %s); trying again in %.1f s",
                failure.status or "nothing", failure.code, delay,
            )
            await asyncio.sleep(delay)
        raise failure


async def _json_or_empty(reply: aiohttp.ClientResponse) -> Dict[str, Any]:
    try:
        answer = await reply.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _error_code(answer: Mapping[str, Any]) -> Optional[int]:
    """The Graph API's error code: {"error": {"code": 131047, "message": ...}}."""
    details = answer.get("error")
    code = details.get("code") if isinstance(details, dict) else None
    return code if isinstance(code, int) else None


def _seconds(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value else None
    except ValueError:
        return None


# -- the output channel --

# One lock per person, so that held messages and answers leave in order.
_recipient_locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()


def _lock_for(recipient: str) -> asyncio.Lock:
    lock = _recipient_locks.get(recipient)
    if lock is None:
        lock = asyncio.Lock()
        _recipient_locks[recipient] = lock
    return lock


class WhatsAppOutput(OutputChannel):
    """Sends a conversation's messages to the person on WhatsApp, minding the 24-hour rule."""

    def __init__(
        self,
        client: GraphClient,
        settings: WhatsAppSettings,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.ledger = ledger
        self.clock = clock

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def window_open(self, recipient: str) -> bool:
        """Whether free-form messages may be sent: the person wrote in the last 24 hours."""
        last = self.ledger.last_wrote(CHANNEL, recipient)
        return last is not None and self.clock() - last < WINDOW_S - WINDOW_MARGIN_S

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        await self.deliver(recipient_id, [message])

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.deliver(recipient_id, [{"text": text}])

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.deliver(recipient_id, [{"text": text, "buttons": buttons}])

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.deliver(recipient_id, [{"image": image}])

    async def deliver(self, recipient: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Send what is held for `recipient`, then `messages`; or hold them all.

        Never raises for a delivery problem: what may go through later is held, what
        Meta refuses outright is logged and dropped.
        """
        queued = [graph for message in messages for graph in render_response(message)]
        async with _lock_for(recipient):
            if not self.window_open(recipient):
                if queued:
                    self._hold(recipient, queued)
                    await self._notify(recipient)
                return
            queued = [json.loads(m) for m in self.ledger.take_held(CHANNEL, recipient)] + queued
            for index, graph in enumerate(queued):
                try:
                    await self.client.send(recipient, graph)
                except GraphError as failure:
                    if failure.code == REENGAGEMENT_REQUIRED:
                        self._hold(recipient, queued[index:])
                        await self._notify(recipient)
                        return
                    if failure.transient:
                        logger.error(
                            "WhatsApp messages held after the Graph API failed (%s): "
                            "they go out when the person writes next", failure.status
                        )
                        self._hold(recipient, queued[index:])
                        return
                    logger.error(
                        "WhatsApp refused a %s message (HTTP %s, error %s): dropped",
                        graph.get("type"), failure.status, failure.code,
                    )

    def _hold(self, recipient: str, messages: Sequence[GraphMessage]) -> None:
        for graph in messages:
            self.ledger.hold(CHANNEL, recipient, json.dumps(graph, ensure_ascii=False))
        logger.info("%d WhatsApp message(s) held until the person writes", len(messages))

    async def _notify(self, recipient: str) -> None:
        """Send the reply template, once until the held messages are delivered."""
        if self.ledger.notified(CHANNEL, recipient):
            return
        language = TEMPLATE_LANGUAGES.get(
            self.ledger.language(CHANNEL, recipient) or "", DEFAULT_TEMPLATE_LANGUAGE
        )
        name = self.settings.reply_template
        try:
            try:
                await self.client.send(recipient, template_message(name, language))
            except GraphError as failure:
                if failure.code != TEMPLATE_TRANSLATION_MISSING:
                    raise
                if language == DEFAULT_TEMPLATE_LANGUAGE:
                    raise
                logger.warning("template %s has no %s translation: sent in English", name, language)
                await self.client.send(recipient, template_message(name, DEFAULT_TEMPLATE_LANGUAGE))
        except GraphError as failure:
            logger.error(
                "the WhatsApp reply template could not be sent (HTTP %s, error %s); "
                "the messages stay held", failure.status, failure.code,
            )
            return
        self.ledger.set_notified(CHANNEL, recipient)


# -- the input channel --


class WhatsAppInput(InputChannel):
    """WhatsApp Cloud API webhook; see the module docstring."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        if credentials:
            logger.warning(
                "WhatsApp settings in the credentials file are ignored: they are read "
                "from the environment only"
            )
        return cls(WhatsAppSettings.from_env(os.environ))

    def __init__(self, settings: WhatsAppSettings, ledger: Optional[Ledger] = None) -> None:
        self.settings = settings
        self.client = GraphClient(settings)
        self._ledger = ledger

    @property
    def ledger(self) -> Ledger:
        return self._ledger if self._ledger is not None else get_ledger()

    def get_output_channel(self) -> Optional[OutputChannel]:
        return WhatsAppOutput(self.client, self.settings, self.ledger)

    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        return None

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = Blueprint("whatsapp_webhook", __name__)

        @webhook.listener("after_server_stop")
        async def close_client(*_: Any) -> None:
            await self.client.close()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            args = {name: request.args.get(name) for name in request.args}
            challenge = verify_challenge(self.settings, args)
            if challenge is None:
                logger.warning("WhatsApp webhook verification refused")
                return error("verification failed", 403)
            return response.text(challenge)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.body or b""
            signature = request.headers.get(SIGNATURE_HEADER)
            if not signature_ok(self.settings.app_secret, body, signature):
                logger.warning("WhatsApp webhook refused: wrong or missing signature")
                return error("the signature is wrong or missing", 403)
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                return error("the body must be JSON", 400)
            try:
                webhook_body = parse_webhook(payload, self.settings.phone_number_id)
            except InvalidPayload as invalid:
                return error(f"not a WhatsApp webhook: {invalid}", 400)
            log_statuses(webhook_body.statuses)
            unrecorded = 0
            for inbound in webhook_body.messages:
                if not await self._receive(request, inbound, on_new_message):
                    unrecorded += 1
            if unrecorded:
                return error("the message could not be processed, please send it again", 503)
            return response.json({"status": "ok"})

        return webhook

    async def _receive(
        self,
        request: Request,
        inbound: Inbound,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> bool:
        """Handle one message once; True if it is recorded (now or before)."""
        if inbound.kind == IGNORED:
            return True
        ledger = self.ledger
        try:
            if not ledger.claim(CHANNEL, inbound.message_id):
                # Done before: acknowledge. Being handled right now: not yet recorded.
                return ledger.state(CHANNEL, inbound.message_id) == DONE
        except Exception as failure:  # noqa: BLE001 - the ledger is unusable: Meta retries
            logger.error("the channel ledger failed: %s", type(failure).__name__)
            return False
        output = WhatsAppOutput(self.client, self.settings, ledger)
        collector = CollectingOutputChannel()
        try:
            ledger.wrote(CHANNEL, inbound.wa_id, at=_sent_at(inbound))
            # The person's message reopens the window: what was held goes first.
            await _deliver_safely(output, inbound.wa_id, [])
            await self._handle(request, inbound, collector, on_new_message)
            ledger.done(CHANNEL, inbound.message_id)
        except Exception as failure:  # noqa: BLE001 - any failure: Meta sends it again
            # If even the release fails, the claim expires (CLAIM_TIMEOUT_S).
            with contextlib.suppress(Exception):
                ledger.release(CHANNEL, inbound.message_id)
            # The exception's text may quote the message or the sender: only its type
            # is logged above DEBUG.
            logger.error("WhatsApp message could not be processed: %s", type(failure).__name__)
            logger.debug("WhatsApp message failure", exc_info=True)
            return False
        await _deliver_safely(output, inbound.wa_id, collector.messages)
        return True

    async def _handle(
        self,
        request: Request,
        inbound: Inbound,
        collector: CollectingOutputChannel,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> None:
        if inbound.kind == MEDIA:
            text = UNSUPPORTED_MEDIA
        else:
            try:
                text = clean_text(inbound.text)
            except InvalidMessage:
                logger.info("WhatsApp message without readable text ignored")
                return
            disarmed = await disarm(request.app, inbound.wa_id, text)
            if disarmed != text and inbound.kind == CHOICE:
                # A button of an earlier message: read what it said, as if typed.
                disarmed = _title_or(inbound.title, disarmed)
            text = disarmed
        await on_new_message(
            UserMessage(text, collector, inbound.wa_id, input_channel=CHANNEL, metadata={})
        )
        await self._remember_language(request, inbound.wa_id)

    async def _remember_language(self, request: Request, wa_id: str) -> None:
        """Keep the conversation's language for a template sent later."""
        try:
            tracker = await request.app.ctx.agent.tracker_store.retrieve(wa_id)
            language = tracker.get_slot("language") if tracker else None
            if isinstance(language, str) and _LANGUAGE_CODE.match(language):
                self.ledger.set_language(CHANNEL, wa_id, language)
        except Exception:  # noqa: BLE001 - the answer stands; the template falls back to English
            logger.warning("the language of a WhatsApp conversation could not be kept")
            logger.debug("language lookup failure", exc_info=True)


async def _deliver_safely(
    output: WhatsAppOutput, recipient: str, messages: Sequence[Mapping[str, Any]]
) -> None:
    """Deliver; a failure is logged, never the person's message's undoing."""
    try:
        await output.deliver(recipient, messages)
    except Exception as failure:  # noqa: BLE001 - the message itself is recorded
        logger.error("WhatsApp replies could not be delivered: %s", type(failure).__name__)
        logger.debug("WhatsApp delivery failure", exc_info=True)


def _title_or(title: Optional[str], fallback: str) -> str:
    try:
        return clean_text(title)
    except InvalidMessage:
        return fallback


def _sent_at(inbound: Inbound) -> Optional[float]:
    """When the person wrote: Meta's timestamp, unless it is in the future."""
    now = time.time()
    return min(inbound.at, now) if inbound.at else now
