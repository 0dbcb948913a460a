"""Gauges in Prometheus' text format, as prometheus-client writes them."""
from prometheus_client.parser import text_string_to_metric_families

from avrr.metrics import CONTENT_TYPE, exposition


def test_plain_and_labelled_gauges_in_the_text_format():
    text = exposition([
        ("avrr_desk_open_tickets", "Open tickets, by urgency.",
         [({"urgency": "urgent"}, 2), ({"urgency": "normal"}, 0)]),
        ("avrr_desk_longest_wait_seconds", "The longest wait.", 12.5),
    ])

    assert text == (
        "# HELP avrr_desk_open_tickets Open tickets, by urgency.\n"
        "# TYPE avrr_desk_open_tickets gauge\n"
        'avrr_desk_open_tickets{urgency="urgent"} 2.0\n'
        'avrr_desk_open_tickets{urgency="normal"} 0.0\n'
        "# HELP avrr_desk_longest_wait_seconds The longest wait.\n"
        "# TYPE avrr_desk_longest_wait_seconds gauge\n"
        "avrr_desk_longest_wait_seconds 12.5\n"
    )
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_label_values_and_help_texts_are_escaped_and_read_back_intact():
    strange = 'a "quoted"\\ value\non two lines'
    text = exposition([
        ("avrr_x", "Help with a \\ and\na new line.", [({"b": strange, "a": "1"}, 3)]),
    ])

    [family] = text_string_to_metric_families(text)
    assert family.documentation == "Help with a \\ and\na new line."
    assert [(s.labels, s.value) for s in family.samples] == [({"a": "1", "b": strange}, 3.0)]


def test_a_labelled_gauge_with_no_values_is_still_described():
    assert exposition([("avrr_x", "Nothing yet.", [])]) == (
        "# HELP avrr_x Nothing yet.\n# TYPE avrr_x gauge\n")
