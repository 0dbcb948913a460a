from actions.privacy import ActionCancelDelete, ActionConfirmDelete, ActionDeleteMyData
from tests.conftest import make_tracker, sent


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


async def test_delete_tells_the_person_it_is_done(dispatcher):
    events = await ActionDeleteMyData().run(dispatcher, make_tracker("affirm"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "Done: this conversation and everything stored about it are deleted. If you write "
            "again, we start a new conversation.",
            [],
        )
    ]


async def test_cancel_says_nothing_was_deleted(dispatcher):
    events = await ActionCancelDelete().run(dispatcher, make_tracker("deny"), {})

    assert events == []
    assert sent(dispatcher) == [("OK, nothing was deleted.", [])]
