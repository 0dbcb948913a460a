"""What the messaging channels have already processed, kept in SQLite.

Telegram and WhatsApp deliver a webhook again when they get no 200 in time, so the same
update can arrive twice, even at once. A channel `claim`s an update id before it handles
it, marks it `done` once the conversation has recorded it, and `release`s it when
handling failed, so that the platform's next delivery is handled. A claim left pending by
a crash expires after CLAIM_TIMEOUT_S.

It also keeps when each person last wrote on a channel: WhatsApp allows free text only
within 24 hours of the person's last message. Messages that cannot be sent then are
kept (`hold`) until the person writes again (`take_held`), with a note of whether the
person was told (`notified`); each person's language is kept for that notice.
"""
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import List, Optional

CLAIM_TIMEOUT_S = 120.0
DONE, PENDING = "done", "pending"

SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    channel TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (channel, key)
);
CREATE TABLE IF NOT EXISTS last_inbound (
    channel TEXT NOT NULL, recipient TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (channel, recipient)
);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, recipient TEXT NOT NULL,
    message TEXT NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS held_recipient ON held (channel, recipient);
CREATE TABLE IF NOT EXISTS held_notice (
    channel TEXT NOT NULL, recipient TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (channel, recipient)
);
CREATE TABLE IF NOT EXISTS language (
    channel TEXT NOT NULL, recipient TEXT NOT NULL, language TEXT NOT NULL,
    PRIMARY KEY (channel, recipient)
);
"""
_FORGET = (
    "DELETE FROM last_inbound WHERE recipient = ?",
    "DELETE FROM held WHERE recipient = ?",
    "DELETE FROM held_notice WHERE recipient = ?",
    "DELETE FROM language WHERE recipient = ?",
)


class Ledger:
    """Thread-safe; one SQLite connection in WAL mode, each change committed at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def claim(self, channel: str, key: str, now: Optional[float] = None) -> bool:
        """True if `key` is new (or its earlier claim expired): the caller handles it."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                "SELECT state, at FROM processed WHERE channel = ? AND key = ?", (channel, key)
            ).fetchone()
            if row and (row[0] == DONE or now - row[1] < CLAIM_TIMEOUT_S):
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?)",
                (channel, key, PENDING, now),
            )
            return True

    def done(self, channel: str, key: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE processed SET state = ?, at = ? WHERE channel = ? AND key = ?",
                (DONE, time.time(), channel, key),
            )

    def release(self, channel: str, key: str) -> None:
        """Handling failed: the next delivery of `key` is handled again."""
        with self._lock:
            self._db.execute(
                "DELETE FROM processed WHERE channel = ? AND key = ? AND state = ?",
                (channel, key, PENDING),
            )

    def wrote(self, channel: str, recipient: str, at: Optional[float] = None) -> None:
        """The person `recipient` wrote on `channel` at `at` (default: now)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO last_inbound VALUES (?, ?, ?) ON CONFLICT (channel, recipient) "
                "DO UPDATE SET at = max(at, excluded.at)",
                (channel, recipient, time.time() if at is None else at),
            )

    def last_wrote(self, channel: str, recipient: str) -> Optional[float]:
        with self._lock:
            row = self._db.execute(
                "SELECT at FROM last_inbound WHERE channel = ? AND recipient = ?",
                (channel, recipient),
            ).fetchone()
        return row[0] if row else None

    def state(self, channel: str, key: str) -> Optional[str]:
        """DONE, PENDING (being handled, or a crashed claim), or None if never claimed."""
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM processed WHERE channel = ? AND key = ?", (channel, key)
            ).fetchone()
        return row[0] if row else None

    def hold(self, channel: str, recipient: str, message: str) -> None:
        """Keep `message` (JSON) for `recipient` until `take_held`, after the others."""
        with self._lock:
            self._db.execute(
                "INSERT INTO held (channel, recipient, message, at) VALUES (?, ?, ?, ?)",
                (channel, recipient, message, time.time()),
            )

    def take_held(self, channel: str, recipient: str) -> List[str]:
        """The messages held for `recipient`, oldest first, now no longer held."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, message FROM held WHERE channel = ? AND recipient = ? "
                    "ORDER BY id",
                    (channel, recipient),
                ).fetchall()
                self._db.execute(
                    "DELETE FROM held WHERE channel = ? AND recipient = ? AND id <= ?",
                    (channel, recipient, rows[-1][0] if rows else -1),
                )
                self._db.execute(
                    "DELETE FROM held_notice WHERE channel = ? AND recipient = ?",
                    (channel, recipient),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [message for _, message in rows]

    def notified(self, channel: str, recipient: str) -> bool:
        """Whether `recipient` was told of held messages since they were last taken."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM held_notice WHERE channel = ? AND recipient = ?",
                (channel, recipient),
            ).fetchone()
        return row is not None

    def set_notified(self, channel: str, recipient: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO held_notice VALUES (?, ?, ?)",
                (channel, recipient, time.time()),
            )

    def set_language(self, channel: str, recipient: str, language: str) -> None:
        """The language `recipient` was last answered in (for messages sent later)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO language VALUES (?, ?, ?)", (channel, recipient, language)
            )

    def language(self, channel: str, recipient: str) -> Optional[str]:
        with self._lock:
            row = self._db.execute(
                "SELECT language FROM language WHERE channel = ? AND recipient = ?",
                (channel, recipient),
            ).fetchone()
        return row[0] if row else None

    def forget(self, recipient: str) -> None:
        """Delete what is kept about `recipient` (their data deletion request)."""
        with self._lock:
            for statement in _FORGET:
                self._db.execute(statement, (recipient,))


_ledgers = {}
_ledgers_lock = threading.Lock()


def get_ledger() -> Ledger:
    """The ledger of this deployment: AVRR_CHANNEL_DB, or var/channels.db."""
    default = Path(__file__).resolve().parents[2] / "var" / "channels.db"
    path = Path(os.environ.get("AVRR_CHANNEL_DB", default))
    with _ledgers_lock:
        if path not in _ledgers:
            _ledgers[path] = Ledger(path)
        return _ledgers[path]
