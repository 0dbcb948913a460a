from rasa_sdk.events import SlotSet

from actions.answers import ActionAnswer, language_of
from actions.content import get_content
from tests.conftest import make_tracker, sent, user_event


async def test_emergency_gets_112_first_and_a_counsellor(dispatcher):
    events = await ActionAnswer().run(dispatcher, make_tracker("report_emergency"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "If you or someone else is in danger now, call 112. It is free from any phone "
            "in Hungary.",
            [],
        ),
        # The offer of a counsellor follows (actions/handoff.py).
        ("When you are safe, a counsellor can help you: call 06 80 20 50 18 (free).", []),
    ]


async def test_fear_of_return_is_never_pushed_towards_return(dispatcher):
    events = await ActionAnswer().run(dispatcher, make_tracker("express_fear_of_return"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "Thank you for telling me. Return with IOM is always voluntary: nobody from IOM "
            "will make you go back.",
            [],
        ),
        (
            "If you fear for your safety in your country, talk to a lawyer or legal counsellor "
            "about asking for international protection (asylum).",
            [],
        ),
        (
            "If you are in danger now, call 112. It is free from any phone in Hungary.",
            [],
        ),
        (
            "A counsellor can talk with you about your options: call 06 80 20 50 18 (free).",
            [],
        ),
    ]


async def test_a_question_the_danger_words_made_a_safety_message_is_answered_after_it(
    dispatcher,
):
    tracker = make_tracker("report_emergency")
    tracker.latest_message["safety_net"] = {
        "intent": "report_emergency", "original_intent": "ask_cost"}

    await ActionAnswer().run(dispatcher, tracker, {})

    texts = [text for text, _ in sent(dispatcher)]
    assert texts[0] == (
        "If you or someone else is in danger now, call 112. It is free from any phone in Hungary.")
    assert texts[-2].startswith("You do not get cash when you leave Hungary.")


async def test_a_sentences_question_is_answered_after_a_safety_answer_only(dispatcher):
    fear = make_tracker("express_fear_of_return")
    fear.latest_message["sentence_question"] = {
        "sentence": 2, "intent": "ask_family", "original_intent": "express_fear_of_return"}
    question = make_tracker("ask_eligibility")
    question.latest_message["sentence_question"] = {
        "sentence": 1, "intent": "ask_duration", "original_intent": "ask_eligibility"}

    await ActionAnswer().run(dispatcher, fear, {})
    after_fear = [text for text, _ in sent(dispatcher)]
    dispatcher.messages.clear()
    await ActionAnswer().run(dispatcher, question, {})

    def texts(key):
        return [reply.text for reply in get_content().replies(key, "en")]

    assert after_fear == texts("express_fear_of_return") + texts("ask_family")
    assert [text for text, _ in sent(dispatcher)] == texts("ask_eligibility")


async def test_every_safety_answer_gives_the_emergency_number_in_every_language():
    from actions.content import get_content
    from avrr.vocabulary import SAFETY_INTENTS

    content = get_content()
    for language in content.languages():
        for intent in SAFETY_INTENTS:
            texts = " ".join(r.text for r in content.replies(intent, language))
            assert "112" in texts, (language, intent)


async def test_exploitation_gets_the_specialised_support_answer(dispatcher):
    await ActionAnswer().run(dispatcher, make_tracker("report_exploitation"), {})

    texts = [text for text, _ in sent(dispatcher)]
    assert texts[0] == (
        "What you describe may be exploitation or human trafficking. It is not your fault."
    )
    assert "call 112" in texts[1]
    assert "also meant for victims of human trafficking" in texts[2]


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


async def test_a_first_sticker_is_answered_in_the_language_of_the_persons_app(dispatcher):
    tracker = make_tracker("unsupported_media")
    tracker.latest_message["metadata"] = {"language_hint": "ar"}
    events = await ActionAnswer().run(dispatcher, tracker, {})
    assert (
        dispatcher.messages[0]["text"] == get_content().replies("unsupported_media", "ar")[0].text
    )
    assert events == [SlotSet("language", "ar")]


async def test_later_the_hint_does_not_override_the_conversations_language(dispatcher):
    earlier = [user_event("greet", "salut"), user_event("unsupported_media")]
    tracker = make_tracker("unsupported_media", slots={"language": "fr"}, events=earlier)
    tracker.latest_message["metadata"] = {"language_hint": "en"}
    await ActionAnswer().run(dispatcher, tracker, {})
    assert (
        dispatcher.messages[0]["text"] == get_content().replies("unsupported_media", "fr")[0].text
    )


async def test_later_words_of_every_language_keep_the_language_whatever_the_hint(dispatcher):
    earlier = [user_event("greet", "hi"), user_event("affirm", "ok")]
    tracker = make_tracker("affirm", events=earlier)
    tracker.latest_message["language_detection"] = {"language": None}
    tracker.latest_message["metadata"] = {"language_hint": "fa-IR"}
    events = await ActionAnswer().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["text"] == get_content().replies("affirm", "en")[0].text
    assert events == []


async def test_a_first_hello_is_answered_in_the_apps_language_without_the_menu(dispatcher):
    def first(reason, hint):
        tracker = make_tracker("greet")
        tracker.latest_message["language_detection"] = {"language": None, "reason": reason}
        tracker.latest_message["metadata"] = {"language_hint": hint}
        return tracker

    events = await ActionAnswer().run(dispatcher, first("words of every language", "fa-IR"), {})
    menus = []
    for tracker in (first("words of every language", "pt"),  # none of ours
                    first("too short to tell (best: fa)", "en")):  # "سلام" from an English app
        menu = type(dispatcher)()
        await ActionAnswer().run(menu, tracker, {})
        menus.append([m["text"] for m in menu.messages])

    assert [text for text, _ in sent(dispatcher)] == [
        r.text for r in get_content().replies("greet", "fa")]
    assert events == [SlotSet("language", "fa")]
    assert menus == 2 * [[r.text for r in get_content().replies("greet", "en")
                          + get_content().replies("language_unsure", "en")]]
