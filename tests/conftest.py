"""Shared helpers: rasa-sdk trackers as the action server receives them; every store in a
temporary folder; PostgreSQL and Redis for the integration tests (tests/postgres.py,
tests/redis.py)."""
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from tests.fakes.telegram_api import FakeTelegramApi

pytest_plugins = ["tests.postgres", "tests.redis"]


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

    folder = tmp_path / "content"
    shutil.copytree(Path(__file__).resolve().parent.parent / "content", folder)
    monkeypatch.setenv("AVRR_CONTENT_DIR", str(folder))
    forget_settings()
    yield folder
    forget_settings()


TEST_TOKENS = {
    "DESK_API_TOKEN": "test-token-0123456789",
    "ACTION_SERVER_TOKEN": "action-test-token-0123456789",
    "RASA_API_TOKEN": "rasa-test-token-0123456789",
}


def forget_settings():
    """Drop every process-wide object made from the settings (they are made on first use)."""
    import actions.content
    import actions.outbox
    import actions.runtime
    from bot import runtime

    actions.runtime.settings.cache_clear()
    actions.outbox.get_outbox.cache_clear()
    actions.content.get_content.cache_clear()
    runtime.reset()


@pytest.fixture(autouse=True)
def private_stores(tmp_path, monkeypatch):
    """Every store in a temporary data folder; no desk listening; test secrets."""
    monkeypatch.setenv("AVRR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DESK_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RASA_URL", "http://127.0.0.1:9")
    for name, value in TEST_TOKENS.items():
        monkeypatch.setenv(name, value)
    for name in ("AVRR_DATABASE_URL", "AVRR_CONTENT_DIR", "REST_CHANNEL_TOKEN",
                 "SOCKET_SESSION_SECRET", "WIDGET_ORIGINS", "AVRR_REDIS_URL", "AVRR_LOCK_STORE"):
        monkeypatch.delenv(name, raising=False)
    forget_settings()
    yield
    forget_settings()


@pytest.fixture(scope="session")
def telegram_api():
    """The Telegram Bot API, faked on loopback, for the suites that start real servers."""
    fake = FakeTelegramApi()
    fake.root = fake.start()
    yield fake
    fake.stop()
