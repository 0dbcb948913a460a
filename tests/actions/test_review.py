"""The native-speaker review of the content: every answer has a status, no safety or legal
answer changed after its review, and the sheets a translator reads."""
import csv
import datetime
import shutil

import pytest
import yaml

from avrr import review
from avrr.settings import ROOT
from avrr.vocabulary import CODES


def test_every_answer_and_ready_reply_of_every_language_has_a_review_status():
    for language in CODES:
        content = review.load(language)
        keys = [key for key, _ in review.items(content)]
        assert set(content["review"]) == set(keys), language


def test_no_safety_or_legal_answer_is_newer_than_its_review():
    stale = [
        (language, row["key"])
        for language in CODES
        for row in review.rows(language)
        if row["status"] == review.STALE and row["sensitivity"] in ("safety", "legal")
    ]
    assert stale == []


@pytest.fixture
def folder(tmp_path):
    copy = tmp_path / "content"
    shutil.copytree(ROOT / "content", copy)
    return copy


def test_a_review_is_recorded_and_goes_stale_when_the_text_changes(folder):
    day = datetime.date(2026, 12, 6)
    review.mark_reviewed("ps", "A. Reviewer", ["ready_replies.hotline"], folder, day)
    [row] = [r for r in review.rows("ps", folder) if r["key"] == "ready_replies.hotline"]
    assert (row["status"], row["reviewed_by"], row["reviewed_at"]) == (
        "reviewed", "A. Reviewer", "2026-12-06")

    path = folder / "ps.yml"
    text = path.read_text(encoding="utf-8")
    at = text.index("{hotline}", text.index("\n  hotline:", text.index("ready_replies:")))
    path.write_text(text[:at] + "{hotline} !" + text[at + len("{hotline}"):], encoding="utf-8")
    [row] = [r for r in review.rows("ps", folder) if r["key"] == "ready_replies.hotline"]
    assert row["status"] == "stale"


def test_a_change_of_the_english_makes_the_translations_review_stale(folder):
    review.mark_reviewed("fa", "B. Reviewer", ["report_emergency"], folder)
    path = folder / "en.yml"
    path.write_text(path.read_text().replace(
        "If you or someone else is in danger now", "If anyone is in danger now"))

    [row] = [r for r in review.rows("fa", folder) if r["key"] == "report_emergency"]
    assert row["status"] == "stale"


@pytest.mark.parametrize("language", CODES)
def test_the_sheet_of_every_language_is_written(folder, tmp_path, language):
    csv_path, html_path = review.write_sheet(language, tmp_path / "review", folder)

    assert csv_path.read_bytes().startswith("\ufeffkey,".encode())  # UTF-8 for Excel too
    with csv_path.open(encoding="utf-8-sig") as handle:
        sheet = list(csv.DictReader(handle))
    assert {row["key"] for row in sheet} == {key for key, _ in review.items(
        review.load(language, folder))}
    emergency = next(row for row in sheet if row["key"] == "report_emergency")
    assert emergency["sensitivity"] == "safety" and "112" in emergency["sources"] + (
        emergency["english"])
    page = html_path.read_text(encoding="utf-8")
    assert page.count("<tr") == len(sheet) + 1
    if language in ("ar", "fa", "ps", "ur"):
        assert 'dir="rtl"' in page



def test_no_cell_of_the_sheet_is_a_formula_in_a_spreadsheet(folder, tmp_path):
    """Translators supply the text: a translation starting with "=" (or a phone number's
    "+") must reach the reviewer as text, not run as a formula."""
    arabic = folder / "ar.yml"
    content = yaml.safe_load(arabic.read_text(encoding="utf-8"))
    content["answers"]["ask_cost"][0]["text"] = '=HYPERLINK("http://x.example")'
    arabic.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")
    csv_path, _ = review.write_sheet("ar", tmp_path / "review", folder)

    with csv_path.open(encoding="utf-8-sig") as handle:
        sheet = list(csv.DictReader(handle))
    cost = next(row for row in sheet if row["key"] == "ask_cost")
    assert cost["translation"].startswith("'=HYPERLINK(")
    assert not [value for row in sheet for value in row.values()
                if value.startswith(("=", "+", "-", "@"))]
