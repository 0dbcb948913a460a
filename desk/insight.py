"""Statistics without personal data, and the questions the assistant could not answer.

An incremental job of the desk reads the events the Rasa server stored since its last
run (the tracker store's `events` table, read only: the Rasa server owns it) and adds
them up per day (in the office's time zone, content/settings.yml), channel and
language: conversations, messages, topics, misses, safety messages, handoff offers and
consents, requests outside office hours, the eligibility check and its outcomes. The
desk adds its own: tickets by urgency, the wait until a counsellor's first reply,
deletion requests. No count holds a conversation id, a text or a phone number, so they
outlive retention and deletion requests.

A message the assistant could not answer (not understood: a clarification or a second
miss followed; or outside what it covers) is kept for the inbox: its text with phone
numbers and e-mail addresses redacted, its day, language and channel, and a keyed hash
of its conversation (so that a deletion request removes it; the key never leaves the
desk's database). Administrators label it with the right intent, and
`python -m desk export-labels` writes the labelled ones as NLU data.

Each run reads, adds up and moves its cursor in one transaction that starts by locking
the cursor row: two desks never count an event twice. On PostgreSQL, replicas store
events at once, and an id drawn first may be committed last: the job stops before a gap
in the ids until the events after it are SETTLE_S old (a Rasa server stores a turn in
one short transaction at its end), so an event committed late is not skipped.
"""
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import Counter
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import sqlalchemy as sa

from avrr.db import engine
from avrr.vocabulary import (
    CODES,
    DEFAULT_LANGUAGE,
    SAFETY_INTENTS,
    Actions,
    Intents,
    Slots,
    channel_of,
)

logger = logging.getLogger(__name__)
BATCH = 2000  # events per transaction
MAX_BATCHES = 10  # per run of the loop: a backlog is caught up without holding deliveries
# Seconds after which a gap in the event ids (PostgreSQL) is taken for a rolled-back or
# deleted event, not one still being stored: a turn's processing (within the lock's
# 60 s lifetime) and its transaction, with room to spare.
SETTLE_S = 120.0
EXTERNAL_PREFIX = "EXTERNAL: "  # intents triggered through Rasa's HTTP API
UNKNOWN = "unknown"
ELIGIBILITY_FORM = "eligibility_form"
# A message the assistant could not answer: not understood (a clarification or a second
# miss follows), or understood as outside what it covers.
UNANSWERED = (Intents.NLU_FALLBACK, Intents.OUT_OF_SCOPE)
# The content a bot message says -> the count it adds to.
SAID = {
    "clarify": "clarifications",
    "clarify_again": "second_misses",
    "handoff_offer": "handoff_offers",
    "handoff_office_closed": "outside_office_hours",
}
OUTCOMES = {
    "elig_result_likely": "likely",
    "elig_result_fear": "fear",
    "elig_result_previous": "counsellor_first",
    "elig_result_previous_unsure": "counsellor_first",
    "elig_result_other": "counsellor_first",
}
# What a phone number or an e-mail address looks like, in any of our scripts: 7 or more
# digits (any script's) with spaces, dots, dashes, slashes or brackets between them.
SEPARATORS = (r"[\s().\-/,_\u2010-\u2015\u2212"
              r"\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")  # and invisible marks
PHONE = re.compile(rf"\(?\+?\(?\d(?:{SEPARATORS}{{0,4}}\d){{6,}}")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# An account on a messenger names a person as a phone number does: "@ahmad_k",
# "t.me/ahmad_k", "wa.me/3630…", "facebook.com/people/Amina-K/1000…".
ACCOUNT = re.compile(
    r"(?<![\w.])(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|wa\.me|instagram\.com|"
    r"facebook\.com|fb\.com)/[\w.+@%-]+(?:/[\w.+@%-]+)*|(?<![\w.@])@\w(?:[\w.]*\w){2,}",
    re.IGNORECASE)

# The Rasa server's events, as its SQLTrackerStore stores them (read only).
source_metadata = sa.MetaData()
source_events = sa.Table(
    "events",
    source_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("type_name", sa.String(255)),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)


def redact(text: str) -> str:
    """`text` with e-mail addresses, messenger accounts and phone numbers replaced, and
    what is not Unicode text (a lone surrogate, which JSON lets a sender write as
    "\\ud800") as "?": the database cannot store it, and one such message stopped every
    count after it."""
    valid = text.encode("utf-8", "replace").decode("utf-8")
    return PHONE.sub("[phone]", ACCOUNT.sub("[account]", EMAIL.sub("[e-mail]", valid)))


def owner_of(key: bytes, conversation_id: str) -> str:
    """A keyed hash of a conversation id: links a question to a deletion request, and
    says nothing about whose it is without the key."""
    return hmac.new(key, conversation_id.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def day_of(timestamp: Optional[float], zone: tzinfo) -> date:
    """The day, in the office's time zone, of an event's time (now, if it has none)."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else datetime.now(
        timezone.utc)
    return moment.astimezone(zone).date()


class Tally:
    """What one run adds: counts per (day, channel, language, metric), questions for the
    inbox, and each conversation's state (language, a session not yet counted)."""

    def __init__(self, states: Dict[str, Dict[str, Any]], zone: tzinfo) -> None:
        self.zone = zone
        self.counts: Counter = Counter()
        self.questions: List[Dict[str, Any]] = []
        self.states = states
        self.changed: set = set()

    def add(self, day: date, channel: str, language: str, metric: str, n: int = 1) -> None:
        self.counts[(day, channel, language, metric)] += n

    def read(self, owner: str, row: Any) -> None:
        """Count one stored event of the conversation `owner`."""
        data = json.loads(row.data or "{}")
        if not isinstance(data, dict):
            raise ValueError("an event is a JSON object")
        state = self.states.setdefault(
            owner, {"language": None, "pending": False, "handoff": False})
        kind, channel = row.type_name, channel_of(row.sender_id)
        day = day_of(row.timestamp, self.zone)
        # Until the assistant sets it, a conversation's language is the default one.
        language = state["language"] or DEFAULT_LANGUAGE
        if kind == "session_started":
            state["pending"] = True
        elif kind == "slot" and data.get("name") == Slots.LANGUAGE and data.get("value") in CODES:
            # Only ours: a label of anyone's choosing would be drawn in the charts.
            state["language"] = data["value"]
        elif kind == "slot" and data.get("name") == Slots.HANDOFF_TICKET:
            state["handoff"] = bool(data.get("value"))  # a counsellor has the conversation
        elif kind == "user":
            self._user(owner, state, data, day, channel)
        elif kind == "bot":
            source = (data.get("metadata") or {}).get("content_key")
            if isinstance(source, dict) and source.get("part", 0) == 0:  # once per answer
                key = source.get("key")
                if key in SAID:
                    self.add(day, channel, language, SAID[key])
                if key in OUTCOMES:
                    self.add(day, channel, language, "eligibility_finished")
                    self.add(day, channel, language, f"eligibility:{OUTCOMES[key]}")
        elif kind == "action" and row.action_name == Actions.HANDOFF_START:
            self.add(day, channel, language, "consents")
        elif kind == "active_loop" and data.get("name") == ELIGIBILITY_FORM:
            self.add(day, channel, language, "eligibility_started")
        self.changed.add(owner)

    def _user(self, owner: str, state: Dict[str, Any], data: Dict[str, Any], day: date,
              channel: str) -> None:
        text = data.get("text") or ""
        if text.startswith(EXTERNAL_PREFIX):
            return
        parse = data.get("parse_data") or {}
        intent = (parse.get("intent") or {}).get("name") or Intents.NLU_FALLBACK
        detected = (parse.get("language_detection") or {}).get("language")
        detected = detected if detected in CODES else None
        language = detected or state["language"] or DEFAULT_LANGUAGE
        if detected:
            state["language"] = detected
        if state["pending"]:
            self.add(day, channel, language, "conversations")
            state["pending"] = False
        self.add(day, channel, language, "messages")
        if intent in SAFETY_INTENTS:
            self.add(day, channel, language, "safety_messages")
        if state.get("handoff"):
            # Written to a counsellor, under consent: not a question to the assistant.
            self.add(day, channel, language, "relayed_to_counsellor")
            return
        self.add(day, channel, language, f"topic:{intent}")
        if intent == Intents.NLU_FALLBACK:
            self.add(day, channel, language, "not_understood")
        if intent in UNANSWERED and text.strip() and not text.startswith("/"):
            self.questions.append({"day": day, "channel": channel, "language": language,
                                   "text": redact(text)[:1000], "owner": owner})


def read_source(url: str, after: int, limit: int = BATCH, clock=time.time) -> List[Any]:
    """The Rasa server's events after id `after`, oldest first; on PostgreSQL, up to the
    first gap in the ids that may still be filled (module docstring)."""
    made = _source(url)
    if made is None:
        return []
    with made.connect() as db:
        rows = db.execute(
            sa.select(source_events).where(source_events.c.id > after)
            .order_by(source_events.c.id).limit(limit)
        ).fetchall()
    if made.dialect.name == "sqlite":  # one writer at a time: ids are committed in order
        return rows
    settled = clock() - SETTLE_S
    previous = after
    for index, row in enumerate(rows):
        if row.id != previous + 1 and (row.timestamp or 0.0) > settled:
            return rows[:index]
        previous = row.id
    return rows


def newest_id(url: str) -> int:
    """The newest event's id in the Rasa server's store (0 when it has none)."""
    made = _source(url)
    if made is None:
        return 0
    with made.connect() as db:
        return db.execute(sa.select(sa.func.max(source_events.c.id))).scalar() or 0


def _source(url: str) -> Optional[Any]:
    """The engine of the Rasa server's store, once it has stored something (a SQLite
    file is never made here)."""
    database = sa.engine.make_url(url).database
    if url.startswith("sqlite") and database and not Path(database).exists():
        return None
    made = source_engine(url)
    return made if sa.inspect(made).has_table("events") else None


_ENGINES: Dict[str, Any] = {}


def source_engine(url: str) -> Any:
    if url not in _ENGINES:
        _ENGINES[url] = engine(url)
    return _ENGINES[url]


def new_key() -> str:
    return secrets.token_hex(32)


def tally(rows: Iterable[Any], key: bytes, forgotten: set,
          states: Dict[str, Dict[str, Any]], zone: tzinfo) -> Tuple[Tally, int]:
    """Count `rows` by their days in `zone`; the last id read. A forgotten conversation's
    events are skipped."""
    counted = Tally(states, zone)
    last = 0
    for row in rows:
        last = row.id
        owner = owner_of(key, row.sender_id or "")
        if owner not in forgotten:
            try:
                counted.read(owner, row)
            except (AttributeError, TypeError, ValueError):
                # An event of a shape we do not know is not counted; the job goes on
                # (stopping at it would stop every count after it).
                logger.warning("statistics: event %d of an unknown shape skipped", row.id)
    return counted, last
