"""A handoff across the cluster: the action servers share one outbox in PostgreSQL, the
desks one database and the delivery of replies. A person on Telegram (the fake Bot API
counts what reaches them)."""
import time

import pytest

from tests.cluster.conftest import LOOPBACK
from tests.e2e.test_telegram import message_update, new_id

pytestmark = pytest.mark.cluster

OFFER = "I can pass this conversation to an IOM counsellor"
QUEUED = "Thank you. A counsellor will answer you here in this chat. You are number"
RELAYED = "Are you still there? I lost my passport."


def write(cluster, telegram_api, chat: int, text: str) -> None:
    """The person writes `text`; the webhook takes it (its replies are queued)."""
    answer = cluster.telegram(message_update(chat, text=text))
    assert answer.status_code == 200, answer.text


def last_sent(telegram_api, chat: int) -> str:
    return telegram_api.sent_to(chat)[-1].params["text"]


def tickets_of(cluster, conversation: str):
    listed = cluster.desk("GET", "/api/tickets?status=all").json()
    return [t for t in listed if t["conversation_id"] == conversation]


def asks_for_a_counsellor(cluster, telegram_api, chat: int) -> None:
    write(cluster, telegram_api, chat, "I want to talk to a counsellor")
    cluster.drained(f"telegram:{chat}")
    assert last_sent(telegram_api, chat).startswith(OFFER)


def test_a_ticket_and_a_message_through_each_action_server_with_the_desks_down_between(
        healthy, telegram_api):
    cluster, chat = healthy, new_id()
    conversation = f"telegram:{chat}"
    first, second = cluster.layout.actions
    asks_for_a_counsellor(cluster, telegram_api, chat)

    # The consent opens the ticket through action server 1: the other one is dead.
    with cluster.down(second):
        write(cluster, telegram_api, chat, "yes")
    cluster.drained(conversation)
    assert last_sent(telegram_api, chat).startswith(QUEUED)
    [ticket] = tickets_of(cluster, conversation)

    # Both desks stop answering (SIGSTOP); the person's next message goes through action
    # server 2, the first being dead, and waits in the outbox.
    desks = [cluster.process_on(port) for port in cluster.layout.desks]
    for desk in desks:
        desk.suspend()
    try:
        with cluster.down(first):
            write(cluster, telegram_api, chat, RELAYED)
        assert cluster.query("SELECT path FROM outbox WHERE conversation_id = %s "
                             "AND state = 'pending'", conversation) == [("/api/inbound",)]
    finally:
        for desk in desks:
            desk.resume()

    # The desks back, the message reaches the ticket once, after what came before it.
    deadline = time.monotonic() + 90
    while True:
        detail = cluster.desk("GET", f"/api/tickets/{ticket['id']}").json()
        said = [m["text"] for m in detail["messages"] if m["sender"] == "person"]
        if RELAYED in said:
            break
        assert time.monotonic() < deadline, "the relayed message does not reach the desk"
        time.sleep(0.5)
    assert said.count(RELAYED) == 1 and said[-1] == RELAYED
    assert said[:-1] == ["I want to talk to a counsellor", "yes"]
    assert [t["id"] for t in tickets_of(cluster, conversation)] == [ticket["id"]]


def test_two_desks_send_each_counsellor_reply_once_and_in_order(healthy, telegram_api):
    cluster, chat = healthy, new_id()
    conversation = f"telegram:{chat}"
    asks_for_a_counsellor(cluster, telegram_api, chat)
    write(cluster, telegram_api, chat, "yes")
    cluster.drained(conversation)
    [ticket] = tickets_of(cluster, conversation)
    before = len(telegram_api.sent_to(chat))
    replies = [f"Counsellor's reply number {n}." for n in range(1, 5)]

    served = []
    for text in replies:
        answer = cluster.desk("POST", f"/api/tickets/{ticket['id']}/messages", json={"text": text})
        assert answer.status_code == 201, answer.text
        served.append(answer.headers["X-Served-By"])

    assert set(served) == {f"{LOOPBACK}:{port}" for port in cluster.layout.desks}
    deadline = time.monotonic() + 60
    while not all(m["delivered"] for m in cluster.desk(
            "GET", f"/api/tickets/{ticket['id']}").json()["messages"]
            if m["sender"] == "counsellor"):
        assert time.monotonic() < deadline, "the desks do not deliver the replies"
        time.sleep(0.5)
    cluster.drained(conversation)
    assert [c.params["text"] for c in telegram_api.sent_to(chat)[before:]] == replies
