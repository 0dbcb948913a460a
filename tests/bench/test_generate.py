"""bench/generate.py: percentiles, results, and conversations against a fake REST webhook."""
import asyncio
import os
import threading
from collections import Counter, defaultdict

import aiohttp
import pytest
from aiohttp import web

from avrr.vocabulary import CONVERSATION_PREFIXES
from bench import generate
from bench.generate import (
    WEBHOOK_PATH,
    LevelResult,
    LoadPlan,
    bench_server,
    new_sender,
    percentile,
    run_level,
    send_message,
)
from bench.processes import RunningServer, free_ports
from bot.text import clean_sender


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([float(v) for v in range(101)], 0.95, 95.0),
        ([0.0, 10.0], 0.95, 9.5),
    ],
)
def test_percentile_interpolates_linearly(values, fraction, expected):
    assert percentile(values, fraction) == pytest.approx(expected)


def test_level_result_counts_and_rates():
    result = LevelResult(server="ours", concurrency=4, measured_s=2.0,
                         latencies_s=[0.010, 0.020, 0.030, 0.040],
                         errors=Counter({"HTTP 503": 2, "timeout": 1}))
    assert result.messages == 4
    assert result.error_count == 3
    assert result.throughput == 2.0
    assert result.latency_ms(0.5) == pytest.approx(25.0)
    assert LevelResult(server="ours", concurrency=1, measured_s=0).throughput == 0.0
    assert LevelResult(server="ours", concurrency=1, measured_s=1).latency_ms(0.95) is None


def test_senders_are_fresh_and_accepted_by_our_rest_channel():
    senders = {new_sender() for _ in range(100)}
    assert len(senders) == 100
    for sender in senders:
        assert clean_sender(sender) == sender
        assert not sender.startswith(tuple(CONVERSATION_PREFIXES.values()))


class FakeWebhook:
    """A REST webhook in a thread of its own: `<base>/<reply>/webhooks/rest/webhook`."""

    REPLIES = {
        "ok": (200, b'[{"recipient_id": "x", "text": "hi"}]'),
        "fail": (500, b"oops"),
        "object": (200, b"{}"),
        "text": (200, b"not json"),
        "slow": (200, b'[{"recipient_id": "x", "text": "hi"}]'),
    }
    SLOW_S = 0.5

    def __init__(self) -> None:
        self.received = defaultdict(list)
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/{reply}" + WEBHOOK_PATH, self.webhook)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received[body["sender"]].append(body["message"])
        if request.match_info["reply"] == "slow":
            await asyncio.sleep(self.SLOW_S)
        status, reply = self.REPLIES[request.match_info["reply"]]
        return web.Response(status=status, body=reply, content_type="application/json")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()


@pytest.fixture
def fake():
    server = FakeWebhook()
    yield server
    server.close()


def server_at(url: str, name: str = "ours") -> RunningServer:
    return RunningServer(name=name, base_url=url, rasa_pid=os.getpid())


@pytest.mark.parametrize(
    ("reply", "error"),
    [("ok", None), ("fail", "HTTP 500"), ("object", "body not a JSON list"),
     ("text", "body not JSON")],
)
async def test_send_message_tells_a_reply_from_an_error(fake, reply, error):
    async with aiohttp.ClientSession() as session:
        url = f"{fake.url}/{reply}{WEBHOOK_PATH}"
        assert await send_message(session, url, "bench-1", "hello") == error
    assert fake.received["bench-1"] == ["hello"]


async def test_send_message_to_nothing_is_a_connection_error(fake):
    (port,) = free_ports(1)
    async with aiohttp.ClientSession() as session:
        error = await send_message(session, f"http://127.0.0.1:{port}/x", "bench-1", "hi")
    assert error == "ClientConnectorError"


async def test_every_pass_through_the_script_is_a_new_conversation(fake):
    script = ("hello", "thanks", "bye")
    plan = LoadPlan(levels=[3], duration=0.3, warmup=0.05, keep_sender=False)
    result = await run_level(server_at(f"{fake.url}/ok"), script, 3, plan)
    assert result.server == "ours" and result.concurrency == 3
    assert result.messages > 0 and result.error_count == 0
    assert result.throughput == result.messages / 0.3
    assert len(fake.received) > 3
    for sender, messages in fake.received.items():
        assert sender.startswith(generate.SENDER_PREFIX)
        assert list(script[: len(messages)]) == messages


async def test_keep_sender_keeps_one_conversation_per_user(fake):
    script = ("hello", "bye")
    plan = LoadPlan(levels=[2], duration=0.2, warmup=0.0, keep_sender=True)
    await run_level(server_at(f"{fake.url}/ok"), script, 2, plan)
    assert len(fake.received) == 2
    for messages in fake.received.values():
        assert len(messages) > len(script)
        assert messages == [script[i % len(script)] for i in range(len(messages))]


async def test_failures_in_the_window_are_counted_not_timed(fake):
    plan = LoadPlan(levels=[1], duration=0.25, warmup=0.0, keep_sender=False)
    result = await run_level(server_at(f"{fake.url}/fail"), ("hello",), 1, plan)
    assert result.messages == 0
    assert set(result.errors) == {"HTTP 500"}
    # One try, then ERROR_BACKOFF_S before the next.
    assert 1 <= result.error_count <= 0.25 / generate.ERROR_BACKOFF_S + 1


def test_bench_server_runs_every_level_and_samples_memory(fake):
    plan = LoadPlan(levels=[1, 2], duration=0.15, warmup=0.0, keep_sender=False)
    server = server_at(f"{fake.url}/ok", name="starter")
    results = bench_server(server, plan)
    assert [r.concurrency for r in results] == [1, 2]
    assert all(r.server == "starter" and r.messages > 0 for r in results)
    assert all(r.rasa_rss_peak and r.rasa_rss_peak > 0 for r in results)
    assert all(r.action_rss_peak is None and not r.has_action_server for r in results)
    first_messages = {messages[0] for messages in fake.received.values()}
    assert first_messages == {generate.STARTER_SCRIPT[0]}


async def test_a_request_still_running_when_the_window_ends_is_waited_for_and_counted(
        fake, monkeypatch):
    # One user; each answer takes 0.5 s, longer than the whole 0.2 s window.
    plan = LoadPlan(levels=[1], duration=0.2, warmup=0.0, keep_sender=False)
    slow = await run_level(server_at(f"{fake.url}/slow"), ("hello",), 1, plan)
    assert slow.messages == 1 and slow.latencies_s[0] >= FakeWebhook.SLOW_S

    monkeypatch.setattr(generate, "REQUEST_TIMEOUT_S", 0.3)  # now each one times out
    timed_out = await run_level(server_at(f"{fake.url}/slow"), ("hello",), 1, plan)
    assert (timed_out.messages, dict(timed_out.errors)) == (0, {"timeout": 1})
