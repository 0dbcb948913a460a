import contextlib
import uuid
from types import SimpleNamespace

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.serve import validate_action_result


def test_action_results_are_checked_as_rasa_checks_them():
    action = RemoteAction.__new__(RemoteAction)
    valid = {
        "events": [{"event": "slot", "name": "language", "value": "fa"}],
        "responses": [{"text": "hi", "buttons": []}],
    }
    assert validate_action_result(action, valid) is True
    assert RemoteAction._validate_action_result(action, valid) is True

    invalid = {"events": [{"event": "no_such_event"}], "responses": []}
    with pytest.raises(ValidationError):
        RemoteAction._validate_action_result(action, invalid)
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        validate_action_result(action, invalid)


def test_logistic_regression_loads_with_fortran_ordered_coefficients(tmp_path):
    import numpy as np
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.classifiers.logistic_regression_classifier import (
        LogisticRegressionClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    from bot.serve import load_logistic_regression

    storage = LocalModelStorage(tmp_path)
    resource = Resource("lr")
    context = ExecutionContext(graph_schema=None, model_id="m")
    trained = LogisticRegressionClassifier.create({}, storage, resource, context)
    trained.clf = LogisticRegression().fit(np.eye(3), ["a", "b", "c"])
    trained.persist()

    loaded = load_logistic_regression(
        LogisticRegressionClassifier, {}, storage, resource, context
    )

    assert loaded.clf.coef_.flags["F_CONTIGUOUS"]
    assert np.array_equal(loaded.clf.coef_, trained.clf.coef_)


def test_a_reply_not_confirmed_yet_is_a_503_to_retry_and_other_failures_stay_500(
    monkeypatch,
):
    """As `mend_rasa` sets it (tests/e2e/test_telegram.py sees it through Rasa's API)."""
    from rasa.server import ErrorResponse

    from bot.channels.base import NotYetSent, Undeliverable
    from bot.serve import retryable_error

    monkeypatch.setattr(ErrorResponse, "__init__", retryable_error)
    try:
        raise NotYetSent("telegram message queued, not yet sent")
    except NotYetSent:
        waiting = ErrorResponse(500, "ConversationError", "An unexpected error")
    assert (waiting.status, waiting.error_info["reason"]) == (503, "NotYetSent")
    try:
        raise Undeliverable("telegram refused the message for good")
    except Undeliverable:
        never = ErrorResponse(500, "ConversationError", "An unexpected error")
    assert (never.status, never.error_info["reason"]) == (410, "Undeliverable")
    try:
        raise ValueError("something else")
    except ValueError:
        broken = ErrorResponse(500, "ConversationError", "An unexpected error")
    assert (broken.status, broken.error_info["reason"]) == (500, "ConversationError")


def test_a_refused_request_is_logged_at_info_by_its_reason_a_fault_stays_an_error(
    monkeypatch, caplog,
):
    """Rasa logs each error answer's message at ERROR: every tokenless call was one."""
    import logging

    import rasa.server
    from rasa.server import ErrorResponse

    from bot.serve import QUIET_REFUSALS, retryable_error

    monkeypatch.setattr(ErrorResponse, "__init__", retryable_error)
    rasa.server.logger.addFilter(QUIET_REFUSALS)
    caplog.set_level(logging.INFO)
    try:
        refused = ErrorResponse(401, "NotAuthenticated", "User is not authenticated.")
        missing = ErrorResponse(404, "NotFound", "Could not find 'sender 36201234567'")
        broken = ErrorResponse(500, "ConversationError", "An unexpected error occurred.")
    finally:
        rasa.server.logger.removeFilter(QUIET_REFUSALS)

    assert (refused.status, refused.error_info["message"]) == (
        401, "User is not authenticated.")
    assert missing.status == 404 and broken.status == 500
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "the HTTP API refused a request: NotAuthenticated (401)"),
        ("INFO", "the HTTP API refused a request: NotFound (404)"),
        ("ERROR", "the HTTP API failed a request: ConversationError (500, no exception)"),
    ]
    assert QUIET_REFUSALS.refusing == set()


@contextlib.asynccontextmanager
async def replica(monkeypatch, agent):
    """A Sanic app with `/ready` and `agent` as Rasa's, reached over ASGI."""
    from sanic import Sanic

    from bot.serve import add_readiness
    from tests.bot.channels.harness import served

    monkeypatch.setattr(Sanic, "test_mode", True)
    app = Sanic(f"ready_test_{uuid.uuid4().hex[:12]}", configure_logging=False)
    if agent is not None:
        app.ctx.agent = agent
    add_readiness(app)
    async with served(app) as client:
        yield client


def loaded_agent(tmp_path, ready=True):
    from avrr.db import engine

    store = SimpleNamespace(engine=engine(f"sqlite:///{tmp_path / 'conversations.db'}"))
    return SimpleNamespace(is_ready=lambda: ready, tracker_store=store)


async def test_a_replica_is_ready_once_its_model_is_loaded_and_its_stores_answer(
    monkeypatch, tmp_path
):
    async with replica(monkeypatch, loaded_agent(tmp_path)) as client:
        ready = await client.get("/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

    async with replica(monkeypatch, None) as client:
        starting = await client.get("/ready")
    assert (starting.status_code, starting.json()) == (
        503, {"status": "unavailable", "failing": ["model"]})


async def test_a_replica_whose_database_or_redis_is_down_is_not_ready(monkeypatch, tmp_path):
    from avrr.db import engine

    # Nothing listens on port 9: PostgreSQL and Redis are refused at once.
    down = SimpleNamespace(engine=engine("postgresql://avrr:secret@127.0.0.1:9/avrr"))
    monkeypatch.setenv("AVRR_REDIS_URL", "redis://:secret@127.0.0.1:9/0")
    monkeypatch.setenv("SOCKET_SESSION_SECRET", "socket-secret-0123456789")

    async with replica(monkeypatch, SimpleNamespace(is_ready=lambda: True,
                                                    tracker_store=down)) as client:
        answer = await client.get("/ready")

    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "failing": ["tracker store", "redis"]}
    assert "secret" not in answer.text


@pytest.mark.integration
async def test_a_replica_with_its_redis_up_is_ready(monkeypatch, tmp_path, redis_url):
    monkeypatch.setenv("AVRR_REDIS_URL", redis_url)
    monkeypatch.setenv("SOCKET_SESSION_SECRET", "socket-secret-0123456789")

    async with replica(monkeypatch, loaded_agent(tmp_path)) as client:
        answer = await client.get("/ready")

    assert (answer.status_code, answer.json()) == (200, {"status": "ready"})


def test_the_lock_store_is_in_memory_without_redis_and_endpoints_yml_can_name_another():
    from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
    from rasa.utils.endpoints import EndpointConfig

    from bot.serve import configured_lock_store

    assert isinstance(configured_lock_store(None), InMemoryLockStore)  # no AVRR_REDIS_URL
    named = configured_lock_store(EndpointConfig(url="127.0.0.1", type="redis", port=9))
    assert type(named) is RedisLockStore


@pytest.mark.integration
def test_with_redis_the_rasa_server_takes_the_atomic_lock_store_on_it(monkeypatch, redis_url):
    from bot.lock_store import AtomicRedisLockStore
    from bot.serve import configured_lock_store
    from tests.conftest import forget_settings

    monkeypatch.setenv("AVRR_REDIS_URL", redis_url)
    monkeypatch.setenv("SOCKET_SESSION_SECRET", "socket-secret-0123456789")
    store = configured_lock_store(None)
    assert isinstance(store, AtomicRedisLockStore)
    ticket = store.issue_ticket("web-0123")
    assert [t.number for t in store.get_lock("web-0123").tickets] == [ticket]

    monkeypatch.setenv("AVRR_LOCK_STORE", "memory")  # the cluster's control case
    forget_settings()
    assert type(configured_lock_store(None)).__name__ == "InMemoryLockStore"


@pytest.mark.filterwarnings("ignore:You have set a listener:UserWarning")
async def test_a_message_that_reaches_no_model_is_a_503_to_retry_not_lost(
    monkeypatch, tmp_path, caplog
):
    """Rasa's agent without a model returned as if it had handled the message (a 200)."""
    import copy
    import logging

    from rasa.core.agent import Agent

    from avrr.settings import TelegramSettings
    from bot.channels.records import HELD, QUEUED, Claim
    from bot.channels.rest import GuardedRestInput
    from bot.channels.telegram.channel import CHANNEL, TelegramInput
    from bot.serve import handle_message_when_ready
    from tests.bot.channels.harness import Rasa, mounted, new_records
    from tests.bot.channels.telegram.updates import TEXT_UPDATE
    from tests.fakes.telegram_api import FakeTelegramApi

    monkeypatch.setattr(Agent, "handle_message", handle_message_when_ready)
    unready = Rasa()
    unready.handle = Agent().handle_message
    caplog.set_level(logging.INFO)

    async with mounted(GuardedRestInput(token=None), unready, monkeypatch) as client:
        rest = await client.post("/webhooks/rest/webhook",
                                 json={"sender": "u2", "message": "help"})
    assert (rest.status_code, rest.json()) == (
        503, {"error": "the message could not be processed, please send it again"})

    records = new_records(tmp_path)
    secret, api = "telegram-test-secret", FakeTelegramApi(token="123456:TEST-TOKEN")
    api.start()
    try:
        settings = TelegramSettings(bot_token=api.token, webhook_secret=secret,
                                    api_base_url=api.url)
        async with mounted(TelegramInput(settings, records=records), unready,
                           monkeypatch) as client:
            telegram = await client.post(
                "/webhooks/telegram/webhook", json=copy.deepcopy(TEXT_UPDATE),
                headers={"X-Telegram-Bot-Api-Secret-Token": secret})
    finally:
        api.stop()
    assert (telegram.status_code, telegram.json()) == (
        503, {"error": "the update could not be processed, please deliver it again"})
    assert records.pending(CHANNEL) == {QUEUED: 0, HELD: 0}
    assert records.claim(CHANNEL, str(TEXT_UPDATE["update_id"])) is Claim.NEW  # released

    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records
            if r.levelno >= logging.WARNING] == [
        ("bot.channels.rest", "ERROR", "REST message could not be processed: AgentNotReady"),
        ("bot.channels.base", "ERROR", "telegram delivery could not be handled: AgentNotReady"),
    ]


def test_the_rasa_server_logs_no_conversation_id_of_its_own(caplog):
    import logging

    from bot.serve import quiet_rasa_logs

    quiet_rasa_logs()
    quiet_rasa_logs()  # once is enough, twice changes nothing
    with caplog.at_level(logging.WARNING, logger="rasa.core.processor"):
        logging.getLogger("rasa.core.processor").warning(
            "Circuit breaker tripped. Stopped predicting more actions for sender "
            "'whatsapp:36301234567'.")

    assert caplog.messages == [
        "Circuit breaker tripped. Stopped predicting more actions for a sender."]


def test_telegram_s_retry_after_is_no_error_with_a_traceback_in_the_rasa_server(caplog):
    """python-telegram-bot's rate limiter logs a 429 at ERROR, with its traceback; the
    deliverer waits as asked and says so at WARNING."""
    import logging

    from telegram.error import RetryAfter

    from bot.serve import quiet_rasa_logs

    quiet_rasa_logs()
    with caplog.at_level(logging.INFO, logger="telegram.ext.AIORateLimiter"):
        try:
            raise RetryAfter(12)
        except RetryAfter:
            logging.getLogger("telegram.ext.AIORateLimiter").exception(
                "Rate limit hit after maximum of %d retries", 0)

    [record] = caplog.records
    assert (record.levelname, record.getMessage(), record.exc_info) == (
        "INFO", "Rate limit hit after maximum of 0 retries", None)


class Trackers:
    """Rasa's tracker store, failing."""

    async def retrieve(self, conversation_id):
        raise OSError("database is locked")


@contextlib.asynccontextmanager
async def guarded(monkeypatch, trackers):
    """A Sanic app with Rasa's write route and our guard in front, reached over ASGI."""
    from sanic import Sanic, response

    from bot import runtime
    from bot.serve import guard_app
    from tests.bot.channels.harness import served

    monkeypatch.setattr(Sanic, "test_mode", True)
    runtime.reset()
    app = Sanic(f"guard_test_{uuid.uuid4().hex[:12]}", configure_logging=False)
    app.ctx.agent = SimpleNamespace(tracker_store=trackers)

    @app.post("/conversations/<conversation_id:path>/execute")
    async def execute(request, conversation_id):
        return response.json({"ran_in": conversation_id})

    guard_app(app)
    async with served(app) as client:
        yield client


async def test_the_api_guard_answers_a_fault_of_the_tracker_store_with_a_503_naming_nobody(
        monkeypatch, caplog):
    import logging

    token = {"token": "rasa-test-token-0123456789"}
    caplog.set_level(logging.INFO)
    async with guarded(monkeypatch, Trackers()) as client:
        down = await client.post("/conversations/whatsapp%3A36301234567/execute",
                                  params=token, json={"name": "action_relay_failed"})
    assert (down.status_code, down.headers["Retry-After"], down.json()) == (
        503, "5", {"error": "the conversation store is not available"})
    server = [r for r in caplog.records if r.name.startswith("bot.")]
    assert ("ERROR", "a conversation could not be read: OSError") in [
        (r.levelname, r.getMessage()) for r in server]
    assert not any("36301234567" in r.getMessage() for r in server)
