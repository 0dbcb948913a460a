"""The WhatsApp channel without a Rasa server: the webhook's checks, what each message
becomes, once-only handling, how buttons are shown, the 24-hour rule and held messages,
and the sender against a fake Graph API over real HTTP on loopback."""
import asyncio
import contextlib
import json
import logging
import time
import uuid
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import httpx
import pytest
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Sanic

from bot.channels.ledger import DONE, Ledger
from bot.channels.whatsapp import (
    CHANNEL,
    CHOICE,
    IGNORED,
    MEDIA,
    TEXT,
    UNSUPPORTED_MEDIA,
    GraphClient,
    GraphError,
    InvalidPayload,
    MissingWhatsAppSettings,
    WhatsAppInput,
    WhatsAppOutput,
    WhatsAppSettings,
    parse_webhook,
    render,
    signature_ok,
    split_text,
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
ENV = {
    "WHATSAPP_ACCESS_TOKEN": TOKEN,
    "WHATSAPP_APP_SECRET": SECRET,
    "WHATSAPP_VERIFY_TOKEN": VERIFY,
    "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
}
GREETING = "Hello! I am the IOM Hungary assistant, a computer program."
TOPICS = [
    {"title": "What is voluntary return?", "payload": "/ask_what_is_avr"},
    {"title": "Can I apply?", "payload": "/ask_eligibility"},
    {"title": "Does it cost money?", "payload": "/ask_cost"},
    {"title": "Talk to a counsellor", "payload": "/request_human"},
]


def new_wa_id() -> str:
    return "36" + str(uuid.uuid4().int)[:9]


def buttons(count: int, title: str = "Choice") -> List[Dict[str, str]]:
    return [{"title": f"{title} {n}", "payload": f"/choice{{\"n\":{n}}}"} for n in range(count)]


# -- signature and settings --

BODY = encode(message_payload("36201234567", "Hello"))


def test_a_signature_of_the_raw_body_with_the_app_secret_is_accepted():
    assert signature_ok(SECRET, BODY, signed(BODY, SECRET))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        signed(BODY, "another-secret"),
        signed(BODY + b" ", SECRET),
        signed(BODY, SECRET)[len("sha256="):],
        signed(BODY, SECRET).replace("sha256=", "sha1="),
        "sha256=ünïcode",
    ],
    ids=["missing", "empty", "wrong-secret", "other-body", "no-prefix", "sha1", "non-ascii"],
)
def test_any_other_signature_is_refused(header):
    assert not signature_ok(SECRET, BODY, header)


def test_a_body_altered_after_signing_is_refused():
    header = signed(BODY, SECRET)
    altered = BODY.replace(b"Hello", b"Hellp")

    assert not signature_ok(SECRET, altered, header)


def test_settings_come_from_the_environment_with_defaults():
    settings = WhatsAppSettings.from_env(ENV)

    assert settings.phone_number_id == PHONE_NUMBER_ID
    assert settings.api_base_url == "https://graph.facebook.com/v21.0"
    assert settings.reply_template == "counsellor_reply"
    assert TOKEN not in repr(settings) and SECRET not in repr(settings)

    custom = WhatsAppSettings.from_env(
        dict(ENV, WHATSAPP_API_BASE_URL="http://127.0.0.1:9/v19.0/", WHATSAPP_REPLY_TEMPLATE="t")
    )
    assert (custom.api_base_url, custom.reply_template) == ("http://127.0.0.1:9/v19.0", "t")


@pytest.mark.parametrize("missing", sorted(ENV))
def test_the_channel_refuses_to_start_without_each_required_setting(missing):
    env = dict(ENV, **{missing: "  "})

    with pytest.raises(MissingWhatsAppSettings, match=missing):
        WhatsAppSettings.from_env(env)


def test_from_credentials_reads_the_environment_only(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)

    channel = WhatsAppInput.from_credentials(None)

    assert channel.name() == "whatsapp"
    assert channel.settings.verify_token == VERIFY

    monkeypatch.delenv("WHATSAPP_APP_SECRET")
    with pytest.raises(MissingWhatsAppSettings, match="WHATSAPP_APP_SECRET"):
        WhatsAppInput.from_credentials(None)


# -- what each message becomes --


def only_message(payload: Dict[str, Any]):
    webhook = parse_webhook(payload, PHONE_NUMBER_ID)
    assert len(webhook.messages) == 1 and webhook.statuses == []
    return webhook.messages[0]


def test_a_text_message_is_its_text_from_the_persons_wa_id():
    message = only_message(message_payload("36201234567", "Hello", message_id="wamid.A1"))

    assert (message.kind, message.text, message.wa_id, message.message_id) == (
        TEXT, "Hello", "36201234567", "wamid.A1"
    )
    assert abs(message.at - time.time()) < 5


def test_a_reply_button_is_its_id_with_the_title_it_showed():
    message = only_message(button_reply_payload("361", "/ask_cost", "Does it cost money?"))

    assert (message.kind, message.text, message.title) == (
        CHOICE, "/ask_cost", "Does it cost money?"
    )


def test_a_list_row_is_its_id_and_a_shortened_title_reads_as_the_full_one():
    short = only_message(list_reply_payload("361", "/ask_cost", "Ücretli mi?"))
    long = only_message(
        list_reply_payload("361", "/ask_process", "How do I apply for the…",
                           description="How do I apply for the programme?")
    )

    assert (short.kind, short.text, short.title) == (CHOICE, "/ask_cost", "Ücretli mi?")
    assert (long.text, long.title) == ("/ask_process", "How do I apply for the programme?")


def test_a_template_quick_reply_is_its_payload():
    content = {"text": "Reply", "payload": "/greet"}
    message = only_message(message_payload("361", kind="button", content=content))

    assert (message.kind, message.text, message.title) == (CHOICE, "/greet", "Reply")


@pytest.mark.parametrize(
    "payload",
    [
        image_payload("361"),
        location_payload("361"),
        message_payload("361", kind="audio", content={"id": "1", "mime_type": "audio/ogg"}),
        message_payload("361", kind="sticker", content={"id": "1", "animated": False}),
        message_payload("361", kind="document", content={"id": "1", "filename": "a.pdf"}),
        message_payload("361", kind="contacts", content=[{"name": {"formatted_name": "A"}}]),
        message_payload("361", kind="unsupported", content={}),
    ],
    ids=["image", "location", "audio", "sticker", "document", "contacts", "unsupported"],
)
def test_anything_but_text_or_a_button_asks_for_text(payload):
    assert only_message(payload).kind == MEDIA


@pytest.mark.parametrize(
    "payload",
    [
        reaction_payload("361", "wamid.X"),
        message_payload("361", kind="system", content={"body": "changed number", "type": "x"}),
        message_payload("361", kind="request_welcome", content={}),
    ],
    ids=["reaction", "system", "request_welcome"],
)
def test_reactions_and_notices_are_ignored(payload):
    assert only_message(payload).kind == IGNORED


@pytest.mark.parametrize("timestamp", ["nan", "inf", "-5", "", None, "soon"])
def test_a_timestamp_that_is_no_time_is_left_out(timestamp):
    payload = message_payload("361", "Hello")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = timestamp

    assert only_message(payload).at is None


def test_a_status_callback_has_no_message():
    webhook = parse_webhook(status_payload("361", status="read"), PHONE_NUMBER_ID)

    assert webhook.messages == []
    assert [s["status"] for s in webhook.statuses] == ["read"]


def test_messages_to_another_phone_number_are_not_ours():
    payload = message_payload("361", "Hello", phone_number_id="999")

    assert parse_webhook(payload, PHONE_NUMBER_ID).messages == []


def test_changes_of_other_fields_are_skipped():
    payload = message_payload("361", "Hello")
    payload["entry"][0]["changes"][0]["field"] = "account_update"

    assert parse_webhook(payload, PHONE_NUMBER_ID).messages == []


def malformed(edit) -> Dict[str, Any]:
    payload = message_payload("361", "Hello")
    edit(payload, payload["entry"][0]["changes"][0]["value"]["messages"][0])
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "hello",
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": "x"},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]},
        malformed(lambda p, m: m.pop("from")),
        malformed(lambda p, m: m.update({"from": "36 20 123"})),
        malformed(lambda p, m: m.pop("id")),
        malformed(lambda p, m: m.update({"type": 5})),
        malformed(lambda p, m: m.update({"text": {"body": None}})),
        malformed(lambda p, m: m.update({"type": "interactive", "interactive": {
            "type": "button_reply", "button_reply": {"title": "x"}}})),
        malformed(lambda p, m: p["entry"][0]["changes"][0]["value"].update({"messages": [1]})),
    ],
)
def test_a_body_that_is_not_a_whatsapp_webhook_is_refused(payload):
    with pytest.raises(InvalidPayload):
        parse_webhook(payload, PHONE_NUMBER_ID)


# -- how messages are shown --


def interactive(message: Dict[str, Any]) -> Dict[str, Any]:
    assert message["type"] == "interactive"
    return message["interactive"]


@pytest.mark.parametrize("count", [2, 3])
def test_up_to_three_buttons_are_reply_buttons(count):
    [message] = render("Do you have a passport?", buttons(count))

    shown = interactive(message)
    assert shown["type"] == "button"
    assert shown["body"] == {"text": "Do you have a passport?"}
    assert shown["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": b["payload"], "title": b["title"]}}
        for b in buttons(count)
    ]


@pytest.mark.parametrize("count", [5, 10])
def test_four_to_ten_buttons_are_one_list(count):
    [message] = render("Choose a topic", buttons(count))

    shown = interactive(message)
    assert shown["type"] == "list"
    assert shown["body"] == {"text": "Choose a topic"}
    assert 0 < len(shown["action"]["button"]) <= 20
    [section] = shown["action"]["sections"]
    assert section["rows"] == [{"id": b["payload"], "title": b["title"]} for b in buttons(count)]


def test_more_than_ten_buttons_are_lists_of_even_size_all_one_tap_away():
    messages = render("Which language would you like?", buttons(12))

    shown = [interactive(m) for m in messages]
    assert [s["type"] for s in shown] == ["list", "list"]
    assert [s["body"]["text"] for s in shown] == ["Which language would you like?", "(2/2)"]
    rows = [r for s in shown for r in s["action"]["sections"][0]["rows"]]
    assert [len(s["action"]["sections"][0]["rows"]) for s in shown] == [6, 6]
    assert [r["id"] for r in rows] == [b["payload"] for b in buttons(12)]

    assert len(render("Many", buttons(25))) == 3


def test_long_titles_are_shortened_and_a_list_row_keeps_the_full_title():
    long_title = "Help after return: business, job, school"
    [reply] = render("Text", [{"title": long_title, "payload": "/ask_reintegration"}])
    [listed] = render("Text", [{"title": long_title, "payload": "/ask_reintegration"}] + TOPICS)

    assert interactive(reply)["action"]["buttons"][0]["reply"]["title"] == "Help after return:…"
    row = interactive(listed)["action"]["sections"][0]["rows"][0]
    assert row == {
        "id": "/ask_reintegration",
        "title": "Help after return: busi…",
        "description": long_title,
    }
    assert len("Help after return:…") <= 20
    very_long = "x" * 100
    [listed] = render("Text", [{"title": very_long, "payload": "/p"}] + TOPICS)
    row = interactive(listed)["action"]["sections"][0]["rows"][0]
    assert (len(row["title"]), len(row["description"])) == (24, 72)
    assert row["description"].endswith("…")


def test_a_text_too_long_for_buttons_goes_first_and_its_end_carries_them():
    paragraphs = [f"Paragraph {n}. " + "word " * 60 for n in range(6)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert len(text) > 1024

    messages = render(text, buttons(2))

    assert [m["type"] for m in messages[:-1]] == ["text"] * (len(messages) - 1)
    body = interactive(messages[-1])["body"]["text"]
    assert len(body) <= 1024
    shown = "\n\n".join([m["text"]["body"] for m in messages[:-1]] + [body])
    assert shown == text


def test_a_text_over_4096_characters_is_split_where_a_reader_would():
    sentence = "This is a sentence of the answer. "
    text = (sentence * 300).strip()

    parts = split_text(text)

    assert len(parts) == 3
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts) == text
    assert [m["text"]["body"] for m in render(text)] == parts


def test_reply_buttons_whose_short_titles_would_be_the_same_become_a_list():
    same_start = [
        {"title": "I have protection or a permit", "payload": "/a"},
        {"title": "I have protection or a visa", "payload": "/b"},
    ]

    [message] = render("Your situation?", same_start)

    rows = interactive(message)["action"]["sections"][0]["rows"]
    assert [(r["title"], r["description"]) for r in rows] == [
        ("I have protection or a…", "I have protection or a permit"),
        ("I have protection or a…", "I have protection or a visa"),
    ]


def test_a_payload_whatsapp_cannot_carry_is_left_out():
    too_long = {"title": "Too long", "payload": "/" + "x" * 300}

    [message] = render("Text", [too_long] + buttons(2))

    assert [b["reply"]["id"] for b in interactive(message)["action"]["buttons"]] == [
        b["payload"] for b in buttons(2)
    ]
    assert render("Only text", [too_long]) == [{"type": "text", "text": {"body": "Only text"}}]


# -- the fake Graph API, the webhook app and a stand-in for Rasa --


@pytest.fixture(scope="module")
def graph():
    fake = FakeGraphApi()
    fake.base = fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(graph):
    return WhatsAppSettings.from_env(dict(ENV, WHATSAPP_API_BASE_URL=graph.base))


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "channels.db")


class Tracker:
    def __init__(self) -> None:
        self.events: List[Any] = []
        self.slots: Dict[str, Any] = {}

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)


class Rasa:
    """Stands in for the agent: records what it is given, answers from a script, keeps
    trackers with the bot's buttons (for the typed-command guard) and the language."""

    def __init__(self) -> None:
        self.received: List[UserMessage] = []
        self.trackers: Dict[str, Tracker] = {}
        self.failures = 0
        self.language = "en"
        self.delay = 0.0
        self.answers: List[Tuple[str, Sequence[Dict[str, str]]]] = [
            (GREETING, ()),
            ("What would you like to know?", TOPICS),
        ]

    async def retrieve(self, sender_id: str) -> Optional[Tracker]:
        return self.trackers.get(sender_id)

    async def handle(self, message: UserMessage) -> None:
        self.received.append(message)
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RuntimeError(f"database is locked for {message.sender_id}")
        tracker = self.trackers.setdefault(message.sender_id, Tracker())
        tracker.events.append(UserUttered(message.text))
        for text, offered in self.answers:
            tracker.events.append(BotUttered(text, data={"buttons": list(offered)}))
            if offered:
                await message.output_channel.send_text_with_buttons(
                    message.sender_id, text, list(offered)
                )
            else:
                await message.output_channel.send_text_message(message.sender_id, text)
        tracker.slots["language"] = self.language

    def texts(self) -> List[str]:
        return [m.text for m in self.received]


class Lifespan:
    """Sanic's startup and shutdown, driven as an ASGI server drives them."""

    def __init__(self, app: Sanic) -> None:
        self.app = app
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task: Optional[asyncio.Future] = None

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await asyncio.wait_for(self.outbox.get(), 10)
        assert answer["type"] == f"lifespan.{event}.complete"

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        # Sanic 21.12 goes on as if the lifespan were a request, and fails: not ours.
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AttributeError):
            await self.task


class Webhook:
    """The channel mounted as Rasa mounts it, reached over ASGI."""

    def __init__(self, channel: WhatsAppInput, rasa: Rasa, client: httpx.AsyncClient) -> None:
        self.channel = channel
        self.rasa = rasa
        self.client = client

    async def post(self, payload: Any, signature: Optional[str] = "sign", body=None):
        body = body if body is not None else encode(payload)
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = signed(body, SECRET)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return await self.client.post(WEBHOOK, content=body, headers=headers)


@pytest.fixture
async def webhook(settings, ledger, monkeypatch):
    # Test mode lets Sanic start several apps in one process.
    monkeypatch.setattr(Sanic, "test_mode", True)
    rasa = Rasa()
    channel = WhatsAppInput(settings, ledger=ledger)
    channel.client.backoff_s = 0.01
    app = Sanic(f"whatsapp_test_{uuid.uuid4().hex[:12]}", configure_logging=False)
    app.ctx.agent = SimpleNamespace(tracker_store=rasa)
    app.blueprint(channel.blueprint(rasa.handle), url_prefix=f"/webhooks/{channel.url_prefix()}")
    lifespan = Lifespan(app)
    await lifespan.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rasa") as client:
        yield Webhook(channel, rasa, client)
    await lifespan.shutdown()


@pytest.fixture
async def output(settings, ledger):
    """The output channel as Rasa gets it for a message sent later (a counsellor's)."""
    client = GraphClient(settings, backoff_s=0.01)
    yield WhatsAppOutput(client, settings, ledger)
    await client.close()


def shown_text(message: Dict[str, Any]) -> str:
    if message["type"] == "text":
        return message["text"]["body"]
    if message["type"] == "interactive":
        return message["interactive"]["body"]["text"]
    return f"<{message['type']}>"


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
    webhook, ledger, graph, signature
):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")

    reply = await webhook.post(payload, signature=signature)

    assert reply.status_code == 403
    assert reply.json() == {"error": "the signature is wrong or missing"}
    assert webhook.rasa.received == []
    assert ledger.last_wrote(CHANNEL, wa_id) is None
    assert ledger.state(CHANNEL, f"wamid.{wa_id}") is None
    assert graph.sent_to(wa_id) == []


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


async def test_a_text_message_goes_to_rasa_and_the_replies_to_whatsapp(webhook, ledger, graph):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "  Hello\u0007 ", message_id=f"wamid.{wa_id}")

    reply = await webhook.post(payload)

    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    [message] = webhook.rasa.received
    assert (message.text, message.sender_id, message.input_channel, message.metadata) == (
        "Hello", wa_id, "whatsapp", {}
    )
    sent = graph.wait_for(2, to=wa_id)
    assert sent[0] == {
        "messaging_product": "whatsapp", "to": wa_id, "type": "text", "text": {"body": GREETING}
    }
    assert interactive(sent[1])["type"] == "list"
    assert [r["id"] for r in interactive(sent[1])["action"]["sections"][0]["rows"]] == [
        t["payload"] for t in TOPICS
    ]
    assert ledger.state(CHANNEL, f"wamid.{wa_id}") == DONE
    assert abs(ledger.last_wrote(CHANNEL, wa_id) - time.time()) < 5
    assert ledger.language(CHANNEL, wa_id) == "en"


async def test_the_replies_are_sent_once_the_message_is_recorded(webhook, ledger, graph):
    wa_id = new_wa_id()
    states = []
    send = webhook.channel.client.send

    async def send_and_look(to, message):
        states.append(ledger.state(CHANNEL, f"wamid.{wa_id}"))
        return await send(to, message)

    webhook.channel.client.send = send_and_look
    await webhook.post(message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}"))

    assert states == [DONE, DONE]


async def test_replies_that_cannot_be_sent_do_not_undo_the_recorded_message(
    webhook, ledger, caplog
):
    wa_id = new_wa_id()

    async def broken(to, message):
        raise RuntimeError(f"cannot reach {to}")

    webhook.channel.client.send = broken
    with caplog.at_level(logging.INFO):
        reply = await webhook.post(message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}"))

    assert reply.status_code == 200
    assert ledger.state(CHANNEL, f"wamid.{wa_id}") == DONE
    assert "RuntimeError" in caplog.text and wa_id not in caplog.text


async def test_a_pressed_button_that_was_offered_is_its_payload(webhook, graph):
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
    await webhook.post(message_payload(wa_id, '/change_language{"language":"tr"}'))

    assert webhook.rasa.texts()[2:] == [
        "Does it cost money?",
        'inform{"elig_fear":"no"}',
        '/change_language{"language":"tr"}',
    ]


@pytest.mark.parametrize(
    "make",
    [image_payload, location_payload],
    ids=["image", "location"],
)
async def test_media_become_the_unsupported_media_command(webhook, make):
    reply = await webhook.post(make(new_wa_id()))

    assert reply.status_code == 200
    assert webhook.rasa.texts() == [UNSUPPORTED_MEDIA]


async def test_a_reaction_is_acknowledged_and_ignored(webhook, ledger, graph):
    wa_id = new_wa_id()

    reply = await webhook.post(reaction_payload(wa_id, "wamid.X"))

    assert reply.status_code == 200
    assert webhook.rasa.received == []
    assert ledger.last_wrote(CHANNEL, wa_id) is None


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "failed"])
async def test_a_status_callback_is_acknowledged_and_nothing_sent(webhook, graph, status):
    wa_id = new_wa_id()

    reply = await webhook.post(status_payload(wa_id, status=status))

    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
    assert webhook.rasa.received == []
    await asyncio.sleep(0.1)
    assert graph.sent_to(wa_id) == []


async def test_a_message_without_readable_text_is_acknowledged_and_ignored(webhook):
    reply = await webhook.post(message_payload(new_wa_id(), "\u0000\u0007  "))

    assert reply.status_code == 200
    assert webhook.rasa.received == []


async def test_a_redelivered_message_is_handled_once(webhook, graph):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")

    first = await webhook.post(payload)
    again = await webhook.post(payload)

    assert (first.status_code, again.status_code) == (200, 200)
    assert len(webhook.rasa.received) == 1
    await asyncio.sleep(0.1)
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
    await asyncio.sleep(0.1)
    assert len(graph.sent_to(wa_id)) == 2


async def test_a_failure_is_a_503_and_the_redelivery_is_handled(webhook, ledger, graph, caplog):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "Hello", message_id=f"wamid.{wa_id}")
    webhook.rasa.failures = 1

    with caplog.at_level(logging.INFO):
        failed = await webhook.post(payload)

    assert (failed.status_code, failed.json()) == (
        503, {"error": "the message could not be processed, please send it again"}
    )
    assert ledger.state(CHANNEL, f"wamid.{wa_id}") is None
    assert graph.sent_to(wa_id) == []
    assert "RuntimeError" in caplog.text and wa_id not in caplog.text

    assert (await webhook.post(payload)).status_code == 200
    assert webhook.rasa.texts() == ["Hello", "Hello"]
    assert len(graph.wait_for(2, to=wa_id)) == 2


async def test_one_failed_message_of_several_is_a_503_the_others_are_recorded(webhook, ledger):
    wa_id = new_wa_id()
    payload = message_payload(wa_id, "first", message_id=f"wamid.{wa_id}.1")
    second = message_payload(wa_id, "second", message_id=f"wamid.{wa_id}.2")
    payload["entry"][0]["changes"][0]["value"]["messages"] += second["entry"][0]["changes"][0][
        "value"
    ]["messages"]
    webhook.rasa.failures = 1

    assert (await webhook.post(payload)).status_code == 503
    assert ledger.state(CHANNEL, f"wamid.{wa_id}.1") is None
    assert ledger.state(CHANNEL, f"wamid.{wa_id}.2") == DONE

    assert (await webhook.post(payload)).status_code == 200
    assert webhook.rasa.texts() == ["first", "second", "first"]


async def test_the_conversations_language_is_kept_for_later(webhook, ledger):
    wa_id = new_wa_id()
    webhook.rasa.language = "tr"

    await webhook.post(message_payload(wa_id, "Merhaba"))

    assert ledger.language(CHANNEL, wa_id) == "tr"


async def test_neither_text_nor_phone_numbers_are_logged_above_debug(webhook, graph, caplog):
    wa_id = new_wa_id()
    marker = f"Zorana{uuid.uuid4().hex[:8]}"
    webhook.rasa.answers = [(f"Your name is {marker}", ())]
    graph.fail_next(status=429)

    with caplog.at_level(logging.INFO):
        await webhook.post(message_payload(wa_id, f"my name is {marker}"))
        webhook.rasa.failures = 1
        await webhook.post(message_payload(wa_id, f"I am {marker}"))
        await webhook.post(message_payload(wa_id, "x", phone_number_id="999"))

    assert caplog.records
    assert marker not in caplog.text and wa_id not in caplog.text


def test_the_output_channel_is_whatsapps(settings, ledger):
    channel = WhatsAppInput(settings, ledger=ledger)

    assert isinstance(channel.get_output_channel(), WhatsAppOutput)
    assert channel.get_output_channel().name() == "whatsapp"


# -- the 24-hour window and held messages --


async def test_within_24_hours_free_text_is_sent(output, ledger, graph):
    wa_id = new_wa_id()
    ledger.wrote(CHANNEL, wa_id, at=time.time() - 23 * HOUR)

    await output.send_response(wa_id, {"text": "A counsellor's answer"})

    assert graph.sent_to(wa_id) == [{
        "messaging_product": "whatsapp", "to": wa_id, "type": "text",
        "text": {"body": "A counsellor's answer"},
    }]
    assert ledger.take_held(CHANNEL, wa_id) == []


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
    output, ledger, graph, wrote, language, code
):
    wa_id = new_wa_id()
    if wrote is not None:
        ledger.wrote(CHANNEL, wa_id, at=time.time() - wrote)
    if language:
        ledger.set_language(CHANNEL, wa_id, language)
    channel = output

    await channel.send_response(wa_id, {"text": "A counsellor's answer"})
    await channel.send_response(wa_id, {"text": "Are you there?", "buttons": TOPICS[:2]})

    assert graph.sent_to(wa_id) == [{
        "messaging_product": "whatsapp", "to": wa_id, "type": "template",
        "template": {"name": "counsellor_reply", "language": {"code": code}},
    }]
    held = [json.loads(m) for m in ledger.take_held(CHANNEL, wa_id)]
    assert [shown_text(m) for m in held] == ["A counsellor's answer", "Are you there?"]
    assert interactive(held[1])["type"] == "button"


async def test_held_messages_go_out_after_the_persons_next_message_before_its_replies(
    webhook, settings, ledger, graph
):
    wa_id = new_wa_id()
    ledger.wrote(CHANNEL, wa_id, at=time.time() - 48 * HOUR)
    later = webhook.channel.get_output_channel()
    await later.send_response(wa_id, {"text": "Counsellor: we can meet on Monday."})
    await later.send_response(wa_id, {"text": "Counsellor: bring your papers."})
    assert [m["type"] for m in graph.sent_to(wa_id)] == ["template"]

    reply = await webhook.post(message_payload(wa_id, "Hello"))

    assert reply.status_code == 200
    sent = graph.wait_for(5, to=wa_id)
    assert [shown_text(m) for m in sent] == [
        "<template>",
        "Counsellor: we can meet on Monday.",
        "Counsellor: bring your papers.",
        GREETING,
        "What would you like to know?",
    ]
    assert ledger.take_held(CHANNEL, wa_id) == []
    assert ledger.notified(CHANNEL, wa_id) is False


async def test_a_missing_template_translation_falls_back_to_english(output, ledger, graph):
    wa_id = new_wa_id()
    ledger.set_language(CHANNEL, wa_id, "vi")
    graph.fail_next(status=404, code=132001)

    await output.send_response(wa_id, {"text": "Hello"})

    assert [m["template"]["language"]["code"] for m in graph.sent_to(wa_id)] == ["en"]
    assert ledger.notified(CHANNEL, wa_id) is True


async def test_a_template_that_fails_is_tried_again_with_the_next_message(output, ledger, graph):
    wa_id = new_wa_id()
    graph.fail_next(status=400, code=132000)
    channel = output

    await channel.send_response(wa_id, {"text": "one"})
    assert graph.sent_to(wa_id) == [] and ledger.notified(CHANNEL, wa_id) is False
    await channel.send_response(wa_id, {"text": "two"})

    assert [m["type"] for m in graph.sent_to(wa_id)] == ["template"]
    assert len(ledger.take_held(CHANNEL, wa_id)) == 2


async def test_meta_saying_the_window_closed_holds_the_rest_and_sends_the_template(
    output, ledger, graph
):
    wa_id = new_wa_id()
    ledger.wrote(CHANNEL, wa_id)
    graph.fail_next(status=400, code=131047)

    await output.send_response(wa_id, {"text": "Hello", "buttons": TOPICS})

    assert [m["type"] for m in graph.sent_to(wa_id)] == ["template"]
    [held] = [json.loads(m) for m in ledger.take_held(CHANNEL, wa_id)]
    assert interactive(held)["type"] == "list"


# -- the sender, over real HTTP --


async def test_a_429_is_retried_and_the_message_delivered_once(output, ledger, graph):
    wa_id = new_wa_id()
    ledger.wrote(CHANNEL, wa_id)
    graph.fail_next(status=429)
    refused = len(graph.refused)

    await output.send_response(wa_id, {"text": "Hello"})

    assert [shown_text(m) for m in graph.sent_to(wa_id)] == ["Hello"]
    assert len(graph.refused) == refused + 1
    assert graph.refused[-1][0] == f"/v21.0/{PHONE_NUMBER_ID}/messages"


async def test_5xx_is_retried_with_backoff(settings, graph):
    wa_id = new_wa_id()
    graph.fail_next(status=503, times=2)
    client = GraphClient(settings, backoff_s=0.05)
    started = time.monotonic()

    answer = await client.send(wa_id, {"type": "text", "text": {"body": "Hi"}})
    await client.close()

    assert time.monotonic() - started >= 0.05 + 0.1
    assert answer["messaging_product"] == "whatsapp"
    assert answer["contacts"] == [{"input": wa_id, "wa_id": wa_id}]
    assert answer["messages"][0]["id"].startswith("wamid.")


async def test_a_refused_message_is_not_retried(settings, graph):
    graph.fail_next(status=400, code=100)
    refused = len(graph.refused)
    client = GraphClient(settings, backoff_s=0.01)

    with pytest.raises(GraphError) as failure:
        await client.send(new_wa_id(), {"type": "text", "text": {"body": "Hi"}})
    await client.close()

    assert (failure.value.status, failure.value.code, failure.value.transient) == (400, 100, False)
    assert len(graph.refused) == refused + 1


async def test_a_wrong_token_is_a_401_not_retried(settings, graph):
    client = GraphClient(
        WhatsAppSettings.from_env(dict(ENV, WHATSAPP_ACCESS_TOKEN="stale",
                                       WHATSAPP_API_BASE_URL=settings.api_base_url)),
        backoff_s=0.01,
    )

    with pytest.raises(GraphError) as failure:
        await client.send(new_wa_id(), {"type": "text", "text": {"body": "Hi"}})
    await client.close()

    assert (failure.value.status, failure.value.code) == (401, 190)


async def test_when_the_api_stays_down_the_messages_are_held_for_later(output, ledger, graph):
    wa_id = new_wa_id()
    ledger.wrote(CHANNEL, wa_id)
    graph.fail_next(status=500, times=4)
    channel = output

    await channel.send_response(wa_id, {"text": "one"})

    assert graph.sent_to(wa_id) == []
    assert ledger.notified(CHANNEL, wa_id) is False  # the window is open: no template

    await channel.send_response(wa_id, {"text": "two"})

    assert [shown_text(m) for m in graph.sent_to(wa_id)] == ["one", "two"]


async def test_an_unreachable_api_is_a_transient_failure(settings):
    settings = WhatsAppSettings.from_env(dict(ENV, WHATSAPP_API_BASE_URL="http://127.0.0.1:9/v21.0"))
    client = GraphClient(settings, attempts=2, backoff_s=0.01)

    with pytest.raises(GraphError) as failure:
        await client.send("361", {"type": "text", "text": {"body": "Hi"}})
    await client.close()

    assert failure.value.transient


async def test_everything_rendered_is_taken_by_the_fake_api(output, ledger, graph):
    wa_id = new_wa_id()
    ledger.wrote(CHANNEL, wa_id)
    long_text = "\n\n".join(f"Part {n}. " + "word " * 150 for n in range(8))
    refused = len(graph.refused)

    channel = output
    for message in (
        {"text": long_text},
        {"text": long_text, "buttons": buttons(3, "A very long button title")},
        {"text": "Languages", "buttons": buttons(12, "Language name that is long")},
        {"image": "https://example.org/map.png"},
    ):
        await channel.send_response(wa_id, message)

    assert len(graph.refused) == refused
    assert len(graph.sent_to(wa_id)) >= 8
