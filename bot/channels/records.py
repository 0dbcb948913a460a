"""What the messaging channels keep, in one database the Rasa server owns.

- `processed`: the platform's update or message ids already handled, so that a webhook
  delivered twice (even at once) is handled once. Ids are kept as hashes (a WhatsApp
  message id can embed the phone number) and pruned after the platforms' redelivery
  horizon.
- `outgoing`: the durable send queue. Replies and counsellor messages wait here until
  the platform has them; a crash between recording a message and sending its replies
  loses nothing, and a message with a key is queued once however often it is offered.
- `sent`: the keys of keyed messages already sent, pruned with `processed`.
- `last_inbound`, `held_notice`, `languages`: when each person last wrote (WhatsApp's
  24-hour window), whether they were told of held messages, and the language they were
  last answered in (for that notice).

Everything about a person is keyed by their conversation id (`whatsapp:<wa_id>`...),
so that `forget` removes it all. SQLAlchemy Core: SQLite or PostgreSQL.
"""
import hashlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, Iterable, List, Optional

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from avrr.db import forget_on_disk

# A claim left pending by a crash expires: the platform's next delivery is handled. On
# the machine that made it, at once when its process is gone (the Rasa server restarted).
CLAIM_TIMEOUT_S = 120.0
# A claim is renewed this often while its delivery is handled, so it expires only once
# its owner stopped: one message may take far longer than the timeout (Rasa waits up to
# 300 s for each action it calls), and a redelivery meanwhile must not run it again.
CLAIM_RENEW_S = CLAIM_TIMEOUT_S / 4
# Meta retries a webhook for up to 7 days; Telegram for far less.
REDELIVERY_HORIZON_S = 8 * 24 * 3600
LEASE_S = 60.0
QUEUED, HELD = "queued", "held"

metadata = sa.MetaData()

processed = sa.Table(
    "processed",
    metadata,
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
    # Who holds a pending claim: "<host> <pid> <random>", see `this_process`.
    sa.Column("owner", sa.String(120), nullable=True),
)
outgoing = sa.Table(
    "outgoing",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("conversation", sa.String(160), nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("key_hash", sa.String(64), unique=True, nullable=True),
    sa.Column("state", sa.String(8), nullable=False),
    # A reply to the person's own message may go out until then, whatever else is known.
    sa.Column("window_until", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sqlite_autoincrement=True,
)
sent = sa.Table(
    "sent",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
)
# The keys of messages the platform refused for good (the person blocked the bot, say):
# offered again, such a message is not queued again, and Rasa's API says it never can be.
refused = sa.Table(
    "refused",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
)
last_inbound = sa.Table(
    "last_inbound",
    metadata,
    sa.Column("conversation", sa.String(160), primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
)
held_notice = sa.Table(
    "held_notice",
    metadata,
    sa.Column("conversation", sa.String(160), primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
)
languages = sa.Table(
    "languages",
    metadata,
    sa.Column("conversation", sa.String(160), primary_key=True),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
)
PERSONAL = (outgoing, last_inbound, held_notice, languages)


class Claim(Enum):
    NEW = "new"  # handle it
    IN_HAND = "in hand"  # being handled right now: the platform should try again later
    DONE = "done"  # handled before: acknowledge


@dataclass(frozen=True)
class Outgoing:
    """One queued message, as the deliverer sees it."""

    id: int
    conversation: str
    payload: Dict[str, Any]
    window_until: Optional[float]
    attempts: int


_BOOT = secrets.token_hex(4)


def this_process() -> str:
    """This process, as a claim's owner: its host, its pid, and a token of its own (a
    pid may be reused)."""
    return f"{socket.gethostname()} {os.getpid()} {_BOOT}"


def gone(owner: Optional[str]) -> bool:
    """Whether the process that made a claim is known to be dead: it ran on this host and
    its pid is gone, or is this process's with another token. Elsewhere: not known."""
    host, _, rest = (owner or "").partition(" ")
    pid, _, token = rest.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return token != _BOOT
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def key_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class ChannelRecords:
    """The channels' records on one engine; safe to share between threads and tasks."""

    def __init__(self, engine: Engine, clock=time.time, owner: str = "") -> None:
        self.engine = engine
        self.clock = clock
        self.owner = owner or this_process()

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # Once-only handling of the platforms' deliveries.

    def claim(self, channel: str, key: str) -> Claim:
        """Take `key` of `channel` in hand, unless it is done or in hand already."""
        now, digest = self.clock(), key_hash(channel, key)
        with self.engine.begin() as db:
            inserted = db.execute(
                self._insert(processed)
                .values(channel=channel, key_hash=digest, done=False, at=now, owner=self.owner)
                .on_conflict_do_nothing()
            ).rowcount
            if inserted:
                return Claim.NEW
            row = db.execute(
                sa.select(processed.c.done, processed.c.at, processed.c.owner).where(
                    processed.c.channel == channel, processed.c.key_hash == digest
                )
            ).first()
            if row is None:  # released in between: take it
                db.execute(processed.insert().values(
                    channel=channel, key_hash=digest, done=False, at=now, owner=self.owner))
                return Claim.NEW
            if row.done:
                return Claim.DONE
            if now - row.at < CLAIM_TIMEOUT_S and not gone(row.owner):
                return Claim.IN_HAND
            # A crashed claim: take it over, unless someone else just did.
            taken = db.execute(
                processed.update()
                .where(processed.c.channel == channel, processed.c.key_hash == digest,
                       processed.c.at == row.at, processed.c.done.is_(False))
                .values(at=now, owner=self.owner)
            ).rowcount
            return Claim.NEW if taken else Claim.IN_HAND

    def renew(self, channel: str, key: str) -> None:
        """Still handling `key`: its claim, if still ours, expires CLAIM_TIMEOUT_S from now."""
        with self.engine.begin() as db:
            db.execute(
                processed.update()
                .where(processed.c.channel == channel,
                       processed.c.key_hash == key_hash(channel, key),
                       processed.c.done.is_(False), processed.c.owner == self.owner)
                .values(at=self.clock())
            )

    def release(self, channel: str, key: str) -> None:
        """Handling failed: the platform's next delivery of `key` is handled again. Only
        our own claim: one taken over meanwhile is its new owner's."""
        with self.engine.begin() as db:
            db.execute(
                processed.delete().where(
                    processed.c.channel == channel,
                    processed.c.key_hash == key_hash(channel, key),
                    processed.c.done.is_(False),
                    processed.c.owner == self.owner,
                )
            )

    def finish(
        self,
        channel: str,
        key: str,
        conversation: str,
        payloads: Iterable[Dict[str, Any]],
        window_until: Optional[float] = None,
    ) -> None:
        """Mark `key` done and queue its replies, in one transaction."""
        with self.engine.begin() as db:
            db.execute(
                processed.update()
                .where(processed.c.channel == channel,
                       processed.c.key_hash == key_hash(channel, key))
                .values(done=True, at=self.clock())
            )
            self._enqueue(db, channel, conversation, payloads, window_until)

    # The send queue.

    def _enqueue(
        self,
        db: Any,
        channel: str,
        conversation: str,
        payloads: Iterable[Dict[str, Any]],
        window_until: Optional[float] = None,
        key: Optional[str] = None,
    ) -> int:
        now, queued = self.clock(), 0
        for payload in payloads:
            statement = self._insert(outgoing).values(
                channel=channel,
                conversation=conversation,
                payload=json.dumps(payload, ensure_ascii=False),
                key_hash=key_hash(channel, key) if key else None,
                state=QUEUED,
                window_until=window_until,
                attempts=0,
                next_at=now,
                created_at=now,
            )
            queued += db.execute(statement.on_conflict_do_nothing()).rowcount
        return queued

    def enqueue(
        self,
        channel: str,
        conversation: str,
        payloads: Iterable[Dict[str, Any]],
        key: Optional[str] = None,
    ) -> None:
        """Queue messages; with `key`, only if that key was never queued or sent before.

        A keyed message is one payload (a counsellor's reply, offered again on retry).
        """
        payloads = list(payloads)
        with self.engine.begin() as db:
            if key is not None:
                if len(payloads) != 1:
                    raise ValueError("a keyed message is one payload")
                digest = key_hash(channel, key)
                if any(db.execute(sa.select(done.c.key_hash).where(
                        done.c.key_hash == digest)).first() for done in (sent, refused)):
                    return
            self._enqueue(db, channel, conversation, payloads, key=key)

    def is_sent(self, channel: str, key: str) -> bool:
        return self._has_key(sent, channel, key)

    def is_refused(self, channel: str, key: str) -> bool:
        """Whether the platform refused the keyed message for good."""
        return self._has_key(refused, channel, key)

    def _has_key(self, table: sa.Table, channel: str, key: str) -> bool:
        with self.engine.connect() as db:
            return db.execute(
                sa.select(table.c.key_hash).where(table.c.key_hash == key_hash(channel, key))
            ).first() is not None

    def due(self, channel: str, limit: int = 32) -> List[Outgoing]:
        """The oldest queued message of each conversation, if it may be tried now.

        Held messages wait for the person (they are older, and go first once released).
        """
        now = self.clock()
        head = (
            sa.select(sa.func.min(outgoing.c.id))
            .where(outgoing.c.channel == channel, outgoing.c.state == QUEUED)
            .group_by(outgoing.c.conversation)
            .scalar_subquery()
        )
        query = (
            sa.select(outgoing)
            .where(
                outgoing.c.id.in_(head),
                outgoing.c.next_at <= now,
                sa.or_(outgoing.c.lease_until.is_(None), outgoing.c.lease_until < now),
            )
            .order_by(outgoing.c.id)
            .limit(limit)
        )
        with self.engine.connect() as db:
            rows = db.execute(query).fetchall()
        return [
            Outgoing(r.id, r.conversation, json.loads(r.payload), r.window_until, r.attempts)
            for r in rows
        ]

    def lease(self, message_id: int) -> bool:
        """Take the message for sending; False if another deliverer has it."""
        now = self.clock()
        with self.engine.begin() as db:
            return db.execute(
                outgoing.update()
                .where(outgoing.c.id == message_id, outgoing.c.state == QUEUED,
                       sa.or_(outgoing.c.lease_until.is_(None), outgoing.c.lease_until < now))
                .values(lease_until=now + LEASE_S)
            ).rowcount == 1

    def mark_sent(self, message_id: int) -> None:
        """Sent: the message leaves the queue; its key stays, so it is never sent again."""
        self._leave_queue(message_id, sent)

    def retry(self, message_id: int, delay_s: float) -> None:
        with self.engine.begin() as db:
            db.execute(
                outgoing.update()
                .where(outgoing.c.id == message_id)
                .values(attempts=outgoing.c.attempts + 1, next_at=self.clock() + delay_s,
                        lease_until=None)
            )

    def drop(self, message_id: int) -> None:
        """Refused for good: the message leaves the queue; its key, if any, is refused."""
        self._leave_queue(message_id, refused)

    def _leave_queue(self, message_id: int, keys: sa.Table) -> None:
        """The message leaves the queue; its key, if it has one, is kept in `keys`."""
        with self.engine.begin() as db:
            row = db.execute(
                sa.select(outgoing.c.key_hash).where(outgoing.c.id == message_id)
            ).first()
            db.execute(outgoing.delete().where(outgoing.c.id == message_id))
            if row is not None and row.key_hash:
                db.execute(
                    self._insert(keys).values(key_hash=row.key_hash, at=self.clock())
                    .on_conflict_do_nothing()
                )

    def hold(self, conversation: str) -> int:
        """Hold every queued message of `conversation` until the person writes again."""
        with self.engine.begin() as db:
            return db.execute(
                outgoing.update()
                .where(outgoing.c.conversation == conversation, outgoing.c.state == QUEUED)
                .values(state=HELD, lease_until=None)
            ).rowcount

    def release_held(self, conversation: str) -> int:
        """The person wrote: what was held goes first, and they may be told again later."""
        with self.engine.begin() as db:
            released = db.execute(
                outgoing.update()
                .where(outgoing.c.conversation == conversation, outgoing.c.state == HELD)
                .values(state=QUEUED, next_at=self.clock(), lease_until=None)
            ).rowcount
            db.execute(held_notice.delete().where(held_notice.c.conversation == conversation))
        return released

    def pending(self, channel: Optional[str] = None) -> Dict[str, int]:
        """How many messages are queued and held (for metrics and tests)."""
        query = sa.select(outgoing.c.state, sa.func.count()).group_by(outgoing.c.state)
        if channel:
            query = query.where(outgoing.c.channel == channel)
        with self.engine.connect() as db:
            counts = dict(db.execute(query).fetchall())
        return {QUEUED: counts.get(QUEUED, 0), HELD: counts.get(HELD, 0)}

    # What is known about each person.

    def wrote(self, conversation: str, at: Optional[float] = None) -> None:
        """The person wrote at `at` (default now); a later time is never moved back."""
        at = self.clock() if at is None else at
        with self.engine.begin() as db:
            db.execute(
                self._insert(last_inbound)
                .values(conversation=conversation, at=at)
                .on_conflict_do_update(
                    index_elements=[last_inbound.c.conversation],
                    set_={"at": sa.func.max(last_inbound.c.at, at)
                          if self.engine.dialect.name == "sqlite"
                          else sa.func.greatest(last_inbound.c.at, at)},
                )
            )

    def last_wrote(self, conversation: str) -> Optional[float]:
        with self.engine.connect() as db:
            return db.execute(
                sa.select(last_inbound.c.at).where(last_inbound.c.conversation == conversation)
            ).scalar()

    def notified(self, conversation: str) -> bool:
        with self.engine.connect() as db:
            return db.execute(
                sa.select(held_notice.c.at).where(held_notice.c.conversation == conversation)
            ).first() is not None

    def set_notified(self, conversation: str) -> None:
        with self.engine.begin() as db:
            db.execute(
                self._insert(held_notice)
                .values(conversation=conversation, at=self.clock())
                .on_conflict_do_nothing()
            )

    def set_language(self, conversation: str, language: str) -> None:
        with self.engine.begin() as db:
            db.execute(
                self._insert(languages)
                .values(conversation=conversation, language=language, at=self.clock())
                .on_conflict_do_update(
                    index_elements=[languages.c.conversation],
                    set_={"language": language, "at": self.clock()},
                )
            )

    def language(self, conversation: str) -> Optional[str]:
        with self.engine.connect() as db:
            return db.execute(
                sa.select(languages.c.language).where(languages.c.conversation == conversation)
            ).scalar()

    # Deletion and retention.

    def forget(self, conversation: str) -> int:
        """Delete everything kept about `conversation` (the person asked for it)."""
        with self.engine.begin() as db:
            removed = sum(
                db.execute(table.delete().where(table.c.conversation == conversation)).rowcount
                for table in PERSONAL
            )
        forget_on_disk(self.engine)
        return removed

    def prune(self, retention_s: float) -> int:
        """Delete what has outlived its use: handled ids and sent keys after the platforms'
        redelivery horizon, anything about a person after the retention period."""
        now = self.clock()
        with self.engine.begin() as db:
            removed = db.execute(
                processed.delete().where(processed.c.at < now - REDELIVERY_HORIZON_S)
            ).rowcount
            for done in (sent, refused):
                removed += db.execute(
                    done.delete().where(done.c.at < now - REDELIVERY_HORIZON_S)
                ).rowcount
            for table in PERSONAL:
                column = table.c.created_at if table is outgoing else table.c.at
                removed += db.execute(table.delete().where(column < now - retention_s)).rowcount
        if removed:
            forget_on_disk(self.engine)
        return removed
