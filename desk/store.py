"""The desk's durable store: counsellors, sessions, tickets and their messages.

SQLAlchemy Core, so the same code runs on SQLite (the embedded default) and PostgreSQL
(DESK_DATABASE_URL=postgresql://...). Every change is committed before the API answers.
A counsellor's reply not yet delivered to the person, and a closed ticket whose hand-back
Rasa has not confirmed, stay marked here until delivery succeeds: the store is the desk's
outbox.
"""

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects import postgresql, sqlite

from avrr.db import engine, forget_on_disk

URGENCIES = ("urgent", "legal", "normal")
SESSION_LIFETIME = timedelta(hours=12)

metadata = sa.MetaData()

counsellors = sa.Table(
    "counsellors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), unique=True, nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("languages", sa.String(255), nullable=False, default=""),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("counsellor_id", sa.Integer, sa.ForeignKey("counsellors.id", ondelete="CASCADE")),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("idempotency_key", sa.String(128), unique=True, nullable=False),
    sa.Column("conversation_id", sa.String(128), nullable=False, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="open", index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("consent_language", sa.String(8), nullable=False),
    sa.Column("handed_back", sa.Boolean, nullable=False, default=False),
    # A deleted ticket's number is never given to another one.
    sqlite_autoincrement=True,
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), index=True),
    sa.Column("idempotency_key", sa.String(160), unique=True, nullable=True),
    sa.Column("sender", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    # Only a counsellor's message is delivered by the desk: None for the others.
    sa.Column("delivered", sa.Boolean, nullable=True),
    # Why a counsellor's message can never be delivered, if so.
    sa.Column("undeliverable", sa.String(120), nullable=True),
    sqlite_autoincrement=True,
)


# Failed sign-ins, per (name, address), per address and per name, in a sliding window:
# counted here so that every desk process sees them, and forgotten when the window ends.
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False, index=True),
)


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: Optional[datetime]) -> Optional[str]:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime:
    """An ISO-8601 time from a client; a value without a zone is UTC."""
    if not isinstance(value, str):
        raise ValueError("a time must be an ISO-8601 string")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Store:
    def __init__(self, url: str) -> None:
        self.engine = engine(url)
        metadata.create_all(self.engine)
        self.hasher = PasswordHasher()

    # Counsellors and their sessions.

    def add_counsellor(self, username: str, password: str, languages: Sequence[str]) -> None:
        with self.engine.begin() as db:
            db.execute(
                counsellors.insert().values(
                    username=username,
                    password_hash=self.hasher.hash(password),
                    languages=",".join(languages),
                )
            )

    def has_counsellors(self) -> bool:
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(counsellors)).scalar() > 0

    def check_password(self, username: str, password: str) -> Optional[int]:
        """The counsellor's id if the password is right, else None."""
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(counsellors.c.id, counsellors.c.password_hash).where(
                    counsellors.c.username == username
                )
            ).first()
        if row is None:
            # Spend the same time as a real check: no hint which usernames exist.
            self.hasher.hash(password)
            return None
        try:
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return row.id

    def login_wait(
        self, limits: Dict[str, int], window: timedelta
    ) -> Optional[float]:
        """Seconds to wait before another sign-in for these keys (None: go ahead).

        `limits` maps each key (e.g. "name:amina") to the failures it may have in `window`.
        """
        moment = now()
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(login_failures).where(login_failures.c.key.in_(list(limits)))
            ).fetchall()
        waits = [
            (parse_time(iso(row.window_start)) + window - moment).total_seconds()
            for row in rows
            if row.count >= limits[row.key]
            and parse_time(iso(row.window_start)) > moment - window
        ]
        return max(waits) if waits else None

    def record_login_failure(self, keys: Sequence[str], window: timedelta) -> None:
        moment = now()
        expired = login_failures.c.window_start < moment - window
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as db:
            db.execute(login_failures.delete().where(expired))
            for key in keys:
                insert = dialect.insert(login_failures).values(
                    key=key, count=1, window_start=moment)
                db.execute(insert.on_conflict_do_update(
                    index_elements=[login_failures.c.key],
                    set_={"count": login_failures.c.count + 1},
                ))

    def clear_login_failures(self, keys: Sequence[str]) -> None:
        with self.engine.begin() as db:
            db.execute(login_failures.delete().where(login_failures.c.key.in_(list(keys))))

    def open_session(self, counsellor_id: int) -> Dict[str, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sessions.c.expires_at < now()))
            db.execute(
                sessions.insert().values(
                    token_hash=_hash_token(token),
                    counsellor_id=counsellor_id,
                    csrf_token=csrf,
                    expires_at=now() + SESSION_LIFETIME,
                )
            )
        return {"token": token, "csrf_token": csrf}

    def session(self, token: str) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(sessions, counsellors.c.username, counsellors.c.languages)
                .join(counsellors, counsellors.c.id == sessions.c.counsellor_id)
                .where(sessions.c.token_hash == _hash_token(token))
            ).first()
        if row is None or parse_time(iso(row.expires_at)) < now():
            return None
        return {
            "username": row.username,
            "languages": [code for code in row.languages.split(",") if code],
            "csrf_token": row.csrf_token,
        }

    def close_session(self, token: str) -> None:
        with self.engine.begin() as db:
            db.execute(sessions.delete().where(sessions.c.token_hash == _hash_token(token)))

    # Tickets.

    def create_ticket(
        self, fields: Dict[str, Any], transcript: List[Dict[str, Any]]
    ) -> Dict[str, Any]:
        """The ticket for `fields`, created once per idempotency key and open conversation.

        Returns the ticket and whether it is new. A second request with the same key, or
        for a conversation that already has an open ticket, gets that ticket back.
        """
        with self.engine.begin() as db:
            existing = db.execute(
                sa.select(tickets).where(
                    sa.or_(
                        tickets.c.idempotency_key == fields["idempotency_key"],
                        sa.and_(
                            tickets.c.conversation_id == fields["conversation_id"],
                            tickets.c.status == "open",
                        ),
                    )
                )
            ).first()
            if existing is not None:
                return {"ticket": self._ticket(db, existing), "created": False}
            moment = now()
            ticket_id = db.execute(
                tickets.insert().values(
                    **fields,
                    status="open",
                    created_at=moment,
                    updated_at=moment,
                    handed_back=False,
                )
            ).inserted_primary_key[0]
            for entry in transcript:
                db.execute(
                    messages.insert().values(
                        ticket_id=ticket_id,
                        sender=entry["sender"],
                        text=entry["text"],
                        at=entry["at"],
                        delivered=None,
                    )
                )
            row = db.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
            return {"ticket": self._ticket(db, row), "created": True}

    def queue_position(self, ticket_id: int) -> int:
        """1 + the open tickets created before this one."""
        with self.engine.connect() as db:
            created = db.execute(
                sa.select(tickets.c.created_at).where(tickets.c.id == ticket_id)
            ).scalar()
            ahead = db.execute(
                sa.select(sa.func.count())
                .select_from(tickets)
                .where(
                    tickets.c.status == "open",
                    sa.or_(
                        tickets.c.created_at < created,
                        sa.and_(tickets.c.created_at == created, tickets.c.id < ticket_id),
                    ),
                )
            ).scalar()
        return ahead + 1

    def list_tickets(self, status: str, language: Optional[str]) -> List[Dict[str, Any]]:
        query = sa.select(tickets)
        if status != "all":
            query = query.where(tickets.c.status == status)
        if language:
            query = query.where(tickets.c.language == language)
        with self.engine.connect() as db:
            rows = db.execute(query).fetchall()
            found = [self._ticket(db, row) for row in rows]
        return sorted(
            found, key=lambda t: (URGENCIES.index(t["urgency"]), t["created_at"], t["id"])
        )

    def ticket(self, ticket_id: int, with_messages: bool = False) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
            if row is None:
                return None
            found = self._ticket(db, row)
            if with_messages:
                found["messages"] = [
                    _message(m)
                    for m in db.execute(
                        sa.select(messages)
                        .where(messages.c.ticket_id == ticket_id)
                        .order_by(messages.c.id)
                    )
                ]
        return found

    def ticket_by_key(self, key: str) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(tickets).where(tickets.c.idempotency_key == key)).first()
            return self._ticket(db, row) if row else None

    def add_message(
        self, ticket_id: int, sender: str, text: str, at: datetime, key: Optional[str] = None
    ) -> Dict[str, Any]:
        """A message on the ticket, once per idempotency key."""
        with self.engine.begin() as db:
            if key is not None:
                row = db.execute(
                    sa.select(messages).where(messages.c.idempotency_key == key)
                ).first()
                if row is not None:
                    return _message(row)
            message_id = db.execute(
                messages.insert().values(
                    ticket_id=ticket_id,
                    idempotency_key=key,
                    sender=sender,
                    text=text,
                    at=at,
                    delivered=False if sender == "counsellor" else None,
                )
            ).inserted_primary_key[0]
            db.execute(tickets.update().where(tickets.c.id == ticket_id).values(updated_at=now()))
            return _message(
                db.execute(sa.select(messages).where(messages.c.id == message_id)).first()
            )

    def escalate(self, ticket_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(tickets.update().where(tickets.c.id == ticket_id).values(urgency="urgent"))

    def close(self, ticket_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(
                tickets.update()
                .where(tickets.c.id == ticket_id)
                .values(status="closed", updated_at=now())
            )

    def delete_conversation(self, conversation_id: str) -> int:
        """Delete every ticket (and message) of a conversation; how many tickets."""
        with self.engine.begin() as db:
            ids = [
                r.id
                for r in db.execute(
                    sa.select(tickets.c.id).where(tickets.c.conversation_id == conversation_id)
                )
            ]
            if ids:
                db.execute(messages.delete().where(messages.c.ticket_id.in_(ids)))
                db.execute(tickets.delete().where(tickets.c.id.in_(ids)))
        forget_on_disk(self.engine)
        return len(ids)

    def expire(self, retention: timedelta) -> int:
        """Delete the closed tickets (and their messages) last touched longer than
        `retention` ago; how many. Open tickets stay: someone is waiting for an answer."""
        cutoff = now() - retention
        with self.engine.begin() as db:
            ids = [r.id for r in db.execute(sa.select(tickets.c.id).where(
                tickets.c.status == "closed", tickets.c.updated_at < cutoff))]
            if ids:
                db.execute(messages.delete().where(messages.c.ticket_id.in_(ids)))
                db.execute(tickets.delete().where(tickets.c.id.in_(ids)))
        if ids:
            forget_on_disk(self.engine)
        return len(ids)

    # The outbox towards Rasa.

    def undelivered(self) -> List[Dict[str, Any]]:
        """Counsellor replies not yet delivered, oldest first, with their conversation."""
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(messages, tickets.c.conversation_id)
                .join(tickets, tickets.c.id == messages.c.ticket_id)
                .where(messages.c.delivered.is_(False), messages.c.undeliverable.is_(None))
                .order_by(messages.c.id)
            ).fetchall()
        return [
            dict(_message(r), ticket_id=r.ticket_id, conversation_id=r.conversation_id)
            for r in rows
        ]

    def mark_undeliverable(self, message_id: int, reason: str) -> None:
        with self.engine.begin() as db:
            db.execute(
                messages.update().where(messages.c.id == message_id).values(undeliverable=reason)
            )

    def mark_delivered(self, message_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(messages.update().where(messages.c.id == message_id).values(delivered=True))

    def pending_hand_backs(self) -> List[Dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(tickets.c.id, tickets.c.conversation_id, tickets.c.idempotency_key)
                .where(tickets.c.status == "closed", tickets.c.handed_back.is_(False))
                .order_by(tickets.c.id)
            ).fetchall()
        return [dict(r._mapping) for r in rows]

    def mark_handed_back(self, ticket_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(tickets.update().where(tickets.c.id == ticket_id).values(handed_back=True))

    @staticmethod
    def _ticket(db: Any, row: Any) -> Dict[str, Any]:
        last = db.execute(
            sa.select(messages.c.sender)
            .where(messages.c.ticket_id == row.id)
            .order_by(messages.c.id.desc())
            .limit(1)
        ).scalar()
        count = db.execute(
            sa.select(sa.func.count()).select_from(messages).where(messages.c.ticket_id == row.id)
        ).scalar()
        return {
            "id": row.id,
            "conversation_id": row.conversation_id,
            "channel": row.channel,
            "language": row.language,
            "topic": row.topic,
            "urgency": row.urgency,
            "status": row.status,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
            "consent_at": iso(row.consent_at),
            "consent_language": row.consent_language,
            "waiting": row.status == "open" and last == "person",
            "message_count": count,
        }


def _message(row: Any) -> Dict[str, Any]:
    return {
        "id": row.id,
        "sender": row.sender,
        "text": row.text,
        "at": iso(row.at),
        "delivered": row.delivered,
        "undeliverable": row.undeliverable,
    }
