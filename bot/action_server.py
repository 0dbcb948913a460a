"""`python -m bot.action_server`: the action server, locked, plus the outbox's delivery.

rasa-sdk's own server listens on every interface with CORS `*` and no credentials, and
its error answers echo the request body. Ours runs the same actions (rasa-sdk's
ActionExecutor) and:
- listens on ACTION_HOST (loopback by default);
- requires `Authorization: Bearer <ACTION_SERVER_TOKEN>` on every route but `/health` and
  `/ready` (Rasa sends it, from endpoints.yml), compared in constant time;
- has no CORS, and accepts JSON only (415 otherwise), at most MAX_BODY_BYTES;
- answers a failed action with a 500 that names no person and quotes nothing.
A thread flushes the outbox to the counsellor desk every few seconds (actions/outbox.py);
`/status` (JSON, for the desk) and `/metrics` (Prometheus) count what is pending and what
failed for good. `/ready` answers 503 while the outbox's database does not answer.
"""
import asyncio
import hmac
import logging
import threading
from typing import Dict, Optional

from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.outbox import deliver_forever, get_outbox
from actions.runtime import settings
from avrr import readiness
from avrr.logs import configure
from avrr.metrics import CONTENT_TYPE, exposition
from avrr.settings import ActionServerSettings
from bot import sanic_http

logger = logging.getLogger(__name__)

ACTIONS_PACKAGE = "actions"
MAX_BODY_BYTES = 1024 * 1024
PUBLIC = ("/health", "/ready")


def prometheus(counts: Dict[str, int]) -> str:
    return exposition([
        ("avrr_outbox_pending", "Requests to the desk not yet delivered.", counts["pending"]),
        ("avrr_outbox_dead", "Requests to the desk that failed for good.", counts["dead"]),
    ])


def create_app(config: ActionServerSettings, package: str = ACTIONS_PACKAGE) -> Sanic:
    sanic_http.refuse_bad_lengths()
    app = Sanic("avrr_actions", configure_logging=False)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    executor = ActionExecutor()
    executor.register_package(package)
    expected = f"Bearer {config.token.get_secret_value()}".encode()

    def refuse(reason: str, status: int) -> HTTPResponse:
        return response.json({"error": reason}, status=status)

    @app.on_request
    async def guard(request: Request) -> Optional[HTTPResponse]:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return refuse("the body is too large", 413)  # before anything else
        if request.path in PUBLIC and request.method == "GET":
            return None
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            return refuse("Authorization: Bearer <ACTION_SERVER_TOKEN> is required", 401)
        if request.method == "POST" and request.content_type.split(";")[0] != "application/json":
            return refuse("the body must be application/json", 415)
        return None

    @app.get("/health")
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @app.get("/ready")
    async def ready(_: Request) -> HTTPResponse:
        """200 when the outbox's database answers (the outbox is made on first use)."""
        failed = await readiness.failing(
            {"database": lambda: readiness.database(get_outbox().engine)()})
        body, status = readiness.answer(failed)
        return response.json(body, status=status)

    @app.get("/status")
    async def status(_: Request) -> HTTPResponse:
        """The outbox's counts, for the desk's status line and for operators."""
        return response.json({"outbox": await asyncio.to_thread(get_outbox().counts)})

    @app.get("/metrics")
    async def metrics(_: Request) -> HTTPResponse:
        """The same counts for Prometheus (with the token as its bearer credentials)."""
        counts = await asyncio.to_thread(get_outbox().counts)
        return response.text(prometheus(counts), content_type=CONTENT_TYPE)

    @app.get("/actions")
    async def actions(_: Request) -> HTTPResponse:
        return response.json([{"name": name} for name in executor.actions])

    @app.post("/webhook")
    async def webhook(request: Request) -> HTTPResponse:
        try:
            action_call = request.json
        except SanicException:
            return refuse("the body must be JSON", 400)
        if not isinstance(action_call, dict) or not isinstance(action_call.get("tracker"), dict):
            return refuse("the body must be an action call", 400)
        try:
            result = await executor.run(action_call)
        except ActionExecutionRejection as rejected:
            return response.json(
                {"error": rejected.message, "action_name": rejected.action_name}, status=400)
        except ActionNotFoundException as missing:
            return response.json(
                {"error": missing.message, "action_name": missing.action_name}, status=404)
        except Exception as failure:  # noqa: BLE001 - Rasa fails the message; it is sent again
            # The exception's text may quote what the person wrote: its type only.
            logger.error("action %s failed: %s", action_call.get("next_action"),
                         type(failure).__name__)
            logger.debug("action failure", exc_info=True)
            return refuse("the action failed", 500)
        return response.json(result)

    @app.exception(SanicException)
    async def refused(request: Request, exception: SanicException) -> HTTPResponse:
        return refuse(str(exception) or "refused", getattr(exception, "status_code", 400))

    return app


def main() -> None:
    configure("actions")
    config = settings()
    app = create_app(config)
    threading.Thread(target=deliver_forever, name="outbox", daemon=True).start()
    logger.info("action server on http://%s:%d", config.host, config.port)
    app.run(host=config.host, port=config.port, access_log=False, motd=False)


if __name__ == "__main__":
    main()
