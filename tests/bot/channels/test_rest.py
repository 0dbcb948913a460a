"""The REST channel, mounted as Rasa mounts it, with a stand-in for Rasa."""
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
