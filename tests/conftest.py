"""Shared helpers: rasa-sdk trackers as the action server receives them."""
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher


def user_event(intent: str, text: str = "", ranking: Optional[List[Dict[str, Any]]] = None):
    parse = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text}
    parse["intent_ranking"] = ranking or [parse["intent"]]
    return {"event": "user", "text": text, "parse_data": parse}


def make_tracker(
    intent: str = "greet",
    slots: Optional[Dict[str, Any]] = None,
    events: Optional[List[Dict[str, Any]]] = None,
    active_loop: Optional[str] = None,
    entities: Optional[List[Dict[str, Any]]] = None,
    ranking: Optional[List[Dict[str, Any]]] = None,
) -> Tracker:
    latest = user_event(intent, ranking=ranking)["parse_data"]
    latest["entities"] = entities or []
    return Tracker(
        sender_id="test-sender",
        slots={"language": "en", **(slots or {})},
        latest_message=latest,
        events=events if events is not None else [user_event(intent, ranking=ranking)],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()


def sent(dispatcher: CollectingDispatcher) -> List[Dict[str, Any]]:
    """What the dispatcher sent, as (text, buttons) pairs."""
    return [(m["text"], m["buttons"]) for m in dispatcher.messages]


@pytest.fixture
def content_dir(tmp_path, monkeypatch):
    """A private copy of content/ that a test may edit; the actions read it."""
    import shutil
    from pathlib import Path

    from actions.content import get_content

    folder = tmp_path / "content"
    shutil.copytree(Path(__file__).resolve().parent.parent / "content", folder)
    monkeypatch.setenv("AVRR_CONTENT_DIR", str(folder))
    get_content.cache_clear()
    yield folder
    get_content.cache_clear()


@pytest.fixture(autouse=True)
def private_stores(tmp_path, monkeypatch):
    """The outbox and the channel ledger in a temporary folder; no desk listening."""
    import actions.outbox

    monkeypatch.setenv("AVRR_OUTBOX_DB", str(tmp_path / "outbox.db"))
    monkeypatch.setenv("AVRR_CHANNEL_DB", str(tmp_path / "channels.db"))
    monkeypatch.setenv("DESK_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DESK_API_TOKEN", "test-token-0123456789")
    monkeypatch.setattr(actions.outbox, "_outbox", None)
