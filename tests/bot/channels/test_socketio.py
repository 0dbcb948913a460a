import asyncio
import contextlib
import queue
import time
from typing import List
from unittest.mock import ANY

import httpx
import pytest
import socketio

from bot.channels.socketio import SECRET_PERIOD_S, Sessions, hint_of
from bot.transcript import history
from tests.bot.channels.socketio_replica import SHARED_SECRET, Replica
from tests.ports import free_port


def test_a_session_is_resumed_only_with_the_secret_the_server_gave_with_it():
    sessions = Sessions(b"key-one")
    session_id, secret = sessions.issue()
    assert session_id.startswith("web-") and len(session_id) == 36
    assert sessions.owns(session_id, secret)
    assert sessions.issue()[0] != session_id
    assert not Sessions(b"key-two").owns(session_id, secret)
    assert secret not in session_id


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_secret_rotates_and_an_old_one_stops_opening_the_session():
    clock = Clock()
    sessions = Sessions(b"key", clock)
    session_id, secret = sessions.issue()

    clock.now += SECRET_PERIOD_S
    renewed = sessions.secret_of(session_id)
    assert renewed != secret
    assert sessions.owns(session_id, secret) and sessions.owns(session_id, renewed)

    clock.now += SECRET_PERIOD_S
    assert not sessions.owns(session_id, secret)  # two periods unused: no longer a key
    assert sessions.owns(session_id, renewed)


def test_a_non_ascii_secret_is_refused_not_an_error():
    sessions = Sessions(b"key")
    session_id, _ = sessions.issue()
    assert not sessions.owns(session_id, "sécrét\ud800")
    assert not sessions.owns("web-\ud800", "x")


def test_a_session_id_without_its_secret_is_no_key():
    sessions = Sessions(b"key")
    session_id, secret = sessions.issue()
    other_id, other_secret = sessions.issue()
    for named, given in (
        (session_id, None), (session_id, ""), (session_id, other_secret), (session_id, secret[:-1]),
        (other_id, secret), ("abc", sessions.secret_of("abc")), (None, secret), (42, secret),
        ("web-" + "x" * 100, sessions.secret_of("web-" + "x" * 100)),
    ):
        assert not sessions.owns(named, given), (named, given)


def test_only_a_language_hint_is_taken_from_the_client():
    assert hint_of({"language_hint": "ar-EG", "admin": True}) == {"language_hint": "ar"}
    assert hint_of({"language": "FA"}) == {"language_hint": "fa"}
    assert hint_of({"language_hint": "<b>"}) == {}
    assert hint_of("ar") == {}
    assert hint_of(None) == {}


def test_history_shows_what_the_person_saw():
    events = [
        {"event": "user", "text": "hello", "timestamp": 1.0},
        {
            "event": "bot",
            "text": "Hi! Choose",
            "timestamp": 2.0,
            "data": {"buttons": [{"title": "Can I apply?", "payload": "/ask_eligibility"}]},
        },
        {"event": "user", "text": "/ask_eligibility", "timestamp": 3.0},
        {"event": "user", "text": "EXTERNAL: handoff", "timestamp": 4.0},
        {"event": "bot", "text": "A counsellor writes", "timestamp": 5.0, "data": {}},
    ]
    assert history(events) == [
        {"sender": "user", "text": "hello", "at": 1.0},
        {
            "sender": "bot",
            "text": "Hi! Choose",
            "at": 2.0,
            "quick_replies": [{"title": "Can I apply?", "payload": "/ask_eligibility"}],
        },
        {"sender": "user", "text": "Can I apply?", "at": 3.0},
        {"sender": "bot", "text": "A counsellor writes", "at": 5.0},
    ]
    assert len(history(events, limit=2)) == 2


# -- several replicas: rooms through Redis --

def test_the_rooms_span_the_replicas_through_redis_only_when_it_is_set(monkeypatch):
    from socketio import AsyncRedisManager

    from bot.channels.socketio import GuardedSocketIOInput
    from tests.conftest import forget_settings

    async def handle(_):
        return None

    alone = GuardedSocketIOInput()
    alone.blueprint(handle)
    monkeypatch.setenv("AVRR_REDIS_URL", "redis://127.0.0.1:9/0")  # not connected yet
    monkeypatch.setenv("SOCKET_SESSION_SECRET", SHARED_SECRET)
    forget_settings()
    replica = GuardedSocketIOInput()
    replica.blueprint(handle)

    assert not isinstance(alone.sio.manager, AsyncRedisManager)
    assert isinstance(replica.sio.manager, AsyncRedisManager)
    assert replica.sio.manager.redis_url == "redis://127.0.0.1:9/0"


async def _socketio_server(port: int, manager):
    """A python-socketio server on `port`, served by aiohttp, where a client joins a room
    by asking; returns it and the aiohttp runner that stops it."""
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    app = web.Application()
    sio.attach(app)

    @sio.on("join")
    async def join(sid, room):
        sio.enter_room(sid, room)
        return "joined"

    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return sio, runner


async def _subscribed(redis_url: str, count: int) -> None:
    """Wait until `count` servers listen on python-socketio's Redis channel."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    deadline = asyncio.get_running_loop().time() + 10
    while (await client.pubsub_numsub("socketio"))[0][1] < count:
        assert asyncio.get_running_loop().time() < deadline, "the servers do not listen"
        await asyncio.sleep(0.02)
    await client.close()


@pytest.mark.integration
@pytest.mark.parametrize("through_redis", [True, False], ids=["redis", "control-in-memory"])
async def test_an_emit_to_a_room_on_one_server_reaches_its_client_on_another(
    redis_url, through_redis
):
    """python-socketio 5.8's AsyncRedisManager, as the channel uses it: a client on server
    A in a room gets what server B emits to that room; each server alone does not."""
    def manager():
        return socketio.AsyncRedisManager(redis_url) if through_redis else None

    ports = [free_port(), free_port()]
    (sio_a, runner_a), (sio_b, runner_b) = [
        await _socketio_server(port, manager()) for port in ports
    ]
    # python-socketio's own client, in threads: its asyncio one needs a later aiohttp.
    received: queue.Queue = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on("bot_uttered", received.put)
    try:
        await asyncio.to_thread(
            client.connect, f"http://127.0.0.1:{ports[0]}", transports=["websocket"]
        )
        assert await asyncio.to_thread(client.call, "join", "web-room", timeout=10) == "joined"
        if through_redis:
            await _subscribed(redis_url, 1)  # A listens from its first connection

        await sio_b.emit("bot_uttered", {"text": "from B"}, room="web-room")
        await sio_b.emit("bot_uttered", {"text": "from B, another room"}, room="web-other")
        await sio_a.emit("bot_uttered", {"text": "from A"}, room="web-room")

        first = await asyncio.to_thread(received.get, timeout=10)
        if through_redis:
            assert first == {"text": "from B"}
            assert await asyncio.to_thread(received.get, timeout=10) == {"text": "from A"}
        else:
            assert first == {"text": "from A"}  # B's emit reached nobody
        assert received.empty()
    finally:
        await asyncio.to_thread(client.disconnect)
        for sio, runner in ((sio_a, runner_a), (sio_b, runner_b)):
            await runner.cleanup()
            await _stop_listening(sio)


async def _stop_listening(sio) -> None:
    """End the server's task that listens to Redis, before the test's event loop ends."""
    listening = getattr(sio.manager, "thread", None)
    if listening is not None:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await sio.manager.pubsub.reset()
        await sio.manager.redis.close()


class _Person:
    """Rasa's socket.io protocol, as the widget speaks it (tests/e2e/conftest.py's WebChat)."""

    def __init__(self, url: str, session_id: str = None, secret: str = None) -> None:
        self.said: queue.Queue = queue.Queue()
        confirmed: queue.Queue = queue.Queue()
        secrets: queue.Queue = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("bot_uttered", self.said.put)
        self.client.on("message_processed", lambda _: self.said.put("(turn over)"))
        self.client.on("session_confirm", confirmed.put)
        self.client.on("session_secret", secrets.put)
        self.client.connect(url, socketio_path="/socket.io", transports=["websocket"])
        self.client.emit("session_request", {"session_id": session_id, "session_secret": secret})
        self.session_id = confirmed.get(timeout=10)
        self.secret = secrets.get(timeout=10)["session_secret"]

    def next_texts(self, count: int) -> List[str]:
        return [(m if isinstance(m, str) else m["text"]) for m in
                (self.said.get(timeout=10) for _ in range(count))]


@pytest.mark.integration
def test_the_web_chat_on_two_replicas_shares_its_rooms_and_sessions_through_redis(
    redis_url, tmp_path
):
    """The channel itself, in two processes on one Redis (a stand-in for Rasa's agent): a
    reply sent through replica B's output channel, as Rasa's HTTP API sends a counsellor's,
    reaches the person connected to replica A, and their session resumes on B."""
    from tests.bot.channels.harness import GREETING

    ports = [free_port(), free_port()]
    origins = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    replicas = []
    people = []
    try:
        for port in ports:
            replicas.append(Replica(port, redis_url, origins, tmp_path / f"{port}.log"))
        a, b = replicas
        deadline = time.monotonic() + 60
        a.wait_until_up(deadline)
        b.wait_until_up(deadline)
        # Each listens to the others from its start, before any client connects.
        asyncio.run(_subscribed(redis_url, 2))

        person = _Person(a.url)
        people.append(person)
        sent = httpx.post(f"{b.url}/say/{person.session_id}", json={"text": "A counsellor writes"})
        assert sent.status_code == 200
        assert person.next_texts(1) == ["A counsellor writes"]

        person.client.emit("user_uttered", {"message": "hello"})
        assert person.next_texts(3) == [GREETING, "What would you like to know?", "(turn over)"]

        elsewhere = _Person(b.url, person.session_id, person.secret)
        people.append(elsewhere)
        assert elsewhere.session_id == person.session_id  # the same conversation, on B
        httpx.post(f"{a.url}/say/{person.session_id}", json={"text": "Both see it"})
        assert person.next_texts(1) == elsewhere.next_texts(1) == ["Both see it"]
        assert person.said.empty() and elsewhere.said.empty()
    finally:
        for someone in people:
            someone.client.disconnect()
        for replica in replicas:
            replica.stop()


def test_a_stranger_s_socket_holds_no_attachments_and_forgets_within_the_limits(tmp_path):
    """One socket, no session: python-socketio kept every binary frame a packet announced
    (up to 10 digits' worth) in memory for good; a malformed frame, or JSON nested too
    deep, was an ERROR with a traceback. And `forget_session`, two turns each, escaped
    the limits that hold for a message."""
    import websocket

    from tests.bot.channels.harness import GREETING

    port = free_port()
    replica = Replica(port, None, f"http://127.0.0.1:{port}", tmp_path / "replica.log",
                       RATE_LIMIT_PER_SENDER="2")
    people = []
    try:
        replica.wait_until_up(time.monotonic() + 60)

        def raw() -> websocket.WebSocket:
            ws = websocket.create_connection(
                f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", timeout=10)
            assert ws.recv().startswith("0{")  # engine.io's open
            ws.send("40")
            assert ws.recv().startswith("40{")  # socket.io's connect
            return ws

        ws = raw()
        ws.send('451000000-["user_uttered",{"_placeholder":true,"num":0}]')
        ws.send_binary(b"\0" * 60000)
        ws.send('42["session_request",{}]')  # not taken for an attachment
        assert ws.recv().startswith('42["session_confirm","web-')
        ws.close()
        ws = raw()
        ws.send('42["user_uttered",' + "[" * 5000 + "]" * 5000 + "]")
        ws.send('42["session_request",{}]')  # answered after the frame before it
        assert ws.recv().startswith('42["session_confirm","web-')
        # No engine.io packet at all, or one engine.io itself cannot parse (JSON nested
        # too deep): the socket is closed, 1003.
        for frame in ("\x00", "4" + "[" * 3000 + "]" * 3000):
            ws.send(frame)
            opcode, closing = ws.recv_data_frame(True)
            while opcode != websocket.ABNF.OPCODE_CLOSE:  # an engine.io ping may come first
                opcode, closing = ws.recv_data_frame(True)
            assert closing.data[:2] == (1003).to_bytes(2, "big")
            ws = raw()
        ws.close()

        person = _Person(replica.url)
        people.append(person)
        answers: queue.Queue = queue.Queue()
        person.client.on("session_forgotten", lambda data: answers.put(("forgotten", data)))
        person.client.on("message_refused", lambda data: answers.put(("refused", data)))
        for _ in range(3):
            person.client.emit("forget_session", {})
        said = f"{GREETING} What would you like to know?"
        assert [answers.get(timeout=10) for _ in range(3)] == [
            ("forgotten", {"deleted": False, "text": said}),
            ("forgotten", {"deleted": False, "text": said}),
            ("refused", {"error": "too many messages, please wait", "retry_after": ANY}),
        ]
        written = replica.log.read_text(errors="replace")
    finally:
        for someone in people:
            someone.client.disconnect()
        replica.stop()
    assert "Traceback" not in written and "handler error" not in written, written
    for why in ("binary attachments", "binary frame", "RecursionError"):
        assert f"refused a malformed socket.io packet ({why})" in written
    assert "refused a malformed engine.io packet (ValueError)" in written
    assert "refused a malformed engine.io packet (RecursionError)" in written


def test_an_address_has_a_few_sockets_open_and_asks_for_sessions_as_often_as_it_may_write(
    tmp_path
):
    """Idle sockets from one address (each holds memory and a ping task) stop at
    SOCKETS_PER_ADDRESS; each `session_request` reads the conversation, and counts like a
    message against the address's limit."""
    import json

    import websocket

    port = free_port()
    replica = Replica(port, None, f"http://127.0.0.1:{port}", tmp_path / "replica.log",
                      SOCKETS_PER_ADDRESS="2", RATE_LIMIT_PER_ADDRESS="3")
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    sockets = []
    try:
        replica.wait_until_up(time.monotonic() + 60)

        def raw() -> websocket.WebSocket:
            ws = websocket.create_connection(url, timeout=10)
            sockets.append(ws)
            assert ws.recv().startswith("0{")  # engine.io's open
            return ws

        first, second = raw(), raw()
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            raw()
        assert refused.value.status_code == 401
        second.close()
        first.send("40")
        assert first.recv().startswith("40{")
        answers = []
        for _ in range(4):
            first.send('42["session_request",{}]')
            frame = first.recv()
            while not frame.startswith('42["session_'):  # an engine.io ping, say
                frame = first.recv()
            answers.append(json.loads(frame[2:])[0])
            if answers[-1] == "session_confirm":
                first.recv(), first.recv()  # session_secret, session_history
        assert answers == ["session_confirm"] * 3 + ["session_refused"]
        deadline = time.monotonic() + 10
        while True:  # the closed one is no longer counted once the server has seen it close
            try:
                third = raw()
                break
            except websocket.WebSocketBadStatusException:
                assert time.monotonic() < deadline
        third.send("40")
        assert third.recv().startswith("40{")
    finally:
        for ws in sockets:
            ws.close()
        replica.stop()
    assert "refused a web chat connection: 2 open from its address already" in (
        replica.log.read_text(errors="replace"))


def test_a_message_sent_again_by_the_widget_keeps_its_id_and_a_bad_id_is_not_taken(tmp_path):
    """The widget sends a message again after a dropped connection: with the same id, the
    desk takes a relay or a consent once (actions/handoff.py message_key)."""
    port = free_port()
    replica = Replica(port, None, f"http://127.0.0.1:{port}", tmp_path / "replica.log")
    person = None
    try:
        replica.wait_until_up(time.monotonic() + 60)
        person = _Person(replica.url)
        for given in ("a1b2c3d4e5f6a7b8c9d0e1f2", "a1b2c3d4e5f6a7b8c9d0e1f2", "<b>", 42):
            person.client.emit("user_uttered", {"message": "hello", "message_id": given})
            assert person.next_texts(3)[-1] == "(turn over)"

        ids = httpx.get(f"{replica.url}/message_ids").json()
    finally:
        if person is not None:
            person.client.disconnect()
        replica.stop()
    assert ids[:2] == ["a1b2c3d4e5f6a7b8c9d0e1f2"] * 2
    assert len(set(ids[2:])) == 2 and "<b>" not in ids and 42 not in ids  # Rasa's own
