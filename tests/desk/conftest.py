"""The desk over real HTTP on loopback (aiohttp's test server), on SQLite and PostgreSQL."""
from typing import Any, Dict

import pytest
from aiohttp.test_utils import TestClient, TestServer

from avrr.settings import DeskSettings
from desk.app import create_app
from desk.store import Store

TOKEN = "unit-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "a-good-long-password"


def new_ticket(
    key: str = "key-00000001", conversation: str = "web-abc", **fields: Any
) -> Dict[str, Any]:
    body = {
        "idempotency_key": key,
        "conversation_id": conversation,
        "channel": "socketio",
        "language": "ar",
        "topic": "request_human",
        "urgency": "normal",
        "consent": {"at": "2026-11-24T08:00:00Z", "language": "ar"},
        "transcript": [
            {"sender": "person", "text": "أريد التحدث مع مستشار", "at": "2026-11-24T07:59:00Z"},
            {"sender": "assistant", "text": "هل توافق؟", "at": "2026-11-24T07:59:01Z"},
        ],
    }
    body.update(fields)
    return body


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def client(request, tmp_path):
    """The desk on SQLite (the embedded default) and on PostgreSQL (DESK_DATABASE_URL)."""
    settings = DeskSettings(
        api_token=TOKEN,
        data_dir=tmp_path,
        rasa_url="http://127.0.0.1:9",  # nothing listens: replies stay queued
        action_server_url="http://127.0.0.1:9/webhook",
        action_server_token="action-server-token-0123456789",
        desk_database_url=(
            request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
        ),
    )
    store = Store(settings.database)
    store.add_counsellor("amina", PASSWORD, ["ar", "fa"])
    async with TestClient(TestServer(create_app(settings, store))) as test_client:
        yield test_client
