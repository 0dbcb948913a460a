"""The desk's store on SQLite: what the retention job removes, and what it keeps."""
from datetime import timedelta

import sqlalchemy as sa

from desk.store import Store, messages, now, tickets
from tests.desk.test_app import new_ticket


def test_the_retention_job_removes_old_closed_tickets_and_keeps_the_rest(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'desk.db'}")

    def ticket(key, conversation, closed, days_ago):
        fields = new_ticket(key, conversation)
        created = store.create_ticket(
            {"idempotency_key": key, "conversation_id": conversation, "channel": "socketio",
             "language": "ar", "topic": "request_human", "urgency": "normal",
             "consent_at": now(), "consent_language": "ar"},
            [dict(entry, at=now()) for entry in fields["transcript"]],
        )["ticket"]
        if closed:
            store.close(created["id"])
        with store.engine.begin() as db:
            db.execute(tickets.update().where(tickets.c.id == created["id"]).values(
                updated_at=now() - timedelta(days=days_ago)))
        return created["id"]

    old_closed = ticket("key-old-closed", "web-1", closed=True, days_ago=91)
    recent_closed = ticket("key-new-closed", "web-2", closed=True, days_ago=89)
    old_open = ticket("key-old-open", "web-3", closed=False, days_ago=200)

    assert store.expire(timedelta(days=90)) == 1

    assert store.ticket(old_closed) is None
    assert store.ticket(recent_closed)["status"] == "closed"
    assert store.ticket(old_open)["status"] == "open"  # someone is still waiting
    with store.engine.connect() as db:
        left = {row.ticket_id for row in db.execute(sa.select(messages.c.ticket_id))}
    assert left == {recent_closed, old_open}
    assert store.expire(timedelta(days=90)) == 0
