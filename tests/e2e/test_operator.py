"""An operator edits content/settings.yml while the assistant runs (the isolated assistant,
on its own copy of content/): the next answers follow, without a restart."""
import os
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

OFFER = "I can pass this conversation to an IOM counsellor"
HOTLINE = "IOM's hotline is free to call and speaks many languages: 06 80 20 50 18."


def touch(path, seconds: float) -> None:
    """A modification time `seconds` ahead: a new one even within the file system's
    resolution."""
    later = time.time() + seconds
    os.utime(path, (later, later))


@pytest.fixture
def files(isolated):
    """Edits files of the running assistant's content/; restores them after."""
    folder = isolated.data_dir / "content"
    originals = {}

    def write(name: str, text: str) -> None:
        path = folder / name
        originals.setdefault(path, path.read_text(encoding="utf-8"))
        path.write_text(text, encoding="utf-8")
        touch(path, 2 + len(originals))

    yield write
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")
        touch(path, 10)


@pytest.fixture
def settings(isolated, files):
    """Writes office_hours into the running assistant's settings.yml."""
    original = (isolated.data_dir / "content" / "settings.yml").read_text(encoding="utf-8")

    def write(office_hours) -> None:
        data = yaml.safe_load(original)
        data["office_hours"].update(office_hours)
        files("settings.yml", yaml.safe_dump(data, allow_unicode=True))

    return write


def test_a_holiday_closure_moves_the_promised_opening_to_its_date(isolated, settings):
    today = datetime.now(ZoneInfo("Europe/Budapest")).date()
    reopens = today + timedelta(days=10)
    every_day = {day: "09:00-16:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    settings({"value": every_day,
              "closed_on": [f"{today.isoformat()}..{(reopens - timedelta(days=1)).isoformat()}"]})
    sender = f"holiday-{uuid.uuid4().hex[:10]}"

    offer = isolated.say(sender, "I want to talk to a counsellor")
    assert offer[-1][0].startswith(OFFER)
    [(saved, _)] = isolated.say(sender, "/affirm")

    day = reopens.strftime("%A")
    assert saved == (
        f"Thank you. Your request is saved. The office is closed now; it opens {day} "
        f"{reopens.isoformat()} 09:00 (Hungarian time). A counsellor will answer you here in "
        "this chat then."
    )
    # The opening hours the assistant lists name the closure too.
    listed = [text for text, _ in isolated.say(f"{sender}-2", "iom phone number")]
    assert listed[:2] == [HOTLINE, (
        "Opening hours (Hungarian time): Monday\u2013Sunday 09:00-16:00; closed "
        f"{today.isoformat()}\u2013{(reopens - timedelta(days=1)).isoformat()}")]


def test_hours_that_cannot_be_read_are_left_out_and_logged_for_the_operator(isolated, settings):
    sender = f"hours-{uuid.uuid4().hex[:10]}"
    settings({"value": {"mon": "09:00-12:00", "tue": "9-12, 13-16"}})
    assert [text for text, _ in isolated.say(sender, "iom phone number")][:2] == [
        HOTLINE, "Opening hours (Hungarian time): Monday 09:00-12:00; Tuesday 09:00-12:00, "
                 "13:00-16:00"]

    before = isolated.log.read_text(errors="replace")
    settings({"value": {"mon": "9 to 5"}})
    replies = [text for text, _ in isolated.say(sender, "iom phone number")]

    assert replies[0] == HOTLINE
    assert not any("Opening hours" in text for text in replies)
    written = isolated.log.read_text(errors="replace")[len(before):]
    assert (  # at ERROR: tests/actions/test_handoff.py
        "settings.yml: office_hours.value.mon: '9 to 5' is not a span like \"09:00-16:00\" "
        "(or \"closed\"); the office hours are not mentioned until it is mended") in written


def test_a_broken_edit_of_a_language_file_stops_no_answer(isolated, files):
    folder = isolated.data_dir / "content"
    persian = (folder / "fa.yml").read_text(encoding="utf-8")
    danger = "شوهرم مرا کتک میزند"  # "my husband beats me"
    sender = f"broken-{uuid.uuid4().hex[:10]}"
    first = isolated.say(sender, danger)
    assert any("112" in text for text, _ in first)
    asked = [text for text, _ in isolated.say(f"broken-{uuid.uuid4().hex[:10]}",
                                             "iom phone number")]
    assert asked[0] == HOTLINE

    files("fa.yml", persian + "\n  - [unclosed\n")  # a translator's typo
    files("settings.yml", "hotline: [unclosed\n")
    english = yaml.safe_load((folder / "en.yml").read_text(encoding="utf-8"))
    del english["answers"]["ask_contact"]  # every language falls back to English's
    files("en.yml", yaml.safe_dump(english, allow_unicode=True))

    assert isolated.say(sender, danger) == first  # understood and answered as before
    other = f"broken-{uuid.uuid4().hex[:10]}"
    assert [text for text, _ in isolated.say(other, "iom phone number")] == asked
    written = isolated.log.read_text(errors="replace")
    assert "fa.yml: its danger phrases cannot be read (" in written  # Rasa
    assert "fa.yml: " in written and "its last good version is used" in written  # actions
    assert "en.yml: answers.ask_contact is missing; its last good version" in written
