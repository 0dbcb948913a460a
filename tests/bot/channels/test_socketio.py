from bot.channels.socketio import SECRET_PERIOD_S, Sessions, hint_of
from bot.transcript import history


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
