"""Tried as an attacker would, on loopback, against the stack `make run` starts: no channel
reaches another's conversations, every service wants its credentials, typed commands are
words, huge bodies are refused before they are read, and the logs hold no canary."""
import socket
import uuid

import pytest
import requests

from tests.assistant import ACTION_TOKEN, RASA_TOKEN
from tests.rawhttp import status_of_announced_body

SIXTEEN_MB = 16 * 1024 * 1024


@pytest.mark.parametrize("sender", ["telegram:5550001", "whatsapp:36201234567", "web-0123abcd"])
def test_rest_cannot_write_into_or_read_another_channels_conversation(assistant, sender):
    reply = assistant.post({"sender": sender, "message": "delete my data"})

    assert reply.status_code == 400
    assert "telegram:, whatsapp: or web-" in reply.json()["error"]
    tracker = assistant.tracker(sender)
    assert [e for e in tracker["events"] if e["event"] == "user"] == []


@pytest.mark.parametrize(
    "path",
    ["/conversations/anyone/tracker", "/status", "/domain", "/conversations/x/story"],
)
def test_the_rasa_api_refuses_every_request_without_its_token(assistant, path):
    assert requests.get(assistant.url + path, timeout=30).status_code == 401
    assert requests.get(assistant.url + path, params={"token": "guess-" + RASA_TOKEN},
                        timeout=30).status_code == 401
    assert requests.post(assistant.url + path, json={}, timeout=30).status_code in (401, 405)


def test_the_rasa_api_takes_a_jwt_signed_with_its_token(assistant):
    import jwt

    signed = jwt.encode({"user": {"username": "ops", "role": "admin"}}, RASA_TOKEN, "HS256")
    forged = jwt.encode({"user": {"username": "ops", "role": "admin"}}, "guess", "HS256")

    assert requests.get(f"{assistant.url}/status", timeout=30,
                        headers={"Authorization": f"Bearer {signed}"}).status_code == 200
    assert requests.get(f"{assistant.url}/status", timeout=30,
                        headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_stranger_cannot_tell_whether_someone_has_a_conversation(assistant):
    import jwt

    known = f"rest-known-{uuid.uuid4().hex[:8]}"
    assistant.say(known, "hello")
    unknown = f"rest-unknown-{uuid.uuid4().hex[:8]}"
    someone = jwt.encode({"user": {"username": "someone", "role": "user"}}, RASA_TOKEN, "HS256")
    unsigned = jwt.encode({"user": {"username": known, "role": "admin"}}, None, "none")
    for conversation in (known, unknown):
        for action in ("tracker/events", "execute"):
            url = f"{assistant.url}/conversations/{conversation}/{action}"
            assert requests.post(url, json={}, timeout=30).status_code == 401
            assert requests.post(url, json={}, timeout=30, params={
                "token": "guess"}).status_code == 401
            assert requests.post(url, json={}, timeout=30, headers={
                "Authorization": f"Bearer {unsigned}"}).status_code == 401
            assert requests.post(url, json={}, timeout=30, headers={
                "Authorization": f"Bearer {someone}"}).status_code == 403
    with_token = f"{assistant.url}/conversations/{unknown}/tracker/events"
    assert requests.post(with_token, json={"event": "restart"}, timeout=30,
                         params={"token": RASA_TOKEN}).status_code == 404
    assert "Traceback" not in assistant.log.read_text()


def action_call(name: str, sender: str) -> dict:
    return {
        "next_action": name, "sender_id": sender, "version": "3.6.21", "domain": {},
        "tracker": {"sender_id": sender, "slots": {}, "latest_message": {}, "events": [],
                    "paused": False, "followup_action": None, "active_loop": {},
                    "latest_action_name": None},
    }


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer guess"},
                                     {"Authorization": ACTION_TOKEN}])
def test_the_action_server_refuses_every_call_without_its_secret(assistant, headers):
    call = action_call("action_delete_my_data", "telegram:5550001")

    reply = requests.post(f"{assistant.action_url}/webhook", json=call, headers=headers,
                          timeout=30)

    assert reply.status_code == 401
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert requests.get(f"{assistant.action_url}/actions", headers=headers,
                        timeout=30).status_code == 401


def test_a_web_page_cannot_call_the_action_server_with_a_simple_request(assistant):
    """A browser's text/plain POST (no preflight) is refused even with the secret."""
    reply = requests.post(
        f"{assistant.action_url}/webhook",
        data='{"next_action": "action_delete_my_data"}',
        headers={"Content-Type": "text/plain", "Authorization": f"Bearer {ACTION_TOKEN}",
                 "Origin": "http://evil.example"},
        timeout=30,
    )
    assert reply.status_code == 415
    assert "Access-Control-Allow-Origin" not in reply.headers


def non_loopback_addresses():
    found = set()
    for family, _, _, _, address in socket.getaddrinfo(socket.gethostname(), None):
        if family == socket.AF_INET and not address[0].startswith("127."):
            found.add(address[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            own = probe.getsockname()[0]
            if not own.startswith("127."):
                found.add(own)
        except OSError:
            pass
    return sorted(found)


def test_the_action_server_is_not_reachable_on_another_address(assistant):
    addresses = non_loopback_addresses()
    if not addresses:
        pytest.skip("this machine has no address but loopback")
    port = int(assistant.action_url.rsplit(":", 1)[1])
    for address in addresses:
        with socket.socket() as attempt:
            attempt.settimeout(3)
            assert attempt.connect_ex((address, port)) != 0, address


@pytest.mark.parametrize(
    "typed", ["/ /affirm", "/\t/restart", "//affirm", ' /inform{"elig_situation":"asylum"}',
              '/ /change_language{"language":"xx"}'],
)
def test_typed_commands_are_read_as_words(assistant, typed):
    """Whatever leading slashes and spaces: the text goes through NLU, as words."""
    sender = f"attacker-{uuid.uuid4().hex[:10]}"
    assistant.say(sender, "can I apply?")  # the first question and its buttons are open

    assistant.say(sender, typed)

    tracker = assistant.tracker(sender)
    latest = tracker["latest_message"]
    assert not latest["text"].startswith("/")
    assert len(latest["intent_ranking"]) > 1  # classified, not taken as a command
    assert tracker["slots"]["elig_situation"] is None


def endpoints(assistant, desk):
    rasa = assistant.url.split("//")[1].split(":")
    action = assistant.action_url.split("//")[1].split(":")
    desk_address = desk.url.split("//")[1].split(":")
    widget = assistant.widget_url.split("//")[1].strip("/").split(":")
    return [
        (rasa, "/webhooks/rest/webhook"),
        (rasa, "/webhooks/telegram/webhook"),
        (rasa, "/webhooks/whatsapp/webhook"),
        (rasa, "/socket.io/?EIO=4&transport=polling"),
        (rasa, "/conversations/x/tracker/events?token=" + RASA_TOKEN),
        (action, "/webhook"),
        (desk_address, "/api/login"),
        (desk_address, "/api/tickets"),
        (widget, "/"),
    ]


def test_a_16_mb_body_is_refused_with_413_on_every_endpoint_before_it_is_read(assistant, desk):
    for (host, port), path in endpoints(assistant, desk):
        status = status_of_announced_body(host, int(port), "POST", path, SIXTEEN_MB)
        assert status == 413, (port, path)


@pytest.mark.parametrize("length", ["-1", "abc"])
def test_a_content_length_that_is_no_size_is_refused_and_every_server_still_answers(
    assistant, desk, length,
):
    # A negative one made Sanic (Rasa, the action server) read for ever at full CPU.
    for (host, port), path in endpoints(assistant, desk):
        status = status_of_announced_body(host, int(port), "POST", path, length)
        # 400, or the 4xx a guard gives first (401 without a token, 404 no conversation)
        assert 400 <= status < 500, (port, path)
    for url in (assistant.url + "/", assistant.action_url + "/health",
                assistant.desk_url + "/health", assistant.widget_url + "health"):
        assert requests.get(url, timeout=5).status_code == 200, url
    assert "Traceback" not in assistant.log.read_text()


def test_no_other_account_of_the_machine_can_read_the_data(assistant):
    assistant.say(f"perm-{uuid.uuid4().hex[:8]}", "hello")
    made = [p for p in assistant.data_dir.rglob("*") if p.is_file() and p != assistant.log]

    assert {p.name for p in made} >= {"conversations.db", "desk.db", "channels.db"}
    assert [str(p) for p in made if p.stat().st_mode & 0o077] == []


def test_rest_keeps_only_the_metadata_it_uses(assistant):
    sender = f"meta-{uuid.uuid4().hex[:10]}"
    reply = assistant.post({"sender": sender, "message": "hello",
                            "metadata": {"language_hint": "fa-IR", "x": "y" * 5000,
                                         "input_channel": "telegram"}})
    assert reply.status_code == 200

    tracker = assistant.tracker(sender)
    [user] = [e for e in tracker["events"] if e["event"] == "user"]
    # Rasa adds its own model ids; nothing else the client sent is kept.
    assert {k: v for k, v in user["metadata"].items()
            if k not in ("assistant_id", "model_id")} == {"language_hint": "fa"}
    assert tracker["latest_input_channel"] == "rest"


def test_too_many_messages_from_one_sender_get_a_429_with_retry_after(assistant):
    sender = f"flood-{uuid.uuid4().hex[:10]}"
    statuses = []
    for _ in range(25):
        reply = assistant.post({"sender": sender, "message": "hi"})
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            assert int(reply.headers["Retry-After"]) >= 1
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
