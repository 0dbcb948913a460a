"""One way to open our databases: SQLAlchemy Core on SQLite (the embedded default) or
PostgreSQL (several machines).

SQLite connections get write-ahead logging (one fsync per commit, readers never wait for
the writer), a busy timeout (a second process or thread waits instead of failing),
foreign keys, and `secure_delete` (deleted rows are overwritten, not left in free pages:
a person's deleted words must not stay on disk). After a deletion, `forget_on_disk`
checkpoints the write-ahead log so that the old pages leave it too.
"""
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 10_000
POOL_SIZE = 5  # per process, for PostgreSQL


def sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        f"busy_timeout={BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
        "secure_delete=ON",
        "synchronous=NORMAL",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created when missing."""
    # A failed statement's values (a person's words, an id) never reach a log.
    kwargs: dict = {"future": True, "hide_parameters": True}
    if is_sqlite(url):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_SIZE, pool_pre_ping=True)
    made = sa.create_engine(url, **kwargs)
    if is_sqlite(url):
        sa.event.listen(made, "connect", sqlite_pragmas)
    return made


def forget_on_disk(made: Engine) -> None:
    """After a deletion on SQLite: move the write-ahead log into the file and truncate it."""
    if made.dialect.name == "sqlite":
        with made.connect() as db:
            db.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
