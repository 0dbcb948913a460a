"""Hostile input is a 4xx, never a 500: property-based fuzzing (hypothesis) of the REST,
Telegram and WhatsApp webhooks (correctly signed where a signature is checked) and the
socket.io events, and schemathesis over every route of the desk's own /openapi.json, on
the isolated assistant. About 10,000 requests in all; any 5xx but a deliberate 503 fails.
"""
import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.assistant import CHANNEL_ENV, DESK_TOKEN
from tests.e2e.conftest import WebChat
from tests.fakes.graph_api import PHONE_NUMBER_ID, signed

REST, TELEGRAM, WHATSAPP, SOCKET = 2500, 2000, 2000, 300
DESK_PER_OPERATION = 125  # per operation of the desk's schema (26 operations)


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing written into the checkout
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=40))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
words = st.text(max_size=200) | st.sampled_from(
    ["/affirm", "/ /affirm", '/inform{"elig_fear":"unsure"}', "\ud800", "hello", "😀" * 30,
     "a" * 5000, "delete my data", "/restart", " ", "\x00\x07"])


def no_server_error(status: int) -> None:
    assert status < 500 or status == 503, status


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def send(http, url, body: bytes, headers=None) -> int:
    return http.post(url, data=body, headers={"Content-Type": "application/json",
                                              **(headers or {})}, timeout=60).status_code


def dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


rest_bodies = st.one_of(
    st.fixed_dictionaries(
        {"sender": st.one_of(st.text(max_size=140), json_values), "message": words | json_values},
        optional={"metadata": json_values},
    ),
    json_values,
)


def test_the_rest_webhook_never_answers_5xx(isolated, http):
    url = f"{isolated.url}/webhooks/rest/webhook"

    @fuzz(REST)
    @given(body=rest_bodies | st.binary(max_size=300).map(lambda b: ("raw", b)))
    def check(body):
        raw = body[1] if isinstance(body, tuple) else dumps(body)
        no_server_error(send(http, url, raw))

    check()


users = st.fixed_dictionaries(
    {"id": st.integers(min_value=-2**63, max_value=2**63), "is_bot": st.booleans(),
     "first_name": st.text(max_size=20)},
    optional={"language_code": st.text(max_size=12)},
)
chats = st.fixed_dictionaries(
    {"id": st.integers(min_value=-2**63, max_value=2**63),
     "type": st.sampled_from(["private", "group", "supergroup", "channel", "weird"])},
)
messages = st.fixed_dictionaries(
    {"message_id": st.integers(), "date": st.integers(min_value=0, max_value=2**33),
     "chat": chats},
    optional={"from": users, "text": words, "sticker": json_values, "photo": json_values,
              "entities": json_values},
)
updates = st.fixed_dictionaries(
    {"update_id": st.integers(min_value=-2**63, max_value=2**64)},
    optional={
        "message": messages | json_values,
        "edited_message": messages,
        "callback_query": st.fixed_dictionaries(
            {"id": st.text(max_size=20), "from": users, "chat_instance": st.text(max_size=8)},
            optional={"data": words, "message": messages},
        ),
    },
)


def test_the_telegram_webhook_never_answers_5xx(isolated, http):
    url = f"{isolated.url}/webhooks/telegram/webhook"
    secret = {"X-Telegram-Bot-Api-Secret-Token": CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"]}

    @fuzz(TELEGRAM)
    @given(update=updates | json_values)
    def check(update):
        no_server_error(send(http, url, dumps(update), secret))

    check()


whatsapp_messages = st.fixed_dictionaries(
    {"from": st.from_regex(r"\A[0-9]{6,15}\Z") | st.text(max_size=20),
     "id": st.text(max_size=60) | st.just("wamid.x"),
     "type": st.sampled_from(["text", "interactive", "button", "image", "reaction", "system",
                              "unknown", ""])},
    optional={"timestamp": scalars, "text": st.fixed_dictionaries({"body": words}) | json_values,
              "interactive": json_values, "button": json_values},
)
webhooks = st.fixed_dictionaries({
    "object": st.sampled_from(["whatsapp_business_account", "page"]),
    "entry": st.lists(st.fixed_dictionaries({
        "id": st.text(max_size=10),
        "changes": st.lists(st.fixed_dictionaries({
            "field": st.sampled_from(["messages", "other"]),
            "value": st.fixed_dictionaries(
                {"messaging_product": st.just("whatsapp"),
                 "metadata": st.fixed_dictionaries(
                     {"phone_number_id": st.just(PHONE_NUMBER_ID) | st.text(max_size=12)})},
                optional={"messages": st.lists(whatsapp_messages | json_values, max_size=3),
                          "statuses": json_values},
            ) | json_values,
        }), max_size=2) | json_values,
    }), max_size=2) | json_values,
})


def test_the_whatsapp_webhook_never_answers_5xx(isolated, http):
    url = f"{isolated.url}/webhooks/whatsapp/webhook"
    app_secret = CHANNEL_ENV["WHATSAPP_APP_SECRET"]

    @fuzz(WHATSAPP)
    @given(payload=webhooks | json_values)
    def check(payload):
        body = dumps(payload)
        no_server_error(send(http, url, body, {"X-Hub-Signature-256": signed(body, app_secret)}))

    check()


def test_socket_io_events_with_any_data_break_nothing(isolated):
    import socketio

    before = isolated.log.read_text(errors="replace")
    client = socketio.Client(reconnection=False)
    client.connect(isolated.url, socketio_path="/socket.io", transports=["websocket"])

    @fuzz(SOCKET)
    @given(event=st.sampled_from(["session_request", "user_uttered", "forget_session",
                                  "anything"]), data=json_values | words)
    def check(event, data):
        client.emit(event, data)

    try:
        check()
        # The server still serves: a session and a conversation on another socket.
        chat = WebChat(isolated.url)
        assert chat.say_and_wait("hello")
        chat.close()
    finally:
        client.disconnect()
    written = isolated.log.read_text(errors="replace")[len(before):]
    assert "Traceback" not in written


def test_no_route_of_the_desk_answers_5xx(isolated):
    bearer = {"Authorization": f"Bearer {DESK_TOKEN}"}
    schema = schemathesis.from_uri(
        f"{isolated.desk_url}/openapi.json", headers=bearer,
        data_generation_methods=[schemathesis.DataGenerationMethod.positive,
                                 schemathesis.DataGenerationMethod.negative],
    )
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @fuzz(DESK_PER_OPERATION)
        @given(case=operation.as_strategy())
        def check(case):
            answer = case.call(base_url=isolated.desk_url, headers=bearer, timeout=30)
            no_server_error(answer.status_code)
            if answer.status_code == 405:
                assert "Allow" in answer.headers

        check()
        checked += 1
    methods = {"get", "post", "put", "patch", "delete"}
    paths = schema.raw_schema["paths"].values()
    assert checked == sum(len(methods & set(item)) for item in paths)
    assert checked >= 26
