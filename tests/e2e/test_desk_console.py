"""The counsellor console in a real browser: signing in, the live ticket list, reading a
conversation safely, answering and handing back."""
import re
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
from playwright.sync_api import expect

from actions.outbox import dead_letters
from avrr.db import engine
from tests.assistant import ACTION_TOKEN

EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold</b>'
LIVE = 10_000  # ms: the console polls every 3 s


def open_ticket(desk, **fields):
    """A ticket as the assistant opens it after the person's consent."""
    at = datetime.now(timezone.utc).isoformat()
    body = {
        "idempotency_key": f"console-{uuid.uuid4().hex}",
        "conversation_id": f"console-{uuid.uuid4().hex}",
        "channel": "socketio",
        "language": "ar",
        "topic": "request_human",
        "urgency": "normal",
        "consent": {"at": at, "language": fields.get("language", "ar")},
        "transcript": [
            {"sender": "person", "text": "أريد التحدث مع شخص", "at": at},
            {"sender": "assistant", "text": "I am asking a counsellor to join.", "at": at},
        ],
    }
    body.update(fields)
    return desk.create_ticket(**body)


def row(page, ticket):
    return page.locator(f'#ticket-list [data-ticket-id="{ticket["id"]}"]')


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def sign_in(page, desk):
    page.goto(desk.url)
    page.get_by_label("Username").fill(desk.username)
    page.get_by_label("Password").fill(desk.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(desk.username)
    expect(page.locator("#ticket-list")).to_have_attribute("aria-busy", "false")


def test_a_ticket_opened_after_sign_in_appears_without_reload(page, desk):
    errors = []  # uncaught exceptions, and what the Content-Security-Policy refused
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda line: line.text.startswith("Refused") and errors.append(line.text))
    sign_in(page, desk)
    page.evaluate("window.__sameDocument = true")

    ticket = open_ticket(desk, urgency="urgent")

    expect(row(page, ticket)).to_be_visible(timeout=LIVE)
    expect(row(page, ticket)).to_contain_text("Urgent")
    expect(row(page, ticket)).to_contain_text("Arabic")
    expect(page.locator("#announcer")).to_contain_text("New ticket: urgent, Arabic")
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []


def test_a_ticket_that_becomes_urgent_is_announced_as_a_new_one_is(page, desk):
    """During the handoff the person writes about danger: the assistant marks their
    message urgent, and every open console says so (and the ticket's history)."""
    key = f"console-{uuid.uuid4().hex}"
    ticket = open_ticket(desk, urgency="normal", idempotency_key=key)
    sign_in(page, desk)
    expect(row(page, ticket)).to_contain_text("Normal")

    sent = desk.api("POST", "/api/inbound", json={
        "ticket_key": key, "conversation_id": ticket["conversation_id"],
        "idempotency_key": f"urgent-{uuid.uuid4().hex}", "text": "he is here, help",
        "at": datetime.now(timezone.utc).isoformat(), "urgent": True})
    assert sent.status_code == 201

    expect(page.locator("#announcer")).to_have_text(
        f"Ticket #{ticket['id']} is now urgent", timeout=LIVE)
    expect(row(page, ticket)).to_contain_text("Urgent")
    row(page, ticket).click()
    expect(page.locator('#history li[data-action="made urgent"]')).to_contain_text(
        "api marked it urgent: the person wrote about danger")


def test_message_text_is_shown_as_text_never_as_markup(page, desk):
    ticket = open_ticket(desk, transcript=[
        {"sender": "person", "text": EVIL, "at": datetime.now(timezone.utc).isoformat()},
    ])
    sign_in(page, desk)

    row(page, ticket).click()

    messages = page.locator("#messages")
    expect(messages.get_by_text(EVIL, exact=True)).to_be_visible()
    expect(messages.locator("b")).to_have_count(0)
    expect(messages.locator("img")).to_have_count(0)
    expect(messages.locator("script")).to_have_count(0)
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_urgent_tickets_are_listed_before_legal_and_normal_ones(page, desk):
    normal = open_ticket(desk, urgency="normal")
    legal = open_ticket(desk, urgency="legal")
    urgent = open_ticket(desk, urgency="urgent")
    sign_in(page, desk)
    expect(row(page, normal)).to_be_visible()

    listed = page.locator("#ticket-list [data-ticket-id]").evaluate_all(
        "buttons => buttons.map(b => Number(b.dataset.ticketId))"
    )

    mine = [t for t in listed if t in (normal["id"], legal["id"], urgent["id"])]
    assert mine == [urgent["id"], legal["id"], normal["id"]]


def test_a_reply_from_the_reply_box_appears_in_the_conversation(page, desk):
    ticket = open_ticket(desk)
    text = f"Hello, I am a counsellor ({uuid.uuid4().hex[:8]}). How can I help?"
    sign_in(page, desk)
    row(page, ticket).click()

    page.get_by_label("Your reply").fill(text)
    page.get_by_label("Your reply").press("Control+Enter")

    mine = page.locator('#messages li[data-sender="counsellor"]').filter(has_text=text)
    expect(mine).to_have_count(1, timeout=LIVE)
    expect(mine.locator(".sender")).to_have_text("Counsellor")
    expect(mine.locator(".delivery")).to_have_text(re.compile(r"^(queued|delivered)$"))
    expect(page.get_by_label("Your reply")).to_have_value("")


def test_a_reply_whose_answer_was_lost_is_sent_again_once(page, desk):
    """The desk took the reply but its answer never reached the browser (a proxy's 502, a
    restart): the counsellor presses Send again, and the person gets it once."""
    ticket = open_ticket(desk)
    text = f"I will call you at 10 ({uuid.uuid4().hex[:8]})."
    sign_in(page, desk)
    row(page, ticket).click()
    lost = []

    def taken_but_unanswered(route):
        if lost:
            route.continue_()
            return
        lost.append(route.fetch().status)  # the desk has it...
        route.fulfill(status=502, body="Bad Gateway")  # ...the browser hears otherwise

    page.route(f"**/api/tickets/{ticket['id']}/messages", taken_but_unanswered)
    page.get_by_label("Your reply").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#reply-error")).to_contain_text(
        "It may have been sent: press Send again, it will not go twice.")
    assert lost == [201]

    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.get_by_label("Your reply")).to_have_value("", timeout=LIVE)
    stored = requests.get(f"{desk.url}/api/tickets/{ticket['id']}",
                          headers={"Authorization": f"Bearer {desk.token}"}, timeout=30).json()
    assert [m["text"] for m in stored["messages"] if m["sender"] == "counsellor"] == [text]


def test_a_reply_that_waits_does_not_stop_the_answer_to_another_ticket(page, desk):
    """A reply can wait up to 20 s for the assistant: meanwhile the counsellor answers
    another person, and each reply reaches its own ticket once."""
    first, second = open_ticket(desk), open_ticket(desk)
    waiting_text = f"I am checking your case ({uuid.uuid4().hex[:8]})."
    other_text = f"Good morning, how can I help? ({uuid.uuid4().hex[:8]})"
    sign_in(page, desk)
    held = []

    def hold(route):  # the desk does not answer yet
        held.append(route)

    page.route(f"**/api/tickets/{first['id']}/messages", hold)
    send = page.get_by_role("button", name="Send", exact=True)

    row(page, first).click()
    page.get_by_label("Your reply").fill(waiting_text)
    send.click()
    expect(send).to_be_disabled()
    row(page, second).click()
    expect(page.locator("#detail-heading")).to_contain_text(f"#{second['id']}")
    page.get_by_label("Your reply").fill(other_text)
    expect(send).to_be_enabled()
    send.click()
    mine = page.locator('#messages li[data-sender="counsellor"]').filter(has_text=other_text)
    expect(mine).to_have_count(1, timeout=LIVE)

    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("#announcer")).to_have_text(
        re.compile(rf"^Reply to ticket #{first['id']} (sent|kept; .*)\.$"), timeout=LIVE)
    row(page, first).click()
    expect(page.get_by_label("Your reply")).to_have_value("")
    expect(page.locator("#messages li[data-sender=\"counsellor\"]")).to_have_text(
        [re.compile(re.escape(waiting_text))], timeout=LIVE)
    for ticket, text in ((first, waiting_text), (second, other_text)):
        stored = requests.get(f"{desk.url}/api/tickets/{ticket['id']}", timeout=30,
                              headers={"Authorization": f"Bearer {desk.token}"}).json()
        assert [m["text"] for m in stored["messages"] if m["sender"] == "counsellor"] == [text]


def test_closing_hands_back_and_leaves_the_open_list(page, desk):
    ticket = open_ticket(desk)
    sign_in(page, desk)
    row(page, ticket).click()
    expect(page.locator("#detail-heading")).to_have_text(f"Ticket #{ticket['id']}")
    page.once("dialog", lambda dialog: dialog.accept())

    page.get_by_role("button", name="Close and hand back to the assistant").click()

    expect(row(page, ticket)).to_have_count(0, timeout=LIVE)
    expect(page.get_by_label("Your reply")).to_be_disabled()
    stored = requests.get(
        f"{desk.url}/api/tickets/{ticket['id']}",
        headers={"Authorization": f"Bearer {desk.token}"}, timeout=30,
    )
    assert (stored.status_code, stored.json()["status"]) == (200, "closed")


def test_my_languages_only_hides_other_languages_until_switched_off(page, desk):
    # No counsellor account in the tests speaks German: the assistant does not offer it.
    german = open_ticket(desk, language="de")
    arabic = open_ticket(desk, language="ar")
    sign_in(page, desk)
    expect(row(page, arabic)).to_be_visible()
    expect(row(page, german)).to_have_count(0)

    page.get_by_label("My languages only").uncheck()

    expect(row(page, german)).to_contain_text("de")


def test_a_wrong_password_shows_an_error_and_no_ticket_data(page, desk):
    ticket = open_ticket(desk, transcript=[
        {"sender": "person", "text": "secret-marker-" + uuid.uuid4().hex,
         "at": datetime.now(timezone.utc).isoformat()},
    ])
    page.goto(desk.url)
    page.get_by_label("Username").fill(desk.username)
    page.get_by_label("Password").fill(desk.password + "-wrong")

    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.locator("#desk-view")).to_be_hidden()
    expect(page.locator("#ticket-list [data-ticket-id]")).to_have_count(0)
    assert ticket["conversation_id"] not in page.content()
    assert "secret-marker-" not in page.content()


def test_requests_that_never_reached_the_desk_are_shown_and_counted(page, desk, assistant):
    """A dead letter in the action server's outbox: the console says so to every counsellor,
    the desk's status and the action server's metrics count it."""
    store = engine(f"sqlite:///{assistant.data_dir / 'outbox.db'}")
    key = f"console-dead-{uuid.uuid4().hex}"
    with store.begin() as db:  # those of earlier tests are set aside, and put back after
        earlier = [dict(row._mapping) for row in db.execute(dead_letters.select())]
        db.execute(dead_letters.delete())
        db.execute(dead_letters.insert().values(
            key=key, conversation_id=None, target="desk", method="POST", path="/api/tickets",
            body=None, reason="refused (400)", attempts=1, created_at=time.time(),
            died_at=time.time()))
    try:
        assert desk.api("GET", "/api/status").json() == {"outbox": {"pending": 0, "dead": 1}}
        metrics = requests.get(f"{assistant.action_url}/metrics", timeout=10,
                               headers={"Authorization": f"Bearer {ACTION_TOKEN}"})
        assert metrics.status_code == 200
        assert "\navrr_outbox_dead 1.0\n" in metrics.text
        assert "\navrr_outbox_pending 0.0\n" in metrics.text
        assert requests.get(f"{assistant.action_url}/metrics", timeout=10).status_code == 401

        sign_in(page, desk)
        expect(page.locator("#outbox-problem")).to_have_text(
            "1 request from the assistant (tickets, messages or deletions) could not be "
            "delivered to the desk. An operator must look at them: python -m actions.outbox")

        with store.begin() as db:
            db.execute(dead_letters.delete().where(dead_letters.c.key == key))
        assert desk.api("GET", "/api/status").json() == {"outbox": {"pending": 0, "dead": 0}}
        page.reload()
        expect(page.locator("#who")).to_have_text(desk.username)
        expect(page.locator("#outbox-problem")).to_be_hidden()
    finally:
        with store.begin() as db:
            db.execute(dead_letters.delete().where(dead_letters.c.key == key))
            if earlier:
                db.execute(dead_letters.insert(), earlier)
