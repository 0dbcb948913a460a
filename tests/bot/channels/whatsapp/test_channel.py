"""The WhatsApp webhook and sending, without a Rasa server: the webhook's checks, once-only
handling, the durable send queue, the 24-hour rule and held messages, against a fake
Graph API over real HTTP on loopback."""
import asyncio
import logging
import time
import uuid
from typing import Any, Dict

import pytest

from avrr.settings import WhatsAppSettings
from avrr.vocabulary import UNSUPPORTED_MEDIA_COMMAND
from bot.channels.records import HELD, QUEUED, Claim
from bot.channels.whatsapp.channel import CHANNEL, WhatsAppInput, WhatsAppOutput
from tests.bot.channels.harness import (
    GREETING,
    TOPICS,
    Rasa,
    mounted,
    new_records,
    settle,
)
from tests.fakes.graph_api import (
    PHONE_NUMBER_ID,
    TOKEN,
    FakeGraphApi,
    button_reply_payload,
    encode,
    image_payload,
    list_reply_payload,
    location_payload,
    message_payload,
    reaction_payload,
    signed,
    status_payload,
)

# Sanic warns that listeners run "as late as possible" in ASGI mode: they do run here.
pytestmark = pytest.mark.filterwarnings("ignore:You have set a listener:UserWarning")

SECRET = "wa-test-secret"
VERIFY = "wa-verify-token"
HOUR = 3600.0
WEBHOOK = "/webhooks/whatsapp/webhook"


def new_wa_id() -> str:
    return "36" + str(uuid.uuid4().int)[:9]


def conversation(wa_id: str) -> str:
    return f"whatsapp:{wa_id}"


def interactive(message: Dict[str, Any]) -> Dict[str, Any]:
    assert message["type"] == "interactive"
    return message["interactive"]


def shown_text(message: Dict[str, Any]) -> str:
    if message["type"] == "text":
        return message["text"]["body"]
    if message["type"] == "interactive":
        return message["interactive"]["body"]["text"]
    return f"<{message['type']}>"


@pytest.fixture(scope="module")
def graph():
    fake = FakeGraphApi()
    fake.base = fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(graph):
    return WhatsAppSettings(
        access_token=TOKEN, app_secret=SECRET, verify_token=VERIFY,
        phone_number_id=PHONE_NUMBER_ID, api_base_url=graph.base,
    )


@pytest.fixture
def records(tmp_path):
    return new_records(tmp_path)


class Webhook:
    """The channel mounted as Rasa mounts it, and what it sends."""

    def __init__(self, channel: WhatsAppInput, rasa: Rasa, client) -> None:
        self.channel = channel
        self.rasa = rasa
        self.client = client

    async def post(self, payload: Any, signature: str = "sign", body=None):
        body = body if body is not None else encode(payload)
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = signed(body, SECRET)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return await self.client.post(WEBHOOK, content=body, headers=headers)

    async def settle(self) -> None:
        await settle(self.channel.deliverer)


@pytest.fixture
async def webhook(settings, records, monkeypatch):
    rasa = Rasa()
    channel = WhatsAppInput(settings, records=records)
    async with mounted(channel, rasa, monkeypatch) as client:
        yield Webhook(channel, rasa, client)


@pytest.fixture
async def later(webhook):
    """The output channel as Rasa gets it for a message sent later (a counsellor's)."""
    return webhook.channel.get_output_channel()


# -- the webhook --


async def test_the_verify_handshake_echoes_the_challenge(webhook):
    reply = await webhook.client.get(
        WEBHOOK,
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
    )

    assert (reply.status_code, reply.text) == (200, "1158201444")
    assert reply.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY + "x", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY},
        {},
    ],
)
async def test_a_wrong_verify_request_is_refused(webhook, params):
    reply = await webhook.client.get(WEBHOOK, params=params)

    assert (reply.status_code, reply.json()) == (403, {"error": "verification failed"})


@pytest.mark.parametrize("signature", [None, "", "sha256=" + "0" * 64, signed(b"{}", SECRET)])
async def test_an_unsigned_or_forged_post_is_refused_and_nothing_happens(
    webhook, records, graph, signature
):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")

    reply = await webhook.post(payload, signature=signature)

    assert reply.status_code == 403
    assert reply.json() == {"error": "the signature is wrong or missing"}
    assert webhook.rasa.received == []
    assert records.last_wrote(conversation(wa_id)) is None
    assert records.claim(CHANNEL, f"wamid.{wa_id}") is Claim.NEW  # never seen
    assert records.pending() == {QUEUED: 0, HELD: 0}


async def test_a_post_altered_after_signing_is_refused(webhook):
    body = encode(message_payload(new_wa_id(), "Hello"))
    signature = signed(body, SECRET)

    reply = await webhook.post(None, signature=signature, body=body.replace(b"Hello", b"Hellp"))

    assert reply.status_code == 403
    assert webhook.rasa.received == []


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "the body must be JSON"),
        (b"\xff\xfe", "the body must be JSON"),
        (b"[" * 100000, "the body must be JSON"),
        (b"[1, 2]", "not a WhatsApp webhook: the body must be a JSON object"),
        (b'{"object": "page"}',
         "not a WhatsApp webhook: object must be 'whatsapp_business_account'"),
    ],
)
async def test_a_signed_body_that_is_not_a_webhook_is_a_400(webhook, body, reason):
    reply = await webhook.post(None, body=body)

    assert (reply.status_code, reply.json()) == (400, {"error": reason})
    assert webhook.rasa.received == []


async def test_a_message_that_cannot_be_read_does_not_cost_the_others_of_its_webhook(
    webhook, caplog
):
    """One message without a phone number (Meta's usernames) and one with a text of an
    unknown shape, beside a danger message: the webhook was a 400, and Meta's
    redeliveries failed the same way, so the danger message never reached the assistant."""
    caplog.set_level(logging.INFO)
    payload = message_payload(new_wa_id(), "my brother threatens me", message_id="wamid.A")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    nameless = dict(messages[0], id="wamid.B", from_user_id="HU.1502576394655843")
    del nameless["from"]
    shapeless = dict(messages[0], id="wamid.C", text={})
    messages += [nameless, shapeless]

    reply = await webhook.post(payload)

    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    assert webhook.rasa.texts() == ["my brother threatens me", UNSUPPORTED_MEDIA_COMMAND]
    assert "WhatsApp message skipped: message.from is not a WhatsApp id" in caplog.text
    assert "threatens" not in caplog.text and "HU.15025" not in caplog.text


async def test_a_text_message_goes_to_rasa_and_the_replies_to_whatsapp(webhook, records, graph):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "  Hello\u0007 ", message_id=f"wamid.{wa_id}")

    reply = await webhook.post(payload)

    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    [message] = webhook.rasa.received
    assert (message.text, message.sender_id, message.input_channel, message.metadata) == (
        "Hello", conversation(wa_id), "whatsapp", {}
    )
    assert message.message_id == f"whatsapp-wamid.{wa_id}"
    assert records.pending(CHANNEL) == {QUEUED: 2, HELD: 0}  # queued, not yet sent

    await webhook.settle()

    sent = graph.sent_to(wa_id)
    assert sent[0] == {
        "messaging_product": "whatsapp", "to": wa_id, "type": "text", "text": {"body": GREETING}
    }
    assert interactive(sent[1])["type"] == "list"
    assert [r["id"] for r in interactive(sent[1])["action"]["sections"][0]["rows"]] == [
        t["payload"] for t in TOPICS
    ]
    assert records.claim(CHANNEL, f"wamid.{wa_id}") is Claim.DONE
    assert abs(records.last_wrote(conversation(wa_id)) - time.time()) < 5
    assert records.language(conversation(wa_id)) == "en"
    assert records.pending(CHANNEL) == {QUEUED: 0, HELD: 0}


async def test_replies_that_cannot_be_sent_stay_queued_and_the_message_recorded(
    webhook, records, caplog
):
    wa_id = new_wa_id()

    async def broken(to, message):
        raise RuntimeError(f"cannot reach {to}")

    webhook.channel.client.send = broken
    with caplog.at_level(logging.INFO):
        reply = await webhook.post(message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}"))
        await webhook.settle()

    assert reply.status_code == 200
    assert records.claim(CHANNEL, f"wamid.{wa_id}") is Claim.DONE
    assert records.pending(CHANNEL) == {QUEUED: 2, HELD: 0}  # tried again later
    assert "RuntimeError" in caplog.text and wa_id not in caplog.text


async def test_a_pressed_button_that_was_offered_is_its_payload(webhook):
    wa_id = new_wa_id()
    await webhook.post(message_payload(wa_id, "Hello"))

    reply = await webhook.post(button_reply_payload(wa_id, "/ask_cost", "Does it cost money?"))
    await webhook.post(list_reply_payload(wa_id, "/request_human", "Talk to a counsellor"))

    assert reply.status_code == 200
    assert webhook.rasa.texts() == ["Hello", "/ask_cost", "/request_human"]


async def test_a_button_no_longer_offered_reads_as_its_title_and_a_typed_command_as_words(
    webhook,
):
    wa_id = new_wa_id()
    await webhook.post(message_payload(wa_id, "Hello"))
    webhook.rasa.answers = [("Anything else?", ())]
    await webhook.post(message_payload(wa_id, "thanks"))

    await webhook.post(button_reply_payload(wa_id, "/ask_cost", "Does it cost money?"))
    await webhook.post(message_payload(wa_id, '/inform{"elig_fear":"no"}'))
    await webhook.post(message_payload(wa_id, '/ /inform{"elig_fear":"no"}'))
    await webhook.post(message_payload(wa_id, '/change_language{"language":"tr"}'))

    assert webhook.rasa.texts()[2:] == [
        "Does it cost money?",
        'inform{"elig_fear":"no"}',
        'inform{"elig_fear":"no"}',
        '/change_language{"language":"tr"}',
    ]


@pytest.mark.parametrize("make", [image_payload, location_payload], ids=["image", "location"])
async def test_media_become_the_unsupported_media_command(webhook, make):
    reply = await webhook.post(make(new_wa_id()))

    assert reply.status_code == 200
    assert webhook.rasa.texts() == [UNSUPPORTED_MEDIA_COMMAND]


async def test_a_reaction_is_acknowledged_and_ignored(webhook, records):
    wa_id = new_wa_id()

    reply = await webhook.post(reaction_payload(wa_id, "wamid.X"))

    assert reply.status_code == 200
    assert webhook.rasa.received == []
    assert records.last_wrote(conversation(wa_id)) is None


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "failed"])
async def test_a_status_callback_is_acknowledged_and_nothing_sent(webhook, records, status):
    reply = await webhook.post(status_payload(new_wa_id(), status=status))

    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    assert webhook.rasa.received == []
    assert records.pending() == {QUEUED: 0, HELD: 0}


async def test_a_message_without_readable_text_is_acknowledged_and_ignored(webhook):
    reply = await webhook.post(message_payload(new_wa_id(), "\u0000\u0007  "))

    assert reply.status_code == 200
    assert webhook.rasa.received == []


async def test_a_redelivered_message_is_handled_once(webhook, graph):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")

    first = await webhook.post(payload)
    again = await webhook.post(payload)
    await webhook.settle()

    assert (first.status_code, again.status_code) == (200, 200)
    assert len(webhook.rasa.received) == 1
    assert len(graph.sent_to(wa_id)) == 2


async def test_concurrent_deliveries_of_one_message_are_handled_once(webhook, graph):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")
    webhook.rasa.delay = 0.2

    replies = await asyncio.gather(*(webhook.post(payload) for _ in range(3)))

    # The one being handled is not recorded yet: the others get a 503 and come again.
    assert sorted(r.status_code for r in replies) == [200, 503, 503]
    assert len(webhook.rasa.received) == 1
    assert (await webhook.post(payload)).status_code == 200
    assert len(webhook.rasa.received) == 1
    await webhook.settle()
    assert len(graph.sent_to(wa_id)) == 2


async def test_a_failure_is_a_503_and_the_redelivery_is_handled(webhook, records, graph, caplog):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")
    webhook.rasa.failures = 1

    with caplog.at_level(logging.INFO):
        failed = await webhook.post(payload)
        await webhook.settle()

    assert (failed.status_code, failed.json()) == (
        503, {"error": "the message could not be processed, please send it again"}
    )
    assert records.pending() == {QUEUED: 0, HELD: 0}
    assert graph.sent_to(wa_id) == []
    assert "RuntimeError" in caplog.text and wa_id not in caplog.text

    assert (await webhook.post(payload)).status_code == 200
    assert webhook.rasa.texts() == ["Hello", "Hello"]
    await webhook.settle()
    assert len(graph.sent_to(wa_id)) == 2


async def test_one_failed_message_of_several_is_a_503_the_others_are_recorded(webhook, records):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "first", message_id=f"wamid.{wa_id}.1")
    second = message_payload(wa_id, "second", message_id=f"wamid.{wa_id}.2")
    payload["entry"][0]["changes"][0]["value"]["messages"] += second["entry"][0]["changes"][0][
        "value"
    ]["messages"]
    webhook.rasa.failures = 1

    assert (await webhook.post(payload)).status_code == 503
    assert webhook.rasa.texts() == ["first", "second"]

    assert (await webhook.post(payload)).status_code == 200
    assert webhook.rasa.texts() == ["first", "second", "first"]
    assert records.claim(CHANNEL, f"wamid.{wa_id}.2") is Claim.DONE


async def test_the_conversations_language_is_kept_for_later(webhook, records):
    wa_id = new_wa_id()
    webhook.rasa.language = "tr"

    await webhook.post(message_payload(wa_id, "Merhaba"))

    assert records.language(conversation(wa_id)) == "tr"


async def test_neither_text_nor_phone_numbers_are_logged_above_debug(webhook, graph, caplog):
    wa_id = new_wa_id()
    marker = f"Zorana{uuid.uuid4().hex[:8]}"
    webhook.rasa.answers = [(f"Your name is {marker}", ())]
    graph.fail_next(status=429)

    with caplog.at_level(logging.INFO):
        await webhook.post(message_payload(wa_id, f"my name is {marker}"))
        await webhook.settle()
        webhook.rasa.failures = 1
        await webhook.post(message_payload(wa_id, f"I am {marker}"))
        await webhook.post(message_payload(wa_id, "x", phone_number_id="999"))

    assert caplog.records
    assert marker not in caplog.text and wa_id not in caplog.text


def test_the_output_channel_is_whatsapps(settings, records):
    channel = WhatsAppInput(settings, records=records)

    assert isinstance(channel.get_output_channel(), WhatsAppOutput)
    assert channel.get_output_channel().name() == "whatsapp"


async def test_the_output_channel_refuses_another_channels_conversation(later):
    for other in ("telegram:5550001", "web-0123", "36201234567"):
        with pytest.raises(ValueError, match="not a whatsapp conversation"):
            await later.send_response(other, {"text": "Hello"})


# -- the 24-hour window and held messages --


async def test_within_24_hours_free_text_is_sent(webhook, later, records, graph):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id), at=time.time() - 23 * HOUR)

    await later.send_response(conversation(wa_id), {"text": "A counsellor's answer"})
    await webhook.settle()

    assert graph.sent_to(wa_id) == [{
        "messaging_product": "whatsapp", "to": wa_id, "type": "text",
        "text": {"body": "A counsellor's answer"},
    }]
    assert records.pending() == {QUEUED: 0, HELD: 0}


@pytest.mark.parametrize(
    "wrote, language, code",
    [
        (25 * HOUR, "tr", "tr"),
        (24 * HOUR, "fa", "fa"),
        (30 * 24 * HOUR, "ps", "en"),  # Meta has no Pashto template language
        (None, None, "en"),
    ],
)
async def test_after_24_hours_the_template_is_sent_and_the_text_held(
    webhook, later, records, graph, wrote, language, code
):
    wa_id = new_wa_id()
    if wrote is not None:
        records.wrote(conversation(wa_id), at=time.time() - wrote)
    if language:
        records.set_language(conversation(wa_id), language)

    await later.send_response(conversation(wa_id), {"text": "A counsellor's answer"})
    await later.send_response(conversation(wa_id),
                              {"text": "Are you there?", "buttons": TOPICS[:2]})
    await webhook.settle()

    assert graph.sent_to(wa_id) == [{
        "messaging_product": "whatsapp", "to": wa_id, "type": "template",
        "template": {"name": "counsellor_reply", "language": {"code": code}},
    }]
    assert records.pending() == {QUEUED: 0, HELD: 2}
    assert records.notified(conversation(wa_id)) is True


async def test_held_messages_go_out_after_the_persons_next_message_before_its_replies(
    webhook, later, records, graph
):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id), at=time.time() - 48 * HOUR)
    await later.send_response(conversation(wa_id), {"text": "Counsellor: we can meet on Monday."})
    await later.send_response(conversation(wa_id), {"text": "Counsellor: bring your papers."})
    await webhook.settle()
    assert [m["type"] for m in graph.sent_to(wa_id)] == ["template"]

    reply = await webhook.post(message_payload(wa_id, "Hello"))
    await webhook.settle()

    assert reply.status_code == 200
    assert [shown_text(m) for m in graph.sent_to(wa_id)] == [
        "<template>",
        "Counsellor: we can meet on Monday.",
        "Counsellor: bring your papers.",
        GREETING,
        "What would you like to know?",
    ]
    assert records.pending() == {QUEUED: 0, HELD: 0}
    assert records.notified(conversation(wa_id)) is False


async def test_a_reply_to_the_persons_message_goes_out_even_if_their_records_are_gone(
    webhook, records, graph
):
    """After "delete my data", the confirmation still reaches the person, and nothing of
    them is kept: the reply carries its own window."""
    wa_id = new_wa_id()
    webhook.rasa.answers = [("Done: everything is deleted.", ())]
    webhook.rasa.then = records.forget  # as the tracker store does on deletion

    reply = await webhook.post(message_payload(wa_id, "delete my data"))
    await webhook.settle()

    assert reply.status_code == 200
    assert [shown_text(m) for m in graph.sent_to(wa_id)][-1] == "Done: everything is deleted."
    assert records.pending() == {QUEUED: 0, HELD: 0}
    assert records.last_wrote(conversation(wa_id)) is None
    assert records.notified(conversation(wa_id)) is False


async def test_a_missing_template_translation_falls_back_to_english(
    webhook, later, records, graph
):
    wa_id = new_wa_id()
    records.set_language(conversation(wa_id), "vi")
    graph.fail_next(status=404, code=132001)

    await later.send_response(conversation(wa_id), {"text": "Hello"})
    await webhook.settle()

    assert [m["template"]["language"]["code"] for m in graph.sent_to(wa_id)] == ["en"]
    assert records.notified(conversation(wa_id)) is True


@pytest.mark.parametrize("status, code, wait_s", [
    (503, None, 1.0),  # the Graph API is down for a moment
    (400, 132000, 60.0),  # the template is not approved yet: an operator's to mend
])
async def test_a_template_that_fails_keeps_the_message_queued_and_is_tried_again(
    webhook, later, records, graph, status, code, wait_s
):
    """Held untold, a counsellor's reply would wait for a message the person has no
    reason to write: it stays queued, and the template is tried again with it."""
    wa_id = new_wa_id()
    graph.fail_next(status=status, code=code)

    await later.send_response(conversation(wa_id), {"text": "one"})
    await webhook.settle()
    assert graph.sent_to(wa_id) == [] and records.notified(conversation(wa_id)) is False
    assert records.pending() == {QUEUED: 1, HELD: 0}
    now = records.clock
    records.clock = lambda: now() + wait_s + 1  # the retry is due
    await webhook.settle()

    assert [m["type"] for m in graph.sent_to(wa_id)] == ["template"]
    assert records.pending() == {QUEUED: 0, HELD: 1}
    assert records.notified(conversation(wa_id)) is True


async def test_a_template_refused_for_this_person_drops_the_message_for_good(
    webhook, later, records, graph
):
    """Error 131026 (the number cannot get WhatsApp messages) is not the template's fault:
    tried every minute, it was retried for ever and the desk told "not yet" for ever."""
    wa_id = new_wa_id()
    graph.fail_next(status=400, code=131026)

    await later.send_response(conversation(wa_id), {"text": "one"})
    await webhook.settle()

    assert graph.sent_to(wa_id) == []
    assert records.pending() == {QUEUED: 0, HELD: 0}
    assert records.notified(conversation(wa_id)) is False


async def test_meta_saying_the_window_closed_holds_the_rest_and_sends_the_template(
    webhook, later, records, graph
):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id))
    graph.fail_next(status=400, code=131047)

    await later.send_response(conversation(wa_id), {"text": "Hello", "buttons": TOPICS})
    await webhook.settle()

    assert [m["type"] for m in graph.sent_to(wa_id)] == ["template"]
    assert records.pending() == {QUEUED: 0, HELD: 1}


# -- sending, with the Graph API's answers --


# Meta's rate limits: a 429, or a 400 with a throttling code.
@pytest.mark.parametrize("status, code", [(429, None), (400, 4), (400, 80007), (400, 130429),
                                          (400, 131056)])
async def test_a_rate_limit_is_tried_again_and_the_message_delivered_once(
    webhook, later, records, graph, status, code
):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id))
    graph.fail_next(status=status, code=code)
    refused = len(graph.refused)

    await later.send_response(conversation(wa_id), {"text": "Hello"})
    await webhook.settle()
    assert graph.sent_to(wa_id) == [] and records.pending() == {QUEUED: 1, HELD: 0}
    await asyncio.to_thread(_due_now, records)
    await webhook.settle()

    assert [shown_text(m) for m in graph.sent_to(wa_id)] == ["Hello"]
    assert records.pending() == {QUEUED: 0, HELD: 0}
    assert len(graph.refused) == refused + 1
    assert graph.refused[-1][0] == f"/v21.0/{PHONE_NUMBER_ID}/messages"


def _due_now(records) -> None:
    """Move every queued message's next attempt to now (instead of waiting its backoff)."""
    from bot.channels.records import outgoing

    with records.engine.begin() as db:
        db.execute(outgoing.update().values(next_at=0))


async def test_when_the_api_stays_down_nothing_is_lost(webhook, later, records, graph):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id))
    graph.fail_next(status=500, times=3)

    await later.send_response(conversation(wa_id), {"text": "one"})
    await later.send_response(conversation(wa_id), {"text": "two"})
    for _ in range(3):
        await webhook.settle()
        assert graph.sent_to(wa_id) == []
        await asyncio.to_thread(_due_now, records)
    await webhook.settle()

    assert [shown_text(m) for m in graph.sent_to(wa_id)] == ["one", "two"]
    assert records.notified(conversation(wa_id)) is False  # the window was open: no template


async def test_a_message_meta_refuses_for_good_is_dropped(webhook, later, records, graph, caplog):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id))
    graph.fail_next(status=400, code=100)

    with caplog.at_level(logging.INFO):
        await later.send_response(conversation(wa_id), {"text": "one"})
        await later.send_response(conversation(wa_id), {"text": "two"})
        await webhook.settle()

    assert [shown_text(m) for m in graph.sent_to(wa_id)] == ["two"]
    assert "dropped" in caplog.text and wa_id not in caplog.text


async def test_everything_rendered_is_taken_by_the_fake_api(webhook, later, records, graph):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id))
    long_text = "\n\n".join(f"Part {n}. " + "word " * 150 for n in range(8))
    refused = len(graph.refused)

    for message in (
        {"text": long_text},
        {"text": long_text, "buttons": [
            {"title": f"A very long button title {n}", "payload": f"/p{n}"} for n in range(3)]},
        {"text": "Languages", "buttons": [
            {"title": f"Language name that is long {n}", "payload": f"/l{n}"} for n in range(12)]},
        {"image": "https://example.org/map.png"},
    ):
        await later.send_response(conversation(wa_id), message)
    await webhook.settle()

    assert len(graph.refused) == refused
    assert len(graph.sent_to(wa_id)) >= 8


async def test_a_counsellors_reply_is_confirmed_once_sent_and_queued_once(
    webhook, later, records, graph
):
    wa_id = new_wa_id()
    records.wrote(conversation(wa_id))
    deliverer = webhook.channel.deliverer

    async def deliver_soon():
        await asyncio.sleep(0.05)
        await settle(deliverer)

    message = {"text": "A counsellor's answer", "reply_key": "desk-17"}
    await asyncio.gather(later.send_response(conversation(wa_id), dict(message)), deliver_soon())
    await later.send_response(conversation(wa_id), dict(message))  # the desk asks again
    await webhook.settle()

    assert [shown_text(m) for m in graph.sent_to(wa_id)] == ["A counsellor's answer"]
    assert records.is_sent(CHANNEL, "desk-17")
