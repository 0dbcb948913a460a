"""What a person saw of their conversation, from the tracker's events. Pure, no Rasa imports.

Used for the web widget's history after a reload, and for the transcript a counsellor
sees once the person has agreed to share it.
"""

from typing import Any, Dict, Iterable, List

from avrr.vocabulary import Metadata

# Rasa marks intents triggered through its HTTP API (the desk's hand-back) with this.
EXTERNAL_PREFIX = "EXTERNAL: "
HISTORY_LIMIT = 200


def history(
    events: Iterable[Dict[str, Any]], limit: int = HISTORY_LIMIT, annotate: bool = False
) -> List[Dict[str, Any]]:
    """What the person saw in the conversation: their messages and the replies.

    A button press shows as the button's title, as it did when it was pressed. `at` is
    the event's Unix time. With `annotate` (for a counsellor), each message of the person
    has the `intent` the assistant understood and its `confidence`, and each reply the
    `content` it was written from, when known.
    """
    shown: List[Dict[str, Any]] = []
    titles: Dict[str, str] = {}
    for event in events:
        kind = event.get("event")
        if kind == "user":
            text = event.get("text") or ""
            if text.startswith(EXTERNAL_PREFIX):
                continue
            line = {"sender": "user", "text": titles.get(text, text), "at": event.get("timestamp")}
            if annotate:
                intent = (event.get("parse_data") or {}).get("intent") or {}
                line.update(intent=intent.get("name"), confidence=intent.get("confidence"))
            shown.append(line)
            titles = {}
        elif kind == "bot":
            buttons = (event.get("data") or {}).get("buttons") or []
            titles.update({b.get("payload"): b.get("title") for b in buttons})
            message: Dict[str, Any] = {
                "sender": "bot",
                "text": event.get("text") or "",
                "at": event.get("timestamp"),
            }
            source = (event.get("metadata") or {}).get(Metadata.CONTENT_KEY)
            if annotate and isinstance(source, dict):
                message["content"] = source
            if buttons:
                message["quick_replies"] = [
                    {"title": b.get("title"), "payload": b.get("payload")} for b in buttons
                ]
            shown.append(message)
    return shown[-limit:]
