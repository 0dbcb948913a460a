"""The outbox against a real HTTP server on loopback standing in for the desk and Rasa."""

import time

import pytest
import sqlalchemy as sa

from actions.outbox import MAX_ATTEMPTS, Outbox, classify, dead_letters, main, outbox
from avrr.db import engine
from tests.fakes.desk import FakeDesk
from tests.fakes.desk import Recorder as Server


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server():
    desk = FakeDesk()
    yield desk.url
    desk.stop()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def box(tmp_path, server, clock):
    return Outbox(engine(f"sqlite:///{tmp_path / 'o.db'}"), server, "desk-token",
                  server, "rasa-token-0123456789", clock)


def keys():
    return [key for _, _, key, _, _ in Server.received]


def later(clock, seconds=400.0):
    clock.now += seconds


def test_requests_are_sent_in_order_once_and_their_answer_kept(box):
    box.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("k2", "c1", "POST", "/api/inbound", {"n": 2})

    assert box.flush() == 2
    box.flush()

    assert [(path, key, body) for _, path, key, body, _ in Server.received] == [
        ("/api/tickets", "k1", {"n": 1}), ("/api/inbound", "k2", {"n": 2})]
    assert Server.received[0][4] == "Bearer desk-token"
    assert box.answer("k1") == {"queue_position": 1}
    assert box.counts() == {"pending": 0, "dead": 0}
    # Delivered requests keep neither body nor conversation: nothing of the person stays.
    with box.engine.connect() as db:
        rows = db.execute(sa.select(outbox.c.body, outbox.c.conversation_id)).fetchall()
    assert rows == [(None, None), (None, None)]


def test_a_busy_desk_delays_that_conversation_only(box, clock):
    Server.answers = {"/api/tickets": [503]}
    box.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("k2", "c1", "POST", "/api/inbound", {"n": 2})
    box.put("k3", "c2", "POST", "/api/tickets", {"n": 3})

    box.flush()

    assert sorted(keys()) == ["k1", "k3"]  # c2 does not wait for c1
    assert box.state("k1") == "pending" and box.state("k3") == "delivered"
    box.flush()
    assert sorted(keys()) == ["k1", "k3"]  # c1 waits its backoff
    later(clock)
    box.flush()
    assert keys()[2:] == ["k1", "k2"]  # then in order


def test_text_the_desk_cannot_store_delays_nobody_else(box, clock):
    """A request the desk keeps refusing (once, a lone surrogate made a 500) dies after its
    retries; the other conversations' tickets go through the whole time."""
    Server.answers = {"/api/tickets": [500] * (MAX_ATTEMPTS + 5)}
    box.put("poison", "c1", "POST", "/api/tickets", {"n": 1})
    for _ in range(MAX_ATTEMPTS):
        box.flush()
        later(clock)
    Server.answers = {}
    box.put("fine", "c2", "POST", "/api/tickets", {"n": 2})
    box.flush()

    assert box.state("poison") == "dead" and box.state("fine") == "delivered"
    [dead] = box.dead()
    assert (dead["kind"], dead["reason"]) == ("ticket", "busy (500)")
    assert dead["attempts"] == MAX_ATTEMPTS


@pytest.mark.parametrize("status", [401, 403, 413])
def test_a_configuration_problem_is_retried_and_logged_as_an_error(box, clock, status, caplog):
    Server.answers = {"/api/tickets": [status]}
    box.put("k1", "c1", "POST", "/api/tickets", {"n": 1})

    box.flush()
    assert box.state("k1") == "pending"
    assert any(r.levelname == "ERROR" for r in caplog.records)
    later(clock)
    box.flush()

    assert box.state("k1") == "delivered"


def test_a_message_whose_ticket_is_missing_is_tried_again_a_few_times(box, clock):
    Server.answers = {"/api/inbound": [404, 404]}
    box.put("m1", "c1", "POST", "/api/inbound", {"text": "hello"})

    for _ in range(2):
        box.flush()
        later(clock)
    box.flush()

    assert box.state("m1") == "delivered"


def test_a_ticket_refused_for_good_takes_its_messages_along_and_the_person_is_told(box, clock):
    Server.answers = {"/api/tickets": [400]}
    box.put("t1", "web-abc", "POST", "/api/tickets", {"n": 1})
    box.put("m1", "web-abc", "POST", "/api/inbound", {"text": "are you there?"})

    box.flush()

    assert box.state("t1") == "dead" and box.state("m1") == "dead"
    notice = Server.received[-1]
    assert notice[:4] == (
        "POST", "/conversations/web-abc/execute?output_channel=latest", "t1:refused",
        {"name": "action_handoff_failed"},
    )
    assert notice[4].startswith("Bearer ey")  # a JWT signed with the API token
    assert [d["kind"] for d in box.dead()] == ["ticket", "message"]


def test_a_message_refused_for_good_is_told_to_the_person_and_the_handoff_goes_on(
        box, clock):
    Server.answers = {"/api/inbound": [422, 404, 404, 404, 404, 404]}
    box.put("m1", "web-abc", "POST", "/api/inbound", {"text": "are you there?"})
    box.put("m2", "web-abc", "POST", "/api/inbound", {"text": "hello?"})
    box.put("m3", "web-abc", "POST", "/api/inbound", {"text": "and now?"})

    box.flush()
    assert box.state("m1") == "dead" and box.state("m2") == "pending"
    for _ in range(5):  # m2's ticket stays missing: tried a few times, then given up
        later(clock)
        box.flush()

    assert (box.state("m2"), box.state("m3")) == ("dead", "delivered")
    notices = [(path, key, body) for _, path, key, body, _ in Server.received
               if path.startswith("/conversations/")]
    assert notices == [
        ("/conversations/web-abc/execute?output_channel=latest", "m1:refused",
         {"name": "action_relay_failed"}),
        ("/conversations/web-abc/execute?output_channel=latest", "m2:refused",
         {"name": "action_relay_failed"}),
    ]
    assert [d["reason"] for d in box.dead()] == [
        "refused (422)", "its ticket is missing (404)"]


def test_the_action_that_waits_tells_the_person_itself(box):
    Server.answers = {"/api/tickets": [422]}
    box.put("t1", "web-abc", "POST", "/api/tickets", {"n": 1})

    box.flush("web-abc", waiting="t1")
    Server.answers = {"/api/inbound": [400]}
    box.put("m1", "web-abc", "POST", "/api/inbound", {"text": "hello?"})
    box.flush("web-abc", waiting="m1")

    assert box.state("t1") == "dead" and box.state("m1") == "dead"
    assert [path for _, path, _, _, _ in Server.received] == ["/api/tickets", "/api/inbound"]


def test_an_operator_sees_and_retries_the_dead_letters_with_the_command(
        tmp_path, server, clock, monkeypatch, capsys):
    box = Outbox(engine(f"sqlite:///{tmp_path / 'outbox.db'}"), server, "desk-token",
                 server, "rasa-token-0123456789", clock)
    Server.answers = {"/api/tickets": [400]}
    box.put("t1", "c1", "POST", "/api/tickets", {"text": "my name is Zorana"})
    box.flush("c1", waiting="t1")
    assert box.counts() == {"pending": 0, "dead": 1}
    monkeypatch.setenv("AVRR_DATA_DIR", str(tmp_path))

    assert main([]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "pending: 0  dead: 1"
    assert listed[1].startswith("#1 ticket to the desk, died ")
    assert listed[1].endswith(" UTC after 1 attempts: refused (400)")
    assert "Zorana" not in "\n".join(listed)  # what the person wrote stays in the store

    assert main(["retry", "1"]) == 0
    assert capsys.readouterr().out == "1 back in the outbox\n"
    clock.now = time.time() + 1  # the command put it back on the real clock
    box.flush()
    assert box.state("t1") == "delivered"
    assert box.counts() == {"pending": 0, "dead": 0}


def test_an_unreachable_desk_keeps_everything_across_restarts(tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    first = Outbox(engine(url), "http://127.0.0.1:9", "token", clock=clock)
    first.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    first.flush()

    assert Outbox(engine(url), "http://127.0.0.1:9", "token", clock=clock).counts() == {
        "pending": 1, "dead": 0}


def test_forgetting_a_conversation_drops_all_of_it(box):
    Server.answers = {"/api/tickets": [400]}
    box.put("k0", "c1", "POST", "/api/tickets", {"n": 0})
    box.flush("c1", waiting="k0")
    box.put("k1", "c1", "POST", "/api/inbound", {"n": 1})
    box.put("k2", "c2", "POST", "/api/tickets", {"n": 2})

    box.forget("c1")

    with box.engine.connect() as db:
        kept = [r.key for r in db.execute(sa.select(outbox.c.key))]
        dead = db.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar()
    assert (kept, dead) == (["k2"], 0)


def test_a_deletion_is_sent_at_once_and_kept_nowhere(box):
    assert box.send_now("d1", "DELETE", "/api/conversations/web-abc") == 201
    assert Server.received[-1][:3] == ("DELETE", "/api/conversations/web-abc", "d1")
    assert box.counts() == {"pending": 0, "dead": 0}
    assert Outbox(box.engine, "http://127.0.0.1:9", "t").send_now("d2", "DELETE", "/x") is None


def test_delivered_answers_and_old_dead_letters_are_pruned(box, clock):
    Server.answers = {"/api/tickets": [201, 400]}
    box.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("k2", "c2", "POST", "/api/tickets", {"n": 2})
    box.flush(waiting="k2")

    later(clock, 2 * 3600)
    assert box.prune(retention_s=90 * 86400) == 1  # the delivered answer
    later(clock, 91 * 86400)
    assert box.prune(retention_s=90 * 86400) == 1  # the dead letter
    assert box.counts() == {"pending": 0, "dead": 0}


@pytest.mark.parametrize(
    "status, path, attempts, delivered, retry",
    [
        (201, "/api/tickets", 1, True, False),
        (None, "/api/tickets", 1, False, True),
        (503, "/api/tickets", MAX_ATTEMPTS, False, False),
        (404, "/api/tickets", 1, False, False),
        (404, "/api/inbound", 1, False, True),
        (409, "/api/inbound", 1, False, False),
    ],
)
def test_answers_are_classified(status, path, attempts, delivered, retry):
    verdict = classify(status, path, attempts)

    assert (verdict.delivered, verdict.retry) == (delivered, retry)
