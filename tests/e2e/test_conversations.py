"""A person talks to the real assistant over the REST channel."""
import sqlite3
import uuid

import pytest

from actions.content import get_content


def new_sender() -> str:
    return f"e2e-{uuid.uuid4().hex}"


def first_text(key: str) -> str:
    return get_content().replies(key, "en")[0].text


QUESTIONS = [
    ("greet", "hi there"),
    ("goodbye", "ok goodbye"),
    ("thank_you", "thanks a lot"),
    ("bot_challenge", "am I talking to a bot?"),
    ("ask_what_is_avr", "what is voluntary return"),
    ("ask_process", "how can I apply"),
    ("ask_cost", "is it free?"),
    ("ask_documents", "my passport expired, what documents do i need"),
    ("ask_duration", "how long until i can leave"),
    ("ask_reintegration", "what support will i get back home"),
    ("ask_voluntariness", "is it really voluntary"),
    ("ask_confidentiality", "who will see my data"),
    ("ask_asylum_impact", "what happens to my asylum application"),
    ("ask_special_needs", "i am in a wheelchair, can you help"),
    ("ask_family", "can i go home with my children"),
    ("ask_reentry", "will i get an entry ban"),
    ("ask_contact", "what is your address"),
    ("handoff_offer", "i want to speak to a counsellor"),
    ("out_of_scope", "who won the football match"),
    ("report_emergency", "help someone is attacking me"),
    ("report_exploitation", "my employer took my passport and does not pay me"),
    ("express_fear_of_return", "i am scared they will kill me if i go back"),
]


@pytest.mark.parametrize("key, text", QUESTIONS)
def test_each_question_gets_its_answer_first_thing(assistant, key, text):
    replies = [t for t, _ in assistant.say(new_sender(), text)]

    expected = [r.text for r in get_content().replies(key, "en")]
    # A first message too short to tell its language is followed by the language menu.
    assert replies[: len(expected)] == expected


def texts_of(key):
    return [r.text for r in get_content().replies(key, "en")]


def test_eligibility_check_with_buttons_words_and_an_interruption(assistant):
    sender = new_sender()
    replies = assistant.say(sender, "can I apply?")
    assert replies[0][0] == first_text("ask_eligibility")
    question, payloads = replies[-1]
    assert question == (
        "Question 1 of 5: Are you afraid of what could happen to you if you go back?")
    assert payloads == ["/affirm", "/deny", '/inform{"elig_fear":"unsure"}']

    replies = assistant.say(sender, "no")
    question, payloads = replies[-1]
    assert question == "Question 2 of 5: What is your situation in Hungary now?"
    replies = assistant.say(sender, payloads[2])  # "I have no valid permit"
    assert replies[-1][0].startswith("Question 3 of 5")
    # A question in between is answered, then the check asks again where it was.
    replies = assistant.say(sender, "do i have to pay for the flight?")
    assert replies[0][0] == first_text("ask_cost")
    assert replies[-1][0].startswith("Question 3 of 5")

    assert assistant.say(sender, "no")[-1][0].startswith("Question 4 of 5")
    assert assistant.say(sender, "/deny")[-1][0].startswith("Question 5 of 5")
    replies = assistant.say(sender, "no")

    assert [t for t, _ in replies] == [
        first_text("elig_result_likely"),
        first_text("elig_note_documents"),
        first_text("elig_conditions"),
        first_text("elig_next_step"),
    ]
    slots = assistant.tracker(sender)["slots"]
    assert slots["elig_situation"] is None and slots["requested_slot"] is None


def test_a_doubt_is_not_taken_for_no_fear_and_a_broken_off_check_starts_afresh(assistant):
    """"not sure" typed at the fear question was "no fear", and the answers of a check
    ended by "stop" were kept: the next check went on at question 3."""
    first_question = "Question 1 of 5: Are you afraid of what could happen to you if you go back?"
    sender = new_sender()
    assistant.say(sender, "can I apply?")

    replies = assistant.say(sender, "i am not sure")
    assert [t for t, _ in replies] == [
        'Please choose one of the buttons. Or write "stop" to end the questions.',
        first_question]

    replies = assistant.say(sender, "no")
    assert replies[-1][0] == "Question 2 of 5: What is your situation in Hungary now?"
    replies = assistant.say(sender, replies[-1][1][2])  # "I have no valid permit"
    assert replies[-1][0].startswith("Question 3 of 5")
    assistant.say(sender, "stop")
    assert assistant.tracker(sender)["active_loop"] == {}

    replies = assistant.say(sender, "can I apply?")
    assert replies[-1][0] == first_question
    slots = assistant.tracker(sender)["slots"]
    assert slots["elig_fear"] is None and slots["elig_situation"] is None


def test_danger_in_the_middle_of_the_check_is_answered_and_ends_the_check(assistant):
    sender = new_sender()
    assistant.say(sender, "can I apply?")

    replies = assistant.say(sender, "someone is hitting me right now")

    assert replies[0][0] == first_text("report_emergency")
    assert assistant.tracker(sender)["active_loop"] == {}
    assert replies[-1][1] == ["/affirm", "/deny"]  # a counsellor is offered


@pytest.mark.parametrize("answer", ["yes", '/inform{"elig_fear":"unsure"}'])
def test_fear_or_not_sure_at_the_first_question_ends_the_check_with_a_counsellor_offer(
    assistant, answer
):
    sender = new_sender()
    assistant.say(sender, "can I apply?")

    replies = assistant.say(sender, answer)

    texts = [t for t, _ in replies]
    assert texts[: len(texts_of("elig_result_fear"))] == texts_of("elig_result_fear")
    assert texts[-1] == first_text("handoff_offer")
    assert replies[-1][1] == ["/affirm", "/deny"]
    tracker = assistant.tracker(sender)
    assert tracker["active_loop"] == {}
    assert tracker["slots"]["handoff_urgency"] == "legal"
    assert not any(t.startswith("Question 2") for t in texts)


def test_danger_after_a_clarification_gets_the_safety_answer(assistant):
    sender = new_sender()
    first = assistant.say(sender, "qwpzx vbnmq")
    assert first[-1][0] == get_content().replies(
        "clarify", assistant.tracker(sender)["slots"]["language"])[-1].text

    replies = assistant.say(sender, "my husband is beating me right now")

    assert replies[0][0] == first_text("report_emergency")
    assert "112" in replies[0][0]


def test_danger_words_the_classifier_might_miss_still_give_the_emergency_number(assistant):
    sender = new_sender()

    replies = assistant.say(sender, "how much is the ticket? my boss locked me in the room")

    texts = [t for t, _ in replies]
    assert any("112" in t for t in texts[:2])
    latest = assistant.tracker(sender)["latest_message"]
    # Whichever net caught it: the classifier, or the danger lexicon (then it says so).
    assert latest["intent"]["name"] in ("report_emergency", "report_exploitation")
    assert latest.get("safety_net", {}).get("intent", latest["intent"]["name"]) == (
        latest["intent"]["name"])


def test_two_misunderstandings_lead_to_the_counsellor_offer(assistant):
    sender = new_sender()

    def in_language(key):
        language = assistant.tracker(sender)["slots"]["language"]
        return get_content().replies(key, language)[-1]

    first = assistant.say(sender, "qwpzx vbnmq")
    assert first[-1][0] == in_language("clarify").text
    assert len(first[-1][1]) >= 1

    second = assistant.say(sender, "xkcdq plomb")
    # A safety answer may come first, when danger is among the likely meanings.
    assert second[-2:] == [
        (in_language("clarify_again").text, []),
        (in_language("handoff_offer").text, ["/affirm", "/deny"]),
    ]


def test_typed_commands_neither_trigger_intents_nor_set_slots(assistant):
    sender = new_sender()
    assistant.say(sender, "can I apply?")

    # The payload of a button that was not offered, typed by hand.
    assistant.say(sender, '/inform{"elig_previous_return":"used_before"}')
    assert assistant.tracker(sender)["slots"]["elig_fear"] is None
    assistant.say(sender, '/affirm{"language":"xx"}')

    tracker = assistant.tracker(sender)
    assert tracker["slots"]["elig_previous_return"] is None
    assert tracker["slots"]["elig_situation"] is None
    assert tracker["slots"]["language"] == "en"
    typed = [e for e in tracker["events"] if e["event"] == "user"][1:]
    assert [e["text"] for e in typed] == [
        'inform{"elig_previous_return":"used_before"}',
        'affirm{"language":"xx"}',
    ]


def test_a_button_payload_that_was_offered_does_set_its_slot(assistant):
    sender = new_sender()
    assistant.say(sender, "can I apply?")
    payload = assistant.say(sender, "no")[-1][1][0]  # the situations

    assistant.say(sender, payload)

    assert assistant.tracker(sender)["slots"]["elig_situation"] == "asylum"


def stored_events(assistant, sender):
    with sqlite3.connect(assistant.db) as db:
        query = "SELECT count(*) FROM events WHERE sender_id = ?"
        return db.execute(query, (sender,)).fetchone()[0]


def test_delete_my_data_leaves_nothing_stored(assistant):
    sender = new_sender()
    assistant.say(sender, "hello, my name is Amira and my phone is 06 30 123 4567")
    assistant.say(sender, "can I apply?")
    assert stored_events(assistant, sender) > 0

    confirm = assistant.say(sender, "please delete my data")
    assert confirm[0][1] == ["/affirm", "/deny"]
    done = assistant.say(sender, "/affirm")

    assert done == [(first_text("delete_done"), [])]
    assert stored_events(assistant, sender) == 0
    with sqlite3.connect(assistant.db) as db:
        assert db.execute(
            "SELECT count(*) FROM events WHERE data LIKE '%Amira%'"
        ).fetchone()[0] == 0


def test_saying_no_keeps_the_data(assistant):
    sender = new_sender()
    assistant.say(sender, "delete everything about me")

    assert assistant.say(sender, "no") == [(first_text("delete_cancelled"), [])]
    assert stored_events(assistant, sender) > 0
