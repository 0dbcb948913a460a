"""The programme's statistics from real conversations: three languages through the real
Rasa server, counted by the desk's job from what Rasa stored, exactly once; what the
assistant did not understand lands in the inbox redacted, and leaves it on a deletion
request."""
import uuid
from collections import Counter

from tests.e2e.conftest import Desk

SCRIPT = {
    "en": ["Hello, I would like to know about going home with IOM",
           "How much does the return cost for me?"],
    "hu": ["Jó napot, szeretnék hazatérni a hazámba az IOM segítségével",
           "Mennyibe kerül nekem a hazatérés?"],
    "ar": ["مرحبا، أريد أن أعرف عن العودة الطوعية إلى بلدي",
           "كم تكلفة العودة إلى بلدي؟"],
}


def counted(desk: Desk) -> dict:
    assert desk.api("POST", "/api/stats/refresh").status_code == 200
    reply = desk.api("GET", "/api/stats")
    assert reply.status_code == 200
    return reply.json()


def by(stats: dict, language: str, metric: str) -> int:
    return stats["by_language"].get(language, {}).get(metric, 0)


def topics(stats: dict, language: str) -> Counter:
    return Counter(stats["topics"].get(language, {}))


def test_conversations_in_three_languages_are_counted_as_rasa_stored_them(assistant, desk):
    before = counted(desk)
    senders = {language: f"insight-{language}-{uuid.uuid4().hex[:10]}" for language in SCRIPT}
    for language, messages in SCRIPT.items():
        for text in messages:
            assistant.say(senders[language], text)
    after = counted(desk)

    for language, sender in senders.items():
        events = assistant.tracker(sender)["events"]
        heard = [e for e in events if e["event"] == "user"]
        assert {e["parse_data"]["language_detection"]["language"] for e in heard} == {language}
        assert by(after, language, "conversations") - by(before, language, "conversations") == 1
        assert by(after, language, "messages") - by(before, language, "messages") == len(heard)
        intents = Counter(e["parse_data"]["intent"]["name"] for e in heard)
        assert topics(after, language) - topics(before, language) == intents, language
    rest = [stats["by_channel"].get("rest", {}).get("messages", 0) for stats in (before, after)]
    channel = rest[1] - rest[0]
    assert channel == sum(len(messages) for messages in SCRIPT.values())


def test_a_question_not_answered_is_kept_redacted_and_leaves_on_deletion(assistant, desk):
    sender = f"insight-del-{uuid.uuid4().hex[:10]}"
    marker = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])  # no digits
    gibberish = f"Which bus goes to the zoo on Sunday morning {marker}? Call me on +36 30 123 4567"
    before = counted(desk)
    replies = assistant.say(sender, gibberish)
    tracker = assistant.tracker(sender)
    [heard] = [e for e in tracker["events"] if e["event"] == "user"]
    intent = heard["parse_data"]["intent"]["name"]
    assert intent in ("nlu_fallback", "out_of_scope"), replies
    after = counted(desk)
    missed = int(intent == "nlu_fallback")  # then a clarification followed
    assert by(after, "en", "not_understood") - by(before, "en", "not_understood") == missed
    assert by(after, "en", "clarifications") - by(before, "en", "clarifications") == missed

    inbox = desk.api("GET", "/api/unanswered?language=en&labelled=false").json()
    mine = [q for q in inbox if marker in q["text"]]
    assert [q["text"] for q in mine] == [
        f"Which bus goes to the zoo on Sunday morning {marker}? Call me on [phone]"], (
        heard["parse_data"], [q for q in desk.api("GET", "/api/unanswered").json()
                              if marker in q["text"]])
    assert sender not in str(inbox) and "123 4567" not in str(inbox)

    assert assistant.say(sender, "please delete my data")[0][1] == ["/affirm", "/deny"]
    assistant.say(sender, "/affirm")
    final = counted(desk)
    inbox = desk.api("GET", "/api/unanswered").json()
    assert [q for q in inbox if marker in q["text"]] == []
    assert by(final, "en", "deletion_requests") - by(after, "en", "deletion_requests") == 1
    # The counts keep what happened, without the person.
    assert by(final, "en", "not_understood") == by(after, "en", "not_understood")
