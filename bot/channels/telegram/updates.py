"""What a Telegram update asks of the assistant, and how a reply looks. Pure: no I/O.

Only private chats are served: in a group, several people would share one conversation.
"/start", and anything that is not text (sticker, photo, voice, location, file...),
become commands of ours; typed text stays the person's (the channel disarms it).
"""
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from telegram import Chat, InlineKeyboardButton, InlineKeyboardMarkup, Update, User

from avrr.vocabulary import LANGUAGE_MENU_COMMAND, UNSUPPORTED_MEDIA_COMMAND
from bot.channels.base import language_hint

logger = logging.getLogger(__name__)

CALLBACK_DATA_MAX_BYTES = 64
MESSAGE_MAX_CHARS = 4096
_START = re.compile(r"^/start(@\w+)?(\s|$)")
MEDIA = (
    "sticker", "photo", "voice", "audio", "video", "video_note",
    "location", "document", "contact", "animation",
)


@dataclass(frozen=True)
class Inbound:
    """What one update asks of the assistant."""

    chat_id: str
    text: str
    metadata: Dict[str, str] = field(default_factory=dict)
    ours: bool = False  # a command this channel made, not text the person typed
    callback_query_id: Optional[str] = None


def hint_of(user: Optional[User]) -> Dict[str, str]:
    """The person's Telegram language, as a hint ("pt-br" -> "pt")."""
    return language_hint(user.language_code if user else None)


def inbound(update: Update) -> Optional[Inbound]:
    """The message an update brings, or None for updates the assistant ignores."""
    query = update.callback_query
    if query is not None:
        chat = query.message.chat if query.message else None
        if chat is None or chat.type != Chat.PRIVATE:
            return None
        data = query.data if isinstance(query.data, str) else ""
        return Inbound(str(chat.id), data, hint_of(query.from_user), callback_query_id=query.id)
    message = update.message  # not edited messages, channel posts, polls...
    if message is None or message.chat.type != Chat.PRIVATE:
        return None
    chat_id, hint = str(message.chat.id), hint_of(message.from_user)
    if message.text is not None and not isinstance(message.text, str):  # not Telegram's
        return Inbound(chat_id, UNSUPPORTED_MEDIA_COMMAND, hint, ours=True)
    if message.text is not None:
        if _START.match(message.text):
            return Inbound(chat_id, LANGUAGE_MENU_COMMAND, hint, ours=True)
        return Inbound(chat_id, message.text, hint)
    if any(getattr(message, kind) for kind in MEDIA):
        return Inbound(chat_id, UNSUPPORTED_MEDIA_COMMAND, hint, ours=True)
    return None


def inline_keyboard(buttons: List[Dict[str, Any]]) -> Optional[InlineKeyboardMarkup]:
    """One button per row; the payload is the callback data, which Telegram caps at 64 bytes."""
    rows = []
    for button in buttons:
        title, payload = str(button.get("title") or ""), str(button.get("payload") or "")
        if not title or not payload or len(payload.encode()) > CALLBACK_DATA_MAX_BYTES:
            logger.debug("Telegram button left out: empty or over 64 bytes: %r", payload)
            continue
        rows.append([InlineKeyboardButton(title, callback_data=payload)])
    return InlineKeyboardMarkup(rows) if rows else None


def render(message: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A Rasa bot message as the sendMessage payloads that show it.

    Text over 4,096 characters is split; the buttons go with the last part.
    """
    text = str(message.get("text") or "").strip()
    if not text:
        return []
    buttons = message.get("buttons") or message.get("quick_replies") or []
    markup = inline_keyboard(buttons) if buttons else None
    parts = [text[i : i + MESSAGE_MAX_CHARS] for i in range(0, len(text), MESSAGE_MAX_CHARS)]
    payloads: List[Dict[str, Any]] = [{"text": part} for part in parts]
    if markup is not None:
        payloads[-1]["reply_markup"] = markup.to_dict()
    return payloads
