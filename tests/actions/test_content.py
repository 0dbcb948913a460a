import os
import re
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from avrr.content import (
    DEFAULT_LANGUAGE,
    Content,
    ContentError,
    Reply,
    fill,
    mismatches,
)
from avrr.vocabulary import GLOSS_LANGUAGES, RIGHT_TO_LEFT, SAFETY_INTENTS

ROOT = Path(__file__).resolve().parents[2]
CONTENT = Content(ROOT / "content")
# Filled when answering (actions/handoff.py), not from settings.yml.
ANSWER_TIME_VALUES = {"position": "3", "opening": "Monday 09:00"}


def intents_answered_by(action: str):
    """Intents that some rule answers with `action` right after the person's message."""
    found = set()
    for path in (ROOT / "data" / "rules").glob("*.yml"):
        for rule in yaml.safe_load(path.read_text())["rules"]:
            steps = rule["steps"]
            for step, following in zip(steps, steps[1:], strict=False):
                if following.get("action") != action:
                    continue
                options = step.get("or", [step])
                found.update(option["intent"] for option in options if "intent" in option)
    return found


def test_every_intent_the_rules_answer_has_an_answer_in_every_language():
    intents = intents_answered_by("action_answer")
    assert len(intents) >= 25
    for language in CONTENT.languages():
        missing = [i for i in intents if not CONTENT.has(i, language)]
        assert missing == [], f"{language} lacks answers for {missing}"


def test_every_answer_renders_in_every_language_with_the_shipped_settings():
    for language in CONTENT.languages():
        for key in CONTENT.language_file(language)["answers"]:
            replies = CONTENT.replies(key, language, values=ANSWER_TIME_VALUES)
            assert replies, f"{language}:{key} renders to nothing"
            assert all(reply.text.strip() for reply in replies)


def test_translations_match_english_in_keys_buttons_and_placeholders():
    english = CONTENT.language_file("en")
    for language in CONTENT.languages():
        assert mismatches(CONTENT.language_file(language), english) == [], language


def test_no_answer_states_a_phone_number_or_amount_outside_the_settings():
    # Numbers that can change belong in settings.yml; the texts only hold placeholders.
    for language in CONTENT.languages():
        for key, messages in CONTENT.language_file(language)["answers"].items():
            for message in messages:
                text = re.sub(r"\b(19|20)\d\d\b", "", message["text"])  # years are history
                assert not re.search(r"\d{3,}|€|EUR|HUF|Ft\b", text), (language, key)


def test_ask_contact_leaves_out_what_the_operator_has_not_set():
    assert CONTENT.settings()["office_address"] is None
    assert [r.text for r in CONTENT.replies("ask_contact", "en")] == [
        "IOM's hotline is free to call and speaks many languages: 06 80 20 50 18.",
        "More information: volret.hu",
    ]


def test_operator_settings_appear_in_answers_without_a_restart(content_dir):
    content = Content(content_dir)
    assert len(content.replies("ask_contact", "en")) == 2
    settings = yaml.safe_load((content_dir / "settings.yml").read_text())
    settings["office_address"]["value"] = "Example street 1, Budapest"
    settings["office_hours"]["value"] = {"mon": "09:00-12:00", "thu": "13:00-16:00"}
    (content_dir / "settings.yml").write_text(yaml.safe_dump(settings))
    stat = (content_dir / "settings.yml").stat()
    os.utime(content_dir / "settings.yml", (stat.st_atime, stat.st_mtime + 5))

    assert [r.text for r in content.replies("ask_contact", "en")] == [
        "IOM's hotline is free to call and speaks many languages: 06 80 20 50 18.",
        "IOM office: Example street 1, Budapest",
        "Opening hours (Hungarian time): Monday 09:00-12:00; Thursday 13:00-16:00",
        "More information: volret.hu",
    ]


@pytest.mark.parametrize("language, closed", [("en", "closed"), ("hu", "zárva"),
                                              ("fa", "تعطیل")])
def test_the_opening_hours_name_the_coming_closures_of_open_days(content_dir, language,
                                                                  closed):
    today = datetime.now(ZoneInfo("Europe/Budapest")).date()
    soon = [today + timedelta(days=n) for n in (2, 3, 4, 40)]  # 40 days: not yet news
    settings = yaml.safe_load((content_dir / "settings.yml").read_text())
    settings["office_hours"]["value"] = {day: "9-16" for day in
                                         ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    settings["office_hours"]["closed_on"] = [f"{soon[0]}..{soon[1]}", soon[2], soon[3]]
    edit(content_dir / "settings.yml", yaml.safe_dump(settings))

    names = Content(content_dir).language_file(language)["days"]
    expected = (f"{names['mon']}\u2013{names['sun']} 09:00-16:00; "
                f"{closed} {soon[0]}\u2013{soon[2]}")
    assert any(expected in r.text for r in Content(content_dir).replies("ask_contact",
                                                                         language))


def edit(path: Path, text: str) -> None:
    """Write `text` with a new modification time, as an editor saving it later would."""
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))


@pytest.mark.parametrize("broken", [
    "hotline: [unclosed\n",  # YAML that does not parse
    "hotline:\n  value: ~\nemergency_number:\n  value: '112'\n",  # the hotline emptied
    "hotline: '06 1'\nemergency_number: ' '\n",  # the emergency number emptied
    "",
])
def test_a_settings_edit_that_cannot_be_taken_keeps_the_last_good_one(content_dir, caplog,
                                                                      broken):
    content = Content(content_dir)
    before = [r.text for r in content.replies("report_emergency", "en")]
    assert any("112" in text for text in before)

    edit(content_dir / "settings.yml", broken)

    assert [r.text for r in content.replies("report_emergency", "en")] == before
    assert [r.text for r in content.replies("ask_contact", "en")][0] == (
        "IOM's hotline is free to call and speaks many languages: 06 80 20 50 18.")
    logged = [r for r in caplog.records if r.name == "avrr.content"]
    assert [r.levelname for r in logged] == ["ERROR"]  # once
    assert logged[0].getMessage().startswith("settings.yml: ")
    assert logged[0].getMessage().endswith("its last good version is used until it is mended")


def test_a_translators_broken_file_keeps_its_last_good_answers(content_dir):
    content = Content(content_dir)
    before = [r.text for r in content.replies("ask_cost", "fa")]
    edit(content_dir / "fa.yml", (content_dir / "fa.yml").read_text() + "\n  - [broken\n")
    assert [r.text for r in content.replies("ask_cost", "fa")] == before


@pytest.mark.parametrize("change, reason", [
    (lambda fa: fa["answers"]["ask_cost"].pop(), "answers.ask_cost needs"),
    (lambda fa: fa["answers"]["ask_contact"][0].update(text="{hotlin}"),
     "answers.ask_contact[0]: its {placeholders} differ"),
    (lambda fa: fa["answers"]["ask_contact"][0].update(text="{hotline"),
     "answers.ask_contact[0]: a { or } without its pair"),
    (lambda fa: fa["answers"]["out_of_scope"][0].update(buttons=["ask_nothing"]),
     "answers.out_of_scope[0]: buttons differ"),
    (lambda fa: fa["choices"].pop("not_sure"), "choices.not_sure is missing"),
])
def test_a_translation_unlike_english_keeps_its_last_good_version(content_dir, caplog,
                                                                  change, reason):
    content = Content(content_dir)
    before = {key: [r.text for r in content.replies(key, "fa")]
              for key in ("ask_cost", "ask_contact", "out_of_scope")}
    persian = yaml.safe_load((content_dir / "fa.yml").read_text(encoding="utf-8"))
    change(persian)
    edit(content_dir / "fa.yml", yaml.safe_dump(persian, allow_unicode=True))

    assert {key: [r.text for r in content.replies(key, "fa")] for key in before} == before
    [logged] = [r.getMessage() for r in caplog.records if r.name == "avrr.content"]
    assert logged.startswith(f"fa.yml: {reason}"), logged


@pytest.mark.parametrize("change, reason", [
    (lambda en: en["answers"].pop("ask_cost"), "answers.ask_cost is missing"),
    (lambda en: en["answers"].update(ask_cots=en["answers"].pop("ask_cost")),
     "answers.ask_cost is missing"),  # a key renamed by mistake
    (lambda en: en["answers"]["ask_contact"][0].pop("text"),
     "answers.ask_contact needs messages, each with a text"),
    (lambda en: en["answers"].update(ask_cost=[]), "answers.ask_cost needs messages"),
    (lambda en: en["choices"].pop("yes"), "choices.yes is missing"),
    (lambda en: en["topic_names"].pop("ask_cost"), "topic_names.ask_cost is missing"),
    (lambda en: en.pop("ready_replies"), "ready_replies.received is missing"),
])
def test_an_english_edit_that_drops_what_every_language_falls_back_to_is_not_taken(
        content_dir, caplog, change, reason):
    content = Content(content_dir)
    before = {(key, code): [r.text for r in content.replies(key, code)]
              for key in ("ask_cost", "ask_contact") for code in ("en", "fa")}
    english = yaml.safe_load((content_dir / "en.yml").read_text(encoding="utf-8"))
    change(english)
    edit(content_dir / "en.yml", yaml.safe_dump(english, allow_unicode=True))

    assert {pair: [r.text for r in content.replies(*pair)] for pair in before} == before
    assert content.choice_buttons("en", [("yes", "/affirm")])[0]["title"] == "Yes"
    assert content.topic_name("ask_cost", "en") != content.topic_name("nothing", "en")
    assert "received" in [r["key"] for r in content.ready_replies("en")]
    [logged] = [r.getMessage() for r in caplog.records if r.name == "avrr.content"]
    assert logged.startswith(f"en.yml: {reason}"), logged
    assert logged.endswith("its last good version is used until it is mended")


def test_english_may_change_its_texts_and_add_answers_and_messages(content_dir, caplog):
    content = Content(content_dir)
    assert content.replies("ask_cost", "en")
    english = yaml.safe_load((content_dir / "en.yml").read_text(encoding="utf-8"))
    english["answers"]["ask_cost"][0]["text"] = "Return with IOM is free of charge."
    english["answers"]["ask_cost"].append({"text": "Ask a counsellor about the details."})
    english["answers"]["ask_new_topic"] = [{"text": "A new answer."}]
    edit(content_dir / "en.yml", yaml.safe_dump(english, allow_unicode=True))

    texts = [r.text for r in content.replies("ask_cost", "en")]
    assert texts[0] == "Return with IOM is free of charge."
    assert texts[-1] == "Ask a counsellor about the details."
    assert [r.text for r in content.replies("ask_new_topic", "en")] == ["A new answer."]
    assert not [r for r in caplog.records if r.name == "avrr.content"]


@pytest.mark.parametrize("first", [True, False])
def test_an_answer_a_translation_lacks_or_cannot_fill_is_given_in_english(content_dir, caplog,
                                                                          first):
    content = Content(content_dir)
    if not first:  # a live edit, after a good version was read
        assert content.replies("ask_cost", "fa")
    persian = yaml.safe_load((content_dir / "fa.yml").read_text(encoding="utf-8"))
    del persian["answers"]["ask_cost"]
    if first:  # a first reading is taken as it is (an edit unlike English would not be)
        persian["answers"]["ask_contact"][0]["text"] = "{hotlin}"
    edit(content_dir / "fa.yml", yaml.safe_dump(persian, allow_unicode=True))

    assert content.replies("ask_cost", "fa") == content.replies("ask_cost", "en")
    if first:  # the answer it cannot fill is given in English
        assert content.replies("ask_contact", "fa") == content.replies("ask_contact", "en")
    assert content.replies("greet", "fa") != content.replies("greet", "en")
    assert any(r.getMessage().startswith("fa.yml: answers.ask_cost cannot be given")
               for r in caplog.records)


def test_a_title_name_or_ready_reply_a_translation_lacks_is_given_in_english(content_dir,
                                                                            caplog):
    persian = yaml.safe_load((content_dir / "fa.yml").read_text(encoding="utf-8"))
    for section, key in [("topics", "request_human"), ("choices", "yes"), ("days", "mon"),
                         ("ready_replies", "received")]:
        del persian[section][key]
    edit(content_dir / "fa.yml", yaml.safe_dump(persian, allow_unicode=True))
    hungarian = yaml.safe_load((content_dir / "hu.yml").read_text(encoding="utf-8"))
    del hungarian["topic_names"]["ask_cost"]  # topic names are for the desk's languages
    edit(content_dir / "hu.yml", yaml.safe_dump(hungarian, allow_unicode=True))
    edit(content_dir / "settings.yml", "hotline: 06 80 200 000\nemergency_number: '112'\n"
         "office_hours: {value: {mon: '09:00-16:00', tue: '09:00-16:00'}}\n")
    content = Content(content_dir)  # a first reading: taken as it is

    english = Content(content_dir)
    [button] = content.replies("bot_challenge", "fa")[-1].buttons
    assert button == english.topic_buttons("en", ["request_human"])[0]
    assert content.replies("bot_challenge", "fa")[0].text == persian["answers"][
        "bot_challenge"][0]["text"]  # the answer itself stays Persian
    assert content.choice_buttons("fa", [("yes", "/affirm"), ("no", "/deny")]) == [
        {"title": "Yes", "payload": "/affirm"}, {"title": "نه", "payload": "/deny"}]
    assert content.ready_reply("received", "fa", {}) == english.ready_reply("received", "en", {})
    assert "received" in [r["key"] for r in content.ready_replies("fa")]
    assert content.topic_name("ask_cost", "hu") == english.topic_name("ask_cost", "en")
    hours = content.replies("ask_contact", "fa")
    assert any("Monday 09:00-16:00" in r.text and "سه‌شنبه" in r.text for r in hours)
    logged = {r.getMessage() for r in caplog.records if r.name == "avrr.content"}
    assert {m.split(" is missing")[0] for m in logged} == {
        "fa.yml: topics.request_human", "fa.yml: choices.yes", "fa.yml: days.mon",
        "fa.yml: ready_replies.received", "hu.yml: topic_names.ask_cost"}


def test_a_section_a_translation_lacks_whole_is_given_in_english(content_dir):
    persian = yaml.safe_load((content_dir / "fa.yml").read_text(encoding="utf-8"))
    persian["choices"], persian["days"], persian["topics"] = None, "Monday to Friday", ["x"]
    edit(content_dir / "fa.yml", yaml.safe_dump(persian, allow_unicode=True))
    edit(content_dir / "settings.yml", "hotline: 06 80 20 50 18\nemergency_number: '112'\n"
         "office_hours: {value: {mon: '09:00-16:00'}}\n")
    content = Content(content_dir)  # a first reading: taken as it is
    assert content.choice_buttons("fa", [("no", "/deny")]) == [{"title": "No",
                                                                 "payload": "/deny"}]
    assert content.topics("fa") == content.topics("en")
    assert content.topic_buttons("fa", ["ask_cost"]) == content.topic_buttons("en", ["ask_cost"])
    [hotline, hours] = [r.text for r in content.replies("ask_contact", "fa")][:2]
    assert hotline == persian["answers"]["ask_contact"][0]["text"].replace(
        "{hotline}", "\u206606 80 20 50 18\u2069")  # the answer stays Persian
    assert "\u2066Monday 09:00-16:00\u2069" in hours  # the day's name from English


def test_a_new_language_file_that_cannot_be_read_is_left_out(content_dir, caplog):
    (content_dir / "de.yml").write_text("name: Deutsch\nanswers: [\n", encoding="utf-8")
    content = Content(content_dir)
    assert "de" not in content.languages() and "fa" in content.languages()
    assert content.replies("greet", "de") == content.replies("greet", DEFAULT_LANGUAGE)
    assert any(r.getMessage().startswith("de.yml: ") for r in caplog.records)


def test_without_a_good_version_the_error_is_raised(content_dir):
    edit(content_dir / "settings.yml", "hotline: [unclosed\n")
    with pytest.raises(yaml.YAMLError):
        Content(content_dir).replies("ask_contact", "en")


def test_an_unknown_language_gets_the_default_language():
    assert CONTENT.replies("greet", "xx") == CONTENT.replies("greet", DEFAULT_LANGUAGE)


def test_buttons_are_added_to_the_last_message():
    extra = {"title": "Extra", "payload": "/affirm"}
    replies = CONTENT.replies("delete_my_data", "en", [extra])
    assert replies[-1].buttons == (extra,)


def test_topic_buttons_send_their_intent():
    reply = CONTENT.replies("bot_challenge", "en")[-1]
    assert reply == Reply(
        "If you want to talk to a person, a counsellor can help you.",
        ({"title": "Talk to a counsellor", "payload": "/request_human"},),
        "bot_challenge",
        1,
    )
    assert reply.source() == {"key": "bot_challenge", "part": 1, "values": {}}


def test_a_missing_answer_is_an_error():
    with pytest.raises(ContentError, match="no answer 'nonsense'"):
        CONTENT.replies("nonsense", "en")


def test_fill_refuses_a_placeholder_without_a_value():
    assert fill("Call {hotline}.", {"hotline": "1"}) == "Call 1."
    with pytest.raises(ContentError, match="hotline"):
        fill("Call {hotline}.", {"hotline": None})
    with pytest.raises(ContentError, match="fax"):
        fill("Fax {fax}.", {})


def test_numbers_keep_their_order_in_right_to_left_answers():
    for language, texts in ((c, CONTENT.language_file(c)) for c in CONTENT.languages()):
        hotline = [r.text for r in CONTENT.replies("ask_contact", language)][0]
        if texts["direction"] == "rtl":
            assert "\u206606 80 20 50 18\u2069" in hotline, language
        else:
            assert "\u2066" not in hotline and "06 80 20 50 18" in hotline, language


def test_every_language_names_itself_and_its_direction_and_has_a_glossary():
    english_terms = set(CONTENT.language_file("en")["glossary"])
    for language in CONTENT.languages():
        texts = CONTENT.language_file(language)
        assert texts["language"] == language
        assert texts["direction"] in ("ltr", "rtl")
        assert texts["name"] and texts["name"] != language
        assert set(texts["glossary"]) == english_terms, language


def first_letter(text):
    """The first letter of `text` outside {placeholders}, or None."""
    for char in re.sub(r"\{[a-z_]+\}", "", text):
        if char.isalpha():
            return char
    return None


def test_no_right_to_left_answer_or_button_starts_with_a_latin_letter():
    """A right-to-left line that starts with "IOM" is laid out left to right, scrambled."""
    for language in RIGHT_TO_LEFT:
        texts = CONTENT.language_file(language)
        lines = [m["text"] for ms in texts["answers"].values() for m in ms]
        lines += list(texts["topics"].values()) + list(texts["choices"].values())
        lines += list(texts["ready_replies"].values())
        latin = [line for line in lines if "LATIN" in unicodedata.name(first_letter(line) or " ")]
        assert latin == [], language


def test_french_names_the_organisation_oim():
    texts = CONTENT.language_file("fr")
    lines = [m["text"] for ms in texts["answers"].values() for m in ms]
    lines += list(texts["topics"].values()) + list(texts["ready_replies"].values())
    assert [line for line in lines if re.search(r"\bIOM\b", line)] == []


def test_a_counsellor_reads_every_intent_in_words_in_each_gloss_language():
    intents = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["intents"]
    for language in GLOSS_LANGUAGES:
        names = CONTENT.language_file(language)["topic_names"]
        assert set(names) == set(intents) | {"not_understood"}, language
    assert CONTENT.topic_name("ask_cost", "en") == "Cost of return"
    assert CONTENT.topic_name("nlu_fallback", "hu") == "Az asszisztens nem értette"


def test_a_message_is_glossed_from_its_source_in_another_language():
    [reply] = CONTENT.replies("handoff_queued", "ps", values={"position": "3"})
    assert CONTENT.gloss(reply.source(), "en") == CONTENT.replies(
        "handoff_queued", "en", values={"position": "3"})[0].text
    ready = CONTENT.ready_reply("call_at", "ps", {"date": "2026-12-08", "time": "10:30"})
    assert ready.text != CONTENT.gloss(ready.source(), "en")
    assert CONTENT.gloss(ready.source(), "en") == (
        "A counsellor will call you on 2026-12-08 at 10:30 (Hungarian time).")
    # Content changed since the message was sent: no gloss rather than a wrong one.
    assert CONTENT.gloss({"key": "no_such_answer", "part": 0}, "en") is None
    assert CONTENT.gloss({"key": "greet", "part": 99}, "en") is None
    assert CONTENT.gloss({"key": 5}, "en") is None


def test_every_language_has_danger_phrases_for_every_safety_intent():
    for language in CONTENT.languages():
        lexicon = CONTENT.language_file(language)["danger_lexicon"]
        assert set(lexicon) == set(SAFETY_INTENTS), language
        assert all(len(phrases) >= 5 for phrases in lexicon.values()), language
