"""The web widget in a real browser: the demo page at 360 px, talking to the real assistant.

Needs the built widget (`node widget/build.mjs`) and chromium at /usr/bin/chromium.
"""
import json
import re
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager
from pathlib import Path
from typing import List
from unittest.mock import ANY

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

ROOT = Path(__file__).resolve().parents[2]
# Written by every run; docs/widget.png, shown in the README, is a copy of one.
SCREENSHOT = ROOT / "results" / "widget.png"
PHONE = {"width": 360, "height": 740}
TIMEOUT = 20_000
ARABIC_LETTERS = re.compile("[\u0600-\u06ff]")


class Widget:
    """The demo page in its own browser context, as the person sees it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: List[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def part(self, testid: str):
        return self.page.get_by_test_id(testid)

    def messages(self, sender: str):
        return self.page.locator(f'[data-testid="message"][data-sender="{sender}"]')

    def say(self, text: str) -> None:
        self.part("input").fill(text)
        self.part("input").press("Enter")

    def wait_until_ready(self) -> None:
        """Connected, session confirmed and its history shown."""
        expect(self.part("panel")).to_have_attribute("data-state", "ready", timeout=TIMEOUT)

    def reload(self) -> None:
        self.page.reload()
        self.wait_until_ready()

    @property
    def token(self) -> str:
        return self.page.evaluate("() => sessionStorage.getItem('avrr.session')")

    def stored(self, where: str = "sessionStorage") -> dict:
        return self.page.evaluate(f"() => Object.assign({{}}, {where})")


@pytest.fixture
def open_widget(assistant, browser: Browser):
    """Opens the demo page in a new context: a phone screen, a locale, maybe a stored token."""
    opened: List[Widget] = []

    def open_widget(locale: str = "en-US", stored_token: str = "") -> Widget:
        context = browser.new_context(viewport=PHONE, locale=locale)
        if stored_token:
            context.add_init_script(
                f"sessionStorage.setItem('avrr.session', {json.dumps(stored_token)})"
            )
        widget = Widget(context.new_page())
        opened.append(widget)
        widget.page.goto(assistant.widget_url)
        widget.wait_until_ready()
        return widget

    yield open_widget
    for widget in opened:
        widget.page.context.close()
    assert [error for widget in opened for error in widget.errors] == []


def conversation_id_of(assistant, marker: str) -> str:
    """The Rasa sender id of the conversation in which `marker` was written."""
    deadline = time.monotonic() + 20
    while True:
        with closing(sqlite3.connect(assistant.db)) as db:
            found = db.execute(
                "SELECT DISTINCT sender_id FROM events WHERE type_name = 'user' AND data LIKE ?",
                (f"%{marker}%",),
            ).fetchall()
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0][0]
        time.sleep(0.3)


def test_a_greeting_gets_the_greeting_and_quick_replies_that_answer(open_widget):
    widget = open_widget()
    widget.say("Hello")

    expect(widget.messages("user").last).to_have_text("Hello")
    expect(
        widget.messages("bot").filter(has_text="Hello! I am the IOM Hungary assistant")
    ).to_have_count(1, timeout=TIMEOUT)
    can_i_apply = widget.part("quick-reply").filter(has_text="Can I apply?")
    expect(can_i_apply).to_be_visible(timeout=TIMEOUT)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    widget.page.screenshot(path=str(SCREENSHOT))

    can_i_apply.click()

    expect(widget.messages("user").last).to_have_text("Can I apply?")
    expect(widget.part("quick-reply").filter(has_text="Can I apply?")).to_have_count(0)
    expect(widget.messages("bot").filter(has_text="Question 1 of 5")).to_have_count(
        1, timeout=TIMEOUT
    )


def test_arabic_is_answered_in_arabic_and_laid_out_right_to_left(open_widget):
    widget = open_widget(locale="ar")
    panel = widget.part("panel")
    direction = "e => getComputedStyle(e).direction"
    assert panel.evaluate(direction) == "rtl"  # the browser's language is Arabic
    expect(widget.part("send")).to_have_text("إرسال")

    widget.say("هل يمكنني العودة إلى بلدي مع المنظمة الدولية للهجرة؟")

    expect(widget.messages("bot").filter(has_text=ARABIC_LETTERS).first).to_be_visible(
        timeout=TIMEOUT
    )
    bot_messages = widget.messages("bot")
    for index in range(bot_messages.count()):
        expect(bot_messages.nth(index)).to_have_attribute("dir", "auto")

    widget.part("language").click()
    widget.part("language-option").filter(has_text="English").click()
    assert panel.evaluate(direction) == "ltr"
    expect(widget.part("send")).to_have_text("Send")
    answered = bot_messages.count()
    widget.part("language").click()
    widget.part("language-option").filter(has_text="العربية").click()

    assert panel.evaluate(direction) == "rtl"
    expect(widget.messages("user").last).to_have_text("العربية")
    expect(bot_messages).not_to_have_count(answered, timeout=TIMEOUT)
    expect(bot_messages.last).to_contain_text(ARABIC_LETTERS, timeout=TIMEOUT)

    widget.reload()  # the choice is kept, and the history shows it by name

    assert panel.evaluate(direction) == "rtl"
    expect(widget.messages("user").last).to_have_text("العربية", timeout=TIMEOUT)


def test_a_reload_shows_the_conversation_again_with_the_same_token(open_widget):
    widget = open_widget()
    widget.say("does the return cost money?")
    # The answer's last message carries the buttons: once they show, all of it is here.
    expect(widget.part("quick-reply").filter(has_text="Help after return")).to_be_visible(
        timeout=TIMEOUT
    )
    token = widget.token
    shown = widget.part("message").all_text_contents()
    assert len(shown) == 4  # the question and the three messages of the answer

    widget.reload()

    expect(widget.part("message")).to_have_text(shown, timeout=TIMEOUT)
    expect(widget.part("quick-reply").filter(has_text="Help after return")).to_be_visible()
    assert widget.token == token


def test_a_conversation_id_is_no_key_to_its_history(assistant, open_widget):
    marker = f"zq{uuid.uuid4().hex[:10]}"
    first = open_widget()
    first.say(f"Hello, my reference is {marker}")
    expect(first.messages("bot").first).to_be_visible(timeout=TIMEOUT)
    conversation_id = conversation_id_of(assistant, marker)

    second = open_widget(stored_token=conversation_id)

    assert first.token == conversation_id  # the session id is Rasa's sender id
    assert second.token not in (conversation_id, first.token)
    expect(second.part("message")).to_have_count(0)
    second.say("Hello")
    expect(second.messages("bot").first).to_be_visible(timeout=TIMEOUT)
    expect(second.part("messages")).not_to_contain_text(marker)


def test_markup_in_a_message_is_shown_as_text(open_widget):
    widget = open_widget()
    markup = "<b>bold</b><img src=x onerror=window.__pwned=1>"
    widget.say(markup)
    expect(widget.messages("user").last).to_have_text(markup)
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)

    widget.reload()  # and again from the history

    expect(widget.messages("user").first).to_have_text(markup, timeout=TIMEOUT)
    expect(widget.part("messages").locator("b, img")).to_have_count(0)
    assert widget.page.evaluate("() => window.__pwned") is None


def test_a_phone_screen_has_no_horizontal_scroll(open_widget):
    widget = open_widget()
    widget.say("https://example.org/" + "a" * 300)  # one long word
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)

    assert widget.page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    messages = widget.part("messages")
    assert messages.evaluate("e => e.scrollWidth <= e.clientWidth")
    for name in ("input", "send"):
        expect(widget.part(name)).to_be_visible()
        box = widget.part(name).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
        assert box["height"] >= 44, name  # a tap target


def test_the_keyboard_alone_opens_writes_sends_and_closes(open_widget):
    widget = open_widget()
    page = widget.page

    page.keyboard.press("Escape")
    expect(widget.part("panel")).to_be_hidden()
    expect(widget.part("launcher")).to_be_focused()
    page.keyboard.press("Enter")
    expect(widget.part("panel")).to_be_visible()
    expect(widget.part("input")).to_be_focused()
    page.keyboard.type("Does it cost money?")
    page.keyboard.press("Enter")

    expect(widget.messages("user").last).to_have_text("Does it cost money?")
    expect(widget.part("input")).to_have_value("")
    expect(widget.part("input")).to_be_focused()
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)


def test_the_session_lives_in_the_tab_and_nothing_in_the_partners_local_storage(open_widget):
    widget = open_widget()
    widget.say("Hello")
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)

    assert widget.stored()["avrr.session"].startswith("web-")
    assert "avrr.secret" in widget.stored()
    assert widget.stored("localStorage") == {}


def test_end_and_forget_deletes_the_conversation_and_clears_the_device(assistant, open_widget):
    widget = open_widget()
    marker = uuid.uuid4().hex[:10]
    widget.say(f"Hello, my reference is {marker}")
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)
    conversation = conversation_id_of(assistant, marker)
    widget.page.once("dialog", lambda dialog: dialog.accept())

    widget.part("forget").click()

    expect(widget.messages("bot").filter(has_text="Done: this conversation")).to_have_count(
        1, timeout=TIMEOUT)
    expect(widget.messages("user")).to_have_count(0)
    with closing(sqlite3.connect(assistant.db)) as db:
        assert db.execute("SELECT count(*) FROM events WHERE sender_id = ?",
                          (conversation,)).fetchone()[0] == 0
    expect(widget.part("panel")).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    assert widget.token != conversation  # a new, empty session
    widget.reload()
    expect(widget.messages("user")).to_have_count(0)


def test_a_typed_deletion_clears_the_device_and_the_chat_goes_on(assistant, open_widget):
    """"Delete my data" typed and confirmed ends the session as "End and forget" does;
    the server's notice comes before the acknowledgement of the "Yes", and what the person
    writes next reaches the new session."""
    widget = open_widget()
    marker = uuid.uuid4().hex[:10]
    widget.say(f"Hello, my reference is {marker}")
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)
    conversation = conversation_id_of(assistant, marker)
    widget.say("delete my data")
    yes = widget.part("quick-reply").filter(has_text=re.compile("^Yes$"))
    expect(yes).to_be_visible(timeout=TIMEOUT)

    yes.click()

    expect(widget.messages("bot").filter(has_text="Done: this conversation")).to_have_count(
        1, timeout=TIMEOUT)
    expect(widget.part("panel")).to_have_attribute("data-state", "ready", timeout=TIMEOUT)
    expect(widget.messages("user")).to_have_count(0)
    assert widget.token != conversation
    widget.say("how much does it cost")
    expect(widget.messages("bot").filter(
        has_text="The programme is for people who do not have the money")).to_have_count(
        1, timeout=TIMEOUT)
    expect(widget.messages("user")).to_have_text(["how much does it cost"])


def test_end_and_forget_asks_first_and_does_nothing_when_cancelled(assistant, open_widget):
    widget = open_widget()
    marker = uuid.uuid4().hex[:10]
    widget.say(f"Hello, my reference is {marker}")
    expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)
    conversation = conversation_id_of(assistant, marker)
    widget.page.once("dialog", lambda dialog: dialog.dismiss())

    widget.part("forget").click()
    widget.say("thank you")
    expect(widget.messages("user")).to_have_count(2, timeout=TIMEOUT)

    assert widget.token == conversation
    assert conversation_id_of(assistant, marker) == conversation


@contextmanager
def beside_the_channel_alone(browser: Browser, tmp_path: Path, **settings: str):
    """The widget on a page of its own, against the channel alone
    (tests/bot/channels/socketio_replica.py, whose stand-in for Rasa answers at once),
    with `settings`: yields the widget's page and the replica. Playwright's routed pages
    are blocked by Chromium's local-network checks: the page is served for real."""
    import http.server
    import threading

    from tests.bot.channels.socketio_replica import Replica
    from tests.ports import free_port

    replica_port = free_port()
    (tmp_path / "index.html").write_text(
        f'<!doctype html><script src="/w.js" data-server="http://127.0.0.1:{replica_port}">'
        "</script>", encoding="utf-8")
    (tmp_path / "w.js").write_bytes((ROOT / "widget" / "dist" / "avrr-widget.js").read_bytes())

    class Page_(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page_)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    page_origin = f"http://127.0.0.1:{site.server_port}"
    # Python's socket.io client, as a neighbour at the same address, names the replica.
    origins = f"{page_origin},http://127.0.0.1:{replica_port}"
    replica = Replica(replica_port, None, origins, tmp_path / "replica.log", **settings)
    context = browser.new_context(viewport=PHONE)
    try:
        replica.wait_until_up(time.monotonic() + 60)
        widget = Widget(context.new_page())
        widget.page.goto(f"{page_origin}/")
        yield widget, replica
    finally:
        context.close()
        replica.stop()
        site.shutdown()


def test_messages_refused_for_a_while_are_sent_again_in_order_and_none_is_lost(
    browser: Browser, tmp_path
):
    """Over the limit of messages a minute, the server refuses a message for a few seconds
    (`message_refused` with `retry_after`): the widget keeps it, shows it waiting, and
    sends it again; 25 messages outrun 20 a minute."""
    with beside_the_channel_alone(browser, tmp_path, RATE_LIMIT_PER_SENDER="20") as (
            widget, replica):
        widget.part("launcher").click()
        widget.wait_until_ready()

        sent = [f"message {n}" for n in range(1, 26)]
        for text in sent:
            widget.say(text)
        expect(widget.messages("user")).to_have_text(sent)
        expect(widget.page.locator(".avrr-pending")).to_have_count(0, timeout=60_000)
        assert httpx.get(f"{replica.url}/received", timeout=10).json() == sent
        assert widget.errors == []


def test_a_session_refused_for_a_while_is_asked_for_again(browser: Browser, tmp_path):
    """Others at the same address (a shelter's) asked for sessions up to the limit: the
    widget's own `session_request` is refused with `retry_after`, and it asks again
    then, instead of staying "connecting" for good."""
    import socketio

    with beside_the_channel_alone(browser, tmp_path, RATE_LIMIT_PER_ADDRESS="6") as (
            widget, replica):
        frames: List[str] = []
        widget.page.on("websocket",
                       lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
        neighbour = socketio.Client()
        refused = []
        neighbour.on("session_refused", refused.append)
        neighbour.connect(replica.url, transports=["websocket"])
        try:
            for _ in range(7):  # the limit's burst, and one more; then one each 10 s
                neighbour.emit("session_request", {})
            deadline = time.monotonic() + 10
            while not refused:
                assert time.monotonic() < deadline, "the neighbour was never refused"
                neighbour.sleep(0.05)
        finally:
            neighbour.disconnect()

        widget.part("launcher").click()
        widget.wait_until_ready()
        widget.say("hello")
        expect(widget.messages("bot").first).to_be_visible(timeout=TIMEOUT)
        assert httpx.get(f"{replica.url}/received", timeout=10).json() == ["hello"]
        assert widget.errors == []
    assert [frame for frame in frames if frame.startswith('42["session_')][:2] == [
        '42["session_refused",{"error":"too many session requests, please wait",'
        f'"retry_after":{refused[0]["retry_after"]}}}]', ANY]
