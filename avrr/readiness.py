"""Readiness: whether a server can do its work now, what it depends on answering.

`/health` says that a process answers; `/ready` says that it can also serve: its
databases and Redis answer (and, on the Rasa server, its model is loaded). Container
health checks (docker-compose.yml) read `/ready`. Each check runs in a thread with a time
limit, so that a hung database makes the answer a 503 rather than a hung probe. The
answer names what fails, never why: an exception's text may hold an address or a user.
"""
import asyncio
import logging
from typing import Any, Callable, Dict, List, Tuple

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
# A check returns when what it checks answers, and raises otherwise.
Check = Callable[[], None]


def database(made: Engine) -> Check:
    """The database behind `made` answers a query."""

    def check() -> None:
        with made.connect() as db:
            db.execute(sa.text("SELECT 1"))

    return check


def redis_server(client: redis.Redis) -> Check:
    """The Redis server of `client` answers PING."""

    def check() -> None:
        if not client.ping():
            raise redis.ConnectionError("no PONG")

    return check


async def failing(checks: Dict[str, Check], timeout_s: float = CHECK_TIMEOUT_S) -> List[str]:
    """The names of the checks that did not pass within `timeout_s`, all run at once."""

    async def passes(name: str, check: Check) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(check), timeout_s)
        except Exception as failure:  # noqa: BLE001 - whatever it is, not ready
            logger.warning("not ready: %s (%s)", name, type(failure).__name__)
            return False
        return True

    passed = await asyncio.gather(*(passes(name, check) for name, check in checks.items()))
    return [name for name, ok in zip(checks, passed, strict=True) if not ok]


def answer(failed: List[str]) -> Tuple[Dict[str, Any], int]:
    """The body and status of `/ready`."""
    if failed:
        return {"status": "unavailable", "failing": failed}, 503
    return {"status": "ready"}, 200
