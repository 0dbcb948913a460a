"""A stand-in for the desk (and Rasa's API) on loopback: records requests, answers from a
script per path (201 when the script is empty)."""
import http.server
import json
import threading
from typing import Any, Dict, List, Tuple


class Recorder(http.server.BaseHTTPRequestHandler):
    answers: Dict[str, List[int]] = {}
    received: List[Tuple[str, str, Any, Any, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        Recorder.received.append((self.command, self.path, self.headers["Idempotency-Key"], body,
                                  self.headers["Authorization"]))
        script = Recorder.answers.get(self.path.split("?")[0], [])
        status = script.pop(0) if script else 201
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"queue_position": len(Recorder.received)}).encode())

    do_POST = do_DELETE = _answer  # noqa: N815 - the http.server API

    def log_message(self, *args: Any) -> None:
        pass


class FakeDesk:
    """Serves in a thread; `url`, `answers` and `received` as the tests use them."""

    def __init__(self) -> None:
        Recorder.answers, Recorder.received = {}, []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @property
    def answers(self) -> Dict[str, List[int]]:
        return Recorder.answers

    @property
    def received(self) -> List[Tuple[str, str, Any, Any, Any]]:
        return Recorder.received

    def stop(self) -> None:
        self.server.shutdown()
