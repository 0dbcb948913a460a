"""The counsellor desk as a team, in real browsers: who holds a ticket, the assistant's
messages in the reader's language, ready replies sent in the person's, first sign-in with
a temporary password, and the administrators' Team screen."""
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.sync_api import expect

from avrr.content import Content

ROOT = Path(__file__).resolve().parents[2]
CONTENT = Content(ROOT / "content")
LIVE = 10_000  # ms: the console polls every 3 s
VIEWPORT = {"width": 1280, "height": 800}
ENDED = "Your session has ended. Please sign in again."
# "I want to talk with a counsellor", from the Pashto training data of request_human.
PASHTO_REQUEST = "غواړم له مشاور سره خبرې وکړم"
PASHTO_QUESTION = "بېرته تګ څومره لګښت لري؟"


@pytest.fixture
def new_page(browser):
    """Pages of their own browser contexts: counsellors signed in at the same time."""
    contexts = []

    def open_page():
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        # Uncaught exceptions, and what the Content-Security-Policy refused.
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda line: refused(line.text, page.errors))
        return page

    yield open_page
    for context in contexts:
        context.close()


def refused(text, errors):
    if text.startswith("Refused"):
        errors.append(text)


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def open_ticket(desk, **fields):
    """A ticket as the assistant opens it after the person's consent."""
    fields.setdefault("transcript", [{"sender": "person", "text": "I need help", "at": now()}])
    return desk.create_ticket(conversation_id=f"team-{uuid.uuid4().hex}", **fields)


def add_account(desk, languages=("en",), role="counsellor"):
    """A counsellor added with the API token: (username, temporary password)."""
    username = f"c-{uuid.uuid4().hex[:10]}"
    temporary = f"temporary-{uuid.uuid4().hex[:10]}"
    reply = desk.api("POST", "/api/counsellors", json={
        "username": username, "password": temporary, "languages": list(languages), "role": role})
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"username": username, "languages": list(languages), "role": role,
                            "must_change_password": True, "disabled": False}
    return username, temporary


def row(page, ticket):
    return page.locator(f'#ticket-list [data-ticket-id="{ticket["id"]}"]')


def ticket_messages(desk, ticket):
    reply = desk.api("GET", f"/api/tickets/{ticket['id']}")
    assert reply.status_code == 200, reply.text
    return reply.json()["messages"]


def sign_in(page, desk, username=None, password=None):
    page.goto(desk.url)
    page.get_by_label("Username").fill(username or desk.username)
    page.get_by_label("Password", exact=True).fill(password or desk.password)
    page.get_by_role("button", name="Sign in").click()


def expect_desk(page, username):
    expect(page.locator("#who")).to_have_text(username)
    expect(page.locator("#ticket-list")).to_have_attribute("aria-busy", "false")


def sign_in_first_time(page, desk, username, temporary):
    """Sign in with a temporary password and choose one's own: the new password."""
    sign_in(page, desk, username, temporary)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.locator("#password-who")).to_have_text(username)
    expect(page.locator("#desk-view")).to_be_hidden()
    chosen = f"chosen-{uuid.uuid4().hex[:12]}"
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label("New password", exact=True).fill(chosen)
    page.get_by_label("Repeat the new password").fill(chosen)
    page.get_by_role("button", name="Save the new password").click()
    expect_desk(page, username)
    return chosen


def test_two_counsellors_one_ticket_only_its_holder_answers(new_page, desk):
    first, first_temporary = add_account(desk)
    second, second_temporary = add_account(desk)
    holder, other = new_page(), new_page()
    sign_in_first_time(holder, desk, first, first_temporary)
    sign_in_first_time(other, desk, second, second_temporary)
    ticket = open_ticket(desk, urgency="normal")

    row(holder, ticket).click()
    expect(holder.locator("#detail-heading")).to_have_text(f"Ticket #{ticket['id']}")
    expect(holder.locator("#holder")).to_have_text(
        "Unclaimed. Claim it (key C) before answering; a reply also claims it.")
    holder.keyboard.press("c")  # the focus is on the ticket's row, not in a text field

    expect(holder.locator("#holder")).to_have_text("Held by you.")
    expect(row(holder, ticket)).to_contain_text("Held by you")
    expect(holder.locator("#ticket-list [data-ticket-id]").first).to_have_attribute(
        "data-ticket-id", str(ticket["id"]))  # the tickets I hold come first
    expect(holder.locator("#history li")).to_have_count(1)
    expect(holder.locator("#history li .actor")).to_have_text(first)
    expect(holder.locator("#history li")).to_contain_text(f"{first} claimed the ticket")
    assert desk.api("GET", f"/api/tickets/{ticket['id']}").json()["assignee"] == first

    expect(row(other, ticket)).to_contain_text(f"Held by {first}", timeout=LIVE)
    row(other, ticket).click()
    expect(other.locator("#holder")).to_have_text(
        f"Held by {first}: only they can answer or close it.")
    other.get_by_label("Your reply").fill("Hello, I am the other counsellor.")
    other.get_by_label("Your reply").press("Control+Enter")

    expect(other.locator("#reply-error")).to_have_text(
        f"Not sent: {first} holds this ticket. Your text is kept.")
    expect(other.locator("#reply-error")).to_have_attribute("role", "alert")
    expect(other.get_by_label("Your reply")).to_have_value("Hello, I am the other counsellor.")
    assert [m for m in ticket_messages(desk, ticket) if m["sender"] == "counsellor"] == []

    other.locator("#messages").focus()
    other.keyboard.press("c")
    expect(other.locator("#ticket-error")).to_have_text(f"Not claimed: {first} holds this ticket.")

    holder.get_by_label("Your reply").fill("Hello, I am your counsellor.")
    holder.get_by_role("button", name="Send", exact=True).click()

    mine = holder.locator('#messages li[data-sender="counsellor"]')
    expect(mine).to_have_count(1, timeout=LIVE)
    expect(mine.locator(".text")).to_have_text("Hello, I am your counsellor.")
    expect(mine.locator(".author")).to_have_text(f" · {first}")
    expect(holder.get_by_label("Your reply")).to_have_value("")
    expect(holder.locator("#history li").last).to_contain_text(f"{first} replied (free text)")
    answers = [(m["author"], m["text"]) for m in ticket_messages(desk, ticket)
               if m["sender"] == "counsellor"]
    assert answers == [(first, "Hello, I am your counsellor.")]
    expect(other.locator('#messages li[data-sender="counsellor"] .text')).to_have_text(
        ["Hello, I am your counsellor."], timeout=LIVE)
    assert holder.errors == [] and other.errors == []


def test_the_assistants_pashto_is_glossed_and_the_persons_messages_say_what_was_understood(
        new_page, desk):
    offer = CONTENT.replies("handoff_offer", "ps")[0].text
    ticket = open_ticket(desk, language="ps", topic="ask_cost", transcript=[
        {"sender": "person", "text": PASHTO_QUESTION, "at": now(),
         "intent": "ask_cost", "confidence": 0.87},
        {"sender": "assistant", "text": offer, "at": now(),
         "content": {"key": "handoff_offer", "part": 0, "values": {}}},
    ])
    page = new_page()
    sign_in(page, desk)
    expect_desk(page, desk.username)
    expect(page.get_by_label("Translations in")).to_have_value("en")
    expect(row(page, ticket)).to_contain_text("Cost of return")
    expect(row(page, ticket)).to_contain_text("Unclaimed")

    row(page, ticket).click()

    assistant = page.locator('#messages li[data-sender="assistant"]')
    expect(assistant.locator(".text")).to_have_text(offer)
    expect(assistant.locator(".gloss-tag")).to_have_text("EN")
    expect(assistant.locator(".gloss-text")).to_have_text(
        CONTENT.replies("handoff_offer", "en")[0].text)
    person = page.locator('#messages li[data-sender="person"]')
    expect(person.locator(".text")).to_have_text(PASHTO_QUESTION)
    expect(person.locator(".understood")).to_have_text("Understood as: Cost of return (87%)")
    expect(person.locator(".no-gloss")).to_have_text(
        "Written by the person — no translation available")
    expect(person.locator(".gloss")).to_have_count(0)
    expect(page.locator("#meta")).to_contain_text("Cost of return")

    page.get_by_label("Translations in").select_option("hu")

    expect(assistant.locator(".gloss-tag")).to_have_text("HU")
    expect(assistant.locator(".gloss-text")).to_have_text(
        CONTENT.replies("handoff_offer", "hu")[0].text)
    expect(person.locator(".understood")).to_have_text(
        f"Understood as: {CONTENT.topic_name('ask_cost', 'hu')} (87%)")
    expect(row(page, ticket)).to_contain_text(CONTENT.topic_name("ask_cost", "hu"))

    page.reload()  # the choice is remembered in this browser
    expect_desk(page, desk.username)
    expect(page.get_by_label("Translations in")).to_have_value("hu")
    row(page, ticket).click()
    expect(assistant.locator(".gloss-text")).to_have_text(
        CONTENT.replies("handoff_offer", "hu")[0].text)
    assert page.errors == []


def test_a_ready_reply_chosen_in_english_reaches_the_web_chat_in_pashto(new_page, desk, web_chat):
    chat = web_chat()
    offer = chat.say_and_wait(PASHTO_REQUEST)
    assert offer[-1]["text"] == CONTENT.replies("handoff_offer", "ps")[0].text
    assert [q["payload"] for q in offer[-1]["quick_replies"]] == ["/affirm", "/deny"]
    chat.say_and_wait("/affirm")
    ticket = desk.open_ticket_of(chat.session_id)
    assert (ticket["language"], ticket["channel"]) == ("ps", "socketio")
    english = CONTENT.ready_reply("received", "en", {}).text
    pashto = CONTENT.ready_reply("received", "ps", {}).text
    page = new_page()
    sign_in(page, desk)
    expect_desk(page, desk.username)

    row(page, ticket).click()
    expect(page.locator("#detail-heading")).to_have_text(f"Ticket #{ticket['id']}")
    page.get_by_label("Ready reply").select_option(label=english)

    expect(page.get_by_label("Ready reply")).to_have_value("received")
    expect(page.locator("#ready-preview")).to_have_text(english)
    expect(page.locator("#ready-note")).to_have_text("Sent in Pashto, the person's language.")
    expect(page.get_by_label("Your reply")).to_be_hidden()
    page.get_by_role("button", name="Send", exact=True).click()

    [received] = chat.replies(1)
    assert received["text"] == pashto
    sent = page.locator('#messages li[data-sender="counsellor"]')
    expect(sent.locator(".text")).to_have_text(pashto, timeout=LIVE)
    expect(sent.locator(".gloss-text")).to_have_text(english)
    expect(sent.locator(".delivery")).to_have_text("delivered", timeout=LIVE)
    expect(page.get_by_label("Ready reply")).to_have_value("")
    [stored] = [m for m in ticket_messages(desk, ticket) if m["sender"] == "counsellor"]
    assert (stored["text"], stored["content"], stored["author"], stored["delivered"]) == (
        pashto, {"key": "ready_replies.received", "part": 0, "values": {}}, desk.username, True)
    assert desk.api("POST", f"/api/tickets/{ticket['id']}/close").status_code == 200
    assert page.errors == []


def test_a_ready_reply_with_a_date_and_a_time_is_filled_in_before_it_is_sent(new_page, desk):
    ticket = open_ticket(desk, language="ar")
    page = new_page()
    sign_in(page, desk)
    expect_desk(page, desk.username)
    row(page, ticket).click()
    page.get_by_label("Ready reply").select_option("call_at")
    expect(page.locator("#ready-preview")).to_have_text(
        "A counsellor will call you on [date] at [time] (Hungarian time).")

    page.get_by_label("Date", exact=True).fill("2031-03-14")
    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.locator("#reply-error")).to_have_text("Fill in: time.")
    assert [m for m in ticket_messages(desk, ticket) if m["sender"] == "counsellor"] == []
    page.get_by_label("Time", exact=True).fill("14:30")
    expect(page.locator("#ready-preview")).to_have_text(
        "A counsellor will call you on 2031-03-14 at 14:30 (Hungarian time).")
    page.get_by_role("button", name="Send", exact=True).click()

    sent = page.locator('#messages li[data-sender="counsellor"]')
    arabic = CONTENT.ready_reply("call_at", "ar", {"date": "2031-03-14", "time": "14:30"}).text
    expect(sent.locator(".text")).to_have_text(arabic, timeout=LIVE)
    expect(sent.locator(".gloss-text")).to_have_text(
        "A counsellor will call you on 2031-03-14 at 14:30 (Hungarian time).")
    [stored] = [m for m in ticket_messages(desk, ticket) if m["sender"] == "counsellor"]
    assert stored["content"] == {"key": "ready_replies.call_at", "part": 0,
                                 "values": {"date": "2031-03-14", "time": "14:30"}}
    assert page.errors == []


def test_my_languages_only_never_hides_an_urgent_ticket_and_says_what_it_hides(new_page, desk):
    username, temporary = add_account(desk, languages=("ar",))
    page = new_page()
    sign_in_first_time(page, desk, username, temporary)
    urgent = open_ticket(desk, language="ps", urgency="urgent")
    calm = open_ticket(desk, language="ps")

    expect(row(page, urgent)).to_be_visible(timeout=LIVE)
    expect(row(page, calm)).to_have_count(0)
    hidden = desk.api("GET", "/api/tickets?status=open").json()
    others = sum(1 for t in hidden if t["language"] != "ar" and t["urgency"] != "urgent")
    expect(page.locator("#others-count")).to_have_text(
        f"{others} more open ticket{' is' if others == 1 else 's are'} in "
        f"{'a language' if others == 1 else 'languages'} not yours.")

    page.get_by_role("button", name="Show all languages").click()

    expect(row(page, calm)).to_be_visible()
    expect(page.locator("#others-hidden")).to_be_hidden()
    expect(page.locator("#mine-only")).not_to_be_checked()
    assert page.errors == []


def test_an_administrator_assigns_a_ticket_and_its_new_holder_sees_it_first(new_page, desk):
    username, temporary = add_account(desk, languages=("en", "fr"))
    admin, counsellor = new_page(), new_page()
    sign_in_first_time(counsellor, desk, username, temporary)
    ticket = open_ticket(desk, language="fr")
    sign_in(admin, desk)
    expect_desk(admin, desk.username)
    row(admin, ticket).click()

    admin.get_by_label("Assign to…").select_option(username)
    admin.get_by_role("button", name="Assign", exact=True).click()

    expect(admin.locator("#holder")).to_have_text(
        f"Held by {username}: only they can answer or close it.")
    expect(admin.locator("#history li").last).to_contain_text(
        f"{desk.username} assigned it to {username}")
    first = counsellor.locator("#ticket-list [data-ticket-id]").first
    expect(first).to_have_attribute("data-ticket-id", str(ticket["id"]), timeout=LIVE)
    expect(first).to_contain_text("Held by you")

    admin.get_by_role("button", name="Release").click()

    expect(admin.locator("#holder")).to_have_text(
        "Unclaimed. Claim it (key C) before answering; a reply also claims it.")
    expect(row(counsellor, ticket)).to_contain_text("Unclaimed", timeout=LIVE)
    assert desk.api("GET", f"/api/tickets/{ticket['id']}").json()["assignee"] is None
    assert admin.errors == [] and counsellor.errors == []


def test_the_team_screen_adds_a_counsellor_who_works_until_disabled(new_page, desk):
    username = f"t-{uuid.uuid4().hex[:10]}"
    temporary = f"temporary-{uuid.uuid4().hex[:10]}"
    admin = new_page()
    sign_in(admin, desk)
    expect_desk(admin, desk.username)
    admin.get_by_role("button", name="Team", exact=True).click()
    team = admin.locator("#team-screen")
    expect(team.get_by_role("heading", name="Team", exact=True)).to_be_focused()

    adding = team.locator("#add-form")
    adding.get_by_label("Username").fill(username)
    adding.get_by_label("Temporary password", exact=True).fill(temporary)
    adding.get_by_label("English (en)").check()
    adding.get_by_label("Persian (fa)").check()
    adding.get_by_label("Role", exact=True).select_option("counsellor")
    team.get_by_role("button", name="Add counsellor").click()

    expect(team.locator("#team-status")).to_have_text(
        f"{username} added (Counsellor). Give them the temporary password.")
    account = team.locator(f'#account-rows tr[data-username="{username}"]')
    expect(account.locator(".account-languages")).to_have_text("en, fa")
    expect(account.locator(".role")).to_have_text("Counsellor")
    expect(account.locator(".account-status")).to_have_text("Active, temporary password")
    expect(team.locator("#account-history li").first).to_contain_text(
        f"{desk.username} added {username}: counsellor, en,fa")
    me = team.locator(f'#account-rows tr[data-username="{desk.username}"]')
    expect(me.locator("th")).to_have_text(f"{desk.username} (you)")
    expect(me.get_by_role("button", name=f"Disable {desk.username}")).to_have_count(0)
    listed = {a["username"]: a for a in desk.api("GET", "/api/counsellors").json()}
    assert listed[username] == {"username": username, "languages": ["en", "fa"],
                                "role": "counsellor", "must_change_password": True,
                                "disabled": False}

    worker = new_page()
    sign_in(worker, desk, username, temporary)
    expect(worker.get_by_role("heading", name="Choose a new password")).to_be_visible()
    refused = worker.context.request.get(f"{desk.url}/api/tickets?status=open")
    assert (refused.status, refused.json()["must_change_password"]) == (403, True)
    worker.get_by_label("Current password").fill(temporary)
    worker.get_by_label("New password", exact=True).fill("short")
    worker.get_by_label("Repeat the new password").fill("short")
    worker.get_by_role("button", name="Save the new password").click()
    expect(worker.locator("#password-error")).to_have_text(
        "The new password needs at least 10 characters.")
    chosen = f"chosen-{uuid.uuid4().hex[:12]}"
    worker.get_by_label("New password", exact=True).fill(chosen)
    worker.get_by_label("Repeat the new password").fill(chosen)
    worker.get_by_role("button", name="Save the new password").click()
    expect_desk(worker, username)
    expect(worker.locator("#screens")).to_be_hidden()  # no Team screen for a counsellor

    ticket = open_ticket(desk, language="fa")
    row(worker, ticket).click()
    worker.keyboard.press("c")
    expect(worker.locator("#holder")).to_have_text("Held by you.")
    worker.get_by_label("Your reply").fill("Salam, I am here.")
    worker.get_by_label("Your reply").press("Control+Enter")
    expect(worker.locator('#messages li[data-sender="counsellor"] .text')).to_have_text(
        ["Salam, I am here."], timeout=LIVE)

    admin.get_by_role("button", name="Tickets", exact=True).click()
    admin.get_by_role("button", name="Team", exact=True).click()
    expect(account.locator(".account-status")).to_have_text("Active")
    admin.once("dialog", lambda dialog: dialog.accept())
    account.get_by_role("button", name=f"Disable {username}").click()

    expect(team.locator("#team-status")).to_have_text(f"{username} is disabled.")
    expect(account.locator(".account-status")).to_have_text("Disabled")
    expect(team.locator("#account-history li").first).to_contain_text(
        f"{desk.username} disabled {username}")
    stored = desk.api("GET", f"/api/tickets/{ticket['id']}").json()
    assert stored["assignee"] is None  # a disabled counsellor's tickets go back to the queue
    assert stored["history"][-1]["action"] == "released"
    assert stored["history"][-1]["detail"] == f"{username} was disabled"

    # Their next request (the key C on their ticket, or the list's next refresh, whichever
    # comes first) finds the session gone.
    worker.locator("#messages").focus()
    worker.keyboard.press("c")
    expect(worker.locator("#login-view")).to_be_visible(timeout=LIVE)
    expect(worker.locator("#login-error")).to_have_text(ENDED)
    expect(worker.locator("#desk-view")).to_be_hidden()
    expect(worker.locator("#ticket-list [data-ticket-id]")).to_have_count(0)
    sign_in(worker, desk, username, chosen)
    expect(worker.locator("#login-error")).to_have_text("Wrong username or password.")

    account.get_by_role("button", name=f"Enable {username}").click()
    expect(account.locator(".account-status")).to_have_text("Active")
    account.get_by_role("button", name=f"Reset password {username}").click()
    fresh = f"temporary-{uuid.uuid4().hex[:10]}"
    team.get_by_label("New temporary password", exact=True).fill(fresh)
    team.get_by_role("button", name="Set the temporary password").click()
    expect(team.locator("#team-status")).to_have_text(
        f"{username} has a new temporary password and must change it at the next sign-in.")
    expect(account.locator(".account-status")).to_have_text("Active, temporary password")
    sign_in_first_time(worker, desk, username, fresh)

    account.get_by_role("button", name=f"Make administrator {username}").click()
    expect(account.locator(".role")).to_have_text("Administrator")
    assert {a["username"]: a["role"] for a in desk.api("GET", "/api/counsellors").json()}[
        username] == "admin"
    account.get_by_role("button", name=f"Make counsellor {username}").click()
    expect(account.locator(".role")).to_have_text("Counsellor")
    assert admin.errors == [] and worker.errors == []


def test_a_counsellor_changes_their_own_password_when_they_choose(new_page, desk):
    username, temporary = add_account(desk)
    page = new_page()
    chosen = sign_in_first_time(page, desk, username, temporary)

    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_role("button", name="Back to the desk").click()
    expect_desk(page, username)
    page.get_by_role("button", name="Change password").click()
    again = f"again-{uuid.uuid4().hex[:12]}"
    page.get_by_label("Current password").fill(chosen)
    page.get_by_label("New password", exact=True).fill(again)
    page.get_by_label("Repeat the new password").fill(again)
    page.get_by_role("button", name="Save the new password").click()
    expect_desk(page, username)

    other = new_page()
    sign_in(other, desk, username, chosen)
    expect(other.locator("#login-error")).not_to_be_empty()
    sign_in(other, desk, username, again)
    expect_desk(other, username)
    assert page.errors == [] and other.errors == []


def test_an_administrator_changes_a_colleagues_languages_and_role_in_the_team_screen(
    new_page, desk
):
    username, _ = add_account(desk, languages=("en",))
    admin = new_page()
    sign_in(admin, desk)
    expect_desk(admin, desk.username)
    admin.get_by_role("button", name="Team", exact=True).click()
    account = admin.locator(f'#account-rows tr[data-username="{username}"]')
    account.get_by_role("button", name="Languages and role").click()
    expect(admin.locator("#edit-heading")).to_have_text(f"Languages and role of {username}")
    expect(admin.locator("#edit-language-en")).to_be_checked()
    admin.locator("#edit-language-ps").check()
    admin.locator("#edit-language-fa").check()
    admin.locator("#edit-role").select_option("admin")
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(account.locator(".account-languages")).to_have_text("en, fa, ps")
    expect(account.locator(".role")).to_have_text("Administrator")
    [stored] = [a for a in desk.api("GET", "/api/counsellors").json() if a["username"] == username]
    assert (stored["languages"], stored["role"]) == (["en", "fa", "ps"], "admin")
    history = desk.api("GET", "/api/counsellors/history").json()
    assert history[0]["action"] == "account changed" and username in history[0]["detail"]
    assert admin.errors == []


def test_a_reload_before_choosing_a_password_asks_to_sign_in_again(new_page, desk):
    username, temporary = add_account(desk)
    page = new_page()
    sign_in(page, desk, username, temporary)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.reload()
    expect(page.locator("#login-error")).to_have_text("Sign in again to choose your new password.")
    sign_in(page, desk, username, temporary)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    assert page.errors == []
