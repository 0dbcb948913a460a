"""A durable outbox from the action server to the counsellor desk. Pure, no Rasa imports.

Every request to the desk (a new ticket, a message during the handoff, a deletion) is
first committed to SQLite with an idempotency key, then sent. If the desk cannot be
reached, it stays and is sent again, in order, by `flush` - called at once by the action
and every few seconds by the delivery thread of `python -m bot.action_server`. The desk
treats a repeated key as the same request, so nothing is lost and nothing doubled.

Delivered requests keep only their answer (for the action that is waiting for it), not
their body: a transcript does not stay on the action server once the desk has it.
"""

import json
import logging
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

logger = logging.getLogger(__name__)

TIMEOUT_S = 5.0
KEEP_DELIVERED_S = 24 * 3600
PENDING, DELIVERED, REFUSED = "pending", "delivered", "refused"
# The desk is down, overloaded or restarting: try again later.
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT UNIQUE NOT NULL,
    conversation_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT,
    state TEXT NOT NULL,
    response TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
"""


class Outbox:
    def __init__(self, path: Path, desk_url: str, token: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.desk_url = desk_url.rstrip("/")
        self.token = token
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def put(self, key: str, conversation_id: str, method: str, path: str, body: Any) -> None:
        """Keep the request; a key already kept is not added again."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (key, conversation_id, method, path, body, state,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, conversation_id, method, path, json.dumps(body), PENDING, time.time()),
            )

    def forget(self, conversation_id: str) -> None:
        """Drop what is not yet sent for a conversation whose data the person deleted."""
        with self._lock:
            self._db.execute(
                "DELETE FROM outbox WHERE conversation_id = ? AND state = ?",
                (conversation_id, PENDING),
            )

    def answer(self, key: str) -> Optional[Dict[str, Any]]:
        """The desk's answer to the request `key`, once delivered."""
        with self._lock:
            row = self._db.execute(
                "SELECT response FROM outbox WHERE key = ? AND state = ?", (key, DELIVERED)
            ).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def pending(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT count(*) FROM outbox WHERE state = ?", (PENDING,)
            ).fetchone()[0]

    def flush(self) -> None:
        """Send what is pending, oldest first; stop at the first failure (order matters:
        a ticket must reach the desk before the messages written to it)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, method, path, body FROM outbox WHERE state = ? ORDER BY id",
                (PENDING,),
            ).fetchall()
            for row_id, key, method, path, body in rows:
                state, response = self._send(method, path, body, key)
                if state == PENDING:
                    self._db.execute(
                        "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (row_id,)
                    )
                    return
                self._db.execute(
                    "UPDATE outbox SET state = ?, response = ?, body = NULL WHERE id = ?",
                    (state, response, row_id),
                )
            self._db.execute(
                "DELETE FROM outbox WHERE state != ? AND created < ?",
                (PENDING, time.time() - KEEP_DELIVERED_S),
            )

    def _send(self, method: str, path: str, body: str, key: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the desk's URL is ours
            f"{self.desk_url}{path}",
            data=None if method == "DELETE" else body.encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:  # noqa: S310
                return DELIVERED, reply.read().decode()
        except urllib.error.HTTPError as refused:
            if refused.code in RETRY_STATUSES:
                logger.warning("the desk answered %d; will retry", refused.code)
                return PENDING, None
            logger.error("the desk refused a request (%d); it is kept as refused", refused.code)
            return REFUSED, None
        except (urllib.error.URLError, OSError) as failure:
            logger.warning("the desk is unreachable (%s); will retry", type(failure).__name__)
            return PENDING, None


_outbox: Optional[Outbox] = None
_outbox_lock = threading.Lock()


def get_outbox() -> Outbox:
    """The outbox of this deployment, from AVRR_OUTBOX_DB, DESK_URL and DESK_API_TOKEN."""
    global _outbox
    with _outbox_lock:
        if _outbox is None:
            default = Path(__file__).resolve().parent.parent / "var" / "outbox.db"
            _outbox = Outbox(
                Path(os.environ.get("AVRR_OUTBOX_DB", default)),
                os.environ.get("DESK_URL", "http://127.0.0.1:8000"),
                os.environ.get("DESK_API_TOKEN", ""),
            )
        return _outbox


def deliver_forever(interval_s: float = 3.0, stop: Optional[threading.Event] = None) -> None:
    """Flush the outbox every `interval_s` seconds until `stop` is set."""
    stop = stop or threading.Event()
    while not stop.wait(interval_s):
        try:
            get_outbox().flush()
        except Exception:  # noqa: BLE001 - the thread must outlive any one failure
            logger.exception("outbox delivery failed; retrying")
