from datetime import date, datetime, timezone

import pytest

from avrr.office import HoursError, OfficeHours, Opening, read_office_hours

NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
         "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_the_next_opening_knows_days_hours_and_time_zone():
    hours = read_office_hours({"value": {"mon": "09:00-16:00", "wed": "09:00-12:00"}})
    # Monday 23 November 2026: 08:30 in Budapest, then 09:00 (open), then 16:00.
    assert hours.next_opening(utc("2026-11-23T07:30")) == Opening(
        "mon", "09:00", date(2026, 11, 23), False)
    assert hours.next_opening(utc("2026-11-23T08:00")) is None
    assert hours.next_opening(utc("2026-11-23T15:00")) == Opening(
        "wed", "09:00", date(2026, 11, 25), False)
    assert hours.next_opening(utc("2026-11-26T20:00")) == Opening(
        "mon", "09:00", date(2026, 11, 30), False)
    assert read_office_hours({"value": None}).next_opening(utc("2026-11-26T20:00")) is None


def test_a_lunch_break_is_closed():
    hours = read_office_hours({"value": {"tue": "9-12, 13:00-16:00"}})
    # Tuesday 24 November 2026, 12:30 in Budapest.
    assert hours.next_opening(utc("2026-11-24T11:30")) == Opening(
        "tue", "13:00", date(2026, 11, 24), False)
    assert hours.next_opening(utc("2026-11-24T12:30")) is None
    assert hours.describe(NAMES) == "Tuesday 09:00-12:00, 13:00-16:00"


def test_closed_dates_are_skipped_and_a_far_opening_carries_its_date():
    hours = read_office_hours({
        "value": {day: "09:00-16:00" for day in ("mon", "tue", "wed", "thu", "fri")},
        "closed_on": ["2026-12-24..2027-01-01", date(2027, 1, 4)],
    })
    # Wednesday 23 December 2026, 17:00 in Budapest: the office opens again on Tuesday
    # 5 January, 13 days later.
    assert hours.next_opening(utc("2026-12-23T16:00")) == Opening(
        "tue", "09:00", date(2027, 1, 5), True)
    # On a closed day the office is not open, whatever the hour.
    assert hours.next_opening(utc("2026-12-28T10:00")).date == date(2027, 1, 5)
    assert hours.describe(NAMES) == "Monday\u2013Friday 09:00-16:00"


def test_the_description_names_closures_of_open_days_within_a_month():
    hours = read_office_hours({
        "value": {day: "09:00-16:00" for day in ("mon", "tue", "wed", "thu", "fri")},
        "closed_on": ["2026-12-24..2027-01-01", "2027-01-03", "2027-01-06", "2027-02-01"],
    })
    names = dict(NAMES, closed="closed")
    # 3 January 2027 is a Sunday (closed anyway); 1 February is more than a month away.
    assert hours.describe(names, date(2026, 12, 20)) == (
        "Monday\u2013Friday 09:00-16:00; closed 2026-12-24\u20132027-01-01, 2027-01-06")
    assert hours.describe(names, date(2027, 1, 7)) == (
        "Monday\u2013Friday 09:00-16:00; closed 2027-02-01")
    assert hours.describe(names, date(2027, 2, 2)) == "Monday\u2013Friday 09:00-16:00"
    # A closure beyond the month is told to its end; one under way, from its start.
    longer = read_office_hours({"value": {"mon": "9-16"},
                                "closed_on": ["2026-12-24..2027-01-20"]})
    for today in (date(2026, 12, 10), date(2027, 1, 5)):
        assert longer.describe(names, today) == (
            "Monday 09:00-16:00; closed 2026-12-24\u20132027-01-20")
    # Over on its last open day: no longer news.
    assert longer.describe(names, date(2027, 1, 19)) == "Monday 09:00-16:00"


def test_an_office_open_until_midnight_or_all_day_ends_at_24():
    hours = read_office_hours({"value": {"mon": "00:00-24:00", "tue": "0-24", "wed": "18-24"}})
    assert hours.describe(NAMES) == ("Monday 00:00-24:00; Tuesday 00:00-24:00; "
                                     "Wednesday 18:00-24:00")
    # Monday 23 November 2026, 23:59 in Budapest: open; Wednesday 12:00: opens at 18:00.
    assert hours.next_opening(utc("2026-11-23T22:59")) is None
    assert hours.next_opening(utc("2026-11-24T22:59")) is None
    assert hours.next_opening(utc("2026-11-25T11:00")) == Opening(
        "wed", "18:00", date(2026, 11, 25), False)
    assert hours.next_opening(utc("2026-11-25T22:30")) is None


@pytest.mark.parametrize("value, described", [
    ({"mon": "9-16", "tue": "9-16"}, "Monday 09:00-16:00; Tuesday 09:00-16:00"),
    ({"Monday": "9.00 \u2013 16.00", "WED": ["09:00-12:00"], "sat": "closed", "sun": None},
     "Monday 09:00-16:00; Wednesday 09:00-12:00"),
    ({"fri": "9-12", "mon": "9-16", "tue": "9-16", "wed": "9-16"},
     "Monday\u2013Wednesday 09:00-16:00; Friday 09:00-12:00"),
])
def test_what_an_operator_writes_is_read_as_meant(value, described):
    assert read_office_hours({"value": value}).describe(NAMES) == described


@pytest.mark.parametrize("entry, reason", [
    ({"value": {"mon": 540}}, "in quotes"),  # YAML's reading of an unquoted 9:00
    ({"value": {"mon": "9 to 5"}}, "'9 to 5' is not a span"),
    ({"value": {"funday": "9-12"}}, "'funday' is no day"),
    ({"value": {"mon": "16-9"}}, "ends before it starts"),
    ({"value": {"mon": "09:00-25:00"}}, "no time of day"),
    ({"value": {"mon": "24:00-24:00"}}, "no time of day"),
    ({"value": {"mon": "09:00-24:30"}}, "no time of day"),
    ({"value": {"mon": "9-12", "Monday": "13-16"}}, "mon twice"),
    ({"value": {"mon": "closed"}}, "opens on no day"),
    ({"value": "mon-fri 9-16"}, "must list days"),
    ({"value": {"mon": "9-16"}, "timezone": "Europe/Budpest"}, "no time zone"),
    ({"value": {"mon": "9-16"}, "closed_on": ["24.12.2026"]}, "not a date like"),
    ({"value": {"mon": "9-16"}, "closed_on": ["2027-01-01..2026-12-24"]}, "first day first"),
    ("09:00-16:00", "must hold value"),
])
def test_hours_that_cannot_be_read_are_refused_with_the_reason(entry, reason):
    with pytest.raises(HoursError, match=reason):
        read_office_hours(entry)


def test_unset_hours_are_false_and_say_nothing():
    assert not read_office_hours(None)
    assert OfficeHours().describe(NAMES) is None
