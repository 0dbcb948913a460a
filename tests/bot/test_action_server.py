"""The action server's own routes over ASGI: liveness, readiness and the outbox's gauges."""
import contextlib
import time

from prometheus_client.parser import text_string_to_metric_families
from sanic import Sanic

from actions.outbox import dead_letters, get_outbox
from actions.runtime import settings
from bot.action_server import create_app
from tests.bot.channels.harness import served
from tests.conftest import TEST_TOKENS

BEARER = {"Authorization": f"Bearer {TEST_TOKENS['ACTION_SERVER_TOKEN']}"}


@contextlib.asynccontextmanager
async def action_server(monkeypatch):
    monkeypatch.setattr(Sanic, "test_mode", True)  # several apps in one process
    async with served(create_app(settings()), "http://actions") as client:
        yield client


def bury(key: str) -> None:
    """A request the desk refused for good, as the outbox leaves it."""
    with get_outbox().engine.begin() as db:
        db.execute(dead_letters.insert().values(
            key=key, conversation_id=None, target="desk", method="POST", path="/api/tickets",
            body=None, reason="refused (400)", attempts=1, created_at=time.time(),
            died_at=time.time()))


async def test_prometheus_reads_the_outbox_depth_and_its_dead_letters(monkeypatch):
    box = get_outbox()
    box.put("ticket-1", "web-a", "POST", "/api/tickets", {"n": 1})
    box.put("inbound-1", "web-a", "POST", "/api/inbound", {"n": 2})
    box.put("ticket-2", "web-b", "POST", "/api/tickets", {"n": 3})
    bury("ticket-0")

    async with action_server(monkeypatch) as client:
        answer = await client.get("/metrics", headers=BEARER)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert answer.text == (
        "# HELP avrr_outbox_pending Requests to the desk not yet delivered.\n"
        "# TYPE avrr_outbox_pending gauge\n"
        "avrr_outbox_pending 3.0\n"
        "# HELP avrr_outbox_dead Requests to the desk that failed for good.\n"
        "# TYPE avrr_outbox_dead gauge\n"
        "avrr_outbox_dead 1.0\n"
    )
    gauges = {sample.name: sample.value
              for family in text_string_to_metric_families(answer.text)
              for sample in family.samples}
    assert gauges == {"avrr_outbox_pending": 3, "avrr_outbox_dead": 1}


async def test_the_gauges_need_the_token_and_liveness_and_readiness_do_not(monkeypatch):
    async with action_server(monkeypatch) as client:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
        health = await client.get("/health")
        ready = await client.get("/ready")

    assert (refused.status_code, wrong.status_code) == (401, 401)
    assert refused.json() == {"error": "Authorization: Bearer <ACTION_SERVER_TOKEN> is required"}
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_it_is_alive_but_not_ready_while_its_database_does_not_answer(monkeypatch):
    # Nothing listens on port 9: PostgreSQL refuses at once.
    monkeypatch.setenv("AVRR_DATABASE_URL", "postgresql://avrr:secret@127.0.0.1:9/avrr")

    async with action_server(monkeypatch) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")

    assert health.status_code == 200
    assert (ready.status_code, ready.json()) == (
        503, {"status": "unavailable", "failing": ["database"]})
    assert "secret" not in ready.text
