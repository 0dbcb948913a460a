"""The desk's durable store: counsellors, sessions, tickets and their messages.

SQLAlchemy Core, so the same code runs on SQLite (the embedded default) and PostgreSQL
(DESK_DATABASE_URL=postgresql://...). Every change is committed before the API answers.
A counsellor's reply not yet delivered to the person, and a closed ticket whose hand-back
Rasa has not confirmed, stay marked here until delivery succeeds: the store is the desk's
outbox.
"""

import hashlib
import json
import logging
import re
import secrets
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Dict, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects import postgresql, sqlite

from avrr.db import engine, forget_on_disk
from avrr.office import OFFICE_TIMEZONE
from avrr.vocabulary import channel_of
from desk import insight

logger = logging.getLogger(__name__)
URGENCIES = ("urgent", "legal", "normal")
# A viewer sees the statistics only: no ticket, no account, no question of a person.
ROLES = ("counsellor", "admin", "viewer")
SESSION_LIFETIME = timedelta(hours=12)
# How often an open console marks its counsellor as there (it polls every 3 s).
SEEN_EVERY = timedelta(minutes=1)
FORGOTTEN_FOR = timedelta(days=7)
# Who acted, when the desk's API token did (automation, an operator's script): a name no
# account can have.
API_ACTOR = "api"
# Who acted, when the desk itself did (a claim that lapsed).
DESK_ACTOR = "desk"
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
RESERVED = (API_ACTOR, DESK_ACTOR, "command-line")

metadata = sa.MetaData()

counsellors = sa.Table(
    "counsellors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), unique=True, nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("languages", sa.String(255), nullable=False, default=""),
    sa.Column("role", sa.String(16), nullable=False, server_default="counsellor"),
    # A password an administrator gave: to be changed before anything else.
    sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    # When a console of theirs was last open (to SEEN_EVERY): a claim lapses when its
    # holder is away. Kept here, not with the session, which a password reset ends.
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
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
    # The counsellor who holds the ticket: only they answer or close it.
    sa.Column("assignee", sa.String(64), nullable=True),
    # Since when the assignee holds it: a claim or an assignment has its grace period.
    sa.Column("held_since", sa.DateTime(timezone=True), nullable=True),
    # One open ticket per conversation, kept by the database itself (two desks may be
    # asked at the same moment).
    sa.Index("one_open_ticket", "conversation_id", unique=True,
             sqlite_where=sa.text("status = 'open'"),
             postgresql_where=sa.text("status = 'open'")),
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
    # The counsellor who wrote it (or "api").
    sa.Column("author", sa.String(64), nullable=True),
    # Which content an assistant's message or a ready reply says (JSON), for glosses.
    sa.Column("content", sa.Text, nullable=True),
    # What the assistant understood of a message of the person.
    sa.Column("intent", sa.String(64), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sqlite_autoincrement=True,
)

# Who did what, and when: claims, assignments, replies and closes on a ticket (deleted
# with it), and changes to accounts (ticket_id null). Never a message's text.
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"),
              nullable=True, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.String(200), nullable=False, default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


# Statistics (desk/insight.py): counts per day (in Hungary), channel, language and metric, and
# the waits until a counsellor's first reply; nothing in them names a person.
daily_counts = sa.Table(
    "daily_counts",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("language", sa.String(8), primary_key=True),
    sa.Column("metric", sa.String(80), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

waits = sa.Table(
    "waits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, nullable=False, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
)

# Questions the assistant did not understand, redacted, for administrators to label.
# `owner` is a keyed hash of the conversation id: a deletion request removes them.
unanswered = sa.Table(
    "unanswered",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, nullable=False, index=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("language", sa.String(8), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    sa.Column("label", sa.String(64), nullable=True),
    sa.Column("labelled_by", sa.String(64), nullable=True),
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
    sqlite_autoincrement=True,
)

# The insight job's place in the Rasa server's events, and the key of its hashes.
insight_cursor = sa.Table(
    "insight_cursor",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("last_id", sa.Integer, nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
)

# Per conversation (by keyed hash): its language and whether its session is yet to be
# counted, between runs of the job.
insight_state = sa.Table(
    "insight_state",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("language", sa.String(8), nullable=True),
    sa.Column("pending", sa.Boolean, nullable=False),
    sa.Column("handoff", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# Conversations deleted on request (keyed hash): their events, if the job has not read
# them yet, are not counted. Kept a week, longer than the Rasa server takes to delete.
forgotten = sa.Table(
    "forgotten",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# Who does a job that one desk at a time must do (delivering replies), until when.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
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


# The office's time zone (content/settings.yml, office_hours.timezone), for the days of
# the statistics: a day of counts is a day in Hungary, not in UTC.
OFFICE_ZONE = ZoneInfo(OFFICE_TIMEZONE)


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
    try:
        return (moment.astimezone(timezone.utc) if moment.tzinfo
                else moment.replace(tzinfo=timezone.utc))
    except OverflowError:  # "0001-01-01T00:00+01:00" is before the first day there is
        raise ValueError("the time is out of range") from None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Conflict(Exception):
    """The change contradicts the stored state (a name taken, a ticket someone holds)."""


class NotFound(Exception):
    """No such counsellor or ticket."""


class Gone(Exception):
    """The person deleted the conversation after the request was made."""


def upgrade(made: Any) -> None:
    """Add the columns a newer desk has to the tables an older one made (new columns are
    nullable or have a default). A desk that had no roles yet gets its first enabled
    account as administrator: someone can manage the others."""
    inspector = sa.inspect(made)
    # Two desks starting at once on PostgreSQL: the second finds the column there.
    exists = " IF NOT EXISTS" if made.dialect.name == "postgresql" else ""
    with made.begin() as db:
        roles_added = False
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            roles_added |= table is counsellors and "role" not in present
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(made.dialect)
                default = ""
                if column.server_default is not None:
                    value = column.server_default.arg
                    default = " DEFAULT " + (
                        f"'{value}'" if isinstance(value, str)
                        else str(value.compile(dialect=made.dialect)))
                nullable = "" if column.nullable else " NOT NULL"
                db.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN{exists} "
                                   f"{column.name} {kind}{default}{nullable}")
            for index in table.indexes:  # create_all makes them for new tables only
                try:
                    with db.begin_nested():
                        index.create(db, checkfirst=True)
                except sa.exc.IntegrityError:
                    # Older data breaks the rule (two open tickets of one conversation):
                    # the code keeps it for new ones; an operator closes one of the two.
                    logger.warning("index %s not made: existing rows break it", index.name)
        if roles_added:
            first = db.execute(sa.select(sa.func.min(counsellors.c.id)).where(
                counsellors.c.disabled.is_(False))).scalar()
            if first is not None:
                db.execute(counsellors.update().where(counsellors.c.id == first)
                           .values(role="admin"))


class Store:
    def __init__(self, url: str, insight_key: Optional[str] = None,
                 zone: tzinfo = OFFICE_ZONE) -> None:
        """`insight_key` keys the hashes that link a question in the inbox to its
        conversation (DESK_INSIGHT_KEY); without it, a key kept in the database. The
        statistics count the days of `zone`, the office's time zone."""
        self.insight_key = insight_key
        self.zone = zone
        self.engine = engine(url)
        metadata.create_all(self.engine)
        upgrade(self.engine)
        self.hasher = PasswordHasher()
        try:
            with self.engine.begin() as db:
                db.execute(insight_cursor.insert().values(
                    name="events", last_id=0, key=insight.new_key()))
        except sa.exc.IntegrityError:
            pass  # made by an earlier start, or by another desk at the same moment

    # Counsellors and their sessions.

    def add_counsellor(
        self,
        username: str,
        password: str,
        languages: Sequence[str],
        role: str = "counsellor",
        temporary: bool = False,
        actor: str = API_ACTOR,
    ) -> Dict[str, Any]:
        """A new account; the first one is an administrator whatever `role` says.
        Conflict when the name is taken."""
        if not USERNAME.fullmatch(username) or username in RESERVED:
            raise ValueError(
                "a username is 2-64 lower-case letters, digits, '.', '_' or '-', "
                f"and not {' or '.join(RESERVED)}")
        password_hash = self.hasher.hash(password)
        with self.engine.begin() as db:
            if db.execute(sa.select(counsellors.c.id).where(
                    counsellors.c.username == username)).first() is not None:
                raise Conflict(f"the username '{username}' is taken")
            if not db.execute(sa.select(sa.func.count()).select_from(counsellors)).scalar():
                role = "admin"
            try:
                db.execute(
                    counsellors.insert().values(
                        username=username,
                        password_hash=password_hash,
                        languages=",".join(languages),
                        role=role,
                        must_change_password=temporary,
                        disabled=False,
                    )
                )
            except sa.exc.IntegrityError as taken:  # the same name added at the same moment
                raise Conflict(f"the username '{username}' is taken") from taken
            _record(db, None, actor, "account added",
                    f"{username}: {role}, {','.join(languages)}")
        return self.counsellor(username)

    def has_counsellors(self) -> bool:
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(counsellors)).scalar() > 0

    def counsellor(self, username: str) -> Dict[str, Any]:
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(counsellors).where(counsellors.c.username == username)).first()
        if row is None:
            raise NotFound(f"no counsellor '{username}'")
        return _account(row)

    def counsellors(self) -> List[Dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(counsellors).order_by(counsellors.c.username)).fetchall()
        return [_account(row) for row in rows]

    def update_counsellor(
        self, username: str, changes: Dict[str, Any], actor: str
    ) -> Dict[str, Any]:
        """Set `languages` and/or `role`; recorded."""
        values = {}
        if "languages" in changes:
            values["languages"] = ",".join(changes["languages"])
        if "role" in changes:
            values["role"] = changes["role"]
        with self.engine.begin() as db:
            _lock_administrators(db)
            self._change(db, username, values)
            _keep_an_administrator(db)
            if values.get("role") == "viewer":  # a viewer answers nobody
                self._release_all(db, username, actor, f"{username} became a viewer")
            _record(db, None, actor, "account changed", f"{username}: " + ", ".join(
                f"{name} {value}" for name, value in sorted(values.items())))
        return self.counsellor(username)

    def set_disabled(self, username: str, disabled: bool, actor: str) -> Dict[str, Any]:
        """Disable (signed out everywhere, their tickets released) or enable an account."""
        with self.engine.begin() as db:
            _lock_administrators(db)
            found = self._change(db, username, {"disabled": disabled})
            _keep_an_administrator(db)
            if disabled:
                db.execute(sessions.delete().where(sessions.c.counsellor_id == found))
                self._release_all(db, username, actor, f"{username} was disabled")
            _record(db, None, actor, "account disabled" if disabled else "account enabled",
                    username)
        return self.counsellor(username)

    def reset_password(self, username: str, password: str, actor: str) -> Dict[str, Any]:
        """A temporary password from an administrator: signed out everywhere, to be
        changed at the next sign-in."""
        password_hash = self.hasher.hash(password)
        with self.engine.begin() as db:
            found = self._change(db, username, {
                "password_hash": password_hash, "must_change_password": True})
            db.execute(sessions.delete().where(sessions.c.counsellor_id == found))
            _record(db, None, actor, "password reset", username)
        return self.counsellor(username)

    def change_password(self, counsellor_id: int, old: str, new: str, keep: str) -> bool:
        """A counsellor's own change: False if `old` is wrong. Their other sessions end;
        the one holding the token `keep` stays."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(counsellors).where(
                counsellors.c.id == counsellor_id)).first()
        try:
            self.hasher.verify(row.password_hash, old)
        except (VerificationError, InvalidHashError):
            return False
        password_hash = self.hasher.hash(new)
        with self.engine.begin() as db:
            db.execute(counsellors.update().where(counsellors.c.id == counsellor_id).values(
                password_hash=password_hash, must_change_password=False))
            db.execute(sessions.delete().where(
                sessions.c.counsellor_id == counsellor_id,
                sessions.c.token_hash != _hash_token(keep)))
            _record(db, None, row.username, "password changed", row.username)
        return True

    @classmethod
    def _release_all(cls, db: Any, username: str, actor: str, why: str) -> int:
        """Release the open tickets `username` holds; how many."""
        held = [r.id for r in db.execute(sa.select(tickets.c.id).where(
            tickets.c.assignee == username, tickets.c.status == "open"))]
        return sum(cls._release(db, ticket_id, username, actor, why) for ticket_id in held)

    @staticmethod
    def _release(db: Any, ticket_id: int, username: str, actor: str, why: str) -> int:
        """Release the ticket if `username` still holds it open (a colleague may have
        taken it since it was read: the UPDATE checks again, on the row it locks); 1 if
        released."""
        released = db.execute(tickets.update().where(
            tickets.c.id == ticket_id, tickets.c.assignee == username,
            tickets.c.status == "open").values(assignee=None)).rowcount
        if released:
            _record(db, ticket_id, actor, "released", why)
        return released

    @staticmethod
    def _change(db: Any, username: str, values: Dict[str, Any]) -> int:
        found = db.execute(sa.select(counsellors.c.id).where(
            counsellors.c.username == username)).scalar()
        if found is None:
            raise NotFound(f"no counsellor '{username}'")
        if values:
            db.execute(counsellors.update().where(counsellors.c.id == found).values(**values))
        return found

    def account_events(self, limit: int = 200) -> List[Dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(audit).where(audit.c.ticket_id.is_(None))
                              .order_by(audit.c.id.desc()).limit(limit)).fetchall()
        return [_event(row) for row in rows]

    def check_password(self, username: str, password: str) -> Optional[int]:
        """The counsellor's id if the password is right and the account enabled, else None."""
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(counsellors.c.id, counsellors.c.password_hash,
                          counsellors.c.disabled).where(counsellors.c.username == username)
            ).first()
        if row is None:
            # Spend the same time as a real check: no hint which usernames exist.
            self.hasher.hash(password)
            return None
        try:
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return None if row.disabled else row.id

    def login_attempt(self, limits: Dict[str, int], window: timedelta) -> Optional[float]:
        """Count one sign-in attempt for each key of `limits` (e.g. "name:amina" -> the
        attempts it may have in `window`); seconds to wait when it is one too many for a
        key (None: go ahead). Counted in one transaction before the password is checked,
        so that attempts made at once cannot all pass; a success is taken back
        (`login_succeeded`). An attempt refused is not counted for any key: it checks no
        password, and one address hammering a name must not lock it for everyone."""
        moment = now()
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as db:
            expired = login_failures.c.window_start < moment - window
            db.execute(login_failures.delete().where(expired))
            for key in sorted(limits):  # one order of row locks for every transaction
                insert = dialect.insert(login_failures).values(
                    key=key, count=1, window_start=moment)
                db.execute(insert.on_conflict_do_update(
                    index_elements=[login_failures.c.key],
                    set_={"count": login_failures.c.count + 1},
                ))
            rows = db.execute(
                sa.select(login_failures).where(login_failures.c.key.in_(list(limits)))
            ).fetchall()
            waits = [
                (parse_time(iso(row.window_start)) + window - moment).total_seconds()
                for row in rows
                if row.count > limits[row.key]
            ]
            if waits:
                db.execute(
                    login_failures.update().where(login_failures.c.key.in_(list(limits)))
                    .values(count=login_failures.c.count - 1))
        return max(waits) if waits else None

    def login_succeeded(self, forget: Sequence[str], keep: Sequence[str] = ()) -> None:
        """A successful attempt: the `forget` keys start again, the `keep` keys (shared
        with others: an address, a name from anywhere) no longer count this attempt."""
        with self.engine.begin() as db:
            db.execute(login_failures.delete().where(login_failures.c.key.in_(list(forget))))
            db.execute(
                login_failures.update()
                .where(login_failures.c.key.in_(list(keep)), login_failures.c.count > 0)
                .values(count=login_failures.c.count - 1)
            )

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
            db.execute(counsellors.update().where(counsellors.c.id == counsellor_id)
                       .values(seen_at=now()))
        return {"token": token, "csrf_token": csrf}

    def session(self, token: str) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(sessions, counsellors)
                .join(counsellors, counsellors.c.id == sessions.c.counsellor_id)
                .where(sessions.c.token_hash == _hash_token(token))
            ).first()
        if row is None or row.disabled or parse_time(iso(row.expires_at)) < now():
            return None
        if row.seen_at is None or parse_time(iso(row.seen_at)) < now() - SEEN_EVERY:
            with self.engine.begin() as db:  # the counsellor's console is open
                db.execute(counsellors.update().where(counsellors.c.id == row.counsellor_id)
                           .values(seen_at=now()))
        return dict(_account(row), id=row.counsellor_id, csrf_token=row.csrf_token)

    def close_session(self, token: str) -> None:
        """Sign out; the counsellor's tickets are released when it was their last session."""
        with self.engine.begin() as db:
            row = db.execute(
                sa.select(sessions.c.counsellor_id, counsellors.c.username)
                .join(counsellors, counsellors.c.id == sessions.c.counsellor_id)
                .where(sessions.c.token_hash == _hash_token(token))).first()
            if row is None:
                return
            db.execute(sessions.delete().where(sessions.c.token_hash == _hash_token(token)))
            others = db.execute(sa.select(sa.func.count()).select_from(sessions).where(
                sessions.c.counsellor_id == row.counsellor_id,
                sessions.c.expires_at > now())).scalar()
            if not others:
                self._release_all(db, row.username, row.username,
                                  f"{row.username} signed out")

    def release_absent(self, idle: timedelta) -> int:
        """Release the open tickets held for longer than `idle` by someone with no console
        open for as long (gone home without signing out, the browser closed); how many.
        A ticket held by someone who went home would otherwise wait for an administrator.
        A claim or an assignment has the same grace: the assignee may be on their way."""
        cutoff = now() - idle
        # A console marks itself every SEEN_EVERY: one seen a little longer ago is open.
        present = sa.select(counsellors.c.username).where(
            counsellors.c.seen_at > cutoff - SEEN_EVERY)
        minutes = round(idle.total_seconds() / 60)
        with self.engine.begin() as db:
            held = db.execute(sa.select(tickets.c.id, tickets.c.assignee).where(
                tickets.c.status == "open", tickets.c.assignee.is_not(None),
                sa.or_(tickets.c.held_since.is_(None), tickets.c.held_since < cutoff),
                tickets.c.assignee.not_in(present))).fetchall()
            released = 0
            for ticket_id, username in held:
                released += self._release(
                    db, ticket_id, username, DESK_ACTOR,
                    f"{username} away for {minutes} minutes or more")
        return released

    # Tickets.

    def create_ticket(
        self, fields: Dict[str, Any], transcript: List[Dict[str, Any]]
    ) -> Dict[str, Any]:
        """The ticket for `fields`, created once per idempotency key and open conversation.

        Returns the ticket and whether it is new. A second request with the same key, or
        for a conversation that already has an open ticket, gets that ticket back: also
        when both arrive at once (the database's unique indexes decide; the loser reads
        the winner's ticket).
        """
        try:
            return self._create_ticket(fields, transcript)
        except sa.exc.IntegrityError:
            return self._create_ticket(fields, transcript)

    def _create_ticket(
        self, fields: Dict[str, Any], transcript: List[Dict[str, Any]]
    ) -> Dict[str, Any]:
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
            # A ticket sent before a deletion and arriving after it (its sender timed out,
            # the desk had it half done): it must not bring the conversation back.
            owner = insight.owner_of(self._insight_key(db), fields["conversation_id"])
            self._lock_conversation(db, owner)
            deleted_at = db.execute(sa.select(forgotten.c.at).where(
                forgotten.c.owner == owner)).scalar()
            if deleted_at is not None and parse_time(iso(deleted_at)) > fields["consent_at"]:
                raise Gone("the person deleted this conversation after consenting")
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
                        content=_json(entry.get("content")),
                        intent=entry.get("intent"),
                        confidence=entry.get("confidence"),
                    )
                )
            row = db.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
            day = insight.day_of(moment.timestamp(), self.zone)  # the office's day, as waits
            where = (day, fields["channel"][:32], fields["language"][:8])
            _add_counts(db, {where + ("tickets",): 1, where + (f"tickets:{fields['urgency']}",): 1})
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
        query = _with_summary()
        if status != "all":
            query = query.where(tickets.c.status == status)
        if language:
            query = query.where(tickets.c.language == language)
        with self.engine.connect() as db:
            found = [_summary(row) for row in db.execute(query)]
        return sorted(
            found, key=lambda t: (URGENCIES.index(t["urgency"]), t["created_at"], t["id"])
        )

    def ticket(self, ticket_id: int, with_messages: bool = False) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(_with_summary().where(tickets.c.id == ticket_id)).first()
            if row is None:
                return None
            found = _summary(row)
            if with_messages:
                found["messages"] = [
                    _message(m)
                    for m in db.execute(
                        sa.select(messages)
                        .where(messages.c.ticket_id == ticket_id)
                        .order_by(messages.c.id)
                    )
                ]
                found["history"] = [_event(e) for e in db.execute(
                    sa.select(audit).where(audit.c.ticket_id == ticket_id)
                    .order_by(audit.c.id))]
        return found

    def inbound(self, ticket_key: str, conversation_id: Optional[str], key: str, text: str,
                at: datetime, urgent: bool = False, **annotations: Any
                ) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
        """A message of the person to their counsellor, once per idempotency key: on the
        ticket of `ticket_key`, or, when that one is unknown or closed, on the open ticket
        of `conversation_id` (the key the assistant holds may be a consent sent twice's,
        for which the desk answered with the ticket it had). NotFound when there is no
        such ticket; Conflict when it is closed: nobody would read the message there.
        `urgent`: the ticket becomes urgent (a message about danger); `annotations`: what
        the assistant understood of it (`intent`, `confidence`). The message, and the
        ticket if this message made it urgent (to be announced as a new one is)."""
        with self.engine.begin() as db:
            row = db.execute(
                sa.select(tickets).where(tickets.c.idempotency_key == ticket_key)).first()
            if (row is None or row.status != "open") and conversation_id:
                row = db.execute(sa.select(tickets).where(
                    tickets.c.conversation_id == conversation_id, tickets.c.status == "open",
                )).first() or row
            if row is None:
                raise NotFound("no ticket with that key")
            found = db.execute(sa.select(messages).where(messages.c.idempotency_key == key)).first()
            if found is not None:  # sent again: the message is there, whatever came since
                return _message(found), None
            _lock(db, row.id)  # a close waits for this message, or comes first
            current = self._row(db, row.id)
            if current.status != "open":
                raise Conflict("the ticket is closed")
            raised = urgent and current.urgency != "urgent"
            if raised:
                db.execute(tickets.update().where(tickets.c.id == row.id).values(urgency="urgent"))
                _record(db, row.id, API_ACTOR, "made urgent", "a message about danger")
            message = self._insert_message(db, row.id, idempotency_key=key, sender="person",
                                           text=text, at=at, delivered=None, **annotations)
            return message, self._ticket(db, self._row(db, row.id)) if raised else None

    @staticmethod
    def _insert_message(db: Any, ticket_id: int, **values: Any) -> Dict[str, Any]:
        """A new message on the ticket, which it brings up to date."""
        message_id = db.execute(
            messages.insert().values(ticket_id=ticket_id, **values)).inserted_primary_key[0]
        db.execute(tickets.update().where(tickets.c.id == ticket_id).values(updated_at=now()))
        return _message(db.execute(sa.select(messages).where(messages.c.id == message_id)).first())

    def reply(
        self, ticket_id: int, actor: str, text: str, content: Optional[Dict[str, Any]] = None,
        key: Optional[str] = None,
    ) -> Dict[str, Any]:
        """A counsellor's reply, to be delivered: taken only from the counsellor who holds
        the ticket, who gets it if nobody does (no two people answer one person). The
        API token answers whoever holds it. Conflict if the ticket is closed or held by
        someone else. A `key` given again by the same author on the same ticket is the
        reply already taken: it is returned, not added."""
        stored_key = None if key is None else "reply:" + hashlib.sha256(
            f"{ticket_id}|{actor}|{key}".encode()).hexdigest()[:40]
        with self.engine.begin() as db:
            _lock(db, ticket_id)
            if stored_key is not None:
                taken = db.execute(sa.select(messages).where(
                    messages.c.idempotency_key == stored_key)).first()
                if taken is not None:
                    return _message(taken)
            self._hold(db, ticket_id, actor)
            first = not db.execute(sa.select(messages.c.id).where(
                messages.c.ticket_id == ticket_id, messages.c.sender == "counsellor")).first()
            if first:  # how long the person waited for a counsellor, without who they are
                row = self._row(db, ticket_id)
                waited = (now() - parse_time(iso(row.created_at))).total_seconds()
                db.execute(waits.insert().values(
                    day=insight.day_of(parse_time(iso(row.created_at)).timestamp(), self.zone),
                    channel=row.channel,
                    language=row.language, urgency=row.urgency, seconds=max(0.0, waited)))
            message = self._insert_message(
                db, ticket_id, sender="counsellor", text=text, at=now(), delivered=False,
                author=actor, content=_json(content), idempotency_key=stored_key)
            detail = f"ready reply {content['key']}" if content else "free text"
            _record(db, ticket_id, actor, "replied", detail)
            return message

    def claim(self, ticket_id: int, username: str) -> Dict[str, Any]:
        """Give an open ticket to `username`; Conflict if someone else holds it."""
        with self.engine.begin() as db:
            _lock(db, ticket_id)
            if self._hold(db, ticket_id, username):
                _record(db, ticket_id, username, "claimed", "")
            return self._ticket(db, self._row(db, ticket_id))

    def release(self, ticket_id: int, actor: str, administrator: bool) -> Dict[str, Any]:
        """Nobody holds the ticket any more: by its holder, an administrator or the API."""
        with self.engine.begin() as db:
            _lock(db, ticket_id)
            row = self._row(db, ticket_id)
            if row.assignee is not None:
                if row.assignee != actor and not administrator:
                    raise Conflict(f"{row.assignee} holds this ticket")
                db.execute(tickets.update().where(tickets.c.id == ticket_id)
                           .values(assignee=None))
                _record(db, ticket_id, actor, "released", row.assignee)
            return self._ticket(db, self._row(db, ticket_id))

    def assign(self, ticket_id: int, username: str, actor: str) -> Dict[str, Any]:
        """An administrator gives an open ticket to an enabled counsellor."""
        with self.engine.begin() as db:
            _lock(db, ticket_id)
            row = self._row(db, ticket_id)
            account = db.execute(sa.select(counsellors).where(
                counsellors.c.username == username)).first()
            if account is None or account.disabled or account.role == "viewer":
                raise NotFound(f"no enabled counsellor '{username}'")
            if row.status != "open":
                raise Conflict("the ticket is closed")
            db.execute(tickets.update().where(tickets.c.id == ticket_id)
                       .values(assignee=username, held_since=now()))
            _record(db, ticket_id, actor, "assigned", username)
            return self._ticket(db, self._row(db, ticket_id))

    def close(self, ticket_id: int, actor: str = API_ACTOR) -> Dict[str, Any]:
        """Close an open ticket; by its holder (or anyone when nobody holds it) or the API.
        Closing a closed ticket changes nothing."""
        with self.engine.begin() as db:
            _lock(db, ticket_id)
            if self._row(db, ticket_id).status == "open":
                self._hold(db, ticket_id, actor, take=False)
                db.execute(
                    tickets.update()
                    .where(tickets.c.id == ticket_id)
                    .values(status="closed", updated_at=now())
                )
                _record(db, ticket_id, actor, "closed", "")
            return self._ticket(db, self._row(db, ticket_id))

    @staticmethod
    def _row(db: Any, ticket_id: int) -> Any:
        row = db.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise NotFound("no such ticket")
        return row

    def _hold(self, db: Any, ticket_id: int, actor: str, take: bool = True) -> bool:
        """Check that `actor` may act on the open ticket, giving it to them if nobody
        holds it and `take`; True if it was given now. One UPDATE decides, so two
        counsellors at the same moment cannot both get it."""
        row = self._row(db, ticket_id)
        if row.status != "open":
            raise Conflict("the ticket is closed")
        if actor == API_ACTOR or row.assignee == actor:
            return False
        if row.assignee is None and not take:
            return False
        taken = db.execute(
            tickets.update()
            .where(tickets.c.id == ticket_id, tickets.c.status == "open",
                   tickets.c.assignee.is_(None))
            .values(assignee=actor, held_since=now())
        ).rowcount
        if not taken:
            holder = db.execute(sa.select(tickets.c.assignee).where(
                tickets.c.id == ticket_id)).scalar()
            raise Conflict(f"{holder} holds this ticket")
        return True

    def delete_conversation(self, conversation_id: str, language: str = insight.UNKNOWN) -> int:
        """Delete every ticket (and message) of a conversation, and its questions in the
        inbox; how many tickets. Counted as a deletion request, once a week per
        conversation: the same request again (a retry) is not counted twice."""
        with self.engine.begin() as db:
            # After a run that read this conversation's events, or before the next one.
            self._lock_cursor(db)
            owner = insight.owner_of(self._insight_key(db), conversation_id)
            self._lock_conversation(db, owner)
            db.execute(unanswered.delete().where(unanswered.c.owner == owner))
            db.execute(insight_state.delete().where(insight_state.c.owner == owner))
            if db.execute(sa.select(forgotten.c.owner).where(forgotten.c.owner == owner)).first():
                db.execute(forgotten.update().where(forgotten.c.owner == owner).values(at=now()))
            else:
                db.execute(forgotten.insert().values(owner=owner, at=now()))
                _add_counts(db, {(self.today(), channel_of(conversation_id), language[:8],
                                  "deletion_requests"): 1})
            ids = [
                r.id
                for r in db.execute(
                    sa.select(tickets.c.id).where(tickets.c.conversation_id == conversation_id)
                )
            ]
            if ids:
                db.execute(audit.delete().where(audit.c.ticket_id.in_(ids)))
                db.execute(messages.delete().where(messages.c.ticket_id.in_(ids)))
                db.execute(tickets.delete().where(tickets.c.id.in_(ids)))
        forget_on_disk(self.engine)
        return len(ids)

    def expire(self, retention: timedelta) -> int:
        """Delete the tickets (and their messages) last touched longer than `retention`
        ago; how many. An open one too: nobody wrote on it for that long, and its
        conversation expired at the assistant as long ago (a reply could not reach the
        person); what they shared is kept no longer than they were promised. Questions in
        the inbox go after the same time, the job's per-conversation state too, and the
        list of deleted conversations after a week."""
        cutoff = now() - retention
        last_day = insight.day_of(cutoff.timestamp(), self.zone)  # the inbox's days are Hungary's
        with self.engine.begin() as db:
            db.execute(unanswered.delete().where(unanswered.c.day < last_day))
            db.execute(insight_state.delete().where(insight_state.c.updated_at < cutoff))
            db.execute(forgotten.delete().where(forgotten.c.at < now() - FORGOTTEN_FOR))
            ids = [r.id for r in db.execute(sa.select(tickets.c.id).where(
                tickets.c.updated_at < cutoff))]
            if ids:
                db.execute(audit.delete().where(audit.c.ticket_id.in_(ids)))
                db.execute(messages.delete().where(messages.c.ticket_id.in_(ids)))
                db.execute(tickets.delete().where(tickets.c.id.in_(ids)))
        if ids:
            forget_on_disk(self.engine)
        return len(ids)

    # Statistics and the unanswered questions (desk/insight.py).

    def _insight_key(self, db: Any) -> bytes:
        if self.insight_key:
            return self.insight_key.encode()
        return db.execute(sa.select(insight_cursor.c.key).where(
            insight_cursor.c.name == "events")).scalar().encode()

    def _lock_conversation(self, db: Any, owner: str) -> None:
        """One at a time per conversation, until the transaction ends: its deletion, and a
        ticket made for it. Else, on PostgreSQL, a ticket that read `forgotten` before a
        deletion committed was made after it, and kept. (SQLite has one writer.)"""
        if self.engine.dialect.name == "postgresql":
            db.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                       {"key": int(owner[:15], 16)})

    @staticmethod
    def _lock_cursor(db: Any) -> None:
        """Take the insight cursor's row: counting and forgetting happen one at a time."""
        db.execute(insight_cursor.update().where(insight_cursor.c.name == "events")
                   .values(last_id=insight_cursor.c.last_id))

    def run_insight(self, source_url: str) -> int:
        """Count the Rasa server's events stored since the last run; how many were read."""
        with self.engine.begin() as db:
            # Taking the cursor row first: a second desk's run waits, then reads on.
            self._lock_cursor(db)
            cursor = db.execute(sa.select(insight_cursor).where(
                insight_cursor.c.name == "events")).first()
            rows = insight.read_source(source_url, cursor.last_id)
            if not rows:
                # A store whose newest events were deleted before its ids were kept
                # unique (bot/tracker_store.py): go back, or new events would be missed.
                newest = insight.newest_id(source_url)
                if newest < cursor.last_id:
                    db.execute(insight_cursor.update().where(
                        insight_cursor.c.name == "events").values(last_id=newest))
                return 0
            key = self._insight_key(db)
            owners = list({insight.owner_of(key, row.sender_id or "") for row in rows})
            gone = {r.owner for r in db.execute(
                sa.select(forgotten.c.owner).where(forgotten.c.owner.in_(owners)))}
            states = {r.owner: {"language": r.language, "pending": r.pending,
                                "handoff": r.handoff} for r in
                      db.execute(sa.select(insight_state).where(
                          insight_state.c.owner.in_(owners)))}
            known = set(states)
            counted, last = insight.tally(rows, key, gone, states, self.zone)
            _add_counts(db, counted.counts)
            for question in counted.questions:
                db.execute(unanswered.insert().values(**question))
            for owner in counted.changed:
                values = dict(language=states[owner]["language"],
                              pending=states[owner]["pending"],
                              handoff=states[owner]["handoff"], updated_at=now())
                if owner in known:
                    db.execute(insight_state.update().where(insight_state.c.owner == owner)
                               .values(**values))
                else:
                    db.execute(insight_state.insert().values(owner=owner, **values))
            db.execute(insight_cursor.update().where(insight_cursor.c.name == "events")
                       .values(last_id=last))
        return len(rows)

    def today(self) -> date:
        """Today, in the office's time zone."""
        return insight.day_of(None, self.zone)

    def statistics(self, first: date, last: date) -> Dict[str, List[Dict[str, Any]]]:
        """The counts and the waits of the days from `first` to `last`."""
        with self.engine.connect() as db:
            counts = db.execute(sa.select(daily_counts).where(
                daily_counts.c.day >= first, daily_counts.c.day <= last)
                .order_by(daily_counts.c.day, daily_counts.c.channel,
                          daily_counts.c.language, daily_counts.c.metric)).fetchall()
            waited = db.execute(sa.select(waits).where(
                waits.c.day >= first, waits.c.day <= last).order_by(waits.c.id)).fetchall()
        return {
            "counts": [dict(r._mapping) for r in counts],
            "waits": [{k: v for k, v in r._mapping.items() if k != "id"} for r in waited],
        }

    def unanswered(self, language: Optional[str], labelled: Optional[bool]
                   ) -> List[Dict[str, Any]]:
        query = sa.select(unanswered).order_by(unanswered.c.id.desc()).limit(500)
        if language:
            query = query.where(unanswered.c.language == language)
        if labelled is not None:
            query = query.where(unanswered.c.label.isnot(None) if labelled
                                else unanswered.c.label.is_(None))
        with self.engine.connect() as db:
            return [_question(row) for row in db.execute(query)]

    def label(self, question_id: int, intent: str, actor: str) -> Dict[str, Any]:
        with self.engine.begin() as db:
            done = db.execute(unanswered.update().where(unanswered.c.id == question_id).values(
                label=intent, labelled_by=actor, labelled_at=now())).rowcount
            if not done:
                raise NotFound("no such question")
            return _question(db.execute(sa.select(unanswered).where(
                unanswered.c.id == question_id)).first())

    def labelled(self) -> List[Dict[str, Any]]:
        """Every labelled question, oldest first (for `python -m desk export-labels`)."""
        with self.engine.connect() as db:
            return [_question(row) for row in db.execute(
                sa.select(unanswered).where(unanswered.c.label.isnot(None))
                .order_by(unanswered.c.id))]

    def gauges(self) -> Dict[str, Any]:
        """What an engineer on call watches: open tickets by urgency, how long the
        longest-waiting person has waited, replies not delivered yet or never, and
        hand-backs Rasa has not confirmed."""
        with self.engine.connect() as db:
            open_by = dict(db.execute(
                sa.select(tickets.c.urgency, sa.func.count()).where(tickets.c.status == "open")
                .group_by(tickets.c.urgency)).fetchall())
            replies = dict(db.execute(
                sa.select(messages.c.undeliverable.is_(None), sa.func.count())
                .where(messages.c.delivered.is_(False))
                .group_by(messages.c.undeliverable.is_(None))).fetchall())
            hand_backs = db.execute(sa.select(sa.func.count()).select_from(tickets).where(
                tickets.c.status == "closed", tickets.c.handed_back.is_(False))).scalar()
        waiting = [t for t in self.list_tickets("open", None) if t["waiting"]]
        oldest = min((parse_time(t["updated_at"]) for t in waiting), default=None)
        return {
            "open": {urgency: open_by.get(urgency, 0) for urgency in URGENCIES},
            "waiting": len(waiting),
            "longest_wait_s": (now() - oldest).total_seconds() if oldest else 0.0,
            "undelivered": replies.get(True, 0),
            "undeliverable": replies.get(False, 0),
            "hand_backs_pending": hand_backs,
        }

    def lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `seconds`: True if `holder` has it now.
        Another desk gets it only once it ran out (its holder died or stopped)."""
        moment = now()
        until = moment + timedelta(seconds=seconds)
        with self.engine.begin() as db:
            taken = db.execute(leases.update().where(
                leases.c.name == name,
                sa.or_(leases.c.holder == holder, leases.c.until < moment),
            ).values(holder=holder, until=until)).rowcount
            if taken:
                return True
            if db.execute(sa.select(leases.c.name).where(leases.c.name == name)).first():
                return False
        try:
            with self.engine.begin() as db:
                db.execute(leases.insert().values(name=name, holder=holder, until=until))
            return True
        except sa.exc.IntegrityError:
            return False  # another desk made it at the same moment

    # The outbox towards Rasa.

    def undelivered(self, conversation_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Counsellor replies not yet delivered (to one conversation, or to any), oldest
        first, with their conversation."""
        query = (
            sa.select(messages, tickets.c.conversation_id)
            .join(tickets, tickets.c.id == messages.c.ticket_id)
            .where(messages.c.delivered.is_(False), messages.c.undeliverable.is_(None))
            .order_by(messages.c.id)
        )
        if conversation_id is not None:
            query = query.where(tickets.c.conversation_id == conversation_id)
        with self.engine.connect() as db:
            rows = db.execute(query).fetchall()
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

    def pending_hand_backs(self, conversation_id: Optional[str] = None) -> List[Dict[str, Any]]:
        query = (
            sa.select(tickets.c.id, tickets.c.conversation_id, tickets.c.idempotency_key)
            .where(tickets.c.status == "closed", tickets.c.handed_back.is_(False))
            .order_by(tickets.c.id)
        )
        if conversation_id is not None:
            query = query.where(tickets.c.conversation_id == conversation_id)
        with self.engine.connect() as db:
            rows = db.execute(query).fetchall()
        return [dict(r._mapping) for r in rows]

    def mark_handed_back(self, ticket_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(tickets.update().where(tickets.c.id == ticket_id).values(handed_back=True))

    @staticmethod
    def _ticket(db: Any, row: Any) -> Dict[str, Any]:
        """The ticket `row` as read again in the transaction that holds its lock."""
        return _summary(db.execute(_with_summary().where(tickets.c.id == row.id)).one())


def _with_summary() -> Any:
    """The tickets, each with who wrote last and how many messages it has: one statement
    for a whole list (it was two queries a ticket: 1.1 s for 3,000)."""
    last = (sa.select(messages.c.sender).where(messages.c.ticket_id == tickets.c.id)
            .order_by(messages.c.id.desc()).limit(1).scalar_subquery())
    count = (sa.select(sa.func.count()).select_from(messages)
             .where(messages.c.ticket_id == tickets.c.id).scalar_subquery())
    return sa.select(tickets, last.label("last_sender"), count.label("message_count"))


def _summary(row: Any) -> Dict[str, Any]:
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
        "waiting": row.status == "open" and row.last_sender == "person",
        "message_count": row.message_count,
        "assignee": row.assignee,
    }


def _message(row: Any) -> Dict[str, Any]:
    return {
        "id": row.id,
        "sender": row.sender,
        "text": row.text,
        "at": iso(row.at),
        "delivered": row.delivered,
        "undeliverable": row.undeliverable,
        "author": row.author,
        "content": json.loads(row.content) if row.content else None,
        "intent": row.intent,
        "confidence": row.confidence,
    }


def _account(row: Any) -> Dict[str, Any]:
    return {
        "username": row.username,
        "languages": [code for code in row.languages.split(",") if code],
        "role": row.role,
        "must_change_password": bool(row.must_change_password),
        "disabled": bool(row.disabled),
    }


def _event(row: Any) -> Dict[str, Any]:
    return {"at": iso(row.at), "actor": row.actor, "action": row.action, "detail": row.detail}


def _record(db: Any, ticket_id: Optional[int], actor: str, action: str, detail: str) -> None:
    db.execute(audit.insert().values(
        ticket_id=ticket_id, actor=actor, action=action, detail=detail[:200], at=now()))


def _lock(db: Any, ticket_id: int) -> None:
    """Write to the ticket's row first: until this transaction ends, no other one reads
    it to change it (a row lock on PostgreSQL; SQLite's one writer), so that a claim, a
    reply and a close on one ticket happen one after the other. NotFound if none."""
    if not db.execute(tickets.update().where(tickets.c.id == ticket_id)
                      .values(id=tickets.c.id)).rowcount:
        raise NotFound("no such ticket")


def _lock_administrators(db: Any) -> None:
    """On PostgreSQL, lock the administrators' rows: two changes that would each leave
    one administrator wait for each other. (SQLite has one writer at a time.)"""
    db.execute(sa.select(counsellors.c.id).where(counsellors.c.role == "admin")
               .with_for_update())


def _keep_an_administrator(db: Any) -> None:
    """Conflict (the transaction is undone) if no enabled administrator is left."""
    left = db.execute(sa.select(sa.func.count()).select_from(counsellors).where(
        counsellors.c.role == "admin", counsellors.c.disabled.is_(False))).scalar()
    if not left:
        raise Conflict("the desk needs at least one enabled administrator")


def _question(row: Any) -> Dict[str, Any]:
    return {"id": row.id, "day": row.day.isoformat(), "channel": row.channel,
            "language": row.language, "text": row.text, "label": row.label,
            "labelled_by": row.labelled_by, "labelled_at": iso(row.labelled_at)}


def _add_counts(db: Any, counts: Dict[Tuple[date, str, str, str], int]) -> None:
    """Add to the daily counts, creating a count at its first."""
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    for (day, channel, language, metric), n in counts.items():
        insert = dialect.insert(daily_counts).values(
            day=day, channel=channel, language=language, metric=metric[:80], count=n)
        db.execute(insert.on_conflict_do_update(
            index_elements=[daily_counts.c.day, daily_counts.c.channel,
                            daily_counts.c.language, daily_counts.c.metric],
            set_={"count": daily_counts.c.count + insert.excluded.count},
        ))


def _json(value: Optional[Dict[str, Any]]) -> Optional[str]:
    return None if value is None else json.dumps(value, ensure_ascii=False)
