"""The safety net in the NLU pipeline: danger words make a safety message, whatever the
classifier thought; the phrases are reread when a content file changes."""
import os

from rasa.shared.nlu.training_data.message import Message

from bot.safety.component import LexiconFiles, SafetyNet


def parsed(text, intent, confidence=0.9):
    message = Message({"text": text})
    message.set("intent", {"name": intent, "confidence": confidence})
    message.set("intent_ranking", [{"name": intent, "confidence": confidence},
                                   {"name": "greet", "confidence": 0.05}])
    return message


def net(folder):
    return SafetyNet({}, LexiconFiles(folder))


def test_danger_words_make_a_question_a_safety_message_and_keep_the_question(content_dir):
    message = parsed("is the flight free? my husband is beating me", "ask_cost")

    net(content_dir).process([message])

    assert message.get("intent") == {"name": "report_emergency", "confidence": 1.0}
    assert message.get("intent_ranking")[0] == {"name": "report_emergency", "confidence": 1.0}
    assert message.get("safety_net") == {
        "intent": "report_emergency", "original_intent": "ask_cost"}


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
