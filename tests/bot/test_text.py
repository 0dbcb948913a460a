import pytest

from bot.text import (
    MAX_MESSAGE_CHARS,
    InvalidMessage,
    clean_sender,
    clean_text,
    disarm_command,
    offered_payloads,
)

SALAM = "\u0633\u0644\u0627\u0645"
I_WANT = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # Persian, with a ZWNJ
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji, joined by ZWJs


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("  hello \n", "hello"),
        ("hi\x00\x01there", "hi  there"),
        ("line one\nline two", "line one\nline two"),
        ("😀😀", "😀😀"),
        ("cafe\u0301", "café"),
        ("cost \ud83d", "cost \ufffd"),  # half an emoji: the desk could not take it
        ("\ude00 ok \ud83d\ude00", "\ufffd ok \ufffd\ufffd"),
        # Embeddings, overrides and isolates go; marks and Persian's joiners stay.
        ("\u202eevil.exe\u202c", "evil.exe"),
        (f"\u2067 {SALAM} \u2069 ok \u202a\u202b\u202d", f"{SALAM}  ok"),
        (I_WANT, I_WANT),
        ("\u200fhello\u200e", "\u200fhello\u200e"),
        (FAMILY, FAMILY),
    ],
)
def test_clean_text(raw, cleaned):
    assert clean_text(raw) == cleaned


@pytest.mark.parametrize(
    "raw, reason, status",
    [
        ("", "'message' is empty", 400),
        (" \t\n ", "'message' is empty", 400),
        ("\x00\x07", "'message' is empty", 400),
        # Nothing that shows: format characters (Unicode's Cf) and white space only.
        ("\u200b\u200f", "'message' is empty", 400),
        ("\ufeff \u200e\n\u200b", "'message' is empty", 400),
        ("\u202e\u2066\u2069\u202c", "'message' is empty", 400),
        ("\u200c\u200d\u00ad", "'message' is empty", 400),
        (None, "'message' must be a string", 400),
        (42, "'message' must be a string", 400),
        ("a" * (MAX_MESSAGE_CHARS + 1), "'message' is longer than 4096 characters", 413),
    ],
)
def test_clean_text_refuses(raw, reason, status):
    with pytest.raises(InvalidMessage) as refused:
        clean_text(raw)
    assert (str(refused.value), refused.value.status) == (reason, status)


def test_a_message_a_platform_delivered_is_cut_not_refused():
    long = "a" * MAX_MESSAGE_CHARS + " and more"
    assert clean_text(long, cut=True) == "a" * MAX_MESSAGE_CHARS
    assert len(clean_text("\ufb2c" * 1500, cut=True)) == MAX_MESSAGE_CHARS  # grew under NFC


def test_clean_sender():
    assert clean_sender("web-3f2a_9") == "web-3f2a_9"
    # "." and ".." would be path steps in the desk's and Rasa's URLs: never deleted.
    for bad in ("", None, 7, "has space", "a/b", "x" * 129, "ü", ".", "..", "...",
                "partner-42\n"):
        with pytest.raises(InvalidMessage):
            clean_sender(bad)


def test_offered_payloads_are_those_since_the_last_user_message():
    events = [
        {"event": "bot", "data": {"buttons": [{"payload": "/old"}]}},
        {"event": "user", "text": "hi"},
        {"event": "bot", "data": {"buttons": [{"payload": "/affirm"}]}},
        {"event": "action", "name": "action_listen"},
        {"event": "bot", "data": {"buttons": [{"payload": "/deny"}]}},
        {"event": "bot", "data": {}},
    ]
    assert offered_payloads(events) == {"/affirm", "/deny"}
    assert offered_payloads([]) == set()


@pytest.mark.parametrize(
    "text, offered, result",
    [
        ("hello", set(), "hello"),
        ("/affirm", {"/affirm"}, "/affirm"),
        ('/inform{"elig_situation":"asylum"}', {"/affirm"}, 'inform{"elig_situation":"asylum"}'),
        ("/affirm", set(), "affirm"),
        ("/affirm", None, "affirm"),
        ("//restart", {"/restart"}, "restart"),
        ("/", set(), "?"),
        ("a /slash inside", set(), "a /slash inside"),
    ],
)
def test_disarm_command_lets_through_only_offered_payloads(text, offered, result):
    assert disarm_command(text, offered) == result
