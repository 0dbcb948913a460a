from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet

from actions.fallback import ActionClarify, consecutive_misses, likely_topics, possible_danger
from tests.conftest import make_tracker, sent, user_event

RANKING = [
    {"name": "nlu_fallback", "confidence": 0.5},
    {"name": "ask_cost", "confidence": 0.41},
    {"name": "greet", "confidence": 0.2},
    {"name": "ask_reintegration", "confidence": 0.19},
    {"name": "ask_documents", "confidence": 0.1},
    {"name": "ask_family", "confidence": 0.05},
]


def test_consecutive_misses_counts_only_the_latest_run():
    events = [
        user_event("nlu_fallback"),
        user_event("ask_cost"),
        {"event": "bot", "text": "..."},
        user_event("nlu_fallback"),
        {"event": "action", "name": "action_clarify"},
        user_event("nlu_fallback"),
    ]
    assert consecutive_misses(events) == 2
    assert consecutive_misses(events[:2]) == 0
    assert consecutive_misses([]) == 0


def test_likely_topics_skips_intents_without_a_topic():
    topics = ["ask_cost", "ask_reintegration", "ask_documents", "ask_family"]
    assert likely_topics(RANKING, topics) == ["ask_cost", "ask_reintegration", "ask_documents"]


async def test_first_miss_offers_the_likely_topics(dispatcher):
    tracker = make_tracker("nlu_fallback", ranking=RANKING)

    events = await ActionClarify().run(dispatcher, tracker, {})

    assert events == []
    assert sent(dispatcher) == [
        (
            "Sorry, I am not sure I understood. Is your question about one of these topics?",
            [
                {"title": "Does it cost money?", "payload": "/ask_cost"},
                {"title": "Help after return", "payload": "/ask_reintegration"},
                {"title": "I have no passport", "payload": "/ask_documents"},
            ],
        )
    ]


async def test_second_miss_says_so_and_goes_on_to_offer_a_counsellor(dispatcher):
    events = [user_event("nlu_fallback"), {"event": "bot"}, user_event("nlu_fallback")]
    tracker = make_tracker("nlu_fallback", events=events, ranking=RANKING)

    assert await ActionClarify().run(dispatcher, tracker, {}) == [
        FollowupAction("action_offer_handoff")
    ]
    assert sent(dispatcher) == [
        (
            "Sorry, I still do not understand. A counsellor can help you: call IOM's free "
            "hotline 06 80 20 50 18. Or write your question in other words.",
            [],
        )
    ]


async def test_a_second_miss_in_the_eligibility_check_ends_it_before_the_offer(dispatcher):
    events = [user_event("nlu_fallback"), {"event": "bot"}, user_event("nlu_fallback")]
    tracker = make_tracker(
        "nlu_fallback", events=events, ranking=RANKING, active_loop="eligibility_form"
    )

    # Else its next question follows the promise that a counsellor will answer.
    assert await ActionClarify().run(dispatcher, tracker, {}) == [
        ActiveLoop(None),
        SlotSet("requested_slot", None),
        FollowupAction("action_offer_handoff"),
    ]


async def test_an_unclear_message_that_may_be_about_danger_gets_the_safety_answer_first(
    dispatcher,
):
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.3},
        {"name": "ask_cost", "confidence": 0.25},
        {"name": "report_emergency", "confidence": 0.2},
        {"name": "greet", "confidence": 0.1},
    ]
    tracker = make_tracker("nlu_fallback", ranking=ranking)

    assert await ActionClarify().run(dispatcher, tracker, {}) == []
    texts = [text for text, _ in sent(dispatcher)]
    assert texts[0].startswith("If you or someone else is in danger now, call 112.")
    assert texts[-1] == (
        "Sorry, I am not sure I understood. Is your question about one of these topics?"
    )


def test_possible_danger_looks_at_the_three_best_guesses_only():
    assert possible_danger(RANKING) is None
    late = RANKING[:4] + [{"name": "express_fear_of_return", "confidence": 0.01}]
    assert possible_danger(late) is None
    assert possible_danger(RANKING[:2] + late[-1:]) == "express_fear_of_return"
