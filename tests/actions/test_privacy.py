"""Deleting on request: confirmed first, done everywhere before the person is told."""
import pytest
import sqlalchemy as sa
from rasa_sdk.events import FollowupAction, SlotSet

from actions.outbox import get_outbox, outbox
from actions.privacy import ActionCancelDelete, ActionConfirmDelete, ActionDeleteMyData
from tests.conftest import forget_settings, make_tracker, sent
from tests.fakes.desk import FakeDesk

DONE = (
    "Done: this conversation and everything stored about it are deleted. If you write "
    "again, we start a new conversation."
)
FAILED = (
    'Sorry, I could not delete everything right now, so this conversation is still stored. '
    'Please write "delete my data" again in a few minutes. If it does not work, call IOM\'s '
    "free hotline: 06 80 20 50 18."
)


@pytest.fixture
def desk(monkeypatch):
    fake = FakeDesk()
    monkeypatch.setenv("DESK_URL", fake.url)
    forget_settings()
    yield fake
    fake.stop()


async def test_confirm_asks_with_yes_and_no(dispatcher):
    events = await ActionConfirmDelete().run(dispatcher, make_tracker("delete_my_data"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "Do you want me to delete this conversation and everything stored about you here? "
            "This cannot be undone.",
            [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}],
        )
    ]


async def test_delete_removes_the_desks_part_and_its_own_then_says_it_is_done(
    dispatcher, desk
):
    get_outbox().put("k1", "test-sender", "POST", "/api/inbound", {"text": "my number is"})

    events = await ActionDeleteMyData().run(dispatcher, make_tracker("affirm"), {})

    assert sent(dispatcher) == [(DONE, [])]
    assert events == [SlotSet("data_deleted", True)]
    assert [(m, p) for m, p, _, _, _ in desk.received] == [
        ("DELETE", "/api/conversations/test-sender?language=en")]
    with get_outbox().engine.connect() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0


async def test_a_typed_yes_the_classifier_is_unsure_of_deletes_nothing_and_asks_again(
    dispatcher, desk
):
    get_outbox().put("k1", "test-sender", "POST", "/api/inbound", {"text": "my number is"})
    tracker = make_tracker("affirm")
    tracker.latest_message["intent"] = {"name": "affirm", "confidence": 0.34}

    events = await ActionDeleteMyData().run(dispatcher, tracker, {})

    assert events == [FollowupAction("action_confirm_delete")]
    assert sent(dispatcher) == [] and desk.received == []
    with get_outbox().engine.connect() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 1


@pytest.mark.parametrize("answer", [500, 401])
async def test_when_the_desk_fails_the_person_is_told_nothing_is_deleted_yet(
    dispatcher, desk, answer
):
    desk.answers["/api/conversations/test-sender"] = [answer]

    events = await ActionDeleteMyData().run(dispatcher, make_tracker("affirm"), {})

    assert sent(dispatcher) == [(FAILED, [])]
    assert events == []  # no data_deleted: the conversation is kept, the person can ask again


async def test_an_unreachable_desk_deletes_nothing_either(dispatcher):
    events = await ActionDeleteMyData().run(dispatcher, make_tracker("affirm"), {})

    assert sent(dispatcher) == [(FAILED, [])]
    assert events == []


async def test_cancel_says_nothing_was_deleted(dispatcher):
    events = await ActionCancelDelete().run(dispatcher, make_tracker("deny"), {})

    assert events == []
    assert sent(dispatcher) == [("OK, nothing was deleted.", [])]
