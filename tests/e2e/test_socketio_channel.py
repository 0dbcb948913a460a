"""The web chat's socket.io channel: Rasa's protocol, with sessions only their owner can join."""
import uuid


def test_a_session_is_issued_by_the_server_and_is_the_conversation_id(web_chat, assistant):
    chat = web_chat("a-name-the-client-chose")
    assert chat.session_id.startswith("web-") and chat.session_id != "a-name-the-client-chose"
    [answer] = chat.say_and_wait("how much does it cost")[:1]
    assert answer["text"].startswith("The programme is for people who do not have the money")
    tracker = assistant.tracker(chat.session_id)
    said = [e["text"] for e in tracker["events"] if e["event"] == "user"]
    assert said == ["how much does it cost"]
    assert tracker["latest_input_channel"] == "socketio"


def test_the_owner_gets_the_history_back_and_a_stranger_naming_the_id_gets_nothing(web_chat):
    owner = web_chat()
    marker = uuid.uuid4().hex[:10]
    assert owner.say_and_wait(f"hello, my reference is {marker}")
    assert owner.history.get(timeout=5) == []

    again = web_chat(owner.session_id, owner.secret)
    assert again.session_id == owner.session_id
    shown = again.history.get(timeout=10)
    assert shown[0]["sender"] == "user" and marker in shown[0]["text"]

    stranger = web_chat(owner.session_id, "a-guessed-secret")
    assert stranger.session_id != owner.session_id
    assert stranger.history.get(timeout=10) == []
    assert owner.say_and_wait("how much does it cost")
    # The stranger's own turn comes after anything the server sent it before: nothing of
    # the owner's conversation is among it.
    theirs = stranger.say_and_wait("hello")
    assert theirs and all(marker not in (m.get("text") or "") for m in theirs)
    assert all(not m["text"].startswith("The programme is for people") for m in theirs)


def test_a_message_before_any_session_gets_no_answer(assistant):
    import queue

    import socketio

    client = socketio.Client(reconnection=False)
    seen = queue.Queue()
    client.on("session_invalid", lambda data: seen.put(("session_invalid", data)))
    client.on("bot_uttered", lambda data: seen.put(("bot_uttered", data)))
    client.on("session_confirm", lambda data: seen.put(("session_confirm", None)))
    client.on("message_processed", lambda data: seen.put(("message_processed", None)))
    client.connect(assistant.url, socketio_path="/socket.io", transports=["websocket"])
    client.emit("user_uttered", {"message": "hello", "session_id": "web-0123456789abcdef"})
    assert seen.get(timeout=10) == ("session_invalid", {"error": "send session_request first"})
    # Then a session and a message of its own: its turn ends after anything sent before.
    client.emit("session_request", {})
    assert seen.get(timeout=10) == ("session_confirm", None)
    client.emit("user_uttered", {"message": "hello"})
    events = []
    while not events or events[-1][0] != "message_processed":
        events.append(seen.get(timeout=20))
    client.disconnect()
    assert [kind for kind, _ in events].count("bot_uttered") == len(events) - 1 >= 1


def test_malformed_and_oversized_polling_packets_are_refused_and_the_session_lives(assistant):
    """From an allowed origin, without a socket.io client: packets that are no socket.io
    cost one INFO line each (no traceback), and a POST over the payload limit is a 413 at
    once, not a request held open with the session closed under it."""
    import re

    import requests

    from bot.channels.socketio import MAX_PAYLOAD_BYTES

    base = f"{assistant.url}/socket.io/?EIO=4&transport=polling"
    origin = {"Origin": assistant.widget_url.rstrip("/")}
    opened = requests.get(base, headers=origin, timeout=10)
    session = base + "&sid=" + re.search(r'"sid":"([^"]+)"', opened.text).group(1)
    before = len(assistant.log.read_text(errors="replace"))

    def post(body):
        return requests.post(session, data=body.encode(), headers=origin, timeout=10)

    def polled():
        return requests.get(session, headers=origin, timeout=30).text

    assert (post("40").status_code, polled()[:2]) == (200, "40")
    for broken in ['42["user_uttered", {"message": "canary', "4x", "42[", '42{"a": 1}', "4-"]:
        assert post(broken).status_code == 200, broken
    oversized = post('42["user_uttered",{"message":"' + "a" * MAX_PAYLOAD_BYTES + '"}]')
    assert (oversized.status_code, oversized.text) == (413, "payload exceeds maximum size")

    assert post('42["session_request",{}]').status_code == 200
    confirmed = polled()
    assert '"session_confirm"' in confirmed, confirmed
    written = assistant.log.read_text(errors="replace")[before:]
    assert "Traceback" not in written and "async handler error" not in written
    assert "canary" not in written


def test_a_counsellor_reply_offered_again_reaches_the_web_chat_once(web_chat, assistant):
    """The desk stopped waiting (20 s) while Rasa was still sending, and offers the reply
    again with its key: the person reads it once, and the conversation holds it once."""
    chat = web_chat()
    assert chat.say_and_wait("hello")
    key = f"desk-{uuid.uuid4().hex[:8]}"

    for _ in range(2):
        answer = assistant.api(
            "POST", f"/conversations/{chat.session_id}/tracker/events",
            params={"output_channel": "latest", "execute_side_effects": "true"},
            json={"event": "bot", "text": "A counsellor is here.",
                  "metadata": {"counsellor": True, "reply_key": key}})
        assert answer.status_code == 200, answer.text

    assert chat.received.get(timeout=10)["text"] == "A counsellor is here."
    # What arrives before the end of the next turn: that turn's replies, no second copy.
    later = chat.say_and_wait("thanks")
    assert later and "A counsellor is here." not in [m.get("text") for m in later]
    events = assistant.tracker(chat.session_id)["events"]
    assert [e["text"] for e in events if e["event"] == "bot"].count("A counsellor is here.") == 1
