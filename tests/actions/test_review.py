"""The native-speaker review of the content: every answer, button title, topic name, day name,
glossary term and danger-lexicon group has a status, no safety or legal one changed after
its review, and the sheets a translator reads."""
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


@pytest.mark.parametrize("language", CODES)
def test_every_button_name_day_glossary_term_and_lexicon_group_has_a_review_status(language):
    content = review.load(language)
    expected = {f"{section}.{key}" for section in (
        "topics", "choices", "topic_names", "days", "glossary", "danger_lexicon")
        for key in content.get(section) or {}}
    assert "choices.yes" in expected and "danger_lexicon.report_emergency" in expected
    assert expected <= set(content["review"])
    # Nobody has reviewed them yet: every one says so.
    assert {content["review"][key] for key in expected} == {"unreviewed"}


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

    # UTF-8 for Excel too
    assert csv_path.read_bytes().startswith("\ufeffsection,key,".encode())
    with csv_path.open(encoding="utf-8-sig") as handle:
        sheet = list(csv.DictReader(handle))
    assert {row["key"] for row in sheet} == {key for key, _ in review.items(
        review.load(language, folder))}
    emergency = next(row for row in sheet if row["key"] == "report_emergency")
    assert emergency["sensitivity"] == "safety" and "112" in emergency["sources"] + (
        emergency["english"])
    sections = [row["section"] for row in sheet]
    assert set(sections) >= {"answers", "ready_replies", "topics", "choices", "days",
                             "glossary", "danger_lexicon"}
    assert sections == sorted(sections, key=list(review.SECTIONS).index)  # grouped
    page = html_path.read_text(encoding="utf-8")
    tables = page.count("<table>")
    assert page.count("<tr") == len(sheet) + tables  # a header row per table
    for section in set(sections):
        assert f'<h2 id="{section}">' in page
    for group in review.load(language, folder)["danger_lexicon"]:
        assert f"<h3>danger_lexicon.{group}: " in page
    if language in ("ar", "fa", "ps", "ur"):
        assert 'dir="rtl"' in page


def test_the_sheet_shows_buttons_names_days_and_glossary_beside_their_english():
    by_key = {row["key"]: row for row in review.rows("ps")}
    english = review.load("en")
    pashto = review.load("ps")
    for section in ("topics", "choices", "days", "glossary"):
        for key, text in english[section].items():
            row = by_key[f"{section}.{key}"]
            assert (row["section"], row["english"], row["translation"], row["status"]) == (
                section, text, pashto[section][key], "unreviewed")
    hungarian = {row["key"]: row for row in review.rows("hu")}
    assert hungarian["topic_names.report_emergency"]["english"] == (
        english["topic_names"]["report_emergency"])


def test_the_sheet_lists_every_danger_phrase_by_its_group_as_safety():
    pashto = review.load("ps")["danger_lexicon"]
    phrases = [(row["key"], row["translation"], row["sensitivity"])
               for row in review.rows("ps") if row["section"] == "danger_lexicon"]
    assert phrases == [(f"danger_lexicon.{group}", phrase, "safety")
                       for group, listed in pashto.items() for phrase in listed]
    row = next(r for r in review.rows("ps") if r["key"] == "danger_lexicon.report_emergency")
    assert "no one-to-one English" in row["english"] and "Danger now" in row["english"]


def test_buttons_are_as_sensitive_as_the_answers_they_lead_to():
    english = review.load("en")
    level = {key: review.sensitivity(english, key) for key, _ in review.items(english)}
    assert level["topics.ask_eligibility"] == level["ask_eligibility"] == "legal"
    assert level["topics.ask_cost"] == "general"
    assert level["topic_names.report_emergency"] == "safety"
    # "yes" and "no" answer the fear question: read wrongly, no safety answer.
    assert level["choices.yes"] == level["choices.no"] == level["choices.not_sure"] == "safety"
    assert level["choices.handoff_yes"] == level["choices.situation_asylum"] == "legal"
    assert level["days.mon"] == level["glossary.hotline"] == "general"
    assert {level[key] for key in level if key.startswith("danger_lexicon.")} == {"safety"}


def test_a_changed_danger_phrase_makes_the_groups_review_stale(folder):
    key = "danger_lexicon.report_suicidal_thoughts"
    review.mark_reviewed("ps", "C. Reviewer", [key], folder, datetime.date(2026, 12, 6))
    statuses = {r["status"] for r in review.rows("ps", folder) if r["key"] == key}
    assert statuses == {"reviewed"}
    assert review.load("ps", folder)["review"][key]["by"] == "C. Reviewer"

    path = folder / "ps.yml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "    - ځان وژن*\n", "    - ځان وژنه\n", 1), encoding="utf-8")
    statuses = {r["status"] for r in review.rows("ps", folder) if r["key"] == key}
    assert statuses == {"stale"}
    # Safety: the check of the shipped content would fail on it.
    assert {(r["status"], r["sensitivity"]) for r in review.rows("ps", folder)
            if r["key"] == key} == {("stale", "safety")}


def test_a_changed_button_title_or_its_english_makes_the_review_stale(folder):
    review.mark_reviewed("fa", "D. Reviewer", ["choices.yes", "topics.ask_cost"], folder)
    by_key = {r["key"]: r for r in review.rows("fa", folder)}
    assert by_key["choices.yes"]["status"] == by_key["topics.ask_cost"]["status"] == (
        "reviewed")

    persian = folder / "fa.yml"
    content = review.load("fa", folder)
    title = content["choices"]["yes"]
    text = persian.read_text(encoding="utf-8")
    at = text.index(f'"yes": {title}\n', text.index("\nchoices:"))
    persian.write_text(text[:at] + f'"yes": {title}!\n' + text[at + len(f'"yes": {title}\n'):],
                       encoding="utf-8")
    english = folder / "en.yml"
    english.write_text(english.read_text(encoding="utf-8").replace(
        "ask_cost: Does it cost money?", "ask_cost: Is it free?", 1), encoding="utf-8")
    by_key = {r["key"]: r for r in review.rows("fa", folder)}
    assert by_key["choices.yes"]["status"] == by_key["topics.ask_cost"]["status"] == "stale"
    assert by_key["choices.no"]["status"] == "unreviewed"


def test_the_status_table_counts_every_kind_of_entry():
    [english] = [line for line in review.summary() if line[0] == "en"]
    content = review.load("en")
    assert english == ("en", 72, 15 + 10 + len(content["topic_names"]) + 8 + 8, 4, 0, 0,
                       english[-1])
    assert english[-1] == sum(
        review.sensitivity(content, key) in ("safety", "legal")
        for key, _ in review.items(content))


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


def test_buttons_names_and_danger_phrases_are_guarded_in_the_csv_and_escaped_in_html(
        folder, tmp_path):
    arabic = folder / "ar.yml"
    content = yaml.safe_load(arabic.read_text(encoding="utf-8"))
    content["choices"]["yes"] = "=1+1"
    content["topics"]["ask_cost"] = '<img src=x onerror="alert(1)">'
    content["glossary"]["hotline"] = "@SUM(A1)"
    content["days"]["mon"] = "-2"
    content["danger_lexicon"]["report_emergency"][0] = "+36 <b>help</b>"
    arabic.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")
    csv_path, html_path = review.write_sheet("ar", tmp_path / "review", folder)

    with csv_path.open(encoding="utf-8-sig") as handle:
        sheet = {(row["key"], row["translation"]) for row in csv.DictReader(handle)}
    assert {("choices.yes", "'=1+1"), ("glossary.hotline", "'@SUM(A1)"), ("days.mon", "'-2"),
            ("danger_lexicon.report_emergency", "'+36 <b>help</b>")} <= sheet
    page = html_path.read_text(encoding="utf-8")
    assert "<img" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "+36 &lt;b&gt;help&lt;/b&gt;" in page
