"""How a Rasa bot message looks on WhatsApp: Graph API message objects. Pure.

Text in parts of at most 4,096 characters; 1-3 buttons as reply buttons, 4-10 as a list,
more as several lists of at most 10, every choice one tap away; the reply template.
"""
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from bot.channels.whatsapp.payload import ELLIPSIS
from bot.text import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

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
LIST_LABEL = "\u2630"

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
