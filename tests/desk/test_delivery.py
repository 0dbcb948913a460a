"""Two desks on one database deliver each counsellor reply once: the delivery lease."""
import asyncio
from collections import Counter

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from avrr.settings import DeskSettings
from avrr.vocabulary import Actions
from desk.app import Desk, create_app
from desk.store import Store, now
from tests.desk.conftest import BEARER, TOKEN


def rasa_stand_in(events, execute=None) -> web.Application:
    """Rasa's HTTP API as the desk calls it: a reply appended, an action run."""
    rasa = web.Application()
    rasa.router.add_post("/conversations/{sender}/tracker/events", events)
    if execute is not None:
        rasa.router.add_post("/conversations/{sender}/execute", execute)
    return rasa


def settings_for(server: TestServer, tmp_path, **fields) -> DeskSettings:
    return DeskSettings(api_token=TOKEN, data_dir=tmp_path,
                        rasa_url=str(server.make_url("")).rstrip("/"), **fields)


def open_ticket(store: Store, conversation: str, key: str) -> int:
    return store.create_ticket(
        {"idempotency_key": key, "conversation_id": conversation, "channel": "socketio",
         "language": "en", "topic": "request_human", "urgency": "normal",
         "consent_at": now(), "consent_language": "en"}, [])["ticket"]["id"]


async def test_two_desks_deliver_each_reply_once(tmp_path):
    received: Counter = Counter()

    async def events(request: web.Request) -> web.Response:
        received[(await request.json())["metadata"]["reply_key"]] += 1
        await asyncio.sleep(0)  # let the other desk try meanwhile
        return web.json_response({})

    async with TestServer(rasa_stand_in(events)) as server:
        desks = []
        for port in (8000, 8001):
            settings = settings_for(server, tmp_path, port=port)
            desks.append(Desk(settings, Store(settings.database)))
        store = desks[0].store
        keys = []
        for n in range(5):
            ticket = open_ticket(store, f"web-{n}", f"key-{n:08d}")
            for text in ("first", "second"):
                keys.append(f"desk-{store.reply(ticket, 'api', text)['id']}")

        # Each desk's loop, and counsellors' sends to each conversation, all at once.
        await asyncio.gather(*(desk.deliver() for desk in desks for _ in range(3)),
                             *(desk.deliver(f"web-{n}") for desk in desks for n in range(5)))

        assert received == Counter({key: 1 for key in keys})
        assert store.undelivered() == []
        for desk in desks:
            await desk.rasa.close()
            await desk.announcer.close()


async def test_a_rasa_that_times_out_delays_its_conversation_only(tmp_path, monkeypatch):
    """A timeout is a failed delivery like any other: the reply stays queued for a later
    try, and the other conversations' replies go out meanwhile."""
    import aiohttp

    from desk import rasa as rasa_client

    monkeypatch.setattr(rasa_client, "TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    slow_done = asyncio.Event()
    received = []

    async def events(request: web.Request) -> web.Response:
        if request.match_info["sender"] == "web-slow":
            await slow_done.wait()
        received.append(request.match_info["sender"])
        return web.json_response({})

    async with TestServer(rasa_stand_in(events)) as server:
        settings = settings_for(server, tmp_path)
        desk = Desk(settings, Store(settings.database))
        replies = {}
        for conversation in ("web-slow", "web-fast"):
            ticket = open_ticket(desk.store, conversation, f"key-{conversation}")
            replies[conversation] = desk.store.reply(ticket, "api", "hello")["id"]

        await desk.deliver()  # raised asyncio.TimeoutError on Python 3.10 before

        assert received == ["web-fast"]
        assert [m["id"] for m in desk.store.undelivered()] == [replies["web-slow"]]
        assert desk.retry_at["web-slow"] > 0
        slow_done.set()

        # The person deletes the conversation: the desk keeps no trace of its id.
        desk.store.delete_conversation("web-slow", "en")
        await desk.deliver()
        assert desk.retry_at == {} and desk.failures == {} and desk.delivering == {}
        await desk.rasa.close()


async def test_a_counsellor_s_send_and_close_wait_for_their_own_conversation_only(
    tmp_path, monkeypatch
):
    """While the delivery loop waits on a conversation whose platform hangs, another
    counsellor's reply and close go out at once, and the hand-back follows its reply."""
    import aiohttp

    from desk import rasa as rasa_client

    # Rasa's own limit is far away: before, the send waited for it (20 s per stall).
    monkeypatch.setattr(rasa_client, "TIMEOUT", aiohttp.ClientTimeout(total=600))
    hanging = asyncio.Event()
    release = asyncio.Event()
    received = []

    async def events(request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        if sender == "web-stalled":
            hanging.set()
            await release.wait()
        received.append((sender, (await request.json())["text"]))
        return web.json_response({})

    async def execute(request: web.Request) -> web.Response:
        received.append((request.match_info["sender"], (await request.json())["name"]))
        return web.json_response({})

    async with TestServer(rasa_stand_in(events, execute)) as server:
        settings = settings_for(server, tmp_path)
        store = Store(settings.database)
        tickets = {}
        for conversation in ("web-stalled", "web-other"):
            tickets[conversation] = open_ticket(store, conversation, f"key-{conversation}")
        store.reply(tickets["web-stalled"], "api", "waiting for the platform")
        async with TestClient(TestServer(create_app(settings, store))) as client:
            await asyncio.wait_for(hanging.wait(), 10)  # the loop is stuck on web-stalled

            other = tickets["web-other"]
            reply = await asyncio.wait_for(client.post(
                f"/api/tickets/{other}/messages", headers=BEARER,
                json={"text": "we can meet on Tuesday"}), 30)
            assert reply.status == 201 and (await reply.json())["delivered"] is True
            close = await asyncio.wait_for(
                client.post(f"/api/tickets/{other}/close", headers=BEARER), 30)
            assert close.status == 200

            assert received == [("web-other", "we can meet on Tuesday"),
                                ("web-other", Actions.HANDOFF_END)]
            assert [m["conversation_id"] for m in store.undelivered()] == ["web-stalled"]
            release.set()


async def test_a_reply_written_while_another_is_in_flight_goes_out_before_the_hand_back(
    tmp_path
):
    """A counsellor sends while the previous reply is still on its way, then closes: the
    person reads the reply, then that the counsellor has left, never the other way."""
    received, first_in, release = [], asyncio.Event(), asyncio.Event()

    async def events(request: web.Request) -> web.Response:
        text = (await request.json())["text"]
        if text == "first":
            first_in.set()
            await release.wait()
        received.append(text)
        return web.json_response({})

    async def execute(request: web.Request) -> web.Response:
        received.append((await request.json())["name"])
        return web.json_response({})

    async with TestServer(rasa_stand_in(events, execute)) as server:
        settings = settings_for(server, tmp_path)
        desk = Desk(settings, Store(settings.database))
        ticket = open_ticket(desk.store, "web-x", "key-00000001")
        desk.store.reply(ticket, "api", "first")
        sending = [asyncio.create_task(desk.deliver("web-x"))]
        await first_in.wait()
        desk.store.reply(ticket, "api", "second")
        sending.append(asyncio.create_task(desk.deliver("web-x")))
        desk.store.close(ticket, "api")
        sending.append(asyncio.create_task(desk.deliver("web-x")))
        release.set()
        await asyncio.gather(*sending)

        assert received == ["first", "second", Actions.HANDOFF_END]
        await desk.rasa.close()
        await desk.announcer.close()


async def test_a_reply_the_platform_refused_for_good_is_marked_undeliverable(tmp_path):
    """Rasa's API says 410 (the person blocked the assistant): the desk stops offering it,
    says why, and the next reply of the conversation goes on."""
    offered = []

    async def events(request: web.Request) -> web.Response:
        text = (await request.json())["text"]
        offered.append(text)
        if text == "first":
            return web.json_response({"reason": "Undeliverable"}, status=410)
        return web.json_response({})

    async with TestServer(rasa_stand_in(events)) as server:
        settings = settings_for(server, tmp_path)
        desk = Desk(settings, Store(settings.database))
        ticket = open_ticket(desk.store, "telegram:555", "key-blocked1")
        first = desk.store.reply(ticket, "api", "first")["id"]
        desk.store.reply(ticket, "api", "second")

        await desk.deliver("telegram:555")
        await desk.deliver("telegram:555")

        assert offered == ["first", "second"]
        assert desk.store.undelivered() == []
        [refused] = [m for m in desk.store.ticket(ticket, with_messages=True)["messages"]
                      if m["id"] == first]
        assert refused["undeliverable"].startswith("the platform refused it for good")
        await desk.rasa.close()
        await desk.announcer.close()


async def test_only_rasa_s_own_404_means_the_conversation_was_deleted(tmp_path):
    """A 404 from elsewhere (a wrong RASA_URL path, a proxy's page) is a fault to retry, not
    a deletion: taken for one, it marked the replies undeliverable for good."""
    answers = [web.Response(status=404, text="<html>Not Found</html>"),
               web.json_response({"error": "no such conversation"}, status=404)]

    async def events(request: web.Request) -> web.Response:
        return answers.pop(0)

    async with TestServer(rasa_stand_in(events)) as server:
        settings = settings_for(server, tmp_path)
        desk = Desk(settings, Store(settings.database))
        ticket = open_ticket(desk.store, "web-gone", "key-gone0001")
        reply = desk.store.reply(ticket, "api", "hello")["id"]

        await desk.deliver("web-gone")
        [waiting] = desk.store.undelivered()
        assert waiting["id"] == reply  # kept, tried again later
        desk.retry_at.clear()
        await desk.deliver("web-gone")

        assert desk.store.undelivered() == []
        [gone] = [m for m in desk.store.ticket(ticket, with_messages=True)["messages"]
                  if m["id"] == reply]
        assert gone["undeliverable"] == "the person deleted the conversation"
        await desk.rasa.close()
        await desk.announcer.close()


async def test_the_desk_names_a_conversation_in_rasa_s_path_as_its_route_reads_it(tmp_path):
    """Sanic does not unquote a path: "%2B3630…" would be another conversation, a 404, and
    the hand-back of a REST sender "+3630…" lost."""
    seen = []

    async def execute(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({})

    async with TestServer(rasa_stand_in(lambda request: None, execute)) as server:
        settings = settings_for(server, tmp_path)
        desk = Desk(settings, Store(settings.database))
        for conversation in ("+36301234567", "telegram:42"):
            desk.store.close(open_ticket(desk.store, conversation, f"key-{conversation}"))
            await desk.deliver(conversation)
        await desk.rasa.close()
        await desk.announcer.close()

    assert seen == ["/conversations/+36301234567/execute?output_channel=latest",
                    "/conversations/telegram:42/execute?output_channel=latest"]
