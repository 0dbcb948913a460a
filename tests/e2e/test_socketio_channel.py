"""The web chat's socket.io channel: Rasa's protocol, with sessions only their owner can join."""
import uuid


def test_a_session_is_issued_by_the_server_and_is_the_conversation_id(web_chat, assistant):
    chat = web_chat("a-name-the-client-chose")
    assert chat.session_id.startswith("web-") and chat.session_id != "a-name-the-client-chose"
    chat.say("how much does it cost")
    [answer] = chat.replies(1)
    assert answer["text"].startswith("The programme is for people who do not have the money")
    tracker = assistant.tracker(chat.session_id)
    said = [e["text"] for e in tracker["events"] if e["event"] == "user"]
    assert said == ["how much does it cost"]
    assert tracker["latest_input_channel"] == "socketio"


def test_the_owner_gets_the_history_back_and_a_stranger_naming_the_id_gets_nothing(web_chat):
    owner = web_chat()
    marker = uuid.uuid4().hex[:10]
    owner.say(f"hello, my reference is {marker}")
    owner.quiet(4)
    assert owner.history.get(timeout=5) == []

    again = web_chat(owner.session_id, owner.secret)
    assert again.session_id == owner.session_id
    shown = again.history.get(timeout=10)
    assert shown[0]["sender"] == "user" and marker in shown[0]["text"]

    stranger = web_chat(owner.session_id, "a-guessed-secret")
    assert stranger.session_id != owner.session_id
    assert stranger.history.get(timeout=10) == []
    owner.say("how much does it cost")
    assert owner.replies(1)
    assert stranger.quiet(3) == []  # the owner's replies never reach the stranger


def test_a_message_before_any_session_gets_no_answer(assistant):
    import socketio

    client = socketio.Client(reconnection=False)
    refused = []
    client.on("session_invalid", refused.append)
    client.on("bot_uttered", refused.append)
    client.connect(assistant.url, socketio_path="/socket.io", transports=["websocket"])
    client.emit("user_uttered", {"message": "hello", "session_id": "web-0123456789abcdef"})
    client.sleep(2)
    client.disconnect()
    assert refused == [{"error": "send session_request first"}]
