"""The containers' health check: 0 for a 200, 1 for anything else or nothing."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from avrr.probe import main
from tests.ports import free_port


class Server(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/ready" else 503)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_200_is_healthy_and_anything_else_is_not(server):
    assert main([f"{server}/ready"]) == 0
    assert main([f"{server}/starting"]) == 1  # 503
    assert main([f"http://127.0.0.1:{free_port()}/ready"]) == 1  # nothing listens


def test_it_wants_one_http_url(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
    with pytest.raises(ValueError, match="http://"):
        main(["file:///etc/passwd"])
