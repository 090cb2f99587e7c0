"""Business-time arithmetic for SLA clocks: calendars, open intervals, adding and measuring time.

This module owns the pure, database-free answer to "how much business time lies between two
instants" and "when is this much business time used up". The SLA engine (DESIGN.md §5) stores
its calendars elsewhere and converts them to a :class:`CalendarSpec` before calling in here.

Semantics (all of them are exercised by tests/services/test_calendar.py):

* Inputs must be timezone-aware; every datetime returned is aware and in UTC. Arithmetic is exact
  to the microsecond.
* Working intervals are local wall-clock times in ``CalendarSpec.timezone``. An interval whose end
  is <= its start crosses midnight and ends on the next local date; ``time(0, 0)`` as an end
  therefore means "end of day" and ``(time(0, 0), time(0, 0))`` is a whole day.
* A wall time is turned into an instant by one rule: **the first instant at which the local clock
  shows that time or later**. For an ambiguous time (fall back) that is its first occurrence, so
  01:00–04:00 on a fall-back night really lasts 4 hours and a shop "closing at 01:30" closes the
  first time the clock reads 01:30. For a non-existent time (spring-forward gap) that is the moment
  of the jump, so 02:30–04:00 on a New York spring-forward day opens at 03:00 EDT and lasts 1 hour.
* A holiday (explicit date, or a country/subdivision holiday from the ``holidays`` package,
  including the "observed" days that package reports) closes every interval that *starts* on that
  local date. An overnight interval is governed by the date it starts on: a Friday holiday closes
  Fri 22:00–Sat 06:00 but not Thu 22:00–Fri 06:00.
* ``always_open`` calendars are plain calendar time (24/7); they take no weekly hours or holidays.
* ``business_time_between(a, b)`` with ``b <= a`` is ``timedelta(0)``, never negative.
* ``add_business_time`` with a zero duration returns ``start`` unchanged (converted to UTC) even if
  the calendar is closed then: nothing has been consumed yet. A positive duration that is used up
  exactly at the end of an interval returns that end, not the next opening.
* Searching forward (``add_business_time``, ``next_open``) raises ``ValueError`` when the calendar
  has no working intervals at all, or when the answer lies more than ~2 years (731 days) after the
  starting instant (every date closed by holidays, or a duration no real SLA target needs), instead
  of looping forever or burning CPU in an SLA sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

Interval = tuple[time, time]

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# How far ahead a forward search may walk before giving up: far beyond any real SLA target, and it
# bounds the work one call can do (at most ~731 days of intervals) on a broken calendar.
_SEARCH_HORIZON = timedelta(days=731)


class OpenInterval(NamedTuple):
    """A half-open span [start, end) of business time, both ends aware UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class CalendarSpec:
    """A business-hours calendar, independent of how it is stored."""

    timezone: str
    weekly: dict[int, tuple[Interval, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None
    always_open: bool = False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        if self.always_open and (self.weekly or self.holidays or self.country):
            raise ValueError("an always-open calendar cannot also have weekly hours or holidays")
        if self.subdivision is not None and self.country is None:
            raise ValueError("a holiday subdivision needs a country")
        if self.country is not None:
            # Fail at construction, not at the first SLA computation, on a bad country code.
            try:
                holidays_lib.country_holidays(self.country, subdiv=self.subdivision)
            except NotImplementedError as exc:
                raise ValueError(f"unknown holiday country/subdivision: {exc}") from exc
        # Copy into a fresh, sorted dict so later mutation of the caller's dict cannot change a
        # frozen calendar behind our back.
        weekly = {day: tuple(sorted(intervals)) for day, intervals in self.weekly.items()}
        _validate_weekly(weekly)
        object.__setattr__(self, "weekly", weekly)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        # The dataclass-generated hash would fail on the dict field; hash its frozen contents,
        # once: every day's intervals are cached under the calendar (`_day_pieces`).
        contents = (
            self.timezone,
            tuple(sorted(weekly.items())),
            self.holidays,
            self.country,
            self.subdivision,
            self.always_open,
        )
        object.__setattr__(self, "_hash", hash(contents))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    @classmethod
    def twenty_four_seven(cls, timezone: str = "UTC") -> CalendarSpec:
        """A calendar that is always open: business time equals calendar time."""
        return cls(timezone=timezone, always_open=True)

    @classmethod
    def office_hours(
        cls,
        timezone: str,
        opens: time = time(9),
        closes: time = time(17),
        *,
        weekdays: Iterable[int] = range(5),
        holidays: Iterable[date] = (),
        country: str | None = None,
        subdivision: str | None = None,
    ) -> CalendarSpec:
        """One interval per working day, e.g. the classic "Mon–Fri 9–17"."""
        return cls(
            timezone=timezone,
            weekly={day: ((opens, closes),) for day in weekdays},
            holidays=frozenset(holidays),
            country=country,
            subdivision=subdivision,
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def has_working_time(self) -> bool:
        return self.always_open or any(self.weekly.values())

    def is_closed_on(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a holiday, explicit or from the country's list."""
        if day in self.holidays:
            return True
        return self.country is not None and day in _country_closed_dates(
            self.country, self.subdivision, day.year
        )


@lru_cache(maxsize=512)
def _country_closed_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    # The holidays package is slow to build; SLA sweeps ask about the same few years constantly.
    return frozenset(holidays_lib.country_holidays(country, subdiv=subdivision, years=year))


def _week_offset(day: int, moment: time) -> timedelta:
    return day * _DAY + timedelta(
        hours=moment.hour,
        minutes=moment.minute,
        seconds=moment.second,
        microseconds=moment.microsecond,
    )


def _describe(day: int, interval: Interval) -> str:
    start, end = interval
    return f"{_WEEKDAY_NAMES[day]} {start.isoformat('minutes')}–{end.isoformat('minutes')}"


def _validate_weekly(weekly: dict[int, tuple[Interval, ...]]) -> None:
    spans: list[tuple[timedelta, timedelta, str]] = []
    for day, intervals in weekly.items():
        if not isinstance(day, int) or not 0 <= day <= 6:
            raise ValueError(f"weekday must be an int 0 (Mon) .. 6 (Sun), got {day!r}")
        for interval in intervals:
            start, end = interval
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(f"interval {_describe(day, interval)} must use naive wall times")
            begin = _week_offset(day, start)
            finish = _week_offset(day, end)
            if end <= start:  # crosses midnight into the next day
                finish += _DAY
            label = _describe(day, interval)
            spans.append((begin, finish, label))
            # Sunday-night intervals spill into Monday: compare them against Monday too.
            if finish > _WEEK:
                spans.append((begin - _WEEK, finish - _WEEK, label))
    spans.sort()
    for (_, prev_end, prev_label), (start, _, label) in pairwise(spans):
        if start < prev_end:
            raise ValueError(f"overlapping working intervals: {prev_label} and {label}")


def _require_aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which the local clock shows ``wall`` or later (see module doc)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        # Exists; fold=0 is the earlier occurrence when the time is ambiguous.
        return first
    # In a gap. fold=1 maps with the post-jump offset and lands before the jump, fold=0 after it
    # (PEP 495), so the jump lies in (before, after]; bisect to the microsecond to find it.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first
    while after - before > timedelta(microseconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return after


@lru_cache(maxsize=4096)
def _day_pieces(day: date, calendar: CalendarSpec, zone: ZoneInfo) -> tuple[OpenInterval, ...]:
    """The open intervals that start on local date ``day``, in UTC, in order.

    A pure function of its arguments, cached: every SLA computation walks the same few weeks
    of the same few calendars, and converting each interval's wall times to UTC dominated.
    """
    if calendar.is_closed_on(day):
        return ()
    pieces = []
    for start, end in calendar.weekly.get(day.weekday(), ()):
        end_day = day if end > start else day + _DAY
        begin = _wall_to_utc(datetime.combine(day, start), zone)
        finish = _wall_to_utc(datetime.combine(end_day, end), zone)
        # An interval entirely inside a DST gap maps to a single instant; it has no duration.
        if finish > begin:
            pieces.append(OpenInterval(begin, finish))
    return tuple(pieces)


def _pieces_from(start: datetime, calendar: CalendarSpec) -> Iterator[OpenInterval]:
    """Unmerged open intervals after UTC ``start`` (the first one clipped to it), forever.

    Walks local dates, so the cost is per day, not per minute. Raises ValueError once it has
    walked ``_SEARCH_HORIZON`` past ``start``.
    """
    zone = calendar.zone
    # The previous date may own an overnight interval that is still running at ``start``.
    day = start.astimezone(zone).date() - _DAY
    while True:
        for piece in _day_pieces(day, calendar, zone):
            if piece.end > start:
                yield OpenInterval(max(piece.start, start), piece.end)
        day += _DAY
        if datetime.combine(day, time(), zone) - start > _SEARCH_HORIZON:
            raise ValueError(
                f"searched {_SEARCH_HORIZON.days} days after {start.isoformat()} without reaching "
                "the answer; the calendar is (nearly) always closed or the duration is too long"
            )


def open_intervals(a: datetime, b: datetime, calendar: CalendarSpec) -> Iterator[OpenInterval]:
    """Maximal open intervals within [a, b), in order, clipped to the range.

    Adjacent intervals (Mon 22:00–24:00 then Tue 00:00–06:00) are merged, so the gaps between
    consecutive results are exactly the closed stretches an "explain" view should list.
    """
    a = _require_aware(a, "a")
    b = _require_aware(b, "b")
    if b <= a:
        return
    if calendar.always_open:
        yield OpenInterval(a, b)
        return
    zone = calendar.zone
    current: OpenInterval | None = None
    # Intervals last at most a day of wall time, so dates outside this window cannot reach [a, b).
    day = a.astimezone(zone).date() - _DAY
    last_day = b.astimezone(zone).date() + _DAY
    while day <= last_day:
        for start, end in _day_pieces(day, calendar, zone):
            start, end = max(start, a), min(end, b)
            if start >= end:
                continue
            if current is not None and start <= current.end:
                current = OpenInterval(current.start, max(current.end, end))
                continue
            if current is not None:
                yield current
            current = OpenInterval(start, end)
        day += _DAY
    if current is not None:
        yield current


def business_time_between(a: datetime, b: datetime, calendar: CalendarSpec) -> timedelta:
    """Business time in [a, b); ``timedelta(0)`` when ``b <= a``."""
    return sum(
        (interval.end - interval.start for interval in open_intervals(a, b, calendar)),
        timedelta(0),
    )


def next_open(at: datetime, calendar: CalendarSpec) -> datetime:
    """The first open instant at or after ``at`` (``at`` itself, in UTC, if already open)."""
    at = _require_aware(at, "at")
    if calendar.always_open:
        return at
    if not calendar.has_working_time:
        raise ValueError("calendar has no working intervals; it is never open")
    return next(_pieces_from(at, calendar)).start


def add_business_time(start: datetime, duration: timedelta, calendar: CalendarSpec) -> datetime:
    """The instant at which ``duration`` of business time, counted from ``start``, is used up."""
    start = _require_aware(start, "start")
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    if duration == timedelta(0) or calendar.always_open:
        return start + duration
    if not calendar.has_working_time:
        raise ValueError("calendar has no working intervals; business time never passes")
    remaining = duration
    pieces = _pieces_from(start, calendar)
    piece = next(pieces)
    # Landing exactly on an interval's end stops there rather than jumping to the next opening.
    while remaining > piece.end - piece.start:
        remaining -= piece.end - piece.start
        piece = next(pieces)
    return piece.start + remaining
