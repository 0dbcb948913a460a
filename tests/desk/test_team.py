"""The desk for a team, over real HTTP on loopback: who holds a ticket, accounts and roles,
conversations readable in the counsellor's language, ready replies in the person's."""
import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict

import aiohttp
import jsonschema
import pytest

from avrr.content import Content
from desk.app import STORE
from desk.store import daily_counts, waits
from tests.desk.conftest import BEARER, PASSWORD, new_ticket
from tests.desk.test_app import response_schema

CONTENT = Content(Path(__file__).resolve().parents[2] / "content")
NEW_PASSWORD = "bela-chose-this-one"


class Counsellor:
    """One signed-in browser: its own cookie jar and CSRF token."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.signed_in: Dict[str, Any] = {}

    async def login(self, username: str, password: str) -> int:
        reply = await self.session.post(
            self.client.make_url("/api/login"), json={"username": username, "password": password}
        )
        if reply.status == 200:
            self.signed_in = await reply.json()
            self.csrf = self.signed_in["csrf_token"]
        return reply.status

    async def call(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf}
        return await self.session.request(
            method, self.client.make_url(path), headers=headers, **kwargs
        )

    async def json(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        reply = await self.call(method, path, **kwargs)
        body = await reply.json()
        assert reply.status == status, (method, path, reply.status, body)
        return body


@pytest.fixture
async def team(client):
    """amina, the first account (an administrator), and bela, a counsellor she added, who
    has chosen his own password."""
    amina, bela = Counsellor(client), Counsellor(client)
    assert await amina.login("amina", PASSWORD) == 200
    await amina.json("POST", "/api/counsellors", 201, json={
        "username": "bela", "password": "temporary-123", "languages": ["hu", "en"],
        "role": "counsellor"})
    assert await bela.login("bela", "temporary-123") == 200
    await bela.json("POST", "/api/me/password", 200,
                    json={"old": "temporary-123", "new": NEW_PASSWORD})
    yield amina, bela
    await amina.session.close()
    await bela.session.close()


async def open_ticket(client, **fields) -> Dict[str, Any]:
    reply = await client.post("/api/tickets", json=new_ticket(**fields), headers=BEARER)
    assert reply.status == 201
    return await reply.json()


async def test_the_first_account_is_an_administrator_and_a_new_one_starts_with_a_new_password(
    client,
):
    amina, bela = Counsellor(client), Counsellor(client)
    assert await amina.login("amina", PASSWORD) == 200
    assert (amina.signed_in["role"], amina.signed_in["must_change_password"]) == ("admin", False)
    added = await amina.json("POST", "/api/counsellors", 201, json={
        "username": "bela", "password": "temporary-123", "languages": ["hu", "en"],
        "role": "counsellor"})
    assert added == {"username": "bela", "languages": ["hu", "en"], "role": "counsellor",
                     "must_change_password": True, "disabled": False}
    jsonschema.validate(added, response_schema("/api/counsellors", "post", 201))

    assert await bela.login("bela", "temporary-123") == 200
    assert bela.signed_in["must_change_password"] is True
    refused = await bela.json("GET", "/api/tickets", 403)
    assert refused["must_change_password"] is True
    assert (await bela.json("GET", "/api/me", 403))["must_change_password"] is True
    wrong = await bela.json("POST", "/api/me/password", 403,
                            json={"old": "not-the-password", "new": NEW_PASSWORD})
    assert wrong == {"error": "the old password is wrong"}
    await bela.json("POST", "/api/me/password", 400, json={"old": "temporary-123", "new": "short"})
    await bela.json("POST", "/api/me/password", 200,
                    json={"old": "temporary-123", "new": NEW_PASSWORD})
    assert await bela.json("GET", "/api/tickets", 200) == []

    # A counsellor manages no accounts, sees no statistics and no inbox; the
    # administrator sees the change recorded.
    assert (await bela.json("GET", "/api/counsellors", 403)) == {"error": "for administrators only"}
    await bela.json("POST", "/api/counsellors", 403, json={})
    for path in ("/api/stats", "/api/stats.csv", "/api/unanswered", "/api/intents"):
        await bela.json("GET", path, 403)
    history = await amina.json("GET", "/api/counsellors/history", 200)
    assert [(e["actor"], e["action"]) for e in history[:2]] == [
        ("bela", "password changed"), ("amina", "account added")]
    await amina.session.close()
    await bela.session.close()


@pytest.mark.parametrize("body, status", [
    ({"username": "Bad Name", "password": "long-enough-1", "languages": ["en"]}, 400),
    ({"username": "cecil", "password": "short", "languages": ["en"]}, 400),
    ({"username": "cecil", "password": "long-enough-1", "languages": ["xx"]}, 400),
    ({"username": "cecil", "password": "long-enough-1", "languages": []}, 400),
    ({"username": "cecil", "password": "long-enough-1", "languages": ["en"], "role": "root"}, 400),
    ({"username": "amina", "password": "long-enough-1", "languages": ["en"]}, 409),
    # The API token's name in the record: no account may pass for it.
    ({"username": "api", "password": "long-enough-1", "languages": ["en"]}, 400),
])
async def test_a_bad_or_taken_account_is_refused(client, body, status):
    reply = await client.post("/api/counsellors", json=body, headers=BEARER)
    assert reply.status == status
    assert "error" in await reply.json()


async def test_one_counsellor_holds_a_ticket_and_nobody_else_answers_it(client, team):
    amina, bela = team
    ticket = await open_ticket(client)
    path = f"/api/tickets/{ticket['id']}"

    claimed = await bela.json("POST", f"{path}/claim", 200)
    assert claimed["assignee"] == "bela"
    assert (await amina.json("POST", f"{path}/claim", 409)) == {"error": "bela holds this ticket"}
    await amina.json("POST", f"{path}/messages", 409, json={"text": "Hello from amina"})
    await amina.json("POST", f"{path}/close", 409)
    await bela.json("POST", f"{path}/messages", 201, json={"text": "Hello from bela"})
    automated = await client.post(f"{path}/messages", json={"text": "From a script"},
                                  headers=BEARER)
    assert automated.status == 201  # the API token is exempt, and recorded as such

    stored = await amina.json("GET", path, 200)
    replies = [(m["author"], m["text"]) for m in stored["messages"] if m["sender"] == "counsellor"]
    assert replies == [("bela", "Hello from bela"), ("api", "From a script")]
    assert [(e["actor"], e["action"]) for e in stored["history"]] == [
        ("bela", "claimed"), ("bela", "replied"), ("api", "replied")]
    jsonschema.validate(stored, response_schema("/api/tickets/{ticket_id}", "get", 200))

    # The holder lets go; the next to answer holds it; an administrator assigns it.
    await amina.json("POST", f"{path}/release", 200)  # an administrator may release it
    assert (await bela.json("GET", path, 200))["assignee"] is None
    await amina.json("POST", f"{path}/messages", 201, json={"text": "amina here"})
    await bela.json("POST", f"{path}/release", 409)
    assert (await bela.json("GET", path, 200))["assignee"] == "amina"
    await bela.json("POST", f"{path}/assign", 403, json={"username": "bela"})
    await amina.json("POST", f"{path}/assign", 404, json={"username": "nobody"})
    assert (await amina.json("POST", f"{path}/assign", 200,
                             json={"username": "bela"}))["assignee"] == "bela"
    await bela.json("POST", f"{path}/close", 200)
    await bela.json("POST", f"{path}/claim", 409)  # closed


async def test_two_counsellors_answering_an_unclaimed_ticket_at_once_one_wins(
    client, team,
):
    amina, bela = team
    ticket = await open_ticket(client)
    path = f"/api/tickets/{ticket['id']}/messages"
    answers = await asyncio.gather(
        amina.call("POST", path, json={"text": "A"}), bela.call("POST", path, json={"text": "B"})
    )
    assert sorted(a.status for a in answers) == [201, 409]
    stored = await amina.json("GET", f"/api/tickets/{ticket['id']}", 200)
    [reply] = [m for m in stored["messages"] if m["sender"] == "counsellor"]
    assert stored["assignee"] == reply["author"]


async def test_a_disabled_counsellor_is_signed_out_everywhere_and_their_tickets_released(
    client, team,
):
    amina, bela = team
    ticket = await open_ticket(client)
    await bela.json("POST", f"/api/tickets/{ticket['id']}/claim", 200)

    disabled = await amina.json("POST", "/api/counsellors/bela/disable", 200)
    assert disabled["disabled"] is True
    assert (await bela.call("GET", "/api/me")).status == 401
    assert await bela.login("bela", NEW_PASSWORD) == 401
    stored = await amina.json("GET", f"/api/tickets/{ticket['id']}", 200)
    assert stored["assignee"] is None
    assert stored["history"][-1]["action"] == "released"

    await amina.json("POST", "/api/counsellors/amina/disable", 409)  # not yourself
    await amina.json("PATCH", "/api/counsellors/amina", 409, json={"role": "counsellor"})
    await amina.json("PATCH", "/api/counsellors/amina", 409, json={"role": "viewer"})
    await amina.json("POST", "/api/counsellors/nobody/disable", 404)

    # Back, with a password reset by the administrator: changed at the next sign-in.
    await amina.json("POST", "/api/counsellors/bela/enable", 200)
    reset = await amina.json("POST", "/api/counsellors/bela/password", 200,
                             json={"password": "another-temporary"})
    assert reset["must_change_password"] is True
    assert await bela.login("bela", NEW_PASSWORD) == 401
    assert await bela.login("bela", "another-temporary") == 200
    assert bela.signed_in["must_change_password"] is True
    changed = await amina.json("PATCH", "/api/counsellors/bela", 200,
                               json={"languages": ["hu"], "role": "admin"})
    assert (changed["languages"], changed["role"]) == (["hu"], "admin")
    await amina.json("PATCH", "/api/counsellors/bela", 400, json={"languages": "hu"})


async def test_a_counsellor_who_signs_out_leaves_their_tickets_to_the_others(client, team):
    """Released when their last session ends, not while another browser is still open."""
    amina, bela = team
    ticket = await open_ticket(client)
    path = f"/api/tickets/{ticket['id']}"
    other_browser = Counsellor(client)
    assert await other_browser.login("bela", NEW_PASSWORD) == 200
    await bela.json("POST", f"{path}/claim", 200)

    assert (await other_browser.call("POST", "/api/logout")).status == 204
    assert (await amina.json("GET", path, 200))["assignee"] == "bela"
    assert (await bela.call("POST", "/api/logout")).status == 204
    stored = await amina.json("GET", path, 200)
    assert stored["assignee"] is None
    assert [(e["actor"], e["action"], e["detail"]) for e in stored["history"]][-1] == (
        "bela", "released", "bela signed out")
    await amina.json("POST", f"{path}/messages", 201, json={"text": "amina here"})
    await other_browser.session.close()


async def test_the_tickets_of_a_counsellor_whose_console_is_closed_are_released(
    client, team, monkeypatch,
):
    """bela closed his browser without signing out: 30 minutes on, the desk's own job
    releases his tickets (not amina's, whose console is open), and says why."""
    import desk.app
    import desk.store

    amina, bela = team
    first = await open_ticket(client)
    second = await open_ticket(client, key="key-00000002", conversation="web-def")
    await bela.json("POST", f"/api/tickets/{first['id']}/claim", 200)
    await amina.json("POST", f"/api/tickets/{second['id']}/claim", 200)

    later = desk.store.now() + timedelta(minutes=31)
    monkeypatch.setattr(desk.store, "now", lambda: later)
    await amina.json("GET", "/api/me", 200)  # her open console, before the job runs again
    monkeypatch.setattr(desk.app, "CLAIMS_EVERY_S", 0.0)
    for _ in range(100):  # amina's console polls; the delivery loop runs every 2 s
        stored = await amina.json("GET", f"/api/tickets/{first['id']}", 200)
        if stored["assignee"] is None:
            break
        await asyncio.sleep(0.1)
    assert stored["assignee"] is None
    assert [(e["actor"], e["action"], e["detail"]) for e in stored["history"]][-1] == (
        "desk", "released", "bela away for 30 minutes or more")
    assert (await amina.json("GET", f"/api/tickets/{second['id']}", 200))["assignee"] == "amina"
    # Back at his console, bela takes what is free again.
    await bela.json("POST", f"/api/tickets/{first['id']}/claim", 200)


def pashto_ticket() -> Dict[str, Any]:
    offer = CONTENT.replies("handoff_offer", "ps")[0]
    return new_ticket(
        language="ps",
        topic="ask_cost",
        consent={"at": "2026-11-24T08:00:00Z", "language": "ps"},
        transcript=[
            {"sender": "person", "text": "د بیرته تګ لګښت څومره دی؟", "intent": "ask_cost",
             "confidence": 0.87, "at": "2026-11-24T07:59:00Z"},
            {"sender": "assistant", "text": offer.text, "content": offer.source(),
             "at": "2026-11-24T07:59:01Z"},
            {"sender": "person", "text": "زه نه پوهېږم", "intent": "nlu_fallback",
             "confidence": 0.31, "at": "2026-11-24T07:59:02Z"},
        ],
    )


async def test_a_pashto_conversation_reads_in_the_counsellors_language(client, team):
    amina, bela = team
    created = await client.post("/api/tickets", json=pashto_ticket(), headers=BEARER)
    ticket = await created.json()
    path = f"/api/tickets/{ticket['id']}"

    # amina reads Arabic and Farsi: her glosses are in English; bela's in Hungarian.
    for reader, language in ((amina, "en"), (bela, "hu")):
        stored = await reader.json("GET", path, 200)
        asked, offer, unclear = stored["messages"]
        assert stored["topic_name"] == CONTENT.topic_name("ask_cost", language)
        assert offer["gloss"] == CONTENT.replies("handoff_offer", language)[0].text
        assert (asked["topic"], asked["confidence"], asked["gloss"]) == (
            CONTENT.topic_name("ask_cost", language), 0.87, None)
        assert unclear["topic"] == CONTENT.topic_name("not_understood", language)
    english = await bela.json("GET", f"{path}?gloss=en", 200)
    assert english["messages"][0]["topic"] == "Cost of return"
    assert english["gloss_language"] == "en"
    await bela.json("GET", f"{path}?gloss=ps", 400)
    [listed] = await amina.json("GET", "/api/tickets", 200)
    assert listed["topic_name"] == "Cost of return"

    # What the assistant's token sends about content must have the documented shape.
    bad = pashto_ticket()
    bad["idempotency_key"], bad["conversation_id"] = "key-bad-content", "web-bad"
    bad["transcript"][1]["content"] = {"key": ["not", "a", "name"]}
    assert (await client.post("/api/tickets", json=bad, headers=BEARER)).status == 400
    bad["transcript"][1]["content"] = None
    bad["transcript"][0]["confidence"] = 7
    assert (await client.post("/api/tickets", json=bad, headers=BEARER)).status == 400


async def test_a_ready_reply_chosen_in_english_is_sent_in_the_persons_language(
    client, team,
):
    amina, bela = team
    listed = await amina.json("GET", "/api/replies?language=en", 200)
    jsonschema.validate(listed, response_schema("/api/replies", "get", 200))
    call_at = next(r for r in listed if r["key"] == "call_at")
    assert call_at == {"key": "call_at", "fields": ["date", "time"],
                       "text": "A counsellor will call you on {date} at {time} (Hungarian time)."}
    created = await client.post("/api/tickets", json=pashto_ticket(), headers=BEARER)
    path = f"/api/tickets/{(await created.json())['id']}/messages"

    values = {"date": "2026-12-08", "time": "10:30"}
    sent = await amina.json("POST", path, 201, json={"reply_key": "call_at", "values": values})
    assert sent["text"] == CONTENT.ready_reply("call_at", "ps", values).text
    assert sent["gloss"] == "A counsellor will call you on 2026-12-08 at 10:30 (Hungarian time)."
    assert sent["author"] == "amina"
    hotline = await amina.json("POST", path, 201, json={"reply_key": "hotline"})
    assert hotline["text"] == CONTENT.ready_reply("hotline", "ps", {}).text

    for body in (
        {"reply_key": "call_at", "values": {"date": "2026-12-08"}},  # a field missing
        {"reply_key": "hotline", "values": {"hotline": "+36 1 000 0000"}},  # not the settings'
        {"reply_key": "no_such_reply"},
        {"reply_key": "call_at", "values": {"date": "x" * 101, "time": "10:30"}},
        {"reply_key": "call_at", "values": ["2026-12-08", "10:30"]},
    ):
        refused = await amina.json("POST", path, 400, json=body)
        assert refused["error"], body


async def test_a_viewer_sees_the_statistics_and_nothing_of_a_person(client, team):
    amina, _ = team
    await amina.json("POST", "/api/counsellors", 201, json={
        "username": "vera", "password": "temporary-123", "languages": ["hu"], "role": "viewer"})
    vera = Counsellor(client)
    assert await vera.login("vera", "temporary-123") == 200
    await vera.json("GET", "/api/stats", 403)  # not before her own password
    await vera.json("POST", "/api/me/password", 200,
                    json={"old": "temporary-123", "new": "vera-chose-this"})
    assert (await vera.json("GET", "/api/stats", 200))["totals"] == {}
    assert (await vera.call("GET", "/api/stats.csv")).status == 200
    for path in ("/api/tickets", "/api/unanswered", "/api/intents", "/api/counsellors",
                 "/api/replies"):
        await vera.json("GET", path, 403)
    await vera.json("POST", "/api/stats/refresh", 403)

    # One person in Pashto asked for deletion yesterday and waited for a counsellor: a
    # viewer sees neither, nor any total they are part of; an administrator sees
    # everything. Nor does a viewer see today, whose counts grow while they look.
    store = client.server.app[STORE]
    today = store.today() - timedelta(days=1)
    with store.engine.begin() as db:
        db.execute(daily_counts.insert(), [
            {"day": store.today(), "channel": "socketio", "language": "en",
             "metric": "conversations", "count": 6}])
        db.execute(daily_counts.insert(), [
            {"day": today, "channel": "socketio", "language": "en", "metric": "conversations",
             "count": 7},
            {"day": today, "channel": "telegram", "language": "ps", "metric": "conversations",
             "count": 3},
            {"day": today, "channel": "telegram", "language": "ps",
             "metric": "deletion_requests", "count": 1}] + [
            # 11 finished the eligibility check in English, 1 of them with fear of return:
            # 11 beside 5 and 5 would tell that 1.
            {"day": today, "channel": "socketio", "language": "en", "metric": metric,
             "count": n} for metric, n in (("eligibility_finished", 11),
                                           ("eligibility:likely", 5),
                                           ("eligibility:counsellor_first", 5),
                                           ("eligibility:fear", 1))])
        db.execute(waits.insert(), [
            {"day": today, "channel": channel, "language": language, "urgency": "normal",
             "seconds": 60.0 * n}
            for channel, language, many in (("socketio", "en", 5), ("telegram", "ps", 1))
            for n in range(many)])
    seen = await vera.json("GET", "/api/stats", 200)
    assert (seen["totals"], seen["by_language"], seen["smallest_count_shown"]) == (
        {"conversations": 7}, {"en": {"conversations": 7}}, 5)
    assert seen["eligibility"] == {"likely": 5, "counsellor_first": 5}
    assert seen["wait"]["count"] == 5 and list(seen["wait"]["by_language"]) == ["en"]
    csv = await (await vera.call("GET", "/api/stats.csv")).text()
    assert ",ps," not in csv and ",en,conversations,7" in csv
    chart = await (await vera.call("GET", "/api/stats/charts/conversations.svg")).text()
    assert "<!-- en -->" in chart and "<!-- ps -->" not in chart  # the legend's labels
    everything = await amina.json("GET", "/api/stats", 200)
    assert everything["totals"] == {"conversations": 16, "deletion_requests": 1,
                                    "eligibility_finished": 11}
    assert everything["eligibility"] == {"likely": 5, "counsellor_first": 5, "fear": 1}
    assert everything["wait"]["count"] == 6 and "smallest_count_shown" not in everything
    await vera.session.close()


async def test_a_ticket_never_stays_with_someone_who_cannot_answer(client, team):
    amina, bela = team
    ticket = await open_ticket(client)
    path = f"/api/tickets/{ticket['id']}"
    await amina.json("POST", "/api/counsellors", 201, json={
        "username": "vic", "password": "temporary-123", "languages": ["en"], "role": "viewer"})
    await amina.json("POST", f"{path}/assign", 404, json={"username": "vic"})
    await bela.json("POST", f"{path}/claim", 200)
    await amina.json("PATCH", "/api/counsellors/bela", 200, json={"role": "viewer"})
    stored = await amina.json("GET", path, 200)
    assert stored["assignee"] is None
    assert stored["history"][-1] == dict(stored["history"][-1], actor="amina",
                                         action="released", detail="bela became a viewer")


async def test_an_engineer_on_call_reads_the_desks_gauges(client, team):
    amina, bela = team
    ticket = await open_ticket(client, urgency="urgent")
    reply = await client.post("/api/inbound", headers=BEARER, json={
        "ticket_key": "key-00000001", "idempotency_key": "inbound-1", "text": "are you there?"})
    assert reply.status == 201
    await bela.json("POST", f"/api/tickets/{ticket['id']}/messages", 201, json={"text": "yes"})

    answer = await client.get("/metrics", headers=BEARER)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = (await answer.text()).splitlines()
    assert 'avrr_desk_open_tickets{urgency="urgent"} 1.0' in lines
    assert 'avrr_desk_open_tickets{urgency="normal"} 0.0' in lines
    assert "avrr_desk_waiting_tickets 0.0" in lines  # bela answered
    assert "avrr_desk_undelivered_replies 1.0" in lines  # nothing listens at RASA_URL here
    assert "avrr_desk_hand_backs_pending 0.0" in lines
    await bela.json("GET", "/metrics", 403)
    assert (await amina.call("GET", "/metrics")).status == 200


async def test_guessing_the_password_from_an_open_session_is_slowed_down(client, team):
    _, bela = team
    for _ in range(5):
        await bela.json("POST", "/api/me/password", 403,
                        json={"old": "a-wrong-guess-0", "new": "whatever-new-1"})
    refused = await bela.call("POST", "/api/me/password",
                              json={"old": NEW_PASSWORD, "new": "whatever-new-1"})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
