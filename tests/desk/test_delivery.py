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
