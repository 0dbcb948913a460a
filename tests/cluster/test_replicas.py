"""One conversation over several Rasa replicas: each message may reach another replica,
and the conversation is still one, stored once and in order, thanks to the lock store on
Redis; a replica killed mid-conversation loses nothing that was answered."""
import threading
import time
from typing import List, Tuple

import pytest
import requests

from actions.content import get_content
from tests.cluster.conftest import (
    LOCK_LIFETIME_S,
    LOOPBACK,
    QUESTIONS,
    disorder,
    messages,
    new_sender,
    replies_of,
    turns,
)

pytestmark = pytest.mark.cluster


def texts_of(key: str) -> List[str]:
    return [reply.text for reply in get_content().replies(key, "en")]


def test_the_eligibility_check_moves_between_replicas_and_is_stored_once_in_order(healthy):
    cluster, sender = healthy, new_sender()
    said: List[Tuple[str, list]] = []
    served: List[str] = []

    def say(text: str):
        replies, by = cluster.say(sender, text)
        said.append((text, replies))
        served.append(by)
        return replies

    replies = say("can I apply?")
    assert replies[0][0] == texts_of("ask_eligibility")[0]
    assert replies[-1] == (
        "Question 1 of 5: Are you afraid of what could happen to you if you go back?",
        ["/affirm", "/deny", '/inform{"elig_fear":"unsure"}'])
    question, payloads = say("no")[-1]
    assert question == "Question 2 of 5: What is your situation in Hungary now?"
    assert say(payloads[2])[-1][0].startswith("Question 3 of 5")  # no valid permit
    replies = say("do i have to pay for the flight?")  # a question in between
    assert replies[0][0] == texts_of("ask_cost")[0]
    assert replies[-1][0].startswith("Question 3 of 5")
    assert say("no")[-1][0].startswith("Question 4 of 5")
    assert say("/deny")[-1][0].startswith("Question 5 of 5")
    assert [text for text, _ in say("no")] == [
        texts_of(key)[0] for key in
        ("elig_result_likely", "elig_note_documents", "elig_conditions", "elig_next_step")]

    # nginx gave each message to the other replica than the one before.
    replicas = {f"{LOOPBACK}:{port}" for port in cluster.layout.rasa}
    assert set(served) == replicas
    assert all(this != that for this, that in zip(served, served[1:], strict=False))
    # Whichever replica read it, the conversation is the one the person had, once.
    assert turns(cluster.tracker(sender)["events"]) == said
    assert turns(cluster.stored_events(sender)) == said
    assert cluster.tracker(sender)["slots"]["requested_slot"] is None


def test_five_messages_sent_at_once_through_both_replicas_never_interleave(healthy):
    cluster, sender = healthy, new_sender()

    answers = cluster.at_once(sender, [text for _, text in QUESTIONS])

    assert [a.status_code for a in answers] == [200] * len(QUESTIONS)
    assert {a.headers["X-Served-By"] for a in answers} == {
        f"{LOOPBACK}:{port}" for port in cluster.layout.rasa}
    replies = {text: replies_of(answer)
               for (_, text), answer in zip(QUESTIONS, answers, strict=True)}
    for key, text in QUESTIONS:
        assert [t for t, _ in replies[text]][:len(texts_of(key))] == texts_of(key)
    # Each message once, followed by its own replies and nothing else, in what Rasa's API
    # reads and in what PostgreSQL holds.
    assert disorder(cluster.tracker(sender)["events"], replies) is None
    assert disorder(cluster.stored_events(sender), replies) is None


class Person(threading.Thread):
    """A person on the REST channel who sends their questions one after another, and sends
    a message again when nginx or Rasa could not answer it (as a client would)."""

    def __init__(self, cluster, texts: List[str], deadline: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.texts, self.deadline = cluster, texts, deadline
        self.sender = new_sender()
        self.answered: List[Tuple[str, float]] = []  # (text, when answered 200)
        self.failed: List[Tuple[str, float, str]] = []  # (text, when, why)

    def run(self) -> None:
        for text in self.texts:
            while time.monotonic() < self.deadline:
                try:
                    reply = self.cluster.post(self.sender, text, timeout=LOCK_LIFETIME_S + 30)
                    why = str(reply.status_code)
                except requests.RequestException as failure:
                    reply, why = None, type(failure).__name__
                if reply is not None and reply.status_code == 200:
                    self.answered.append((text, time.monotonic()))
                    break
                self.failed.append((text, time.monotonic(), why))
                time.sleep(0.2)  # a client's pause before it sends again


def test_a_replica_killed_amid_twenty_conversations_loses_nothing_answered(healthy):
    cluster = healthy
    deadline = time.monotonic() + 120
    people = [Person(cluster, [text for _, text in QUESTIONS], deadline) for _ in range(20)]
    for person in people:
        person.start()
    # Kill the first replica once the conversations are well under way.
    while sum(len(p.answered) for p in people) < 20:
        assert time.monotonic() < deadline, "the conversations do not progress"
        time.sleep(0.05)
    killed_at = time.monotonic()
    cluster.kill(cluster.layout.rasa[0])
    locks = {key.decode().removeprefix("lock:") for key in cluster.redis().keys("lock:*")}
    for person in people:
        person.join(timeout=max(0.0, deadline - time.monotonic()))

    assert all(len(p.answered) == len(QUESTIONS) for p in people), [
        (p.sender, p.answered, p.failed) for p in people]
    for person in people:
        stored = [text for kind, text in messages(cluster.stored_events(person.sender))
                  if kind == "user"]
        sent = [text for text, _ in person.answered]
        # Every message answered 200 is stored, in the order sent; a message is stored
        # twice only if its answer was lost with the replica and the person sent it again.
        assert list(dict.fromkeys(stored)) == sent
        resent = {text for text, _, _ in person.failed}
        assert {text for text in stored if stored.count(text) > 1} <= resent
    # The messages in hand on the dead replica failed (502); the conversations whose lock
    # it held (still in Redis after its death) resumed within the lock's lifetime.
    cut_off = [p for p in people if any(when >= killed_at for _, when, _ in p.failed)]
    held = [p for p in cut_off if p.sender in locks]
    assert held, f"no lock was held by the killed replica ({len(cut_off)} cut off)"
    for person in held:
        resumed = min(when for _, when in person.answered if when > killed_at)
        assert resumed - killed_at < LOCK_LIFETIME_S + 10, (
            f"resumed {resumed - killed_at:.1f} s after the kill; its failures: "
            f"{[(why, round(when - killed_at, 1)) for _, when, why in person.failed]}")
    # The launcher brings the replica back.
    cluster.wait_until_up(cluster.layout.rasa)


def test_the_replicas_count_a_senders_messages_together(healthy):
    cluster, sender = healthy, new_sender()
    limit, refill_s = 20, 3.0  # RATE_LIMIT_PER_SENDER's default: 20 a minute

    started, answers = time.monotonic(), []
    while not answers or (answers[-1].status_code == 200 and len(answers) < 2 * limit):
        answers.append(cluster.post(sender, "hello"))
    elapsed = time.monotonic() - started

    # nginx gave the messages to both replicas in turn, and the one that got the last
    # knew of those the other had taken: counted apart, each would have taken 20 and
    # the person 40.
    assert {a.headers["X-Served-By"] for a in answers} == {
        f"{LOOPBACK}:{port}" for port in cluster.layout.rasa}
    taken = [a.status_code for a in answers[:-1]]
    assert taken == [200] * len(taken) and answers[-1].status_code == 429
    assert limit <= len(taken) <= limit + elapsed / refill_s + 1, (len(taken), elapsed)
    wait = int(answers[-1].headers["Retry-After"])
    assert 1 <= wait <= refill_s
    assert answers[-1].json() == {"error": f"too many messages, please wait {wait} s"}
    stored = [text for kind, text in messages(cluster.stored_events(sender)) if kind == "user"]
    assert stored == ["hello"] * len(taken)
    # Another person is not held back by it.
    assert cluster.post(new_sender(), "hello").status_code == 200
