"""The control case: the same five messages at once, on replicas that each keep Rasa's
in-process lock store (AVRR_LOCK_STORE=memory), get in each other's way. Without it the
test of the shared lock store (test_replicas.py) would prove nothing."""
import pytest

from tests.cluster.conftest import QUESTIONS, disorder, new_sender, replies_of, started

pytestmark = pytest.mark.cluster

ROUNDS = 5


@pytest.fixture(scope="module")
def unlocked():
    """A second cluster, whose Rasa servers lock each conversation in their own memory."""
    with started(AVRR_LOCK_STORE="memory") as running:
        yield running


def test_without_a_shared_lock_store_messages_sent_at_once_interleave_or_vanish(unlocked):
    unlocked.all_up()
    texts = [text for _, text in QUESTIONS]
    wrong = None
    for _ in range(ROUNDS):
        sender = new_sender()
        answers = unlocked.at_once(sender, texts)
        assert [a.status_code for a in answers] == [200] * len(texts)  # all seemed well
        replies = {text: replies_of(answer) for text, answer in zip(texts, answers, strict=True)}
        wrong = disorder(unlocked.stored_events(sender), replies)
        if wrong:
            break

    assert wrong, f"{ROUNDS} rounds of {len(texts)} messages at once, none went wrong"
