"""`python -m bot.serve run ...`: Rasa's command line, with its flaws mended for us.

1. Rasa wraps every tracker store in a FailSafeTrackerStore: when the database fails,
   it logs, keeps the conversation in memory and answers as if all were well, so what
   the person wrote is lost at the next restart. Here the configured store is used as it
   is, an in-memory one is refused, and a storage error fails the request (the channel
   answers 503, and the client sends again).
2. Rasa records an action as executed even when the action server could not run it
   (the person's relayed message, or their deletion request, silently vanishes). Here
   the failure fails the whole message: nothing of it is recorded, the channel answers
   503, and the platform or the widget sends it again.
3. Rasa checks each action server response with `jsonschema.validate`, which first
   validates the schema itself against its meta-schema, on every call: measured here
   (py-spy, bench/) at 45% of the server's CPU. The same check runs with a validator
   built once.
4. LogisticRegressionClassifier computes `X @ coef.T` with X sparse: scipy copies the
   transposed coefficients (29 x 270,000 here) to make them contiguous, for every
   message: 23 ms of a 38 ms message. Stored in Fortran order after loading, the
   transposed matrix is contiguous already (0.06 ms), with the same results.
5. The HTTP API is never open: `run` refuses to start without RASA_API_TOKEN, which is
   accepted as `?token=` and as the secret of a JWT in the Authorization header (what
   the desk and the action server send). The token is given to Rasa inside this
   process, so it never shows in the process list.
6. Every request body is limited (`MAX_BODY_BYTES`, 413 before it is read), and the
   HTTP API cannot create a conversation out of nothing: a counsellor's reply racing a
   deletion gets a 404 instead of a new, orphan conversation.
7. Rasa's HTTP API turns every failure of a request into a 500. A counsellor's reply
   that the channel has queued but the platform has not confirmed yet (NotYetSent) is a
   503 here: the desk keeps it and sends it again, and a monitoring probe sees a
   failure to retry, not an error. One the platform refused for good (Undeliverable: the
   person blocked the assistant, say) is a 410: the desk marks it undeliverable.
8. Rasa's Redis lock store lets two replicas take the same ticket (RasaHQ/rasa#11256):
   with AVRR_REDIS_URL set, the lock store is bot.lock_store's, whose changes are atomic
   on that Redis; unset (or AVRR_LOCK_STORE=memory), Rasa's in-memory one. A `lock_store`
   in endpoints.yml still overrides both, as Rasa documents it.
9. `GET /ready` (no token) answers 200 once the model is loaded and the tracker store,
   the channels' records and Redis (when AVRR_REDIS_URL is set) answer, 503 naming what
   does not otherwise: a container's health check, or a load balancer's, reads it.
10. A Content-Length that is not a number of bytes is refused (bot/sanic_http.py): a
    negative one made Sanic read for ever, at full CPU, from one request without a token.
11. Without a model loaded (at start-up, or a model that failed to load), Rasa's agent
    returns from handling a message as if it had handled it: every channel answered 200
    and the message was lost. Here it raises AgentNotReady, so the channel answers 503
    (the widget gets `message_failed`) and the message is sent again.
"""
import asyncio
import hmac
import logging
import re
import sys
from functools import lru_cache
from typing import Any, Dict, List, Optional

import jwt
import numpy as np
import rasa.core.run
import rasa.server
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import UserMessage
from rasa.core.exceptions import AgentNotReady
from rasa.core.lock_store import LockStore
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.constants import UTTER_PREFIX
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecutionRejected, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from avrr import readiness
from avrr.logs import CHATTY, RATE_LIMITER, ROUTINE_RATE_LIMITS, NoSenderIds
from avrr.network import NO_CONVERSATION
from avrr.settings import SettingsError
from bot import lock_store, runtime, sanic_http
from bot.channels.base import NotYetSent, Undeliverable

logger = logging.getLogger(__name__)

# Telegram's largest update (a 4,096-character message, its entities and the message it
# answers) is some tens of kB; Meta's WhatsApp webhooks likewise. Four times that.
MAX_BODY_BYTES = 256 * 1024
RETENTION_INTERVAL_S = 3600
NO_SENDER_IDS = NoSenderIds()
_API_WRITE = re.compile(r"^/conversations/(?P<conversation>[^/]+)/(tracker/events|execute)$")


class TrackerStoreUnavailable(RuntimeError):
    """No durable tracker store is configured."""


class ActionFailed(RuntimeError):
    """The action server could not run an action: nothing of this message is recorded."""


def durable_tracker_store(store: Optional[TrackerStore], domain: Domain) -> TrackerStore:
    """The configured store, unwrapped; refuse to run without one."""
    if store is None or isinstance(store, InMemoryTrackerStore):
        raise TrackerStoreUnavailable(
            "no durable tracker store: check tracker_store in endpoints.yml"
        )
    store.domain = domain
    return store


async def run_action_or_fail(
    self: MessageProcessor, action: Any, tracker: Any, output_channel: Any, nlg: Any,
    prediction: Any,
) -> bool:
    """MessageProcessor._run_action, except that a failed action fails the message."""
    try:
        temporary_tracker = tracker.copy()
        temporary_tracker.update_with_events(prediction.events, self.domain)
        events = await action.run(output_channel, nlg, temporary_tracker, self.domain)
    except ActionExecutionRejection:
        events = [
            ActionExecutionRejected(
                action.name(), prediction.policy_name, prediction.max_confidence
            )
        ]
        tracker.update(events[0])
        return self.should_predict_another_action(action.name())
    except Exception as failure:
        logger.error("the action %s failed (%s): the message is not recorded",
                     action.name(), type(failure).__name__)
        raise ActionFailed(action.name()) from failure

    self._log_action_on_tracker(tracker, action, events, prediction)
    if any(isinstance(e, UserUttered) for e in events):
        tracker = await self.run_action_extract_slots(output_channel, tracker)
    if action.name() != ACTION_LISTEN_NAME and not action.name().startswith(UTTER_PREFIX):
        self._log_slots(tracker)
    await self.execute_side_effects(events, tracker, output_channel)
    return self.should_predict_another_action(action.name())


@lru_cache(maxsize=1)
def action_result_validator() -> Any:
    from jsonschema.validators import validator_for

    schema = RemoteAction.action_response_format_spec()
    validator = validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def validate_action_result(self: RemoteAction, result: Dict[str, Any]) -> bool:
    """RemoteAction._validate_action_result, with the validator built once."""
    from jsonschema import ValidationError

    try:
        action_result_validator().validate(result)
    except ValidationError as invalid:
        invalid.message += (
            ". Failed to validate Action server response from API, make sure your "
            "response from the Action endpoint is valid."
        )
        raise
    return True


_load_logistic_regression = LogisticRegressionClassifier.load.__func__


def load_logistic_regression(cls: type, *args: Any, **kwargs: Any) -> Any:
    """LogisticRegressionClassifier.load, with the coefficients in Fortran order."""
    component = _load_logistic_regression(cls, *args, **kwargs)
    component.clf.coef_ = np.asfortranarray(component.clf.coef_)
    return component


def reply_key_of(request: Request) -> Optional[str]:
    """The `reply_key` of a counsellor's reply appended through the API, if this is one."""
    if not request.path.endswith("/tracker/events"):
        return None
    try:
        body = request.json
    except Exception:  # noqa: BLE001 - Rasa's route answers a body it cannot read
        return None
    metadata = body.get("metadata") if isinstance(body, dict) else None
    key = metadata.get("reply_key") if isinstance(metadata, dict) else None
    return key if isinstance(key, str) and body.get("event") == "bot" else None


def sent_before(tracker: DialogueStateTracker, key: Optional[str]) -> bool:
    return key is not None and any(
        isinstance(event, BotUttered) and event.metadata.get("reply_key") == key
        for event in tracker.events)


async def may_write(request: Request, conversation: str) -> bool:
    """Whether Rasa would let this request at `conversation`: the API token, or a valid JWT
    of an administrator or of that conversation's user (rasa.server.requires_auth)."""
    token = runtime.settings().api_token
    if token is not None and hmac.compare_digest(
            request.args.get("token", "").encode("utf-8", "replace"),
            token.get_secret_value().encode()):
        return True
    auth = getattr(request.app.ctx, "auth", None)
    if auth is None or not request.app.config.get("USE_JWT"):
        return False
    try:
        if not await auth.is_authenticated(request):
            return False
        user = (await auth.extract_payload(request)).get("user") or {}
    except Exception:  # noqa: BLE001 - a token that cannot be verified, in any way
        return False
    return user.get("role") == "admin" or (
        user.get("role") == "user" and user.get("username") == conversation)


def guard_app(app: Sanic) -> Sanic:
    """Limit bodies, keep the HTTP API from making conversations, expire old data."""
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.PROXIES_COUNT = runtime.settings().proxies_count

    @app.on_request
    async def refuse_large(request: Request) -> Any:
        # Sanic reads a body before the middleware only for some routes: the limit holds for
        # every route (Rasa's API ones too), before any other work.
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return response.json({"error": "the body is too large"}, status=413)
        return None

    @app.on_request
    async def no_orphan_conversations(request: Request) -> Any:
        found = _API_WRITE.match(request.path) if request.method == "POST" else None
        if found is None or not hasattr(request.app.ctx, "agent"):
            return None
        # As Sanic gives it to Rasa's route: not unquoted ("telegram%3A42" is another).
        conversation = found.group("conversation")
        # Rasa answers a caller without the token (401): a 404 first would tell a stranger
        # whether a phone number has a conversation.
        if not await may_write(request, conversation):
            return None
        try:
            found_tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation)
        except Exception as failure:  # noqa: BLE001 - Sanic would log the URL, a phone number
            logger.error("a conversation could not be read: %s", type(failure).__name__)
            return response.json({"error": "the conversation store is not available"},
                                 status=503, headers={"Retry-After": "5"})
        if found_tracker is None:
            return response.json(NO_CONVERSATION, status=404)
        if sent_before(found_tracker, reply_key_of(request)):
            # The desk's retry of a counsellor's reply Rasa took after the desk stopped
            # waiting: taken once, so the person (in the web chat too) reads it once.
            return response.json(found_tracker.current_state(EventVerbosity.AFTER_RESTART))
        return None

    @app.exception(jwt.PyJWTError)
    async def refuse_a_bad_jwt(request: Request, _: Exception) -> HTTPResponse:
        # A JWT of another algorithm ("none") escaped sanic-jwt as a 500 with a traceback.
        return response.json({"error": "the token is not valid"}, status=401)

    async def expire_old_conversations(running: Sanic) -> None:
        retention_s = runtime.settings().retention_days * 86400
        while True:
            try:
                agent = running.ctx.agent
                expired = await agent.tracker_store.expire(retention_s, agent.lock_store)
                pruned = await asyncio.to_thread(runtime.records().prune, retention_s)
                if expired or pruned:
                    logger.info("retention: %d conversations, %d channel records removed",
                                expired, pruned)
            except Exception as failure:  # noqa: BLE001 - try again at the next round
                logger.error("retention job failed: %s", type(failure).__name__)
            await asyncio.sleep(RETENTION_INTERVAL_S)

    app.add_task(expire_old_conversations)
    add_readiness(app)
    return app


def add_readiness(app: Sanic) -> None:
    """`GET /ready`: whether this server can answer messages now (see the docstring, 9)."""

    @app.get("/ready")
    async def ready(request: Request) -> HTTPResponse:
        agent = getattr(request.app.ctx, "agent", None)
        failed = [] if agent is not None and agent.is_ready() else ["model"]
        checks = {"channel records": lambda: readiness.database(runtime.records().engine)()}
        store = getattr(agent, "tracker_store", None)
        if store is not None and hasattr(store, "engine"):
            checks["tracker store"] = readiness.database(store.engine)
        if runtime.settings().redis_url is not None:
            checks["redis"] = lambda: readiness.redis_server(runtime.redis_client())()
        body, status = readiness.answer(failed + await readiness.failing(checks))
        return response.json(body, status=status)


_configure_app = rasa.core.run.configure_app


def configure_app(*args: Any, **kwargs: Any) -> Sanic:
    return guard_app(_configure_app(*args, **kwargs))


_error_response_init = rasa.server.ErrorResponse.__init__


class QuietRefusals(logging.Filter):
    """Rasa logs the message of every error answer at ERROR: a caller's mistake too (each
    request without the token: "User is not authenticated."), so that anyone could fill
    the operator's log with errors; and a fault's, which quotes the exception (a database
    error's quotes the conversation id and the person's words). `retryable_error` logs
    each answer by its reason instead: a refusal at INFO, a fault at ERROR."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing: set = set()  # the ids of the messages being answered now

    def filter(self, record: logging.LogRecord) -> bool:
        return id(record.msg) not in self.refusing


QUIET_REFUSALS = QuietRefusals()


def retryable_error(self: Any, status: int, reason: str, message: str, *args: Any,
                    **kwargs: Any) -> None:
    """Rasa's error answer, a 503 when what failed was a message not confirmed yet. It is
    logged by its reason only, with the type of a fault: its message may quote the
    request or the exception. A 4xx is logged at INFO."""
    failure = sys.exc_info()[1]
    if status == 500 and isinstance(failure, NotYetSent):
        status, reason = 503, "NotYetSent"
        message = "The channel has the message but the platform has not confirmed it yet."
    elif status == 500 and isinstance(failure, Undeliverable):
        status, reason = 410, "Undeliverable"
        message = "The platform refused the message for good."
    if int(status) >= 500:
        logger.error("the HTTP API failed a request: %s (%d, %s)", reason, int(status),
                     type(failure).__name__ if failure is not None else "no exception")
    else:
        logger.info("the HTTP API refused a request: %s (%d)", reason, int(status))
    logger.debug("the HTTP API's error answer: %s", message)
    QUIET_REFUSALS.refusing.add(id(message))
    try:
        _error_response_init(self, status, reason, message, *args, **kwargs)
    finally:
        QUIET_REFUSALS.refusing.discard(id(message))


_handle_message = Agent.handle_message


async def handle_message_when_ready(
    self: Agent, message: UserMessage
) -> Optional[List[Dict[str, Any]]]:
    """Agent.handle_message, failing without a model: Rasa's only logs at INFO and returns,
    and the channel cannot tell that from a message handled (see the docstring, 11)."""
    if not self.is_ready():
        raise AgentNotReady("no model is loaded: the message is not handled")
    return await _handle_message(self, message)


_create_lock_store = LockStore.create


def configured_lock_store(configured: Any) -> LockStore:
    """LockStore.create; without a `lock_store` in endpoints.yml, the one of the settings."""
    if configured is None:
        return lock_store.from_settings(runtime.settings())
    return _create_lock_store(configured)


def mend_rasa() -> None:
    sanic_http.refuse_bad_lengths()
    Agent._create_tracker_store = staticmethod(durable_tracker_store)
    Agent.handle_message = handle_message_when_ready
    LockStore.create = staticmethod(configured_lock_store)
    MessageProcessor._run_action = run_action_or_fail
    RemoteAction._validate_action_result = validate_action_result
    LogisticRegressionClassifier.load = classmethod(load_logistic_regression)
    rasa.core.run.configure_app = configure_app
    rasa.server.ErrorResponse.__init__ = retryable_error
    rasa.server.logger.addFilter(QUIET_REFUSALS)
    quiet_rasa_logs()


def quiet_rasa_logs() -> None:
    """The Rasa server configures its own logging, not through avrr.logs.configure: the
    same filters, so that no line of its own names a conversation (a phone number), and
    Telegram's routine "retry after" is no ERROR with a traceback."""
    logging.getLogger("rasa.core.processor").addFilter(NO_SENDER_IDS)
    logging.getLogger(RATE_LIMITER).addFilter(ROUTINE_RATE_LIMITS)


def with_api_token(argv: List[str]) -> List[str]:
    """`argv` of `rasa run` with the API token and the JWT secret from the settings."""
    if len(argv) < 2 or argv[1] != "run":
        return argv
    token = runtime.settings().api_token
    if token is None:
        raise SettingsError(
            "RASA_API_TOKEN is not set: the Rasa HTTP API is never open "
            "(`make run` generates one and keeps it in the data folder)"
        )
    secret = token.get_secret_value()
    return argv + ["--auth-token", secret, "--jwt-secret", secret, "--jwt-method", "HS256"]


def main() -> None:
    sys.argv = with_api_token(sys.argv)
    mend_rasa()
    # httpx (python-telegram-bot's client) logs each request's URL, which holds the bot
    # token, at INFO.
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
