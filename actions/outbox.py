"""A durable outbox from the action server to the counsellor desk (and back to Rasa).

Every request to the desk (a new ticket, a message during the handoff) is first
committed with an idempotency key, then sent; the desk treats a repeated key as the same
request, so nothing is lost and nothing doubled. It cannot be poisoned:
- order is kept per conversation (and target), not globally: a conversation whose
  request keeps failing delays nobody else;
- a failure is retried with backoff, up to a cap; what keeps failing, or what the desk
  refuses for good, moves to the dead letters with its reason, where an operator sees
  it (`python -m actions.outbox`, the desk's status page, the metrics) and can retry a
  message (not a ticket: the person was told that nothing was shared);
- answers are classified: unreachable, 408/425/429/5xx: the desk is busy or down, try
  again; 401/403: our token is refused, 413: too large: configuration problems, tried
  again and logged as errors for the operator; 404 on a message for a ticket: the ticket
  is not there (yet), tried again a few times; any other 4xx: refused for good;
- when a ticket is refused for good, the conversation's later messages to that ticket
  die with it, and the person is told (`action_handoff_failed`, through Rasa's API), in
  their language, with the hotline; the handoff is cleared so the assistant answers. When
  a message is refused for good (or its ticket stays missing), the person is told that it
  did not reach the counsellor (`action_relay_failed`), with the hotline.
Sending happens outside any transaction; a request being sent is leased, so the action
and the delivery thread (or two replicas) never send it both. Delivered requests keep
only their key and the desk's answer, for an hour: no text and no conversation id.

Deleting a conversation (`delete_conversation`) is sent at once, with its key, and kept
nowhere: the person is told the truth now. First every waiting request of the
conversation is leased, after the one being sent (if any) is done, so none can reach the
desk after its DELETE; the requests are dropped (dead letters too) only when the desk
confirmed the deletion; otherwise they are released and sent as before: a failed
deletion loses nothing, not even a handoff the person was promised.
"""
import argparse
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from typing import Any, Dict, Iterable, List, Optional, Tuple

import jwt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from actions.runtime import settings
from avrr.db import engine, forget_on_disk
from avrr.network import path_segment
from avrr.settings import Settings, load
from avrr.vocabulary import Actions

logger = logging.getLogger(__name__)

TIMEOUT_S = 5.0
LEASE_S = 30.0
MAX_BACKOFF_S = 300.0
MAX_ATTEMPTS = 40  # about three hours of retries at most
MAX_MISSING_TICKET_ATTEMPTS = 5
KEEP_DELIVERED_S = 3600
# How long a deletion waits for a request of its conversation being sent: a send takes at
# most a connection and an answer, TIMEOUT_S each.
WAIT_S = 2 * TIMEOUT_S
# How long a deletion holds its conversation's requests: the wait, then its own DELETE,
# with room to spare; if the action server dies meanwhile, they go again after it.
HOLD_S = WAIT_S + LEASE_S
DESK, RASA = "desk", "rasa"
PENDING, DELIVERED = "pending", "delivered"
TICKETS_PATH = "/api/tickets"
INBOUND_PATH = "/api/inbound"
# The desk or Rasa is down, overloaded or restarting: try again later.
BUSY = {408, 425, 429, 500, 502, 503, 504}
# Our token is refused, or the request is too large: an operator must act; keep trying.
CONFIGURATION = {401, 403, 413}
FOLLOWER_REASON = "its ticket was refused"

metadata = sa.MetaData()


def request_columns() -> List[sa.Column]:
    """A request to the desk or Rasa: what the outbox and the dead letters both hold."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(160), unique=True, nullable=False),
        sa.Column("conversation_id", sa.String(160), nullable=True, index=True),
        sa.Column("target", sa.String(8), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("body", sa.Text, nullable=True),
    ]


outbox = sa.Table(
    "outbox",
    metadata,
    *request_columns(),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sqlite_autoincrement=True,
)
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    *request_columns(),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("died_at", sa.Float, nullable=False, index=True),
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class Verdict:
    """What to do with a request after one attempt."""

    delivered: bool = False
    retry: bool = False
    reason: str = ""
    response: Optional[str] = None
    status: Optional[int] = None


def classify(status: Optional[int], path: str, attempts: int) -> Verdict:
    """The verdict on an answer (`status` None: no answer) to the attempt number `attempts`."""
    if status is not None and status < 300:
        return Verdict(delivered=True, status=status)
    if status is None or status in BUSY:
        reason = "unreachable" if status is None else f"busy ({status})"
        return Verdict(retry=attempts < MAX_ATTEMPTS, reason=reason, status=status)
    if status in CONFIGURATION:
        what = "too large" if status == 413 else "our token is refused"
        return Verdict(retry=attempts < MAX_ATTEMPTS, reason=f"{what} ({status})", status=status)
    if status == 404 and path == INBOUND_PATH:
        return Verdict(retry=attempts < MAX_MISSING_TICKET_ATTEMPTS,
                       reason="its ticket is missing (404)", status=status)
    return Verdict(reason=f"refused ({status})", status=status)


def kind(row: Any) -> str:
    """What a request is, in a word that names nobody."""
    if row.target == RASA:
        return "notice"
    if row.method == "DELETE":
        return "deletion"
    return {TICKETS_PATH: "ticket", INBOUND_PATH: "message"}.get(row.path, "request")


def kept_answer(body: Optional[str]) -> Optional[str]:
    """What of the desk's answer the waiting action needs: the queue position, no more (the
    answer names the conversation and quotes the person)."""
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        return None
    if isinstance(answer, dict) and isinstance(answer.get("queue_position"), int):
        return json.dumps({"queue_position": answer["queue_position"]})
    return None


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF_S, 2.0 ** min(attempts, 16))


class Outbox:
    """The outbox on one engine; safe to share between threads."""

    def __init__(self, made: Engine, desk_url: str, desk_token: str, rasa_url: str = "",
                 rasa_token: str = "", clock=time.time) -> None:
        self.engine = made
        self.desk_url = desk_url.rstrip("/")
        self.desk_token = desk_token
        self.rasa_url = rasa_url.rstrip("/")
        self.rasa_token = rasa_token
        self.clock = clock
        metadata.create_all(self.engine)

    def put(self, key: str, conversation_id: str, method: str, path: str, body: Any,
            target: str = DESK) -> None:
        """Keep the request; a key already kept (or dead) is not added again."""
        now = self.clock()
        with self.engine.begin() as db:
            if db.execute(sa.select(dead_letters.c.id).where(dead_letters.c.key == key)).first():
                return
            exists = db.execute(sa.select(outbox.c.id).where(outbox.c.key == key)).first()
            if exists:
                return
            db.execute(outbox.insert().values(
                key=key, conversation_id=conversation_id, target=target, method=method,
                path=path, body=None if body is None else json.dumps(body), state=PENDING,
                attempts=0, next_at=now, created_at=now,
            ))

    def state(self, key: str) -> Optional[str]:
        """PENDING, DELIVERED, "dead", or None if unknown."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(outbox.c.state).where(outbox.c.key == key)).first()
            if row:
                return row.state
            dead = db.execute(sa.select(dead_letters.c.id).where(dead_letters.c.key == key))
            return "dead" if dead.first() else None

    def answer(self, key: str) -> Optional[Dict[str, Any]]:
        """The desk's answer to the request `key`, once delivered."""
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(outbox.c.response).where(outbox.c.key == key, outbox.c.state == DELIVERED)
            ).first()
        return json.loads(row.response) if row and row.response else None

    def counts(self) -> Dict[str, int]:
        with self.engine.connect() as db:
            pending = db.execute(sa.select(sa.func.count()).select_from(outbox).where(
                outbox.c.state == PENDING)).scalar()
            dead = db.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar()
        return {"pending": pending, "dead": dead}

    # Sending.

    def _heads(self, conversation_id: Optional[str]) -> List[Any]:
        """The oldest pending request of each conversation to the desk, and to Rasa (a
        notice does not wait behind the desk), if it may be tried now."""
        now = self.clock()
        head = (
            sa.select(sa.func.min(outbox.c.id))
            .where(outbox.c.state == PENDING)
            .group_by(outbox.c.conversation_id, outbox.c.target)
            .scalar_subquery()
        )
        query = sa.select(outbox).where(
            outbox.c.id.in_(head),
            outbox.c.next_at <= now,
            sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
        )
        if conversation_id is not None:
            # An action flushes its own conversation while Rasa holds that conversation's
            # lock: a notice to Rasa would wait for it (and time out). The delivery
            # thread sends notices.
            query = query.where(outbox.c.conversation_id == conversation_id,
                                outbox.c.target == DESK)
        with self.engine.connect() as db:
            return db.execute(query.order_by(outbox.c.id).limit(64)).fetchall()

    def _lease(self, row_id: int, seconds: float = LEASE_S) -> bool:
        now = self.clock()
        with self.engine.begin() as db:
            return db.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.state == PENDING,
                       sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now))
                .values(lease_until=now + seconds)
            ).rowcount == 1

    def flush(self, conversation_id: Optional[str] = None,
              waiting: Optional[str] = None) -> int:
        """Send what is due, oldest first per conversation; how many were delivered.

        With `conversation_id` (an action's flush), only that conversation's requests to
        the desk, until one must wait. A ticket or a message refused for good is told to
        the person through Rasa, except the request `waiting`: the action waiting for its
        answer tells them itself.
        """
        delivered, progressed = 0, True
        while progressed:  # a request done (or dead) lets its conversation's next one go
            progressed = False
            for row in self._heads(conversation_id):
                if not self._lease(row.id):
                    continue
                status, body = self._send(row.target, row.method, row.path, row.body, row.key)
                verdict = classify(status, row.path, row.attempts + 1)
                self._record(row, verdict, body, notify=row.key != waiting)
                delivered += verdict.delivered
                progressed |= not verdict.retry
        return delivered

    def _record(self, row: Any, verdict: Verdict, body: Optional[str], notify: bool) -> None:
        if verdict.delivered:
            with self.engine.begin() as db:
                db.execute(outbox.update().where(outbox.c.id == row.id).values(
                    state=DELIVERED, response=kept_answer(body), body=None,
                    conversation_id=None, lease_until=None, next_at=self.clock()))
            return
        if verdict.retry:
            level = logging.ERROR if verdict.status in CONFIGURATION else logging.WARNING
            logger.log(level, "the %s did not take a request: %s; attempt %d, again later",
                       row.target, verdict.reason, row.attempts + 1)
            with self.engine.begin() as db:
                db.execute(outbox.update().where(outbox.c.id == row.id).values(
                    attempts=row.attempts + 1, next_at=self.clock() + backoff(row.attempts + 1),
                    lease_until=None))
            return
        logger.error("a %s for the %s is given up: %s (attempt %d)",
                     kind(row), row.target, verdict.reason, row.attempts + 1)
        with self.engine.begin() as db:
            self._bury(db, row, verdict.reason)
            if row.target == DESK and row.path == TICKETS_PATH:
                self._bury_followers(db, row)
                if notify:
                    self._notify(db, row, Actions.HANDOFF_FAILED)
            elif row.target == DESK and row.path == INBOUND_PATH and notify:
                self._notify(db, row, Actions.RELAY_FAILED)

    def _bury(self, db: Any, row: Any, reason: str) -> None:
        db.execute(outbox.delete().where(outbox.c.id == row.id))
        db.execute(dead_letters.insert().values(
            key=row.key, conversation_id=row.conversation_id, target=row.target,
            method=row.method, path=row.path, body=row.body, reason=reason[:200],
            attempts=row.attempts + 1, created_at=row.created_at, died_at=self.clock()))

    def _bury_followers(self, db: Any, ticket: Any) -> None:
        """The messages written to a refused ticket cannot reach it either."""
        for follower in db.execute(sa.select(outbox).where(
            outbox.c.conversation_id == ticket.conversation_id,
            outbox.c.state == PENDING, outbox.c.path == INBOUND_PATH,
        )).fetchall():
            self._bury(db, follower, FOLLOWER_REASON)

    def _notify(self, db: Any, dead: Any, action: str) -> None:
        """Run `action` in the conversation through Rasa's API: it tells the person."""
        # A colon (telegram:42, whatsapp:36...) stays one: percent-encoded, Sanic gives
        # Rasa's route another conversation.
        conversation = path_segment(dead.conversation_id)
        key = f"{dead.key}:refused"
        # The same request retried by an operator and refused again: told again, once.
        told = db.execute(sa.select(outbox.c.state).where(outbox.c.key == key)).first()
        if told and told.state == PENDING:
            return
        db.execute(outbox.delete().where(outbox.c.key == key))
        db.execute(outbox.insert().values(
            key=key, conversation_id=dead.conversation_id, target=RASA,
            method="POST", path=f"/conversations/{conversation}/execute?output_channel=latest",
            body=json.dumps({"name": action}), state=PENDING, attempts=0,
            next_at=self.clock(), created_at=self.clock()))

    def send_now(self, key: str, method: str, path: str) -> Optional[int]:
        """Send a bodiless request to the desk at once, keeping nothing: its status, or None."""
        status, _ = self._send(DESK, method, path, None, key)
        return status

    def _send(self, target: str, method: str, path: str, body: Optional[str],
              key: str) -> Any:
        """(status or None, body) of one attempt; never raises."""
        if target == RASA:
            url = f"{self.rasa_url}{path}"
            token = jwt.encode({"user": {"username": "action-server", "role": "admin"},
                                "exp": int(self.clock()) + 300}, self.rasa_token, "HS256")
        else:
            url, token = f"{self.desk_url}{path}", self.desk_token
        request = urllib.request.Request(  # noqa: S310 - our own services' URLs
            url,
            data=body.encode() if body is not None else None,
            method=method,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:  # noqa: S310
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, None
        except (urllib.error.URLError, OSError) as failure:
            logger.debug("%s unreachable: %s", target, type(failure).__name__)
            return None, None

    # Operators, deletion and retention.

    def dead(self) -> List[Dict[str, Any]]:
        """The dead letters, without their bodies (which may hold what a person wrote)."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(dead_letters).order_by(dead_letters.c.id)).fetchall()
        return [
            {"id": row.id, "kind": kind(row), "target": row.target, "reason": row.reason,
             "attempts": row.attempts, "created_at": row.created_at, "died_at": row.died_at}
            for row in rows
        ]

    def discard_dead(self, ids: Iterable[int]) -> int:
        """Delete the dead letters `ids` (dealt with otherwise, e.g. the person was called
        back); how many."""
        with self.engine.begin() as db:
            return db.execute(dead_letters.delete().where(
                dead_letters.c.id.in_(list(ids)))).rowcount

    def retry_dead(self, ids: Optional[Iterable[int]] = None) -> Tuple[int, List[int]]:
        """Put dead letters (all, or those `ids`) back in the outbox: how many, and the ids
        of those of them left dead.

        Not a ticket, nor a message that died with its ticket: the person was told that
        nothing was shared, and a counsellor is reached only with a new consent."""
        now = self.clock()
        with self.engine.begin() as db:
            query = sa.select(dead_letters)
            if ids is not None:
                query = query.where(dead_letters.c.id.in_(list(ids)))
            rows = db.execute(query.order_by(dead_letters.c.id)).fetchall()
            left = [row.id for row in rows
                    if row.path == TICKETS_PATH or row.reason == FOLLOWER_REASON]
            for row in rows:
                if row.id in left:
                    continue
                db.execute(dead_letters.delete().where(dead_letters.c.id == row.id))
                db.execute(outbox.insert().values(
                    key=row.key, conversation_id=row.conversation_id, target=row.target,
                    method=row.method, path=row.path, body=row.body, state=PENDING,
                    attempts=0, next_at=now, created_at=row.created_at))
        return len(rows) - len(left), left

    def delete_conversation(self, conversation_id: str, key: str, path: str,
                            wait_s: float = WAIT_S) -> bool:
        """DELETE `path` at the desk at once, then forget the conversation here; whether
        both are done (see the module docstring for why in this order).

        Its requests are held first: one being sent could otherwise reach the desk after
        the DELETE and bring the conversation back. If the desk does not confirm, or a
        send does not end within `wait_s`, they are released (and sent later), and nothing
        is deleted here.
        """
        start = self.clock()
        held = self._hold(conversation_id, wait_s)
        deleted = False
        if held is not None:
            status = self.send_now(key, "DELETE", path)
            # A hold that lapsed (a DELETE slower than HOLD_S) may have let a request go.
            deleted = status is not None and status < 300 and self.clock() < start + HOLD_S
        if deleted:
            self.forget(conversation_id)
        elif held:
            self._release(held)
        return deleted

    def _hold(self, conversation_id: str, wait_s: float) -> Optional[List[int]]:
        """Lease every waiting request of the conversation, for HOLD_S: the ids, or None if
        one stays leased by a sender for `wait_s` (its lease is left alone; ours are
        released). A request put meanwhile (a notice for a refused ticket) is leased too."""
        held: List[int] = []
        deadline = time.monotonic() + wait_s
        while True:
            with self.engine.connect() as db:
                rows = db.execute(sa.select(outbox.c.id).where(
                    outbox.c.conversation_id == conversation_id,
                    outbox.c.state == PENDING)).fetchall()
            waiting = [row.id for row in rows if row.id not in held]
            taken = [row_id for row_id in waiting if self._lease(row_id, HOLD_S)]
            held += taken
            if len(taken) == len(waiting):  # none is being sent by another
                return held
            if time.monotonic() >= deadline:
                logger.warning("a deletion waited %.0f s for a request being sent; not now",
                               wait_s)
                self._release(held)
                return None
            time.sleep(0.05)

    def _release(self, held: List[int]) -> None:
        """The held requests may be sent again, now."""
        with self.engine.begin() as db:
            db.execute(outbox.update().where(outbox.c.id.in_(held), outbox.c.state == PENDING)
                       .values(lease_until=None))

    def forget(self, conversation_id: str) -> None:
        """Delete every request of a conversation whose data the person deleted."""
        with self.engine.begin() as db:
            for table in (outbox, dead_letters):
                db.execute(table.delete().where(table.c.conversation_id == conversation_id))
        forget_on_disk(self.engine)

    def prune(self, retention_s: float) -> int:
        """Delete delivered answers after an hour, dead letters after the retention period."""
        now = self.clock()
        with self.engine.begin() as db:
            removed = db.execute(outbox.delete().where(
                outbox.c.state == DELIVERED, outbox.c.next_at < now - KEEP_DELIVERED_S)).rowcount
            removed += db.execute(dead_letters.delete().where(
                dead_letters.c.died_at < now - retention_s)).rowcount
        return removed


@cache
def get_outbox() -> Outbox:
    """The outbox of this deployment (the action server's settings)."""
    found = settings()
    rasa_token = found.rasa_api_token.get_secret_value() if found.rasa_api_token else ""
    return Outbox(engine(found.outbox_url), found.desk_url,
                  found.desk_api_token.get_secret_value(), found.rasa_url, rasa_token)


def deliver_forever(interval_s: float = 3.0, stop: Optional[threading.Event] = None) -> None:
    """Flush the outbox every `interval_s` seconds until `stop` is set; prune hourly."""
    stop = stop or threading.Event()
    last_prune = 0.0
    while not stop.wait(interval_s):
        try:
            box = get_outbox()
            box.flush()
            if time.time() - last_prune > 3600:
                box.prune(settings().retention_days * 86400)
                last_prune = time.time()
        except Exception as failure:  # noqa: BLE001 - the thread must outlive any one failure
            logger.error("outbox delivery failed: %s; retrying", type(failure).__name__)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m actions.outbox`: what waits and what failed for good; `retry` sends the
    dead messages (all, or the ids given) again; `discard` deletes dead letters an
    operator has dealt with. Run it with the action server's settings (AVRR_DATA_DIR or
    AVRR_DATABASE_URL); the running server's thread does the sending."""
    parser = argparse.ArgumentParser(prog="python -m actions.outbox", description=main.__doc__)
    commands = parser.add_subparsers(dest="command")
    retry = commands.add_parser(
        "retry", help="put dead messages back in the outbox (not tickets: the person was "
                      "told that nothing was shared)")
    retry.add_argument("ids", nargs="*", type=int, help="dead letter ids (default: all)")
    discard = commands.add_parser(
        "discard", help="delete dead letters an operator has dealt with (a ticket: the "
                        "person may be called back on the hotline)")
    discard.add_argument("ids", nargs="+", type=int, help="dead letter ids")
    arguments = parser.parse_args(argv)
    box = Outbox(engine(load(Settings).store_url("outbox")), "", "")
    if arguments.command == "discard":
        print(f"{box.discard_dead(arguments.ids)} discarded")
        return 0
    if arguments.command == "retry":
        retried, kept = box.retry_dead(arguments.ids or None)
        print(f"{retried} back in the outbox")
        if kept:
            print("not retried (a ticket, or a message of one: the person was told nothing "
                  "was shared; `discard` them once dealt with): "
                  + " ".join(f"#{n}" for n in kept))
        return 0
    counts = box.counts()
    print(f"pending: {counts['pending']}  dead: {counts['dead']}")
    for letter in box.dead():
        died = time.strftime("%Y-%m-%d %H:%M", time.gmtime(letter["died_at"]))
        print(f"#{letter['id']} {letter['kind']} to the {letter['target']}, died {died} UTC "
              f"after {letter['attempts']} attempts: {letter['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
