"""The office's opening hours, as an operator writes them in content/settings.yml.

    office_hours:
      value:
        mon: "09:00-16:00"
        tue: "9-12, 13-16"        # a lunch break: several spans, with or without minutes
        sat: closed               # or left out
      closed_on:                  # public holidays, team days: dates or ranges
        - 2026-12-24..2026-12-26
        - 2027-01-01
      timezone: Europe/Budapest

What the operator wrote is read strictly (a time that is no time is an error with its
reason, never a guess), so that the assistant never tells a person the office opens when
it does not: hours that cannot be read are not mentioned at all, as if unset, and the
reason is logged (avrr.content.Content.office_hours).
"""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any, FrozenSet, Iterable, List, Mapping, Optional, Tuple
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ENGLISH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The office's time zone when settings.yml names none.
OFFICE_TIMEZONE = "Europe/Budapest"
# "09:00-16:00", "9-16", "9.00 – 16.00": hours, optional minutes, any dash.
_SPAN = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?\s*[-\u2013\u2014]\s*(\d{1,2})(?:[:.](\d{2}))?")
CLOSED_WORDS = ("", "closed", "-")
# A closure longer than this is a typo in a year, not a holiday.
LONGEST_CLOSURE_DAYS = 366
# Beyond a week, a day's name alone is not enough: the date goes with it.
A_WEEK = 7
# The opening hours name the closures of an open day that come within this many days.
COMING_DAYS = 31

Span = Tuple[time, time]
# "24:00", the end of a day an office is open until midnight ("18:00-24:00", "0-24").
END_OF_DAY = time.max


class HoursError(ValueError):
    """office_hours in settings.yml cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Opening:
    """When the office next opens: the day (mon..sun), "HH:MM", its date, and whether it
    is a week or more away (then the date must be said too)."""

    day: str
    time: str
    date: date
    far: bool


@dataclass(frozen=True)
class OfficeHours:
    """Open spans by day (none: not set, or not readable), closed dates, time zone."""

    spans: Mapping[str, Tuple[Span, ...]] = field(default_factory=dict)
    closed: FrozenSet[date] = frozenset()
    zone: str = OFFICE_TIMEZONE

    def __bool__(self) -> bool:
        return bool(self.spans)

    def next_opening(self, moment: datetime) -> Optional[Opening]:
        """When the office next opens; None if it is open at `moment` or the hours are
        not set."""
        if not self.spans:
            return None
        local = moment.astimezone(ZoneInfo(self.zone))
        today, now = local.date(), local.time()
        for offset in range(LONGEST_CLOSURE_DAYS + A_WEEK):
            day = today + timedelta(days=offset)
            if day in self.closed:
                continue
            for start, end in self.spans.get(DAYS[day.weekday()], ()):
                if offset == 0 and start <= now < end:
                    return None
                if offset > 0 or now < start:
                    return Opening(DAYS[day.weekday()], start.strftime("%H:%M"), day,
                                   offset >= A_WEEK)
        return None

    def describe(self, day_names: Mapping[str, str], today: Optional[date] = None
                 ) -> Optional[str]:
        """'Monday–Friday 09:00-16:00; Saturday 09:00-12:00' in the person's language
        (three or more days in a row with the same hours go together), then, from
        `today`, the coming closures: '; closed 2026-12-24–2026-12-26, 2027-01-01' (the
        word is day_names['closed']); None if unset."""
        if not self.spans:
            return None
        runs: List[List[str]] = []
        for day in DAYS:
            if day not in self.spans:
                continue
            previous = runs[-1][-1] if runs else None
            if (previous is not None and DAYS.index(previous) == DAYS.index(day) - 1
                    and self.spans[previous] == self.spans[day]):
                runs[-1].append(day)
            else:
                runs.append([day])
        parts = []
        for run in runs:
            spans = ", ".join(f"{_clock(a)}-{_clock(b)}" for a, b in self.spans[run[0]])
            if len(run) >= 3:
                days = f"{day_names.get(run[0], run[0])}\u2013{day_names.get(run[-1], run[-1])}"
                parts.append(f"{days} {spans}")
            else:
                parts.extend(f"{day_names.get(day, day)} {spans}" for day in run)
        coming = self._coming_closures(today) if today else []
        if coming:
            parts.append(f"{day_names.get('closed', 'closed')} {', '.join(coming)}")
        return "; ".join(parts)

    @cached_property
    def _closures(self) -> Tuple[Tuple[date, date], ...]:
        """The closed dates as ranges of days in a row (first, last), in order: read once
        per version of the settings, not at every answer."""
        runs: List[List[date]] = []
        for day in sorted(self.closed):
            if runs and (day - runs[-1][1]).days == 1:
                runs[-1][1] = day
            else:
                runs.append([day, day])
        return tuple((first, last) for first, last in runs)

    def _coming_closures(self, today: date) -> List[str]:
        """Closures under way or beginning within COMING_DAYS, each to its real end
        ('2026-12-24–2027-01-20'), each with a day the office would be open (a closed
        Sunday alone is not news)."""
        return [first.isoformat() if first == last
                else f"{first.isoformat()}\u2013{last.isoformat()}"
                for first, last in self._closures
                if last >= today and (first - today).days < COMING_DAYS
                and self._opens_between(max(first, today), last)]

    def _opens_between(self, first: date, last: date) -> bool:
        """Whether a day from `first` to `last` is one the office opens on."""
        days = min((last - first).days + 1, len(DAYS))
        return any(DAYS[(first + timedelta(days=n)).weekday()] in self.spans
                   for n in range(days))


def read_office_hours(entry: Any) -> OfficeHours:
    """settings.yml's `office_hours` entry; HoursError with the reason if it cannot be
    read. An entry without a value is unset (no spans)."""
    if entry is None:
        entry = {}
    if not isinstance(entry, Mapping):
        raise HoursError("office_hours must hold value, closed_on and timezone")
    zone = entry.get("timezone") or OFFICE_TIMEZONE
    try:
        ZoneInfo(str(zone))
    except (KeyError, ValueError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise HoursError(f"office_hours.timezone {zone!r} is no time zone") from error
    value = entry.get("value") or {}
    if not isinstance(value, Mapping):
        raise HoursError('office_hours.value must list days, e.g. mon: "09:00-16:00"')
    spans = {}
    for name, written in value.items():
        day = _day(name)
        if day in spans:
            raise HoursError(f"office_hours.value names {day} twice")
        read = _spans(day, written)
        if read:
            spans[day] = read
    if value and not spans:
        raise HoursError("office_hours.value opens on no day")
    return OfficeHours(spans, frozenset(_closed_days(entry.get("closed_on"))), str(zone))


def _day(name: Any) -> str:
    word = str(name).strip().lower()
    if word in DAYS:
        return word
    if word in ENGLISH_DAYS:
        return DAYS[ENGLISH_DAYS.index(word)]
    raise HoursError(f"office_hours.value: {name!r} is no day (mon tue wed thu fri sat sun)")


def _spans(day: str, written: Any) -> Tuple[Span, ...]:
    """'9-12, 13:00-16:00' (or a list of such) as sorted spans; () for a closed day."""
    if written is None or written is False:
        return ()
    if isinstance(written, int | float):  # YAML reads an unquoted 9:00 as 540
        raise HoursError(f"office_hours.value.{day}: write the hours in quotes, "
                         'like "09:00-16:00"')
    pieces = written if isinstance(written, list) else re.split(r"[,;]", str(written))
    found = []
    for piece in (str(p).strip() for p in pieces):
        if piece.lower() in CLOSED_WORDS and len(pieces) == 1:
            return ()
        match = _SPAN.fullmatch(piece)
        if not match:
            raise HoursError(f"office_hours.value.{day}: {piece!r} is not a span like "
                             '"09:00-16:00" (or "closed")')
        start = _time(day, match.group(1), match.group(2))
        end = _time(day, match.group(3), match.group(4), ending=True)
        if start >= end:
            raise HoursError(f"office_hours.value.{day}: {piece!r} ends before it starts")
        found.append((start, end))
    return tuple(sorted(found))


def _time(day: str, hours: str, minutes: Optional[str], ending: bool = False) -> time:
    if ending and int(hours) == 24 and int(minutes or 0) == 0:
        return END_OF_DAY
    try:
        return time(int(hours), int(minutes or 0))
    except ValueError as error:
        raise HoursError(f"office_hours.value.{day}: {hours}:{minutes or '00'} is no time "
                         "of day (00:00 to 23:59, or 24:00 to end a span)") from error


def _clock(moment: time) -> str:
    return "24:00" if moment == END_OF_DAY else moment.strftime("%H:%M")


def _closed_days(listed: Any) -> Iterable[date]:
    """closed_on: dates (2026-12-24) and ranges (2026-12-24..2026-12-26), inclusive."""
    if listed is None:
        return
    if not isinstance(listed, list):
        listed = [listed]
    for item in listed:
        if isinstance(item, datetime):
            item = item.date()
        if isinstance(item, date):
            yield item
            continue
        first, _, last = str(item).partition("..")
        start, end = _date(first), _date(last or first)
        if not 0 <= (end - start).days < LONGEST_CLOSURE_DAYS:
            raise HoursError(f"office_hours.closed_on: {item!r} is no range of at most "
                             f"{LONGEST_CLOSURE_DAYS} days, first day first")
        for offset in range((end - start).days + 1):
            yield start + timedelta(days=offset)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise HoursError(f"office_hours.closed_on: {text.strip()!r} is not a date like "
                         "2026-12-24 (or a range 2026-12-24..2026-12-26)") from error
