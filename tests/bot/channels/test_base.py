"""What every channel shares: once-only handling, language hints, the command guard."""
import asyncio
from types import SimpleNamespace

import pytest
from rasa.shared.core.events import BotUttered

from bot.channels.base import (
    AlreadyHandled,
    InHand,
    disarm,
    handled_once,
    language_hint,
    once,
    ours,
)
from bot.channels.records import HELD, QUEUED, Claim
from tests.bot.channels.harness import new_records


@pytest.fixture
def records(tmp_path):
    return new_records(tmp_path)


async def test_a_new_delivery_is_handled_and_its_replies_queued_with_it_done(records):
    async with once(records, "telegram", "1") as turn:
        turn.reply("telegram:5", [{"text": "hi"}])

    assert records.claim("telegram", "1") is Claim.DONE
    assert [m.payload for m in records.due("telegram")] == [{"text": "hi"}]


async def test_a_delivery_done_before_is_acknowledged_without_handling(records):
    async with once(records, "telegram", "1"):
        pass

    with pytest.raises(AlreadyHandled):
        async with once(records, "telegram", "1"):
            raise AssertionError("handled twice")
    assert await handled_once(records, "telegram", "1", _unreachable) == 200


async def _unreachable(turn):
    raise AssertionError("handled twice")


async def test_a_delivery_in_hand_is_a_503_and_a_failure_releases_it(records):
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow_failure(turn):
        started.set()
        await finish.wait()
        raise RuntimeError("the database is down")

    first = asyncio.create_task(handled_once(records, "whatsapp", "wamid.1", slow_failure))
    await started.wait()
    with pytest.raises(InHand):
        async with once(records, "whatsapp", "wamid.1"):
            pass
    assert await handled_once(records, "whatsapp", "wamid.1", _unreachable) == 503
    finish.set()
    assert await first == 503

    handled = []

    async def work(turn):
        handled.append(True)

    assert await handled_once(records, "whatsapp", "wamid.1", work) == 200  # the retry
    assert handled == [True]
    assert records.pending() == {QUEUED: 0, HELD: 0}


async def test_a_platform_that_hangs_up_does_not_stop_the_turn_half_done(records):
    """Sanic cancels the request's handler when the platform hangs up: the turn goes on
    to its end, its replies queued and the delivery done, and the redelivery is a 200."""
    started, finish = asyncio.Event(), asyncio.Event()

    async def work(turn):
        started.set()
        await finish.wait()
        turn.reply("whatsapp:36201234567", [{"text": "hi"}])

    request = asyncio.create_task(handled_once(records, "whatsapp", "wamid.2", work))
    await started.wait()
    [turn] = [task for task in asyncio.all_tasks()
              if task.get_coro().__qualname__ == "_handle_once"]
    request.cancel()  # as Sanic does on connection_lost
    with pytest.raises(asyncio.CancelledError):
        await request
    assert await handled_once(records, "whatsapp", "wamid.2", _unreachable) == 503  # in hand
    finish.set()
    assert await turn == 200

    assert await handled_once(records, "whatsapp", "wamid.2", _unreachable) == 200
    assert [m.payload for m in records.due("whatsapp")] == [{"text": "hi"}]


@pytest.mark.parametrize(
    "tag, hint",
    [("en", {"language_hint": "en"}), ("pt-br", {"language_hint": "pt"}),
     ("fa-IR", {"language_hint": "fa"}), ("AR", {"language_hint": "ar"}),
     ("zh-hans", {"language_hint": "zh"}), ("sr_Latn_RS", {"language_hint": "sr"}),
     (None, {}), ("", {}), ("-", {}), ("x1", {}), (42, {}), ("en-" + "x" * 20, {})],
)
def test_a_language_hint_is_the_primary_subtag_in_lower_case(tag, hint):
    assert language_hint(tag) == hint


def test_only_our_languages_are_ours():
    assert ours({"language_hint": "fa"}) == "fa"
    assert ours({"language_hint": "pt"}) is None
    assert ours({}) is None


def app_with(events):
    async def retrieve(sender_id):
        return SimpleNamespace(events=list(events))

    store = SimpleNamespace(retrieve=retrieve)
    return SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(tracker_store=store)))


@pytest.mark.parametrize(
    "text", ["/affirm", "/ /affirm", "/\t/restart", "//affirm", " /affirm", '/inform{"a":1}'],
)
async def test_a_typed_command_is_read_as_words_unless_just_offered(text):
    nothing_offered = app_with([])

    disarmed = await disarm(nothing_offered, "web-1", text)

    assert not disarmed.startswith("/")


async def test_the_exact_payload_just_offered_passes():
    yes = {"title": "Yes", "payload": "/affirm"}
    offered = app_with([BotUttered("Agree?", {"buttons": [yes]})])

    assert await disarm(offered, "web-1", "/affirm") == "/affirm"
    assert await disarm(offered, "web-1", "/ /affirm") == "affirm"
