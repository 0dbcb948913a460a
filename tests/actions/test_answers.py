from actions.answers import ActionAnswer, language_of
from tests.conftest import make_tracker, sent

COUNSELLOR = [{"title": "Talk to a counsellor", "payload": "/request_human"}]


async def test_emergency_gets_112_first_and_a_counsellor(dispatcher):
    events = await ActionAnswer().run(dispatcher, make_tracker("report_emergency"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "If you or someone else is in danger now, call 112. It is free from any phone "
            "in Hungary.",
            [],
        ),
        ("When you are safe, a counsellor can help you: call 06 80 20 50 18 (free).", COUNSELLOR),
    ]


async def test_fear_of_return_is_never_pushed_towards_return(dispatcher):
    events = await ActionAnswer().run(dispatcher, make_tracker("express_fear_of_return"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "Thank you for telling me. Return with IOM is always voluntary: you do not have "
            "to go back.",
            [],
        ),
        (
            "If you fear for your safety in your country, you can get legal counselling and "
            "ask for international protection (asylum).",
            [],
        ),
        (
            "A counsellor can talk with you about your options: call 06 80 20 50 18 (free).",
            COUNSELLOR,
        ),
    ]


async def test_exploitation_gets_the_specialised_support_answer(dispatcher):
    await ActionAnswer().run(dispatcher, make_tracker("report_exploitation"), {})

    texts = [text for text, _ in sent(dispatcher)]
    assert texts[0] == (
        "What you describe may be exploitation or human trafficking. It is not your fault."
    )
    assert "call 112" in texts[1]
    assert "Victims of trafficking can get special support" in texts[2]


async def test_answer_during_the_check_uses_the_in_form_variant(dispatcher):
    tracker = make_tracker("inform", active_loop="eligibility_form")

    await ActionAnswer().run(dispatcher, tracker, {})

    assert sent(dispatcher) == [
        ('Please choose one of the buttons. Or write "stop" to end the questions.', [])
    ]


async def test_answer_outside_the_check_uses_the_plain_answer(dispatcher):
    await ActionAnswer().run(dispatcher, make_tracker("inform"), {})

    assert sent(dispatcher)[0][1] == [{"title": "Can I apply?", "payload": "/ask_eligibility"}]


def test_language_of_falls_back_to_english_for_a_language_without_content():
    assert language_of(make_tracker(slots={"language": "en"})) == "en"
    assert language_of(make_tracker(slots={"language": "klingon"})) == "en"
    assert language_of(make_tracker(slots={"language": None})) == "en"
