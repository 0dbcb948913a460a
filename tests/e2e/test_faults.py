"""Parts killed mid-flow (SIGKILL) on an assistant of this module's own: the launcher starts
them again, the platforms' deliveries are answered exactly once, every handoff request
reaches the desk exactly once, and every deletion completes."""
import signal
import time
import uuid

import pytest
import requests

from tests.assistant import CHANNEL_ENV, kill, telegram_update, user_texts
from tests.e2e.conftest import Desk
from tests.fakes.graph_api import encode, message_payload, signed

BACK_WITHIN_S = 60
RASA_BACK_WITHIN_S = 240  # it loads the model again


@pytest.fixture
def faulty(isolated):
    return isolated


def until(check, within_s: float, what: str):
    deadline = time.monotonic() + within_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not {what} within {within_s} s"
        time.sleep(0.5)


def post_telegram(assistant, update) -> int:
    try:
        return requests.post(
            f"{assistant.url}/webhooks/telegram/webhook", json=update, timeout=30,
            headers={"X-Telegram-Bot-Api-Secret-Token": CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"]},
        ).status_code
    except requests.ConnectionError:
        return 0


def post_whatsapp(assistant, payload) -> int:
    body = encode(payload)
    try:
        return requests.post(
            f"{assistant.url}/webhooks/whatsapp/webhook", data=body, timeout=30,
            headers={"Content-Type": "application/json",
                     "X-Hub-Signature-256": signed(body, CHANNEL_ENV["WHATSAPP_APP_SECRET"])},
        ).status_code
    except requests.ConnectionError:
        return 0


def delivered_until_taken(post, within_s: float) -> list:
    """Deliver again, as the platform does, until the webhook answers 200; the statuses."""
    statuses = []
    deadline = time.monotonic() + within_s
    while not statuses or statuses[-1] != 200:
        assert time.monotonic() < deadline, statuses
        if statuses:
            time.sleep(1)
        statuses.append(post())
    return statuses


def test_with_the_action_server_killed_platforms_redeliver_and_each_message_is_answered_once(
    faulty, telegram_api, graph_api
):
    chat_id = 10**9 + uuid.uuid4().int % 10**8
    wa_id = "36" + str(10**9 + uuid.uuid4().int % (9 * 10**9))
    update = telegram_update(chat_id, "how much does the return cost?")
    whatsapp = message_payload(wa_id, "is the return voluntary?")
    killed_at = time.monotonic()
    first_pid = kill(faulty, "bot.action_server")

    telegram = delivered_until_taken(lambda: post_telegram(faulty, update), BACK_WITHIN_S)
    meta = delivered_until_taken(lambda: post_whatsapp(faulty, whatsapp), BACK_WITHIN_S)

    assert 503 in telegram  # while the action server was down: not recorded, redelivered
    assert time.monotonic() - killed_at < BACK_WITHIN_S
    assert faulty.part("bot.action_server").pid != first_pid  # started again by itself
    faulty.drained(f"telegram:{chat_id}")
    faulty.drained(f"whatsapp:{wa_id}")
    assert user_texts(faulty, f"telegram:{chat_id}") == ["how much does the return cost?"]
    assert user_texts(faulty, f"whatsapp:{wa_id}") == ["is the return voluntary?"]
    answers = [c.params["text"] for c in telegram_api.sent_to(chat_id)]
    assert len(answers) == len(set(answers)) >= 1  # answered, and not twice
    assert set(meta) <= {200, 503}
    sent = [m for m in graph_api.sent_to(wa_id)]
    assert 1 <= len(sent) == len({str(m) for m in sent})


def test_a_handoff_while_the_desk_is_killed_reaches_it_once_after_its_restart(faulty):
    sender = f"fault-{uuid.uuid4().hex[:10]}"
    faulty.say(sender, f"my case {sender}")
    faulty.say(sender, "I want to talk to a counsellor")
    kill(faulty, "desk")

    told = faulty.say(sender, "/affirm")
    faulty.say(sender, "are you there?")

    assert told[0][0].startswith("Thank you.")
    desk = Desk(faulty)
    until(lambda: _listening(faulty.desk_url), BACK_WITHIN_S, "back")
    ticket = until(lambda: [t for t in desk.api("GET", "/api/tickets?status=all").json()
                            if t["conversation_id"] == sender], 30, "delivered")
    assert len(ticket) == 1

    def persons_messages():
        detail = desk.api("GET", f"/api/tickets/{ticket[0]['id']}").json()
        mine = [m["text"] for m in detail["messages"] if m["sender"] == "person"]
        return mine if "are you there?" in mine else None

    mine = until(persons_messages, 60, "relayed")  # the outbox's retry after its backoff
    assert mine.count("are you there?") == 1 and mine[-1] == "are you there?"


def _listening(url: str) -> bool:
    try:
        requests.get(f"{url}/health", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def test_a_deletion_while_the_desk_hangs_is_told_and_completes_when_asked_again(faulty):
    sender = f"fault-{uuid.uuid4().hex[:10]}"
    faulty.say(sender, "hello, my name is Amira")
    desk = faulty.part("desk")
    desk.send_signal(signal.SIGSTOP)  # alive but answering nothing: the supervisor waits
    try:
        faulty.say(sender, "delete my data")
        told = faulty.say(sender, "/affirm")
    finally:
        desk.send_signal(signal.SIGCONT)

    assert told[0][0].startswith("Sorry, I could not delete everything right now")
    assert user_texts(faulty, sender)[0] == "hello, my name is Amira"  # nothing half done
    faulty.say(sender, "delete my data")
    done = faulty.say(sender, "/affirm")
    assert done[0][0].startswith("Done: this conversation")
    assert user_texts(faulty, sender) == []


def test_replies_queued_when_rasa_is_killed_go_out_once_after_its_restart(
    faulty, telegram_api
):
    chat_id = 10**9 + uuid.uuid4().int % 10**8
    for _ in range(3):  # Telegram asks to wait: the replies stay queued
        telegram_api.fail_next("sendMessage", retry_after=30)
    update = telegram_update(chat_id, "hello")
    assert post_telegram(faulty, update) == 200
    until(lambda: telegram_api.refused.snapshot(), 20, "tried")
    assert faulty.queued(f"telegram:{chat_id}") >= 1

    kill(faulty, "bot.serve")
    until(lambda: _rasa_up(faulty), RASA_BACK_WITHIN_S, "back")
    # The retry is due in 30 s; the restarted deliverer finds the queue as it was.
    faulty.drained(f"telegram:{chat_id}", timeout=90)

    texts = [c.params["text"] for c in telegram_api.sent_to(chat_id)
             if c not in telegram_api.refused.snapshot()]
    assert texts and len(texts) == len(set(texts))
    assert user_texts(faulty, f"telegram:{chat_id}") == ["hello"]
    assert post_telegram(faulty, update) == 200  # a late redelivery: handled before


def _rasa_up(assistant) -> bool:
    try:
        return assistant.api("GET", "/status").status_code == 200
    except requests.ConnectionError:
        return False
