"""What the assistant could not answer, from a real conversation: counted, kept in the
desk's inbox redacted, and gone from it after the person's deletion request. (Counting
conversations in three languages, and the page, are in test_desk_stats.py.)"""
import uuid

from tests.e2e.conftest import Desk


def counted(desk: Desk) -> dict:
    assert desk.api("POST", "/api/stats/refresh").status_code == 200
    reply = desk.api("GET", "/api/stats")
    assert reply.status_code == 200
    return reply.json()


def by(stats: dict, language: str, metric: str) -> int:
    return stats["by_language"].get(language, {}).get(metric, 0)


def test_a_question_not_answered_is_kept_redacted_and_leaves_on_deletion(assistant, desk):
    sender = f"insight-del-{uuid.uuid4().hex[:10]}"
    marker = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])  # no digits
    # One sentence: a second one ("Call me on ...") would be its question (request_human).
    gibberish = f"Which bus goes to the zoo on Sunday morning {marker}, call me on +36 30 123 4567"
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
        f"Which bus goes to the zoo on Sunday morning {marker}, call me on [phone]"], (
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
