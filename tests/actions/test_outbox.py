"""The outbox against a real HTTP server on loopback standing in for the desk."""

import http.server
import json
import threading

import pytest

from actions.outbox import Outbox


class Desk(http.server.BaseHTTPRequestHandler):
    answers = []
    received = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Desk.received.append((self.path, self.headers["Idempotency-Key"], json.loads(body)))
        status = Desk.answers.pop(0) if Desk.answers else 201
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"queue_position": len(Desk.received)}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def desk():
    Desk.answers, Desk.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Desk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_requests_are_sent_in_order_once_and_their_answer_kept(tmp_path, desk):
    outbox = Outbox(tmp_path / "o.db", desk, "token")
    outbox.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    outbox.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    outbox.put("k2", "c1", "POST", "/api/inbound", {"n": 2})
    outbox.flush()
    outbox.flush()
    assert Desk.received == [("/api/tickets", "k1", {"n": 1}), ("/api/inbound", "k2", {"n": 2})]
    assert outbox.answer("k1") == {"queue_position": 1}
    assert outbox.pending() == 0
    # Delivered requests keep no body: the transcript does not stay here.
    assert (
        outbox._db.execute("SELECT count(*) FROM outbox WHERE body IS NOT NULL").fetchone()[0] == 0
    )


def test_a_desk_error_stops_the_flush_and_keeps_the_order(tmp_path, desk):
    outbox = Outbox(tmp_path / "o.db", desk, "token")
    Desk.answers = [503]
    outbox.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    outbox.put("k2", "c1", "POST", "/api/inbound", {"n": 2})
    outbox.flush()
    assert [key for _, key, _ in Desk.received] == ["k1"] and outbox.pending() == 2
    outbox.flush()
    assert [key for _, key, _ in Desk.received] == ["k1", "k1", "k2"] and outbox.pending() == 0


def test_a_refused_request_is_set_aside_and_the_rest_goes_on(tmp_path, desk):
    outbox = Outbox(tmp_path / "o.db", desk, "token")
    Desk.answers = [400]
    outbox.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    outbox.put("k2", "c2", "POST", "/api/tickets", {"n": 2})
    outbox.flush()
    assert outbox.pending() == 0 and outbox.answer("k1") is None and outbox.answer("k2")


def test_an_unreachable_desk_keeps_everything_across_restarts(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "http://127.0.0.1:9", "token")
    outbox.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    outbox.flush()
    assert Outbox(tmp_path / "o.db", "http://127.0.0.1:9", "token").pending() == 1


def test_forgetting_a_conversation_drops_what_was_not_sent(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "http://127.0.0.1:9", "token")
    outbox.put("k1", "c1", "POST", "/api/tickets", {"n": 1})
    outbox.put("k2", "c2", "POST", "/api/tickets", {"n": 2})
    outbox.forget("c1")
    assert [key for (key,) in outbox._db.execute("SELECT key FROM outbox")] == ["k2"]
