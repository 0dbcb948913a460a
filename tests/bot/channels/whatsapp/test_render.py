"""How a Rasa bot message is shown on WhatsApp: text parts, reply buttons, lists."""
from typing import Any, Dict, List

import pytest

from bot.channels.whatsapp.render import render, split_text

TOPICS = [
    {"title": "What is voluntary return?", "payload": "/ask_what_is_avr"},
    {"title": "Can I apply?", "payload": "/ask_eligibility"},
    {"title": "Does it cost money?", "payload": "/ask_cost"},
    {"title": "Talk to a counsellor", "payload": "/request_human"},
]


def buttons(count: int, title: str = "Choice") -> List[Dict[str, str]]:
    return [{"title": f"{title} {n}", "payload": f"/choice{{\"n\":{n}}}"} for n in range(count)]


# -- how messages are shown --


def interactive(message: Dict[str, Any]) -> Dict[str, Any]:
    assert message["type"] == "interactive"
    return message["interactive"]


@pytest.mark.parametrize("count", [2, 3])
def test_up_to_three_buttons_are_reply_buttons(count):
    [message] = render("Do you have a passport?", buttons(count))

    shown = interactive(message)
    assert shown["type"] == "button"
    assert shown["body"] == {"text": "Do you have a passport?"}
    assert shown["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": b["payload"], "title": b["title"]}}
        for b in buttons(count)
    ]


@pytest.mark.parametrize("count", [5, 10])
def test_four_to_ten_buttons_are_one_list(count):
    [message] = render("Choose a topic", buttons(count))

    shown = interactive(message)
    assert shown["type"] == "list"
    assert shown["body"] == {"text": "Choose a topic"}
    assert 0 < len(shown["action"]["button"]) <= 20
    [section] = shown["action"]["sections"]
    assert section["rows"] == [{"id": b["payload"], "title": b["title"]} for b in buttons(count)]


def test_more_than_ten_buttons_are_lists_of_even_size_all_one_tap_away():
    messages = render("Which language would you like?", buttons(12))

    shown = [interactive(m) for m in messages]
    assert [s["type"] for s in shown] == ["list", "list"]
    assert [s["body"]["text"] for s in shown] == ["Which language would you like?", "(2/2)"]
    rows = [r for s in shown for r in s["action"]["sections"][0]["rows"]]
    assert [len(s["action"]["sections"][0]["rows"]) for s in shown] == [6, 6]
    assert [r["id"] for r in rows] == [b["payload"] for b in buttons(12)]

    assert len(render("Many", buttons(25))) == 3


def test_long_titles_are_shortened_and_a_list_row_keeps_the_full_title():
    long_title = "Help after return: business, job, school"
    [reply] = render("Text", [{"title": long_title, "payload": "/ask_reintegration"}])
    [listed] = render("Text", [{"title": long_title, "payload": "/ask_reintegration"}] + TOPICS)

    assert interactive(reply)["action"]["buttons"][0]["reply"]["title"] == "Help after return:…"
    row = interactive(listed)["action"]["sections"][0]["rows"][0]
    assert row == {
        "id": "/ask_reintegration",
        "title": "Help after return: busi…",
        "description": long_title,
    }
    assert len("Help after return:…") <= 20
    very_long = "x" * 100
    [listed] = render("Text", [{"title": very_long, "payload": "/p"}] + TOPICS)
    row = interactive(listed)["action"]["sections"][0]["rows"][0]
    assert (len(row["title"]), len(row["description"])) == (24, 72)
    assert row["description"].endswith("…")


def test_a_text_too_long_for_buttons_goes_first_and_its_end_carries_them():
    paragraphs = [f"Paragraph {n}. " + "word " * 60 for n in range(6)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert len(text) > 1024

    messages = render(text, buttons(2))

    assert [m["type"] for m in messages[:-1]] == ["text"] * (len(messages) - 1)
    body = interactive(messages[-1])["body"]["text"]
    assert len(body) <= 1024
    shown = "\n\n".join([m["text"]["body"] for m in messages[:-1]] + [body])
    assert shown == text


def test_a_text_over_4096_characters_is_split_where_a_reader_would():
    sentence = "This is a sentence of the answer. "
    text = (sentence * 300).strip()

    parts = split_text(text)

    assert len(parts) == 3
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts) == text
    assert [m["text"]["body"] for m in render(text)] == parts


def test_reply_buttons_whose_short_titles_would_be_the_same_become_a_list():
    same_start = [
        {"title": "I have protection or a permit", "payload": "/a"},
        {"title": "I have protection or a visa", "payload": "/b"},
    ]

    [message] = render("Your situation?", same_start)

    rows = interactive(message)["action"]["sections"][0]["rows"]
    assert [(r["title"], r["description"]) for r in rows] == [
        ("I have protection or a…", "I have protection or a permit"),
        ("I have protection or a…", "I have protection or a visa"),
    ]


def test_a_payload_whatsapp_cannot_carry_is_left_out():
    too_long = {"title": "Too long", "payload": "/" + "x" * 300}

    [message] = render("Text", [too_long] + buttons(2))

    assert [b["reply"]["id"] for b in interactive(message)["action"]["buttons"]] == [
        b["payload"] for b in buttons(2)
    ]
    assert render("Only text", [too_long]) == [{"type": "text", "text": {"body": "Only text"}}]
