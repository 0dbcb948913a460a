"""The programme's statistics page in a real browser: conversations through the real REST
channel counted and shown as GET /api/stats gives them, the charts drawn by the desk, the
CSV download, labelling the questions the assistant did not understand, and who may see
what (administrators everything, viewers the statistics only, counsellors nothing)."""
import csv
import io
import math
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import expect

LIVE = 20_000  # ms: the charts are drawn on the server (matplotlib), the first one slowly
VIEWPORT = {"width": 1280, "height": 800}
NONE = "—"
# A greeting and a question about the cost, in three languages (as the NLU data has them).
SCRIPT = {
    "en": ["Hello, I would like to know about going home with IOM",
           "How much does the return cost for me?"],
    "hu": ["Jó napot, szeretnék hazatérni a hazámba az IOM segítségével",
           "Mennyibe kerül nekem a hazatérés?"],
    "ar": ["مرحبا، أريد أن أعرف عن العودة الطوعية إلى بلدي",
           "كم تكلفة العودة إلى بلدي؟"],
}
# In Arabic-Indic digits, as an Arabic keyboard types them: the model sees no number in
# them, so the message stays not understood (a phone number in ASCII digits is now read
# as a request to be called back); the inbox redacts the digits of every script.
PHONE = "٠٦ ٣٠ ١٢٣ ٤٥٦٧"
# Any part of the number left after redaction is a leak, not only the whole of it.
PHONE_TAIL = PHONE[-8:]
# Not understood (two topics, neither sure enough: Rasa's nlu_fallback), in English. The
# classifier takes most gibberish for out_of_scope, which is understood: no question then.
NOT_UNDERSTOOD = f"flimzy blorf {PHONE}"
REDACTED = "flimzy blorf [phone]"
HEADER = "day,channel,language,metric,value"
CHARTS = ("conversations", "fallback", "topics", "handoffs")
CHARTS_LOADED = """() => {
    const images = [...document.querySelectorAll('#charts img')];
    return images.length === 4 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""


def counted(desk) -> dict:
    """The statistics of the default period, once the desk has counted everything Rasa stored."""
    refreshed = desk.api("POST", "/api/stats/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert isinstance(refreshed.json()["events_read"], int)
    return stats_of(desk)


def stats_of(desk, **period) -> dict:
    reply = desk.api("GET", "/api/stats", params=period)
    assert reply.status_code == 200, reply.text
    return reply.json()


def question_ids(desk) -> set:
    reply = desk.api("GET", "/api/unanswered")
    assert reply.status_code == 200, reply.text
    return {question["id"] for question in reply.json()}


def new_questions(desk, known: set, **query) -> list:
    """The questions in the inbox that were not there before (the tests run one by one)."""
    reply = desk.api("GET", "/api/unanswered", params=query)
    assert reply.status_code == 200, reply.text
    return [question for question in reply.json() if question["id"] not in known]


def by(stats: dict, language: str, metric: str) -> int:
    return stats["by_language"].get(language, {}).get(metric, 0)


# The numbers as the page writes them.

def count(value) -> str:
    return f"{value or 0:,}"


def one_decimal(value: float) -> str:
    return f"{math.floor(value * 10 + 0.5) / 10:.1f}"


def share(part, whole) -> str:
    return f"{one_decimal(100 * (part or 0) / whole)}%" if whole else NONE


def minutes(seconds) -> str:
    return NONE if seconds is None else f"{one_decimal(seconds / 60)} min"


def summary_of(stats: dict) -> dict:
    """What each number of the summary should read."""
    totals, wait, outcomes = stats["totals"], stats["wait"], stats["eligibility"]
    shown = {metric: count(totals.get(metric)) for metric in (
        "conversations", "messages", "not_understood", "clarifications", "second_misses",
        "safety_messages", "handoff_offers", "consents", "tickets", "tickets:urgent",
        "tickets:legal", "tickets:normal", "outside_office_hours", "eligibility_started",
        "eligibility_finished", "deletion_requests")}
    shown.update({f"eligibility:{key}": count(outcomes.get(key))
                  for key in ("likely", "fear", "counsellor_first")})
    shown["not_understood_share"] = share(totals.get("not_understood"), totals.get("messages"))
    shown["wait_median"] = minutes(wait["median_s"])
    shown["wait_p90"] = minutes(wait["p90_s"])
    shown["wait_count"] = count(wait["count"])
    return shown


def expect_numbers(page, stats: dict) -> None:
    """The page shows what GET /api/stats gave for its period."""
    expect(page.locator("#summary-section")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_label("From")).to_have_value(stats["from"])
    expect(page.get_by_label("To", exact=True)).to_have_value(stats["to"])
    expect(page.locator("#period-label")).to_have_text(f"{stats['from']} to {stats['to']}")
    if "smallest_count_shown" not in stats:  # an administrator's: every count
        expect(page.locator("#small-counts")).to_be_hidden()
    for metric, text in summary_of(stats).items():
        expect(page.locator(f'#summary [data-metric="{metric}"]')).to_have_text(text)
    for language, counts in stats["by_language"].items():
        row = page.locator(f'#language-rows tr[data-language="{language}"]')
        expect(row.locator('[data-metric="conversations"]')).to_have_text(
            count(counts.get("conversations")))
        expect(row.locator('[data-metric="messages"]')).to_have_text(count(counts.get("messages")))
        expect(row.locator('[data-metric="not_understood"]')).to_have_text(
            f"{count(counts.get('not_understood'))} "
            f"({share(counts.get('not_understood'), counts.get('messages'))})")
        waited = stats["wait"]["by_language"].get(language)
        expect(row.locator('[data-metric="wait_median"]')).to_have_text(
            minutes(waited["median_s"] if waited else None))
    if not stats["by_language"]:  # nothing (a viewer's: nothing of 5 or more)
        expect(page.locator("#languages-empty")).to_be_visible()
        return
    everything = page.locator('#language-rows tr[data-language="all"]')
    expect(everything.locator('[data-metric="messages"]')).to_have_text(
        count(stats["totals"].get("messages")))


@pytest.fixture
def new_page(browser):
    """Pages of their own browser contexts (their own session cookies)."""
    contexts = []

    def open_page():
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        # Uncaught exceptions, and what the Content-Security-Policy refused.
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda line: line.text.startswith("Refused")
                and page.errors.append(line.text))
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, desk, username=None, password=None):
    page.goto(desk.url)
    page.get_by_label("Username").fill(username or desk.username)
    page.get_by_label("Password", exact=True).fill(password or desk.password)
    page.get_by_role("button", name="Sign in").click()


def choose_password(page, temporary):
    """The console's first sign-in: the temporary password exchanged for one's own."""
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    chosen = f"chosen-{uuid.uuid4().hex[:12]}"
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label("New password", exact=True).fill(chosen)
    page.get_by_label("Repeat the new password").fill(chosen)
    page.get_by_role("button", name="Save the new password").click()
    return chosen


def add_account(desk, role):
    """An account added with the API token: (username, temporary password)."""
    username = f"s-{uuid.uuid4().hex[:10]}"
    temporary = f"temporary-{uuid.uuid4().hex[:10]}"
    reply = desk.api("POST", "/api/counsellors", json={
        "username": username, "password": temporary, "languages": ["en"], "role": role})
    assert reply.status_code == 201, reply.text
    assert reply.json()["role"] == role
    return username, temporary


def open_statistics_as_admin(page, desk):
    sign_in(page, desk)
    expect(page.locator("#who")).to_have_text(desk.username)
    page.get_by_role("link", name="Statistics").click()
    expect(page).to_have_url(f"{desk.url}/stats")
    expect(page.locator("#who")).to_have_text(desk.username)
    expect(page.locator("#summary-section")).to_have_attribute("aria-busy", "false")


@pytest.fixture(scope="module")
def conversations(assistant, desk):
    """Three conversations through the REST channel, one message not understood (with a
    phone number) in the English one, counted: what they added to the statistics."""
    before = counted(desk)
    known = question_ids(desk)
    senders = {language: f"stats-{language}-{uuid.uuid4().hex[:10]}" for language in SCRIPT}
    for language, messages in SCRIPT.items():
        for text in messages:
            assert assistant.say(senders[language], text), text
    assert assistant.say(senders["en"], NOT_UNDERSTOOD)
    after = counted(desk)
    heard = {}
    for language, sender in senders.items():
        heard[language] = [e for e in assistant.tracker(sender)["events"] if e["event"] == "user"]
        detected = {e["parse_data"]["language_detection"]["language"] for e in heard[language]}
        assert detected <= {language, None}, (language, detected)
    intents = [e["parse_data"]["intent"]["name"] for e in heard["en"]]
    assert intents[-1] == "nlu_fallback" and "nlu_fallback" not in intents[:-1], intents
    [question] = new_questions(desk, known)
    return {"before": before, "after": after, "senders": senders, "question": question,
            "heard": heard}


def test_conversations_in_three_languages_are_counted_and_shown_with_charts_and_csv(
        new_page, desk, conversations):
    before, after, heard = conversations["before"], conversations["after"], conversations["heard"]
    for language in SCRIPT:
        assert by(after, language, "conversations") - by(before, language, "conversations") == 1
        assert by(after, language, "messages") - by(before, language, "messages") == len(
            heard[language])
        fallbacks = sum(e["parse_data"]["intent"]["name"] == "nlu_fallback"
                        for e in heard[language])
        assert by(after, language, "not_understood") - by(
            before, language, "not_understood") == fallbacks
        asked = Counter(e["parse_data"]["intent"]["name"] for e in heard[language])
        grown = Counter(after["topics"].get(language, {})) - Counter(
            before["topics"].get(language, {}))
        assert grown == asked, language
    assert sum(len(events) for events in heard.values()) == 7
    assert after["totals"]["conversations"] - before["totals"].get("conversations", 0) == 3
    assert after["totals"]["messages"] - before["totals"].get("messages", 0) == 7
    assert after["totals"]["not_understood"] - before["totals"].get("not_understood", 0) == 1
    assert after["by_channel"]["rest"]["messages"] - before["by_channel"].get(
        "rest", {}).get("messages", 0) == 7

    page = new_page()
    open_statistics_as_admin(page, desk)
    stats = stats_of(desk)  # what the API gives for the page's period, the last 30 days
    expect_numbers(page, stats)
    for language in SCRIPT:
        expect(page.locator(f'#language-rows tr[data-language="{language}"] th')).to_contain_text(
            f"({language})")

    # The four charts, drawn by the desk for the same period, load in Chromium.
    images = page.locator("#charts img")
    expect(images).to_have_count(4)
    for name, image in zip(CHARTS, images.all(), strict=True):
        expect(image).to_have_attribute("data-chart", name)
        expect(image).to_have_attribute(
            "src", f"/api/stats/charts/{name}.svg?from={stats['from']}&to={stats['to']}&gloss=en")
        expect(image).to_have_attribute("alt", re.compile(
            rf"chart .*from {stats['from']} to {stats['to']}"))
    expect(images.first).to_have_attribute("alt", re.compile(
        rf"In all: {count(stats['totals']['conversations'])};"))
    page.wait_for_function(CHARTS_LOADED, timeout=LIVE)

    # The CSV of the period.
    link = page.get_by_role("link", name="Download CSV")
    expect(link).to_have_attribute("href", f"/api/stats.csv?from={stats['from']}&to={stats['to']}")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == f"avrr-stats-{stats['from']}-{stats['to']}.csv"
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    for language in SCRIPT:
        assert sum(int(row["value"]) for row in rows if row["language"] == language
                   and row["metric"] == "conversations") == by(stats, language, "conversations")

    # Another period: one day, in the address too, as the API gives it.
    today = stats["to"]
    page.get_by_label("From").fill(today)
    page.get_by_label("To", exact=True).fill(today)
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{desk.url}/stats?from={today}&to={today}")
    expect(page.locator("#period-label")).to_have_text(f"{today} to {today}")
    expect_numbers(page, stats_of(desk, **{"from": today, "to": today}))
    expect(link).to_have_attribute("href", f"/api/stats.csv?from={today}&to={today}")
    page.wait_for_function(CHARTS_LOADED, timeout=LIVE)
    page.reload()  # the period is kept
    expect(page.get_by_label("From")).to_have_value(today)

    page.get_by_label("From").fill("2031-01-02")
    page.get_by_label("To", exact=True).fill("2031-01-01")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#problem")).to_have_text("The first day comes after the last one.")
    assert page.errors == []


def test_the_question_not_understood_is_labelled_in_the_inbox_without_its_phone_number(
        new_page, assistant, desk, conversations):
    question = conversations["question"]
    assert (question["text"], question["language"], question["channel"], question["label"]) == (
        REDACTED, "en", "rest", None)
    inbox = desk.api("GET", "/api/unanswered", params={"language": "en", "labelled": "false"})
    assert inbox.status_code == 200, inbox.text
    assert question in inbox.json()
    assert PHONE_TAIL not in str(inbox.json()) and conversations["senders"]["en"] not in inbox.text

    page = new_page()
    open_statistics_as_admin(page, desk)
    section = page.locator("#unanswered-section")
    expect(section.get_by_role("heading", name=re.compile("Unanswered questions"))).to_be_visible()
    expect(section.locator("#questions")).to_have_attribute("aria-busy", "false")
    section.get_by_label("Language").select_option("en")
    expect(section.locator("#questions")).to_have_attribute("aria-busy", "false")
    metas = section.locator("#questions li .question-meta").all_text_contents()
    assert metas and all(" · English · " in meta for meta in metas), metas
    item = section.locator(f'#questions li[data-question-id="{question["id"]}"]')
    expect(item.locator(".question-text")).to_have_text(REDACTED)
    expect(item.locator(".question-meta")).to_have_text(f"{question['day']} · English · rest")
    assert PHONE_TAIL not in page.content()
    chooser = item.get_by_label("Intent")
    # The intents the desk accepts, as keys; not_understood is no label.
    expect(chooser.locator('option[value="out_of_scope"]')).to_have_count(1)
    expect(chooser.locator('option[value="ask_cost"]')).to_have_count(1)
    expect(chooser.locator('option[value="not_understood"]')).to_have_count(0)

    item.get_by_role("button", name="Label").click()
    expect(item.locator(".error")).to_have_text("Choose the intent it meant first.")
    chooser.select_option("out_of_scope")
    item.get_by_role("button", name="Label").click()

    expect(item).to_have_count(0)
    expect(page.locator("#status")).to_have_text("Labelled as out_of_scope.")
    labelled = desk.api("GET", "/api/unanswered", params={"labelled": "true"}).json()
    [done] = [q for q in labelled if q["id"] == question["id"]]
    assert (done["text"], done["label"], done["labelled_by"]) == (
        REDACTED, "out_of_scope", desk.username)
    assert done["labelled_at"]
    waiting = desk.api("GET", "/api/unanswered", params={"labelled": "false"}).json()
    assert question["id"] not in {q["id"] for q in waiting}
    page.reload()
    expect(page.locator("#questions")).to_have_attribute("aria-busy", "false")
    expect(page.locator(f'#questions li[data-question-id="{question["id"]}"]')).to_have_count(0)

    # "Count now": a new question is in the list without waiting for the desk's next run.
    known = question_ids(desk)
    assert assistant.say(f"stats-en-{uuid.uuid4().hex[:10]}", NOT_UNDERSTOOD)
    page.get_by_role("button", name="Count now").click()
    expect(page.locator("#status")).to_have_text(re.compile(
        r"^(Counted [\d,]+ new events? from the assistant\.|Up to date: nothing new to count\.)$"))
    [later] = new_questions(desk, known)
    assert later["text"] == REDACTED
    expect(page.locator(f'#questions li[data-question-id="{later["id"]}"] .question-text')
           ).to_have_text(REDACTED)
    expect_numbers(page, stats_of(desk))
    assert page.errors == []


def test_a_viewer_sees_the_statistics_only_and_a_counsellor_none(new_page, desk):
    nobody = new_page()
    nobody.goto(f"{desk.url}/stats")
    expect(nobody.locator("#gate-message")).to_have_text("You are not signed in.")
    expect(nobody.get_by_role("link", name="Sign in on the counsellor desk")).to_have_attribute(
        "href", "/")
    expect(nobody.locator("#stats-view")).to_be_hidden()

    # The Team screen offers the role.
    admin = new_page()
    sign_in(admin, desk)
    expect(admin.get_by_role("link", name="Statistics")).to_be_visible()
    admin.get_by_role("button", name="Team", exact=True).click()
    role = admin.locator("#add-form").get_by_label("Role", exact=True)
    expect(role.locator('option[value="viewer"]')).to_have_text("Viewer")
    expect(admin.locator("#new-role-hint")).to_contain_text("statistics only")

    username, temporary = add_account(desk, "viewer")
    viewer = new_page()
    sign_in(viewer, desk, username, temporary)
    choose_password(viewer, temporary)
    # The console sends a viewer to the statistics: there are no tickets for them.
    expect(viewer).to_have_url(f"{desk.url}/stats")
    expect(viewer.locator("#who")).to_have_text(username)
    expect(viewer.locator("#my-role")).to_have_text(" (viewer)")
    expect(viewer.locator("#summary-section")).to_have_attribute("aria-busy", "false")
    # What the viewer's own session is given: small counts left out, and said so.
    seen = viewer.context.request.get(f"{desk.url}/api/stats")
    assert seen.status == 200, seen.text()
    assert seen.json()["smallest_count_shown"] == 5
    expect_numbers(viewer, seen.json())
    expect(viewer.locator("#small-counts")).to_contain_text("Counts under 5")
    viewer.wait_for_function(CHARTS_LOADED, timeout=LIVE)
    expect(viewer.get_by_role("link", name="Download CSV")).to_be_visible()
    expect(viewer.locator("#unanswered-section")).to_be_hidden()
    expect(viewer.get_by_role("button", name="Count now")).to_be_hidden()
    expect(viewer.get_by_role("link", name="Counsellor desk")).to_be_hidden()
    tickets = viewer.context.request.get(f"{desk.url}/api/tickets?status=open")
    assert tickets.status == 403, tickets.text()
    unanswered = viewer.context.request.get(f"{desk.url}/api/unanswered")
    assert unanswered.status == 403, unanswered.text()
    viewer.goto(desk.url)
    expect(viewer).to_have_url(f"{desk.url}/stats")
    expect(viewer.locator("#ticket-list")).to_have_count(0)

    username, temporary = add_account(desk, "counsellor")
    counsellor = new_page()
    sign_in(counsellor, desk, username, temporary)
    choose_password(counsellor, temporary)
    expect(counsellor.locator("#who")).to_have_text(username)
    expect(counsellor.locator("#ticket-list")).to_have_attribute("aria-busy", "false")
    expect(counsellor.get_by_role("link", name="Statistics")).to_be_hidden()
    counsellor.goto(f"{desk.url}/stats")
    expect(counsellor.locator("#gate-message")).to_have_text(
        "You have no access to the statistics: they are for administrators and viewers, and "
        "you are signed in with a counsellor's account. Ask an administrator if you need them.")
    expect(counsellor.locator("#stats-view")).to_be_hidden()
    expect(counsellor.locator("#summary [data-metric]")).to_have_count(0)
    refused = counsellor.context.request.get(f"{desk.url}/api/stats")
    assert refused.status == 403, refused.text()
    assert nobody.errors == [] and admin.errors == []
    assert viewer.errors == [] and counsellor.errors == []



