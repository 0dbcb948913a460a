"""The safety net in the NLU pipeline: danger words make a safety message, whatever the
classifier thought; the phrases are reread when a content file changes."""
import os

from rasa.shared.nlu.training_data.message import Message

from bot.safety.component import (
    MAX_SENTENCES,
    SENTENCE_OF,
    LexiconFiles,
    SafetyNet,
    Sentences,
    sentences,
)


def parsed(text, intent, confidence=0.9):
    message = Message({"text": text})
    message.set("intent", {"name": intent, "confidence": confidence})
    message.set("intent_ranking", [{"name": intent, "confidence": confidence},
                                   {"name": "greet", "confidence": 0.05}])
    return message


def net(folder, **config):
    return SafetyNet(config, LexiconFiles(folder))


def spread(text, ranking):
    """A message the classifier took for its first ranked intent."""
    message = Message({"text": text})
    name, confidence = ranking[0]
    message.set("intent", {"name": name, "confidence": confidence})
    message.set("intent_ranking", [{"name": n, "confidence": c} for n, c in ranking])
    return message


def test_danger_words_make_a_question_a_safety_message_and_keep_the_question(content_dir):
    message = parsed("is the flight free? my husband is beating me", "ask_cost")

    net(content_dir).process([message])

    assert message.get("intent") == {"name": "report_emergency", "confidence": 1.0}
    assert message.get("intent_ranking")[0] == {"name": "report_emergency", "confidence": 1.0}
    assert message.get("safety_net") == {
        "intent": "report_emergency", "original_intent": "ask_cost", "reason": "lexicon"}


def test_words_of_any_language_count_whatever_the_message_was_taken_for(content_dir):
    message = parsed("nem értem, i want to kill myself", "nlu_fallback", 0.2)

    net(content_dir).process([message])

    assert message.get("intent")["name"] == "report_suicidal_thoughts"


def test_a_safety_message_and_a_calm_one_are_left_as_they_are(content_dir):
    danger = parsed("my husband is beating me", "report_exploitation")
    calm = parsed("how much does the flight cost", "ask_cost")

    net(content_dir).process([danger, calm])

    assert danger.get("intent")["name"] == "report_exploitation"
    assert calm.get("intent")["name"] == "ask_cost"
    assert danger.get("safety_net") is None and calm.get("safety_net") is None


def test_an_operators_new_phrase_counts_at_once(content_dir):
    component = net(content_dir)
    message = parsed("the zorglub is here", "out_of_scope")
    component.process([message])
    assert message.get("intent")["name"] == "out_of_scope"

    english = content_dir / "en.yml"
    text = english.read_text()
    at = text.index("  report_emergency:\n", text.index("danger_lexicon:"))
    english.write_text(text[:at] + "  report_emergency:\n    - zorglub is here\n"
                       + text[at + len("  report_emergency:\n"):])
    stat = english.stat()
    os.utime(english, (stat.st_atime, stat.st_mtime + 5))
    message = parsed("the zorglub is here", "out_of_scope")
    component.process([message])

    assert message.get("intent")["name"] == "report_emergency"


def test_a_translators_broken_file_keeps_its_phrases_and_stops_nothing(content_dir, caplog):
    component = net(content_dir)
    danger = "my husband is beating me"
    component.process([parsed(danger, "ask_family")])
    persian = content_dir / "fa.yml"
    for broken in (persian.read_text() + "\n  - [unclosed\n", "- a list\n- not a mapping\n"):
        persian.write_text(broken)
        stat = persian.stat()
        os.utime(persian, (stat.st_atime, stat.st_mtime + 5))

        english, farsi = parsed(danger, "ask_family"), parsed("شوهرم مرا کتک میزند", "ask_family")
        component.process([english, farsi])

        assert english.get("intent")["name"] == "report_emergency"
        assert farsi.get("safety_net", {}).get("reason") == "lexicon"  # the last good phrases
    problems = [r for r in caplog.records if r.name == "bot.safety.component"]
    assert [r.levelname for r in problems] == ["ERROR", "ERROR"]
    assert all(r.getMessage().startswith("fa.yml: its danger phrases cannot be read")
               for r in problems)


def test_phrases_under_a_name_that_is_no_safety_intent_are_not_used(content_dir, caplog):
    english = content_dir / "en.yml"
    english.write_text(english.read_text().replace(
        "danger_lexicon:\n", "danger_lexicon:\n  report_emergncy:\n    - zorglub is here\n", 1))
    message = parsed("the zorglub is here", "out_of_scope")

    net(content_dir).process([message])

    assert message.get("intent")["name"] == "out_of_scope"
    assert any("'report_emergncy', which is no safety intent" in r.getMessage()
               for r in caplog.records)


def test_danger_the_classifier_spread_over_the_safety_intents_makes_a_safety_message(
    content_dir,
):
    message = spread("my stepfather is hard on my girl", [
        ("ask_family", 0.35), ("report_emergency", 0.25), ("report_exploitation", 0.2),
        ("ask_special_needs", 0.1)])

    net(content_dir, danger_belief=0.4).process([message])

    assert message.get("intent") == {"name": "report_emergency", "confidence": 1.0}
    assert [r["name"] for r in message.get("intent_ranking")] == [
        "report_emergency", "ask_family", "report_exploitation", "ask_special_needs"]
    assert message.get("safety_net") == {
        "intent": "report_emergency", "original_intent": "ask_family", "reason": "classifier"}


def test_a_little_belief_in_danger_or_no_threshold_leaves_the_message(content_dir):
    little = spread("my stepfather is hard on my girl", [
        ("ask_family", 0.6), ("report_emergency", 0.25), ("report_exploitation", 0.1)])
    unset = spread("my stepfather is hard on my girl", [
        ("ask_family", 0.35), ("report_emergency", 0.25), ("report_exploitation", 0.2)])

    net(content_dir, danger_belief=0.4).process([little])
    net(content_dir).process([unset])

    assert little.get("intent")["name"] == "ask_family" and little.get("safety_net") is None
    assert unset.get("intent")["name"] == "ask_family" and unset.get("safety_net") is None


def test_each_sentence_of_a_message_of_several_is_added_for_the_classifier():
    one = Message({"text": "how much does the flight cost"})
    several = Message({"text": "how do I apply.\nhonestly, I see no reason to live؟ ok"})

    processed = Sentences().process([one, several])

    assert processed[:2] == [one, several]
    assert [(m.get("text"), m.get(SENTENCE_OF)) for m in processed[2:]] == [
        ("how do I apply.", 1), ("honestly, I see no reason to live؟", 1), ("ok", 1)]


def test_a_long_message_is_cut_into_a_few_sentences_only():
    found = sentences("Thank you. " * 100)

    assert len(found) == MAX_SENTENCES  # 100 sentences, 9 to a group
    assert " ".join(found) == ("Thank you. " * 100).strip()


def sentence_of(position, text, ranking):
    message = spread(text, ranking)
    message.set(SENTENCE_OF, position)
    return message


def test_danger_in_one_sentence_makes_the_message_a_safety_message(content_dir):
    question = spread("how do I apply. I see no reason to go on", [
        ("ask_process", 0.86), ("report_suicidal_thoughts", 0.10)])
    calm = spread("hello. how much is it", [("ask_cost", 0.9), ("greet", 0.1)])
    pieces = [
        sentence_of(0, "how do I apply.", [("ask_process", 0.97), ("ask_documents", 0.03)]),
        sentence_of(0, "I see no reason to go on", [
            ("report_suicidal_thoughts", 0.5), ("report_emergency", 0.25),
            ("ask_process", 0.25)]),
        sentence_of(1, "hello.", [("greet", 0.6), ("report_emergency", 0.4)]),
        sentence_of(1, "how much is it", [("ask_cost", 0.99)]),
    ]

    processed = net(content_dir, danger_belief=0.4, sentence_belief=0.7).process(
        [question, calm, *pieces])

    assert processed == [question, calm]  # the sentences go no further
    assert question.get("intent") == {"name": "report_suicidal_thoughts", "confidence": 1.0}
    assert question.get("safety_net") == {"intent": "report_suicidal_thoughts",
                                          "original_intent": "ask_process",
                                          "reason": "sentence"}
    assert calm.get("intent")["name"] == "ask_cost" and calm.get("safety_net") is None


def test_the_most_urgent_sentence_wins_and_a_safety_message_is_left_as_it_is(content_dir):
    question = spread("is it free. they took my passport. I want to end it", [
        ("ask_cost", 0.8), ("report_exploitation", 0.1)])
    fear = spread("I am scared to go back. they took my passport", [
        ("express_fear_of_return", 0.7), ("report_exploitation", 0.3)])
    pieces = [
        sentence_of(0, "they took my passport", [("report_exploitation", 0.9)]),
        sentence_of(0, "I want to end it", [("report_suicidal_thoughts", 0.8)]),
        sentence_of(1, "they took my passport", [("report_exploitation", 0.9)]),
    ]

    net(content_dir, sentence_belief=0.7).process([question, fear, *pieces])

    assert question.get("intent")["name"] == "report_suicidal_thoughts"
    assert fear.get("intent")["name"] == "express_fear_of_return"
    assert fear.get("safety_net") is None


def test_without_a_sentence_belief_sentences_change_nothing(content_dir):
    question = spread("how do I apply. I see no reason to go on", [("ask_process", 0.9)])
    piece = sentence_of(0, "I see no reason to go on", [("report_suicidal_thoughts", 0.99)])

    assert net(content_dir, danger_belief=0.4).process([question, piece]) == [question]
    assert question.get("intent")["name"] == "ask_process"


def test_a_sentences_question_is_the_question_of_a_greeting_or_a_statement(content_dir):
    hello = spread("hello. I am from Lagos. can my kids come with me", [
        ("inform", 0.6), ("ask_family", 0.3)])
    asked = spread("hi. how long does it take", [("ask_duration", 0.9)])
    pieces = [
        sentence_of(0, "hello.", [("greet", 0.99)]),
        sentence_of(0, "I am from Lagos.", [("inform", 0.97)]),
        sentence_of(0, "can my kids come with me", [("ask_family", 0.95), ("ask_cost", 0.05)]),
        sentence_of(1, "hi.", [("greet", 0.99)]),
        sentence_of(1, "how long does it take", [("ask_process", 0.6)]),
    ]

    net(content_dir, danger_belief=0.4, sentence_belief=0.7).process([hello, asked, *pieces])

    assert hello.get("intent") == {"name": "ask_family", "confidence": 0.95}
    assert hello.get("intent_ranking") == [{"name": "ask_family", "confidence": 0.95},
                                           {"name": "ask_cost", "confidence": 0.05}]
    assert hello.get("sentence_question") == {
        "sentence": 2, "intent": "ask_family", "original_intent": "inform"}
    assert asked.get("intent")["name"] == "ask_duration"  # a question already
    assert asked.get("sentence_question")["intent"] == "ask_process"


def test_a_question_below_its_belief_or_a_safety_message_keeps_its_intent(content_dir):
    vague = spread("hello. can they come", [("greet", 0.7)])
    fear = spread("hello. I am afraid to go back. is it free", [
        ("express_fear_of_return", 0.5), ("ask_cost", 0.4)])
    pieces = [
        sentence_of(0, "can they come", [("ask_family", 0.45), ("ask_eligibility", 0.4)]),
        sentence_of(1, "is it free", [("ask_cost", 0.9)]),
    ]

    net(content_dir, sentence_belief=0.7).process([vague, fear, *pieces])

    assert vague.get("intent")["name"] == "greet" and vague.get("sentence_question") is None
    assert fear.get("intent")["name"] == "express_fear_of_return"
    assert fear.get("sentence_question") == {
        "sentence": 0, "intent": "ask_cost", "original_intent": "express_fear_of_return"}
