"""Deleting on request: confirmed first, done everywhere before the person is told."""
import pytest
import sqlalchemy as sa
from rasa_sdk.events import FollowupAction, SlotSet

from actions.outbox import get_outbox, outbox
from actions.privacy import ActionCancelDelete, ActionConfirmDelete, ActionDeleteMyData
from tests.actions.test_outbox import SlowDesk, sending
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


@pytest.fixture
def slow_desk(monkeypatch):
    desk = SlowDesk()
    monkeypatch.setenv("DESK_URL", desk.url)
    forget_settings()
    yield desk
    desk.stop()


@pytest.mark.parametrize("answer", [None, 500])
async def test_a_failed_deletion_keeps_the_waiting_handoff_and_it_still_happens(
    dispatcher, desk, monkeypatch, answer
):
    """The person was told their handoff is saved; "nothing is deleted yet" must stay true."""
    if answer is None:  # the desk is down, else it refuses the deletion
        monkeypatch.setenv("DESK_URL", "http://127.0.0.1:9")
        forget_settings()
    desk.answers["/api/conversations/test-sender"] = [answer or 201]
    get_outbox().put("t1", "test-sender", "POST", "/api/tickets", {"transcript": "I need help"})
    get_outbox().put("m1", "test-sender", "POST", "/api/inbound", {"text": "my number is"})

    events = await ActionDeleteMyData().run(dispatcher, make_tracker("affirm"), {})

    assert sent(dispatcher) == [(FAILED, [])]
    assert events == []
    monkeypatch.setenv("DESK_URL", desk.url)  # the desk is back
    forget_settings()
    assert get_outbox().flush() == 2
    assert [(m, p) for m, p, _, _, _ in desk.received if m == "POST"] == [
        ("POST", "/api/tickets"), ("POST", "/api/inbound")]


async def test_a_ticket_being_sent_when_the_person_deletes_is_deleted_at_the_desk_too(
    dispatcher, slow_desk
):
    """The delivery thread is sending the ticket to a slow desk as the person says yes: the
    DELETE must come after it lands, or the transcript stays at the desk after "Done"."""
    box = get_outbox()
    box.put("t1", "test-sender", "POST", "/api/tickets", {"transcript": "I need help"})
    sender = sending(box, "t1")

    events = await ActionDeleteMyData().run(dispatcher, make_tracker("affirm"), {})
    sender.join()

    assert sent(dispatcher) == [(DONE, [])]
    assert events == [SlotSet("data_deleted", True)]
    assert [(m, p) for m, p, _, _, _ in slow_desk.received] == [
        ("POST", "/api/tickets"), ("DELETE", "/api/conversations/test-sender?language=en")]
    with box.engine.connect() as db:
        assert db.execute(sa.select(outbox.c.id).where(
            sa.or_(outbox.c.conversation_id.isnot(None), outbox.c.body.isnot(None)))).all() == []


async def test_cancel_says_nothing_was_deleted(dispatcher):
    events = await ActionCancelDelete().run(dispatcher, make_tracker("deny"), {})

    assert events == []
    assert sent(dispatcher) == [("OK, nothing was deleted.", [])]
