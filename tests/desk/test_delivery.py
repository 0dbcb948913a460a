"""Two desks on one database deliver each counsellor reply once: the delivery lease."""
import asyncio
from collections import Counter

from aiohttp import web
from aiohttp.test_utils import TestServer

from avrr.settings import DeskSettings
from desk.app import Desk
from desk.store import Store, now
from tests.desk.conftest import TOKEN


async def test_two_desks_deliver_each_reply_once(tmp_path):
    received: Counter = Counter()

    async def events(request: web.Request) -> web.Response:
        received[(await request.json())["metadata"]["reply_key"]] += 1
        await asyncio.sleep(0)  # let the other desk try meanwhile
        return web.json_response({})

    rasa = web.Application()
    rasa.router.add_post("/conversations/{sender}/tracker/events", events)
    async with TestServer(rasa) as server:
        desks = []
        for port in (8000, 8001):
            settings = DeskSettings(api_token=TOKEN, data_dir=tmp_path, port=port,
                                    rasa_url=str(server.make_url("")).rstrip("/"))
            desks.append(Desk(settings, Store(settings.database)))
        store = desks[0].store
        keys = []
        for n in range(5):
            created = store.create_ticket(
                {"idempotency_key": f"key-{n:08d}", "conversation_id": f"web-{n}",
                 "channel": "socketio", "language": "en", "topic": "request_human",
                 "urgency": "normal", "consent_at": now(), "consent_language": "en"}, [])
            ticket = created["ticket"]["id"]
            for text in ("first", "second"):
                keys.append(f"desk-{store.reply(ticket, 'api', text)['id']}")

        await asyncio.gather(*(desk.deliver() for desk in desks for _ in range(3)))

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

    rasa = web.Application()
    rasa.router.add_post("/conversations/{sender}/tracker/events", events)
    async with TestServer(rasa) as server:
        settings = DeskSettings(api_token=TOKEN, data_dir=tmp_path,
                                rasa_url=str(server.make_url("")).rstrip("/"))
        desk = Desk(settings, Store(settings.database))
        replies = {}
        for conversation in ("web-slow", "web-fast"):
            ticket = desk.store.create_ticket(
                {"idempotency_key": f"key-{conversation}", "conversation_id": conversation,
                 "channel": "socketio", "language": "en", "topic": "request_human",
                 "urgency": "normal", "consent_at": now(), "consent_language": "en"},
                [])["ticket"]["id"]
            replies[conversation] = desk.store.reply(ticket, "api", "hello")["id"]

        await desk.deliver()  # raised asyncio.TimeoutError on Python 3.10 before

        assert received == ["web-fast"]
        assert [m["id"] for m in desk.store.undelivered()] == [replies["web-slow"]]
        assert desk.retry_at["web-slow"] > 0
        slow_done.set()
        await desk.rasa.close()
