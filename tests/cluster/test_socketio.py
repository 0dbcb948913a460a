"""The web chat over several replicas: a socket (websocket transport, through nginx)
whose replica dies reconnects through nginx to another, resumes its session with its
secret, and receives what is sent to it on any replica (socket.io's rooms on Redis)."""
import uuid

import psutil
import pytest

from tests.cluster.conftest import LOOPBACK
from tests.e2e.conftest import WebChat

pytestmark = pytest.mark.cluster

OFFER = "I can pass this conversation to an IOM counsellor"
QUEUED = "Thank you. A counsellor will answer you here in this chat. You are number"


def sockets_on(cluster, port: int) -> int:
    """Connections nginx holds open to the replica on `port` (it keeps none but sockets)."""
    return sum(1 for c in cluster.process_on(port).net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)


def test_a_web_chat_whose_replica_dies_resumes_and_hears_from_the_other(healthy):
    cluster = healthy
    before = {port: sockets_on(cluster, port) for port in cluster.layout.rasa}
    chat = WebChat(cluster.url)
    try:
        [holder] = [port for port in cluster.layout.rasa
                    if sockets_on(cluster, port) == before[port] + 1]
        assert chat.say_and_wait("I want to talk to a counsellor")[-1]["text"].startswith(OFFER)
        chat.say("/affirm")
        assert chat.replies(1)[0]["text"].startswith(QUEUED)

        cluster.kill(holder)
    finally:
        chat.close()
    # The widget opens a new socket, through nginx, and asks for its session back.
    resumed = WebChat(cluster.url, chat.session_id, chat.secret)
    try:
        assert resumed.session_id == chat.session_id
        assert any(m["text"].startswith(QUEUED) for m in resumed.history.get(timeout=15))
        # The dead replica comes back, without the socket, which another replica holds.
        cluster.all_up()
        without_socket = f"{LOOPBACK}:{holder}"
        # A counsellor's reply through whichever replica nginx picks, until the one
        # without the socket has taken one: each reaches the socket, once.
        served = set()
        for number in range(1, 5):
            text = f"Counsellor's reply number {number}."
            answer = cluster.api(
                "POST", f"/conversations/{chat.session_id}/tracker/events",
                params={"output_channel": "latest", "execute_side_effects": "true"},
                json={"event": "bot", "text": text,
                      "metadata": {"counsellor": True, "reply_key": uuid.uuid4().hex}})
            assert answer.status_code == 200, answer.text
            served.add(answer.headers["X-Served-By"])
            assert [m["text"] for m in resumed.replies(1)] == [text]
            if without_socket in served:
                break
        assert without_socket in served
        # And through the desk, as counsellors send it.
        [ticket] = [t for t in cluster.desk("GET", "/api/tickets?status=open").json()
                    if t["conversation_id"] == chat.session_id]
        answer = cluster.desk("POST", f"/api/tickets/{ticket['id']}/messages",
                              json={"text": "Hello, I am Anna from IOM."})
        assert answer.status_code == 201, answer.text
        assert [m["text"] for m in resumed.replies(1)] == ["Hello, I am Anna from IOM."]
    finally:
        resumed.close()
