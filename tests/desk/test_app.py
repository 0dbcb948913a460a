"""The desk's API over real HTTP on loopback (aiohttp's test server), with SQLite."""

import copy
from typing import Any, Dict

import jsonschema
import pytest
from aiohttp.test_utils import TestClient

from avrr.db import engine
from desk.openapi import document
from desk.store import Store
from tests.desk.conftest import BEARER, PASSWORD, new_ticket


async def login(client: TestClient) -> str:
    reply = await client.post("/api/login", json={"username": "amina", "password": PASSWORD})
    assert reply.status == 200
    return (await reply.json())["csrf_token"]


def openapi_schema(schema: Dict[str, Any]) -> Dict[str, Any]:
    """OpenAPI 3.0's `nullable` as JSON Schema."""
    schema = copy.deepcopy(schema)

    def convert(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop("nullable", False):
                node["type"] = [node["type"], "null"]
            for value in node.values():
                convert(value)
        elif isinstance(node, list):
            for value in node:
                convert(value)

    convert(schema)
    return schema


def response_schema(path: str, method: str, status: int) -> Dict[str, Any]:
    answer = document()["paths"][path][method]["responses"][str(status)]
    return openapi_schema(answer["content"]["application/json"]["schema"])


async def test_health_is_the_only_data_endpoint_without_authentication(client):
    assert (await client.get("/health")).status == 200
    public = {
        ("GET", "/health"),
        ("HEAD", "/health"),
        ("GET", "/ready"),
        ("HEAD", "/ready"),
        ("GET", "/"),
        ("HEAD", "/"),
        ("GET", "/stats"),
        ("HEAD", "/stats"),
        ("POST", "/api/login"),
    }
    for route in client.server.app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if (route.method, path) in public or path.startswith("/static"):
            continue
        url = (path.replace("{ticket_id}", "1").replace("{conversation_id}", "web-abc")
               .replace("{question_id}", "1").replace("{name}", "topics"))
        reply = await client.request(route.method, url)
        assert reply.status == 401, (route.method, path)
        if route.method != "HEAD":
            assert await reply.json() == {"error": "authentication required"}


async def test_the_desk_is_ready_while_its_database_answers(client):
    ready = await client.get("/ready")
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})
    jsonschema.validate(await ready.json(), response_schema("/ready", "get", 200))

    desk = next(iter(client.server.app.router["ready"])).handler.__self__
    # Nothing listens on port 9: PostgreSQL refuses at once.
    desk.store.engine = engine("postgresql://desk:secret@127.0.0.1:9/desk")
    down = await client.get("/ready")
    body = await down.json()
    assert (down.status, body) == (503, {"status": "unavailable", "failing": ["database"]})
    jsonschema.validate(body, response_schema("/ready", "get", 503))
    assert (await client.get("/health")).status == 200  # alive all the same


async def test_the_status_says_when_the_action_server_cannot_be_asked(client):
    reply = await client.get("/api/status", headers=BEARER)
    assert reply.status == 200
    body = await reply.json()
    assert body == {"outbox": None, "reason": "the action server is unreachable"}
    jsonschema.validate(body, response_schema("/api/status", "get", 200))


async def test_the_openapi_document_names_exactly_the_routes_the_app_has(client):
    served = await client.get("/openapi.json", headers=BEARER)
    assert served.status == 200
    documented = {
        (method.upper(), path)
        for path, operations in (await served.json())["paths"].items()
        for method in operations
    }
    routes = set()
    for route in client.server.app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path:
            routes.add((route.method, path))
    assert routes == documented


async def test_a_ticket_is_created_once_per_key_and_per_open_conversation(client):
    first = await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    assert first.status == 201
    body = await first.json()
    jsonschema.validate(body, response_schema("/api/tickets", "post", 201))
    assert body["queue_position"] == 1 and body["waiting"] is False

    again = await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    assert again.status == 200 and (await again.json())["id"] == body["id"]
    same_person = await client.post("/api/tickets", json=new_ticket("key-00000002"), headers=BEARER)
    assert same_person.status == 200 and (await same_person.json())["id"] == body["id"]

    other = await client.post(
        "/api/tickets", json=new_ticket("key-00000003", "tg-42", urgency="urgent"), headers=BEARER
    )
    assert other.status == 201 and (await other.json())["queue_position"] == 2

    listed = await (await client.get("/api/tickets?status=open", headers=BEARER)).json()
    jsonschema.validate(listed, response_schema("/api/tickets", "get", 200))
    assert [(t["conversation_id"], t["urgency"]) for t in listed] == [
        ("tg-42", "urgent"),
        ("web-abc", "normal"),
    ]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"consent": None}, "'consent' with its time"),
        ({"urgency": "very"}, "'urgency' must be one of urgent, legal, normal"),
        ({"idempotency_key": "short"}, "must be 8-128 characters"),
        ({"transcript": [{"sender": "counsellor", "text": "x"}]}, "each transcript entry"),
        ({"conversation_id": ""}, "'conversation_id' must be a non-empty string"),
        ({"consent": {"at": "yesterday"}}, "times must be ISO-8601"),
        # Before the first day there is, in UTC (found by the fuzzer: it was a 500).
        ({"consent": {"at": "0001-01-01T00:00:00+01:00"}}, "times must be ISO-8601"),
        ({"consent": {"at": "9999-12-31T23:59:59-01:00"}}, "times must be ISO-8601"),
    ],
)
async def test_a_bad_ticket_is_refused_with_the_reason(client, change, reason):
    reply = await client.post("/api/tickets", json=new_ticket(**change), headers=BEARER)
    assert reply.status == 400
    assert reason in (await reply.json())["error"]


async def test_bad_bodies_and_ids_get_a_4xx_never_a_500(client):
    assert (await client.post("/api/tickets", data=b"{not json", headers=BEARER)).status == 400
    assert (await client.post("/api/tickets", json=[1, 2], headers=BEARER)).status == 400
    assert (await client.get("/api/tickets/abc", headers=BEARER)).status == 400
    assert (await client.get("/api/tickets/999", headers=BEARER)).status == 404
    assert (await client.get("/api/tickets?status=weird", headers=BEARER)).status == 400
    assert (
        await client.post("/api/tickets/1/messages", json={"text": " "}, headers=BEARER)
    ).status in (400, 404)
    assert (await client.get("/no/such/page", headers=BEARER)).status == 404


async def test_a_counsellor_session_is_an_httponly_strict_cookie_and_needs_csrf(client):
    reply = await client.post("/api/login", json={"username": "amina", "password": PASSWORD})
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    me = await (await client.get("/api/me")).json()
    assert me["username"] == "amina" and me["languages"] == ["ar", "fa"]
    jsonschema.validate(me, response_schema("/api/me", "get", 200))

    await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    [ticket] = await (await client.get("/api/tickets")).json()
    without = await client.post(f"/api/tickets/{ticket['id']}/messages", json={"text": "مرحبا"})
    assert without.status == 403
    wrong = await client.post(
        f"/api/tickets/{ticket['id']}/messages",
        json={"text": "مرحبا"},
        headers={"X-CSRF-Token": "x"},
    )
    assert wrong.status == 403
    right = await client.post(
        f"/api/tickets/{ticket['id']}/messages",
        json={"text": "مرحبا"},
        headers={"X-CSRF-Token": me["csrf_token"]},
    )
    assert right.status == 201
    message = await right.json()
    jsonschema.validate(message, response_schema("/api/tickets/{ticket_id}/messages", "post", 201))
    assert (message["sender"], message["text"], message["delivered"]) == (
        "counsellor",
        "مرحبا",
        False,
    )

    # Opening tickets, relaying and deleting are for the assistant's token only.
    for method, path in (
        ("POST", "/api/tickets"),
        ("POST", "/api/inbound"),
        ("DELETE", "/api/conversations/web-abc"),
    ):
        refused = await client.request(
            method, path, json={}, headers={"X-CSRF-Token": me["csrf_token"]}
        )
        assert refused.status == 403, path

    await client.post("/api/logout", headers={"X-CSRF-Token": me["csrf_token"]})
    assert (await client.get("/api/tickets")).status == 401


async def test_wrong_passwords_are_refused_then_slowed_down(client):
    for _ in range(5):
        reply = await client.post(
            "/api/login", json={"username": "amina", "password": "wrong-password"}
        )
        assert reply.status == 401
        assert "Set-Cookie" not in reply.headers
    blocked = await client.post("/api/login", json={"username": "amina", "password": PASSWORD})
    assert blocked.status == 429


async def test_the_persons_messages_join_the_ticket_once_and_can_raise_its_urgency(client):
    await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    message = {
        "ticket_key": "key-00000001",
        "idempotency_key": "msg-1",
        "text": "ساعدوني",
        "urgent": True,
    }
    assert (await client.post("/api/inbound", json=message, headers=BEARER)).status == 201
    assert (await client.post("/api/inbound", json=message, headers=BEARER)).status == 201
    [ticket] = await (await client.get("/api/tickets", headers=BEARER)).json()
    assert ticket["urgency"] == "urgent" and ticket["waiting"] is True
    detail = await (await client.get(f"/api/tickets/{ticket['id']}", headers=BEARER)).json()
    jsonschema.validate(detail, response_schema("/api/tickets/{ticket_id}", "get", 200))
    assert [m["text"] for m in detail["messages"]] == [
        "أريد التحدث مع مستشار",
        "هل توافق؟",
        "ساعدوني",
    ]
    unknown = dict(message, ticket_key="no-such-ticket")
    assert (await client.post("/api/inbound", json=unknown, headers=BEARER)).status == 404


async def test_a_closed_ticket_takes_no_reply_and_deleting_the_conversation_removes_it(client):
    created = await (await client.post("/api/tickets", json=new_ticket(), headers=BEARER)).json()
    closed = await client.post(f"/api/tickets/{created['id']}/close", headers=BEARER)
    assert closed.status == 200 and (await closed.json())["status"] == "closed"
    late = await client.post(
        f"/api/tickets/{created['id']}/messages", json={"text": "hi"}, headers=BEARER
    )
    assert late.status == 409
    gone = await client.delete("/api/conversations/web-abc", headers=BEARER)
    assert await gone.json() == {"deleted_tickets": 1}
    assert (await client.get(f"/api/tickets/{created['id']}", headers=BEARER)).status == 404


async def test_a_message_to_a_closed_ticket_is_a_409_unless_it_was_already_taken(client):
    created = await (await client.post("/api/tickets", json=new_ticket(), headers=BEARER)).json()
    first = {"ticket_key": "key-00000001", "idempotency_key": "m-1", "text": "are you there?"}
    assert (await client.post("/api/inbound", json=first, headers=BEARER)).status == 201
    await client.post(f"/api/tickets/{created['id']}/close", headers=BEARER)

    # Between the close and the hand-back nobody reads the ticket: the person is told.
    late = dict(first, idempotency_key="m-2", text="they are at the door")
    reply = await client.post("/api/inbound", json=late, headers=BEARER)
    assert (reply.status, await reply.json()) == (409, {"error": "the ticket is closed"})
    # The first message sent again (its answer was lost) is the same message, taken.
    again = await client.post("/api/inbound", json=first, headers=BEARER)
    assert again.status == 201 and (await again.json())["text"] == "are you there?"
    detail = await (await client.get(f"/api/tickets/{created['id']}", headers=BEARER)).json()
    assert [m["text"] for m in detail["messages"]][-1] == "are you there?"
    assert detail["status"] == "closed" and detail["urgency"] == "normal"


async def test_a_message_under_a_key_the_desk_does_not_know_joins_its_open_ticket(client):
    """A consent sent twice (REST and the widget give no message id): the desk answered
    the second request with the ticket of the first, whose key the assistant never saw."""
    await client.post("/api/tickets", json=new_ticket(key="key-first"), headers=BEARER)
    again = await client.post("/api/tickets", json=new_ticket(key="key-second"), headers=BEARER)
    assert again.status == 200
    message = {"ticket_key": "key-second", "conversation_id": "web-abc",
               "idempotency_key": "m-1", "text": "my brother threatens me", "urgent": True}
    reply = await client.post("/api/inbound", json=message, headers=BEARER)
    assert reply.status == 201
    [ticket] = await (await client.get("/api/tickets", headers=BEARER)).json()
    assert ticket["urgency"] == "urgent" and ticket["waiting"] is True
    # Another conversation's id finds nothing of this one.
    stranger = dict(message, conversation_id="web-other", idempotency_key="m-2")
    assert (await client.post("/api/inbound", json=stranger, headers=BEARER)).status == 404


async def test_every_answer_carries_the_security_headers(client):
    for path in ("/health", "/", "/api/tickets"):
        reply = await client.get(path)
        assert "default-src 'self'" in reply.headers["Content-Security-Policy"]
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["X-Frame-Options"] == "DENY"


async def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    """Even unauthenticated: the size is checked before anything else."""
    import asyncio

    from tests.rawhttp import status_of_announced_body

    for path in ("/api/login", "/api/tickets", "/api/tickets/1/messages", "/health"):
        status = await asyncio.to_thread(
            status_of_announced_body, client.host, client.port, "POST", path, 16 * 1024 * 1024
        )
        assert status == 413, path


async def test_a_wrong_method_is_a_405_that_says_what_is_allowed(client):
    reply = await client.delete("/api/login")

    assert reply.status == 405
    assert "POST" in reply.headers["Allow"]


@pytest.mark.parametrize("path", ["/api/tickets/9223372036854775808", "/api/tickets/0",
                                  "/api/tickets/%D9%A3", "/api/tickets/1e3"])
async def test_a_ticket_id_out_of_range_is_a_400(client, path):
    assert (await client.get(path, headers=BEARER)).status == 400


async def test_deeply_nested_json_and_unstorable_text_are_400s(client):
    nested = b'{"username": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = await client.post("/api/login", data=nested,
                              headers={"Content-Type": "application/json"})
    assert reply.status == 400

    await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    surrogate = b'{"ticket_key": "key-00000001", "idempotency_key": "m-1", "text": "\\ud800"}'
    reply = await client.post("/api/inbound", data=surrogate,
                              headers={**BEARER, "Content-Type": "application/json"})
    assert (reply.status, await reply.json()) == (
        400, {"error": "'text' holds characters that are not text"})


async def test_a_locked_name_costs_no_password_hash_and_locks_nobody_elsewhere(
    client, monkeypatch
):

    hashed = []
    check = Store.check_password

    def counting(self, username, password):
        hashed.append(username)
        return check(self, username, password)

    monkeypatch.setattr(Store, "check_password", counting)
    for _ in range(5):
        await client.post("/api/login", json={"username": "amina", "password": "wrong-pw-123"})
    assert len(hashed) == 5

    for _ in range(3):
        blocked = await client.post("/api/login", json={"username": "amina", "password": "x"})
        assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0
    assert len(hashed) == 5  # no Argon2 while locked

    # Without a proxy in front, X-Forwarded-For is the client's to write: not believed.
    forged = await client.post("/api/login", json={"username": "amina", "password": PASSWORD},
                               headers={"X-Forwarded-For": "10.0.0.7"})
    assert forged.status == 429


def test_sign_in_attempts_are_forgotten_when_their_window_ends(tmp_path):
    from datetime import timedelta

    store = Store(f"sqlite:///{tmp_path / 'd.db'}")
    window = timedelta(minutes=15)
    for _ in range(5):
        assert store.login_attempt({"pair:amina|1.2.3.4": 5}, window) is None

    assert store.login_attempt({"pair:amina|1.2.3.4": 5}, window) > 0
    assert store.login_attempt({"pair:amina|5.6.7.8": 5}, window) is None
    assert store.login_attempt({"pair:amina|1.2.3.4": 5}, timedelta(seconds=0)) is None


async def test_sign_ins_sent_at_once_cannot_pass_the_limit_together(client):
    import asyncio

    wrong = {"username": "amina", "password": "wrong-password-1"}
    replies = await asyncio.gather(*(client.post("/api/login", json=wrong) for _ in range(30)))
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [401] * 5 + [429] * 25


async def test_a_successful_sign_in_is_not_counted_against_the_address(client):
    for _ in range(25):  # more than the address's 20 failures
        reply = await client.post("/api/login", json={"username": "amina", "password": PASSWORD})
        assert reply.status == 200


async def twenty_guesses_behind_nginx(client, forwarded_for) -> None:
    """Behind one proxy (nginx), 20 wrong guesses of other names, the nth from
    `forwarded_for(n)`: an address's allowance."""
    desk = next(iter(client.server.app.router["ready"])).handler.__self__
    desk.settings = desk.settings.copy(update={"proxies_count": 1})
    for number in range(20):
        guess = {"username": f"someone-{number}", "password": "wrong-password-1"}
        reply = await client.post("/api/login", json=guess,
                                  headers={"X-Forwarded-For": forwarded_for(number)})
        assert reply.status == 401


async def sign_in_from(client, forwarded_for: str) -> int:
    """The status of amina's right password, sent with that X-Forwarded-For."""
    reply = await client.post("/api/login", json={"username": "amina", "password": PASSWORD},
                              headers={"X-Forwarded-For": forwarded_for})
    return reply.status


async def test_behind_a_proxy_the_limits_count_the_address_it_forwards(client):
    # One machine guesses many names through nginx: its address is locked...
    await twenty_guesses_behind_nginx(client, lambda number: "203.0.113.9")
    assert await sign_in_from(client, "203.0.113.9") == 429
    # ...not every counsellor behind the same nginx. A client's own X-Forwarded-For comes
    # first; nginx appends the address it saw, the one counted.
    assert await sign_in_from(client, "203.0.113.9, 198.51.100.4") == 200


async def test_one_address_hammering_a_name_does_not_lock_it_for_everyone(client):
    desk = next(iter(client.server.app.router["ready"])).handler.__self__
    desk.settings = desk.settings.copy(update={"proxies_count": 1})
    stranger = {"X-Forwarded-For": "203.0.113.9"}
    statuses = [
        (await client.post("/api/login", json={"username": "amina", "password": "guess-123"},
                           headers=stranger)).status
        for _ in range(60)  # more than the name's 50 from anywhere
    ]
    assert statuses == [401] * 5 + [429] * 55  # refused attempts check no password...

    assert await sign_in_from(client, "198.51.100.4") == 200  # ...and count for nothing


async def test_an_ipv6_home_counts_as_one_address_whichever_of_its_addresses_it_takes(
    client
):
    # A new address of its /64 for each guess.
    await twenty_guesses_behind_nginx(client, lambda number: f"2001:db8:7:7::{number + 1:x}")
    assert await sign_in_from(client, "2001:db8:7:7:abcd::99") == 429
    assert await sign_in_from(client, "2001:db8:7:8::1") == 200  # a neighbour


async def test_a_sign_in_is_json_only_so_no_other_site_can_post_it(client):
    form = await client.post(
        "/api/login", data='{"username": "amina", "password": "' + PASSWORD + '"}',
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
    assert (form.status, await form.json()) == (
        415, {"error": "the body must be JSON (Content-Type: application/json)"})
    assert "Set-Cookie" not in form.headers


async def test_a_body_in_an_unknown_charset_is_a_400(client):
    reply = await client.post(
        "/api/login", data=b'{"username": "amina", "password": "x"}',
        headers={"Content-Type": "application/json; charset=x-nope"})
    assert (reply.status, await reply.json()) == (400, {"error": "the body must be JSON"})


async def test_a_database_that_fails_is_a_503_to_send_again(client, monkeypatch):
    import sqlalchemy as sa

    def locked(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT ...", {"text": "secret"}, Exception("locked"))

    await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    monkeypatch.setattr(Store, "inbound", locked)
    message = {"ticket_key": "key-00000001", "idempotency_key": "m-1", "text": "help"}
    reply = await client.post("/api/inbound", json=message, headers=BEARER)
    assert reply.status == 503 and reply.headers["Retry-After"] == "2"
    assert await reply.json() == {"error": "the desk's database did not answer; try again"}


async def test_a_reply_sent_again_with_its_key_is_taken_once(client):
    """The console keeps one key per draft: a Send pressed again after an answer that never
    came is the same reply, not a second message to the person."""
    await client.post("/api/tickets", json=new_ticket(), headers=BEARER)
    [ticket] = await (await client.get("/api/tickets", headers=BEARER)).json()
    path = f"/api/tickets/{ticket['id']}/messages"
    draft = {"text": "I will call you at 10.", "idempotency_key": "draft-1"}

    first = await client.post(path, json=draft, headers=BEARER)
    again = await client.post(path, json=draft, headers=BEARER)
    other = await client.post(path, json={**draft, "idempotency_key": "draft-2"},
                              headers=BEARER)
    bad = await client.post(path, json={**draft, "idempotency_key": 7}, headers=BEARER)

    assert (first.status, again.status, other.status, bad.status) == (201, 201, 201, 400)
    assert (await first.json())["id"] == (await again.json())["id"] != (await other.json())["id"]
    detail = await (await client.get(f"/api/tickets/{ticket['id']}", headers=BEARER)).json()
    assert [m["text"] for m in detail["messages"] if m["sender"] == "counsellor"] == [
        "I will call you at 10.", "I will call you at 10."]


async def test_a_ticket_sent_before_a_deletion_and_arriving_after_it_is_not_made(client):
    """Its sender timed out and retried while the person deleted the conversation: the
    retry must not bring the transcript back."""
    await client.post("/api/tickets", json=new_ticket(conversation="web-late"), headers=BEARER)
    deleted = await client.delete("/api/conversations/web-late", headers=BEARER)
    assert (await deleted.json()) == {"deleted_tickets": 1}

    late = await client.post("/api/tickets", json=new_ticket(
        "key-00000002", "web-late"), headers=BEARER)
    assert late.status == 410
    tickets = await (await client.get("/api/tickets?status=all", headers=BEARER)).json()
    assert [t for t in tickets if t["conversation_id"] == "web-late"] == []

    # Asked again, with a new consent: a new ticket.
    again = await client.post("/api/tickets", json=new_ticket(
        "key-00000003", "web-late", consent={"at": "2099-01-01T00:00:00Z", "language": "ar"}),
        headers=BEARER)
    assert again.status == 201
