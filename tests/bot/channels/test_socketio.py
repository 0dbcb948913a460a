from bot.channels.socketio import Sessions, language_hint
from bot.transcript import history


def test_a_session_token_leads_to_its_conversation_only_with_the_servers_secret():
    sessions = Sessions(b"secret-one")
    token = sessions.issue()
    sender = sessions.sender_of(token)
    assert sender.startswith("web-") and sessions.sender_of(token) == sender
    assert sessions.issue() != token
    assert Sessions(b"secret-two").sender_of(token) is None
    assert sender not in token  # knowing the conversation id does not give the token


def test_a_token_the_server_did_not_issue_is_refused():
    sessions = Sessions(b"secret")
    token = sessions.issue()
    nonce, mac = token.split(".")
    for forged in (
        None,
        "",
        42,
        {"a": 1},
        "web-0123",
        nonce,
        f"{nonce}.{mac[:-1]}A",
        f"A{nonce[1:]}.{mac}",
        "x" * 200,
        sessions.sender_of(token),
    ):
        assert sessions.sender_of(forged) is None, forged


def test_only_a_two_letter_language_hint_is_taken_from_the_client():
    assert language_hint({"language_hint": "ar-EG", "admin": True}) == {"language_hint": "ar"}
    assert language_hint({"language": "FA"}) == {"language_hint": "fa"}
    assert language_hint({"language_hint": "<b>"}) == {}
    assert language_hint("ar") == {}
    assert language_hint(None) == {}


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
