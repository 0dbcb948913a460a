"""The eligibility pre-check: fear first, the criteria in the result, never a decision."""
import pytest
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.eligibility import (
    QUESTIONS,
    ActionAskEligDocuments,
    ActionAskEligFear,
    ActionAskEligSituation,
    ActionEligibilityResult,
    ValidateEligibilityForm,
    assess,
)
from tests.conftest import make_tracker, sent

LIKELY = {
    "elig_situation": "irregular",
    "elig_previous_return": "never",
    "elig_documents": "valid",
    "elig_special_needs": "no_needs",
    "elig_fear": "no_fear",
}


@pytest.mark.parametrize(
    "answers, outcome, messages",
    [
        (LIKELY, "likely", ("elig_result_likely", "elig_conditions", "elig_next_step")),
        (
            {**LIKELY, "elig_situation": "asylum", "elig_documents": "none",
             "elig_special_needs": "needs"},
            "likely",
            ("elig_result_likely", "elig_note_asylum", "elig_note_documents",
             "elig_note_special_needs", "elig_conditions", "elig_next_step"),
        ),
        (
            {**LIKELY, "elig_situation": "protection"},
            "likely",
            ("elig_result_likely", "elig_note_protection", "elig_conditions", "elig_next_step"),
        ),
        (
            {**LIKELY, "elig_previous_return": "used_before"},
            "counsellor_first",
            ("elig_result_previous", "elig_conditions", "elig_talk_to_counsellor"),
        ),
        (
            {**LIKELY, "elig_previous_return": "unsure"},
            "counsellor_first",
            ("elig_result_previous_unsure", "elig_conditions", "elig_talk_to_counsellor"),
        ),
        (
            {**LIKELY, "elig_situation": "other"},
            "counsellor_first",
            ("elig_result_other", "elig_conditions", "elig_talk_to_counsellor"),
        ),
        # Whoever is sent to a counsellor first keeps the notes: a lawyer for their status.
        (
            {**LIKELY, "elig_situation": "protection", "elig_previous_return": "unsure",
             "elig_documents": "expired_or_lost", "elig_special_needs": "needs"},
            "counsellor_first",
            ("elig_result_previous_unsure", "elig_note_protection", "elig_note_documents",
             "elig_note_special_needs", "elig_conditions", "elig_talk_to_counsellor"),
        ),
        (
            {**LIKELY, "elig_situation": "asylum", "elig_previous_return": "used_before"},
            "counsellor_first",
            ("elig_result_previous", "elig_note_asylum", "elig_conditions",
             "elig_talk_to_counsellor"),
        ),
        # Fear outweighs everything: nothing about applying is said.
        (
            {**LIKELY, "elig_fear": "fear", "elig_previous_return": "used_before"},
            "fear",
            ("elig_result_fear",),
        ),
        # Not sure counts as fear.
        ({**LIKELY, "elig_fear": "unsure"}, "fear", ("elig_result_fear",)),
    ],
)
def test_assess(answers, outcome, messages):
    result = assess(answers)
    assert (result.outcome, result.messages) == (outcome, messages)


async def test_the_first_question_is_fear_of_return_with_not_sure(dispatcher):
    events = await ActionAskEligFear().run(dispatcher, make_tracker("ask_eligibility"), {})

    assert events == []
    assert sent(dispatcher) == [(
        "Question 1 of 5: Are you afraid of what could happen to you if you go back?",
        [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"},
         {"title": "Not sure", "payload": '/inform{"elig_fear":"unsure"}'}],
    )]
    assert list(QUESTIONS)[0] == "elig_fear"


async def test_the_second_question_offers_the_situations_as_buttons(dispatcher):
    events = await ActionAskEligSituation().run(dispatcher, make_tracker("deny"), {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "Question 2 of 5: What is your situation in Hungary now?",
            [
                {"title": "I asked for asylum", "payload": '/inform{"elig_situation":"asylum"}'},
                {"title": "I have protection or a permit",
                 "payload": '/inform{"elig_situation":"protection"}'},
                {"title": "I have no valid permit",
                 "payload": '/inform{"elig_situation":"irregular"}'},
                {"title": "Something else", "payload": '/inform{"elig_situation":"other"}'},
            ],
        )
    ]


async def test_documents_question_says_a_passport_is_not_needed(dispatcher):
    await ActionAskEligDocuments().run(dispatcher, make_tracker("deny"), {})

    [(text, buttons)] = sent(dispatcher)
    assert text == "Question 4 of 5: Do you have a valid passport? (You can apply without one too.)"
    assert [b["payload"] for b in buttons] == [
        "/affirm", '/inform{"elig_documents":"expired_or_lost"}', "/deny"
    ]


def test_every_question_has_an_action_named_after_its_slot():
    import inspect

    from actions import eligibility

    names = {
        cls().name()
        for cls in vars(eligibility).values()
        if isinstance(cls, type)
        and issubclass(cls, eligibility.AskEligibilityQuestion)
        and not inspect.isabstract(cls)
    }
    assert names == {f"action_ask_{slot}" for slot in QUESTIONS}


async def test_validation_keeps_offered_values_and_drops_others(dispatcher):
    events = [
        {"event": "user", "parse_data": {"intent": {"name": "inform"}}},
        {"event": "action", "name": "eligibility_form"},
        {"event": "slot", "name": "elig_situation", "value": "asylum"},
        {"event": "slot", "name": "elig_documents", "value": "forged"},
    ]
    tracker = make_tracker("inform", events=events, active_loop="eligibility_form")

    result = await ValidateEligibilityForm().run(dispatcher, tracker, {})

    assert result == [SlotSet("elig_situation", "asylum"), SlotSet("elig_documents", None)]
    assert dispatcher.messages == []


@pytest.mark.parametrize("answer", ["fear", "unsure"])
async def test_a_fear_answer_ends_the_questions(dispatcher, answer):
    events = [
        {"event": "user", "parse_data": {"intent": {"name": "affirm"}}},
        {"event": "action", "name": "eligibility_form"},
        {"event": "slot", "name": "elig_fear", "value": answer},
    ]
    tracker = make_tracker("affirm", events=events, active_loop="eligibility_form")

    result = await ValidateEligibilityForm().run(dispatcher, tracker, {})

    assert result == [SlotSet("elig_fear", answer)] + [
        SlotSet(slot, "skipped") for slot in QUESTIONS if slot != "elig_fear"
    ]


async def test_a_typed_yes_the_classifier_is_unsure_of_answers_nothing(dispatcher):
    events = [
        {"event": "user", "parse_data": {"intent": {"name": "affirm", "confidence": 0.34}}},
        {"event": "action", "name": "eligibility_form"},
        {"event": "slot", "name": "elig_previous_return", "value": "used_before"},
    ]
    tracker = make_tracker("affirm", events=events, active_loop="eligibility_form")
    tracker.latest_message["intent"] = {"name": "affirm", "confidence": 0.34}

    result = await ValidateEligibilityForm().run(dispatcher, tracker, {})

    assert result == [SlotSet("elig_previous_return", None)]  # the form asks it again


async def test_result_points_to_iom_and_forgets_the_answers(dispatcher):
    tracker = make_tracker("deny", slots=LIKELY)

    events = await ActionEligibilityResult().run(dispatcher, tracker, {})

    assert events == [SlotSet(slot, None) for slot in QUESTIONS]
    texts = [text for text, _ in sent(dispatcher)]
    assert texts == [
        "From your answers, you appear to be in a group IOM can help. This is not a decision: "
        "IOM decides after counselling.",
        "IOM also checks other conditions then, for example that you do not have the money "
        "to return on your own, and that you have not committed a crime under Hungarian law. "
        "Crossing the border irregularly or staying longer than allowed do not count as "
        "crimes.",
        "Next step: call IOM's free hotline 06 80 20 50 18, or tell the staff of your reception "
        "or detention centre that you want to apply.",
    ]


async def test_result_for_fear_says_return_is_voluntary_and_offers_a_counsellor(dispatcher):
    tracker = make_tracker("affirm", slots={**LIKELY, "elig_fear": "fear"})

    events = await ActionEligibilityResult().run(dispatcher, tracker, {})

    texts = " ".join(text for text, _ in sent(dispatcher))
    assert "nobody from IOM will make you go back" in texts
    assert "international protection" in texts and "112" in texts
    assert "appear to be in a group" not in texts
    assert events[-1] == FollowupAction("action_offer_handoff")


def test_the_questions_are_the_eligibility_slots_in_order():
    from avrr.vocabulary import Slots

    assert tuple(QUESTIONS) == Slots.ELIGIBILITY


async def test_a_check_that_starts_forgets_the_answers_of_one_broken_off(dispatcher):
    """A "no fear" and a situation kept from a check ended by a fear message (or "stop")
    made the next check start at question 3, and could end in "likely"."""
    from actions.answers import ActionAnswer

    kept = {"elig_fear": "no_fear", "elig_situation": "irregular"}
    events = await ActionAnswer().run(
        dispatcher, make_tracker("ask_eligibility", slots=kept), {})

    assert events == [SlotSet("elig_fear", None), SlotSet("elig_situation", None)]
    assert await ActionAnswer().run(
        CollectingDispatcher(), make_tracker("ask_eligibility", slots=kept,
                                             active_loop="eligibility_form"), {}) == []


def typed_no(slot: str, text: str):
    events = [
        {"event": "user", "text": text, "parse_data": {"intent": {"name": "deny"}}},
        {"event": "action", "name": "eligibility_form"},
        {"event": "slot", "name": slot, "value": {"elig_fear": "no_fear",
                                                  "elig_previous_return": "never",
                                                  "elig_documents": "none"}[slot]},
    ]
    tracker = make_tracker("deny", events=events, active_loop="eligibility_form")
    tracker.latest_message["text"] = text
    return tracker


@pytest.mark.parametrize("slot", ["elig_fear", "elig_previous_return"])
@pytest.mark.parametrize("text", ["not sure", "I don't know", "no idea", "nem tudom",
                                  "je ne sais pas", "не знаю", "لا أعرف", "bilmiyorum"])
async def test_a_doubt_taken_for_no_is_asked_again_with_the_buttons(dispatcher, slot, text):
    """The classifier reads these as "no": at a question that offers "not sure", a fear
    or a doubt was taken for "no fear" (or "never returned before")."""
    result = await ValidateEligibilityForm().run(dispatcher, typed_no(slot, text), {})

    assert result == [SlotSet(slot, None)]
    assert sent(dispatcher) == [
        ('Please choose one of the buttons. Or write "stop" to end the questions.', [])]


@pytest.mark.parametrize("text", ["no", "No.", " NO! ", "Nem", "nem", "нет", "Ні", "Hayır",
                                  "hayir", "HAYIR", "non", "Không", "khong", "jo", "لا",
                                  "\ufefb", "نه", "نہیں", "/deny"])
async def test_a_plain_no_in_any_language_is_no(dispatcher, text):
    result = await ValidateEligibilityForm().run(dispatcher, typed_no("elig_fear", text), {})

    assert result == [SlotSet("elig_fear", "no_fear")]
    assert dispatcher.messages == []


async def test_a_question_without_not_sure_takes_any_no(dispatcher):
    tracker = typed_no("elig_documents", "i dont think so")
    result = await ValidateEligibilityForm().run(dispatcher, tracker, {})

    assert result == [SlotSet("elig_documents", "none")]
