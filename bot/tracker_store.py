"""The SQL tracker store, with deletion on request.

The store's database comes from the settings (`AVRR_DATABASE_URL`, else
`<data dir>/conversations.db`), not from endpoints.yml. When a conversation is saved in
which `action_delete_my_data` reported success (it sets the slot `data_deleted` once the
desk and the action server's own records are gone), the Rasa server deletes its part:
first the channels' records of that person, then every stored event of that sender, in
every session; nothing of that conversation is stored. The person's next message starts
a new conversation. If the action failed, nothing is deleted here, and the person was
told so: they can ask again, and every step runs again.
"""
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, List, Optional

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from avrr.db import forget_on_disk, sqlite_pragmas
from avrr.vocabulary import Actions, Slots
from bot import runtime

logger = logging.getLogger(__name__)


def deletion_done(tracker: DialogueStateTracker) -> bool:
    """Whether the deletion action ran in this conversation and reported success."""
    ran = False
    for event in tracker.events:
        if isinstance(event, ActionExecuted) and event.action_name == Actions.DELETE_MY_DATA:
            ran = True
        elif ran and isinstance(event, SlotSet) and event.key == Slots.DATA_DELETED:
            if event.value is True:
                return True
    return False


class ConversationGone(RuntimeError):
    """Nothing is stored of this conversation and nobody wrote in it: it is not made."""


class PrivacySQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore that forgets a sender entirely when they ask for it."""

    def __init__(
        self,
        domain: Optional[Domain] = None,
        event_broker: Optional[EventBroker] = None,
        **kwargs: Any,
    ) -> None:
        url = sa.engine.make_url(runtime.settings().tracker_url)
        if url.drivername.startswith("sqlite") and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(
            domain,
            dialect=url.drivername,
            host=url.host,
            port=url.port,
            db=url.database,
            username=url.username,
            password=url.password,
            event_broker=event_broker,
            query=dict(url.query) or None,
        )
        self._hide_parameters()
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
            self._never_reuse_ids()

    def _hide_parameters(self) -> None:
        """Rebuild Rasa's engine with `hide_parameters`: a failed statement's error quotes
        its values (the conversation id, the person's words in the event), and Rasa's HTTP
        API puts that text in its answer and its log."""
        made = self.engine
        self.engine = sa.create_engine(made.url, hide_parameters=True,
                                       **create_engine_kwargs(made.url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        made.dispose()

    def _never_reuse_ids(self) -> None:
        """Make SQLite number events like a sequence: without AUTOINCREMENT it gives a new
        event the id of the newest deleted one, and a reader that keeps its place by id
        (the desk's statistics) would never see it. Rasa's table is made without it: it
        is rebuilt once, with the same columns and rows."""
        with self.engine.begin() as db:
            made = db.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            )).scalar() or ""
            if "AUTOINCREMENT" in made.upper():
                return
            table = self.SQLEvent.__table__.to_metadata(sa.MetaData(), name="events_new")
            table.dialect_kwargs["sqlite_autoincrement"] = True
            table.create(db)
            db.execute(sa.text("INSERT INTO events_new SELECT id, sender_id, type_name, "
                               "timestamp, intent_name, action_name, data FROM events"))
            db.execute(sa.text("DROP TABLE events"))
            db.execute(sa.text("ALTER TABLE events_new RENAME TO events"))

    async def save(self, tracker: DialogueStateTracker) -> None:
        if deletion_done(tracker):
            await self.delete(tracker.sender_id)
            return
        if not any(isinstance(e, UserUttered) for e in tracker.events):
            # A conversation begins with the person's message: Rasa's empty new tracker is
            # not kept (it is saved whole with that message). Only the HTTP API writes a
            # message into a conversation nobody wrote in: a counsellor's reply racing the
            # person's deletion request must not bring the conversation back.
            if any(isinstance(e, BotUttered) for e in tracker.events):
                raise ConversationGone("no such conversation")
            return
        await super().save(tracker)

    async def expire(self, retention_s: float, lock_store: Optional[LockStore] = None) -> int:
        """Delete the conversations nobody wrote in for `retention_s`; how many. With the
        server's `lock_store`, each is deleted holding its lock, and only if still old: a
        message that arrived meanwhile (its turn would write the whole conversation back)
        keeps it."""
        cutoff = time.time() - retention_s
        expired = 0
        for sender_id in self._last_written_before(cutoff):
            async with lock_store.lock(sender_id) if lock_store else contextlib.nullcontext():
                if sender_id in self._last_written_before(cutoff, sender_id):
                    await self.delete(sender_id, why="nobody wrote in for the retention period")
                    expired += 1
        return expired

    def _last_written_before(self, cutoff: float, sender_id: Optional[str] = None) -> List[str]:
        query = (sa.select(self.SQLEvent.sender_id).group_by(self.SQLEvent.sender_id)
                 .having(sa.func.max(self.SQLEvent.timestamp) < cutoff))
        if sender_id is not None:
            query = query.where(self.SQLEvent.sender_id == sender_id)
        with self.session_scope() as session:
            return [row[0] for row in session.execute(query)]

    async def delete(self, sender_id: str, why: str = "on request") -> int:
        """Delete the channels' records and every stored event of `sender_id`."""
        runtime.records().forget(sender_id)
        with self.session_scope() as session:
            deleted = session.execute(
                sa.delete(self.SQLEvent).where(self.SQLEvent.sender_id == sender_id)
            ).rowcount
            session.commit()
        forget_on_disk(self.engine)
        logger.info("Deleted a conversation %s (%d events)", why, deleted)
        return deleted

