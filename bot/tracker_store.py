"""The SQL tracker store, with deletion on request.

When a conversation is saved in which `action_delete_my_data` ran, every stored event of
that sender is deleted, in every session, and nothing of that conversation is stored.
The person's next message starts a new conversation.
"""
import logging
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

ACTION_DELETE_MY_DATA = "action_delete_my_data"


def deletion_requested(tracker: DialogueStateTracker) -> bool:
    return any(
        isinstance(event, ActionExecuted) and event.action_name == ACTION_DELETE_MY_DATA
        for event in tracker.events
    )


def use_write_ahead_log(connection: Any, _: Any) -> None:
    """SQLite in WAL mode: one fsync per commit instead of several, equally durable."""
    connection.execute("PRAGMA journal_mode=WAL")


class PrivacySQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore that forgets a sender entirely when they ask for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", use_write_ahead_log)
            self.engine.dispose()  # connections opened so far lack the pragma

    async def save(self, tracker: DialogueStateTracker) -> None:
        if not deletion_requested(tracker):
            await super().save(tracker)
            return
        await self.delete(tracker.sender_id)

    async def delete(self, sender_id: str) -> int:
        """Delete every stored event of `sender_id`; returns how many there were."""
        with self.session_scope() as session:
            deleted = session.execute(
                sa.delete(self.SQLEvent).where(self.SQLEvent.sender_id == sender_id)
            ).rowcount
            session.commit()
        logger.info("Deleted a conversation on request (%d events)", deleted)
        return deleted
