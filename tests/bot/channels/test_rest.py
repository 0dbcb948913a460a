"""The REST channel, mounted as Rasa mounts it, with a stand-in for Rasa."""
import asyncio

import pytest

from bot.channels.rest import GuardedRestInput
from tests.bot.channels.harness import GREETING, Rasa, mounted

pytestmark = pytest.mark.filterwarnings("ignore:You have set a listener:UserWarning")

WEBHOOK = "/webhooks/rest/webhook"


@pytest.mark.parametrize("invisible", ["\u200b\u200f", "\ufeff", " \u2066\u2069\u200e "])
async def test_a_message_of_invisible_characters_is_an_empty_message(monkeypatch, invisible):
    rasa = Rasa()
    async with mounted(GuardedRestInput(token=None), rasa, monkeypatch) as client:
        reply = await client.post(WEBHOOK, json={"sender": "u1", "message": invisible})

    assert (reply.status_code, reply.json()) == (400, {"error": "'message' is empty"})
    assert rasa.received == []


async def test_bidirectional_embeddings_do_not_reach_rasa(monkeypatch):
    rasa = Rasa()
    async with mounted(GuardedRestInput(token=None), rasa, monkeypatch) as client:
        reply = await client.post(WEBHOOK, json={"sender": "u1", "message": "\u202ehelp\u202c"})

    assert reply.status_code == 200
    assert reply.json()[0] == {"recipient_id": "u1", "text": GREETING}
    assert rasa.texts() == ["help"]


async def test_a_client_that_hangs_up_does_not_stop_its_turn_half_done(monkeypatch):
    """Sanic cancels the handler when its client hangs up (here, the ASGI client's task
    is cancelled): the turn goes on to its end, and the conversation has its replies."""
    rasa, started, finish = Rasa(), asyncio.Event(), asyncio.Event()
    handle = rasa.handle

    async def slow(message):
        started.set()
        await finish.wait()
        await handle(message)

    rasa.handle = slow
    async with mounted(GuardedRestInput(token=None), rasa, monkeypatch) as client:
        request = asyncio.create_task(
            client.post(WEBHOOK, json={"sender": "u1", "message": "hello"}))
        await started.wait()
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        finish.set()
        [turn] = [task for task in asyncio.all_tasks()
                  if task.get_coro().__qualname__.endswith("turn")]
        await turn

    assert [type(event).__name__ for event in rasa.trackers["u1"].events] == [
        "UserUttered", "BotUttered", "BotUttered"]


async def test_a_message_sent_again_with_its_id_keeps_it_and_a_bad_id_is_not_taken(monkeypatch):
    """A client that timed out sends the message again with the same `message_id`: the
    desk then takes a relay or a consent once (actions/handoff.py message_key)."""
    rasa = Rasa()
    async with mounted(GuardedRestInput(token=None), rasa, monkeypatch) as client:
        for given in ("order-7f3a-0001", "order-7f3a-0001", "x" * 65, ["order"]):
            reply = await client.post("/webhooks/rest/webhook", json={
                "sender": "partner-42", "message": "hello", "message_id": given})
            assert reply.status_code == 200

    ids = [message.message_id for message in rasa.received]
    assert ids[:2] == ["order-7f3a-0001"] * 2
    assert len(set(ids[2:])) == 2 and "x" * 65 not in ids  # Rasa's own
