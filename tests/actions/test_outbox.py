"""The outbox against a real HTTP server on loopback standing in for the desk and Rasa."""

import http.server
import threading
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


class SlowTickets(Server):
    """A desk slow to create a ticket: the ticket lands (is recorded) when its answer goes."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/api/tickets":
            time.sleep(0.5)
        self._answer()


class SlowDesk(FakeDesk):
    """The fake desk, slow to create tickets."""

    def __init__(self) -> None:
        Server.answers, Server.received = {}, []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowTickets)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def slow_desk():
    desk = SlowDesk()
    yield desk.url
    desk.stop()


def sending(box, key):
    """Flush in a thread, as the delivery thread does, once it is sending `key`."""
    sender = threading.Thread(target=box.flush)
    sender.start()
    for _ in range(200):
        with box.engine.connect() as db:
            if db.execute(sa.select(outbox.c.lease_until).where(outbox.c.key == key)).scalar():
                return sender
        time.sleep(0.01)
    raise AssertionError(f"{key} is not being sent")


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


def test_a_notice_names_a_telegram_or_whatsapp_conversation_as_rasa_s_route_reads_it(box):
    # Sanic does not unquote a path: "telegram%3A42" would be a conversation of its own.
    Server.answers = {"/api/inbound": [422, 422]}
    box.put("m1", "telegram:42", "POST", "/api/inbound", {"text": "hello?"})
    box.put("m2", "whatsapp:36301234567", "POST", "/api/inbound", {"text": "hello?"})

    box.flush()

    assert [path for _, path, _, _, _ in Server.received if path.startswith("/conv")] == [
        "/conversations/telegram:42/execute?output_channel=latest",
        "/conversations/whatsapp:36301234567/execute?output_channel=latest",
    ]


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
    Server.answers = {"/api/inbound": [400]}
    box.put("m1", "c1", "POST", "/api/inbound", {"text": "my name is Zorana"})
    box.flush("c1", waiting="m1")
    assert box.counts() == {"pending": 0, "dead": 1}
    monkeypatch.setenv("AVRR_DATA_DIR", str(tmp_path))

    assert main([]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "pending: 0  dead: 1"
    assert listed[1].startswith("#1 message to the desk, died ")
    assert listed[1].endswith(" UTC after 1 attempts: refused (400)")
    assert "Zorana" not in "\n".join(listed)  # what the person wrote stays in the store

    assert main(["retry", "1"]) == 0
    assert capsys.readouterr().out == "1 back in the outbox\n"
    clock.now = time.time() + 1  # the command put it back on the real clock
    box.flush()
    assert box.state("m1") == "delivered"
    assert box.counts() == {"pending": 0, "dead": 0}


def test_a_dead_ticket_is_not_retried_the_person_was_told_nothing_was_shared(box, clock):
    Server.answers = {"/api/tickets": [400]}
    box.put("t1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("m1", "c1", "POST", "/api/inbound", {"text": "hello?"})
    box.flush("c1", waiting="t1")
    assert [d["reason"] for d in box.dead()] == ["refused (400)", "its ticket was refused"]

    assert box.retry_dead() == (0, [1, 2])
    assert box.counts() == {"pending": 0, "dead": 2}


def test_the_command_says_which_it_did_not_retry_and_discards_what_was_dealt_with(
        tmp_path, server, clock, monkeypatch, capsys):
    box = Outbox(engine(f"sqlite:///{tmp_path / 'outbox.db'}"), server, "desk-token",
                 server, "rasa-token-0123456789", clock)
    Server.answers = {"/api/tickets": [400]}
    box.put("t1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("m1", "c1", "POST", "/api/inbound", {"text": "hello?"})
    box.flush("c1", waiting="t1")
    monkeypatch.setenv("AVRR_DATA_DIR", str(tmp_path))

    assert main(["retry"]) == 0
    assert capsys.readouterr().out == (
        "0 back in the outbox\nnot retried (a ticket, or a message of one: the person was told "
        "nothing was shared; `discard` them once dealt with): #1 #2\n")
    assert main(["discard", "1", "2"]) == 0
    assert capsys.readouterr().out == "2 discarded\n"
    assert box.counts() == {"pending": 0, "dead": 0}


def test_a_message_retried_and_refused_again_is_told_again_and_blocks_nothing(box, clock):
    Server.answers = {"/api/inbound": [422, 422]}
    box.put("m1", "c1", "POST", "/api/inbound", {"text": "hello?"})
    box.flush()  # refused; the notice goes to Rasa
    assert box.state("m1:refused") == "delivered"

    assert box.retry_dead() == (1, [])
    box.flush()  # refused again: told again, and the queue goes on
    box.put("m2", "c1", "POST", "/api/inbound", {"text": "and now?"})
    box.flush()

    assert (box.state("m1"), box.state("m2")) == ("dead", "delivered")
    notices = [key for _, path, key, _, _ in Server.received if path.startswith("/conv")]
    assert notices == ["m1:refused", "m1:refused"]


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


def test_a_deletion_waits_for_the_request_being_sent_so_the_desk_deletes_it_too(
        tmp_path, clock, slow_desk):
    """A ticket the delivery thread is sending must not land after the DELETE: it would
    bring the whole transcript back to the desk after the person was told "Done"."""
    box = Outbox(engine(f"sqlite:///{tmp_path / 'o.db'}"), slow_desk, "desk-token", clock=clock)
    box.put("t1", "c1", "POST", "/api/tickets", {"text": "my name is Zorana"})
    box.put("m1", "c1", "POST", "/api/inbound", {"text": "my number is"})
    sender = sending(box, "t1")

    assert box.delete_conversation("c1", "d1", "/api/conversations/c1") is True
    sender.join()

    assert [(method, path) for method, path, _, _, _ in Server.received] == [
        ("POST", "/api/tickets"), ("DELETE", "/api/conversations/c1")]  # m1 never went
    with box.engine.connect() as db:
        rows = db.execute(sa.select(outbox.c.key, outbox.c.body, outbox.c.conversation_id))
        assert rows.fetchall() == [("t1", None, None)]  # delivered: its key, nothing of c1
        assert db.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar() == 0


@pytest.mark.parametrize("answer", [500, 401])
def test_a_failed_deletion_keeps_every_request_and_they_are_sent_later(box, answer):
    Server.answers = {"/api/tickets": [400], "/api/conversations/c1": [answer]}
    box.put("t0", "c1", "POST", "/api/tickets", {"n": 0})
    box.flush("c1", waiting="t0")  # a dead letter
    Server.answers["/api/tickets"] = []
    box.put("t1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("m1", "c1", "POST", "/api/inbound", {"n": 2})

    assert box.delete_conversation("c1", "d1", "/api/conversations/c1") is False

    assert (box.state("t0"), box.state("t1"), box.state("m1")) == ("dead", "pending", "pending")
    box.flush()  # released at once: the handoff the person was promised still happens
    assert keys() == ["t0", "d1", "t1", "m1"]
    assert (box.state("t1"), box.state("m1")) == ("delivered", "delivered")


def test_a_deletion_gives_up_when_a_send_does_not_end_and_deletes_nothing(box):
    box.put("t1", "c1", "POST", "/api/tickets", {"n": 1})
    box.put("m1", "c1", "POST", "/api/inbound", {"n": 2})
    with box.engine.connect() as db:
        ticket = db.execute(sa.select(outbox.c.id).where(outbox.c.key == "t1")).scalar()
    assert box._lease(ticket)  # a sender that does not finish (the clock stands still)

    assert box.delete_conversation("c1", "d1", "/api/conversations/c1", wait_s=0.2) is False

    assert Server.received == []  # no DELETE: the ticket could still land after it
    with box.engine.connect() as db:
        leases = dict(db.execute(sa.select(outbox.c.key, outbox.c.lease_until)).fetchall())
    assert leases["t1"] is not None and leases["m1"] is None  # its lease kept, ours released


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


def test_an_action_s_flush_leaves_the_notice_to_the_delivery_thread(box):
    """An action runs while Rasa holds its conversation's lock: a notice it sent to Rasa
    itself would wait for that lock. The delivery thread sends it after."""
    Server.answers = {"/api/inbound": [422]}
    box.put("m1", "web-abc", "POST", "/api/inbound", {"text": "are you there?"})
    box.put("m2", "web-abc", "POST", "/api/inbound", {"text": "hello?"})

    box.flush("web-abc", waiting="m2")  # m1 is refused: the person must be told

    assert (box.state("m1"), box.state("m2")) == ("dead", "delivered")
    assert [path for _, path, _, _, _ in Server.received] == ["/api/inbound"] * 2
    assert box.state("m1:refused") == "pending"
    box.flush()
    assert Server.received[-1][1:4] == (
        "/conversations/web-abc/execute?output_channel=latest", "m1:refused",
        {"name": "action_relay_failed"})
    assert box.state("m1:refused") == "delivered"
