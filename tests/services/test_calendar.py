"""Business-time arithmetic: hand-computed examples first, then properties over random calendars.

Expected values in the examples are worked out from the semantics in the module docstring of
inbox/services/calendar.py, not copied from the implementation's output.
"""

from __future__ import annotations

import time as clock
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inbox.services.calendar import (
    CalendarSpec,
    OpenInterval,
    add_business_time,
    business_time_between,
    next_open,
    open_intervals,
)

H = timedelta(hours=1)
US = "America/New_York"
DE = "Europe/Berlin"


def local(zone: str, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone), fold=fold)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def every_day(zone: str, *intervals: tuple[time, time], **kwargs: object) -> CalendarSpec:
    return CalendarSpec(zone, weekly={day: intervals for day in range(7)}, **kwargs)


# --- office hours, lunch breaks, holidays -------------------------------------------------------


def test_friday_afternoon_plus_two_hours_is_monday_ten_am() -> None:
    cal = CalendarSpec.office_hours(US)
    # Fri 16:00–17:00 uses one hour, Mon 09:00–10:00 the other; EST is UTC-5.
    due = add_business_time(local(US, 2026, 1, 16, 16), 2 * H, cal)
    assert due == utc(2026, 1, 19, 15)
    assert due.tzinfo is UTC


def test_duration_used_up_at_closing_time_stops_at_closing_not_next_opening() -> None:
    cal = CalendarSpec.office_hours("UTC")
    assert add_business_time(utc(2026, 1, 12, 9), 8 * H, cal) == utc(2026, 1, 12, 17)


def test_two_hundred_business_hours_is_exactly_twenty_five_working_days() -> None:
    cal = CalendarSpec.office_hours(US)
    # From Mon 5 Jan 09:00, 25 eight-hour days end on Fri 6 Feb at 17:00 EST (22:00 UTC).
    assert add_business_time(local(US, 2026, 1, 5, 9), 200 * H, cal) == utc(2026, 2, 6, 22)


def test_adding_a_year_of_business_hours_walks_days_not_minutes() -> None:
    cal = CalendarSpec.office_hours(US)
    began = clock.perf_counter()
    due = add_business_time(local(US, 2026, 1, 5, 9), 2000 * H, cal)
    elapsed = clock.perf_counter() - began
    # 250 working days are 50 weeks from Mon 5 Jan 2026: Fri 18 Dec 2026 at 17:00 EST.
    assert due == utc(2026, 12, 18, 22)
    # A per-minute walk over a year needs ~500k steps; a per-day walk a few hundred.
    assert elapsed < 0.2


def test_lunch_break_is_not_counted() -> None:
    cal = CalendarSpec(DE, weekly={0: ((time(9), time(12)), (time(13), time(17)))})
    monday = (2026, 1, 12)  # CET, UTC+1
    assert add_business_time(local(DE, *monday, 11), 2 * H, cal) == utc(*monday, 13)
    assert business_time_between(local(DE, *monday, 9), local(DE, *monday, 17), cal) == 7 * H
    assert list(open_intervals(local(DE, *monday, 0), local(DE, *monday, 23), cal)) == [
        OpenInterval(utc(*monday, 8), utc(*monday, 11)),
        OpenInterval(utc(*monday, 12), utc(*monday, 16)),
    ]


def test_explicit_holiday_closes_the_whole_date() -> None:
    cal = CalendarSpec.office_hours(US, holidays=[date(2026, 1, 19)])
    # Monday is closed, so the second hour is Tuesday 09:00–10:00 EST.
    assert add_business_time(local(US, 2026, 1, 16, 16), 2 * H, cal) == utc(2026, 1, 20, 15)
    monday = local(US, 2026, 1, 19)
    assert business_time_between(monday, monday + timedelta(days=1), cal) == timedelta(0)


def test_us_independence_day_observed_on_friday_is_closed() -> None:
    thursday_4pm = local(US, 2026, 7, 2, 16)
    # 4 July 2026 is a Saturday, so the holiday is observed on Friday 3 July (EDT, UTC-4).
    with_holidays = CalendarSpec.office_hours(US, country="US")
    assert add_business_time(thursday_4pm, 2 * H, with_holidays) == utc(2026, 7, 6, 14)
    without = CalendarSpec.office_hours(US)
    assert add_business_time(thursday_4pm, 2 * H, without) == utc(2026, 7, 3, 14)


def test_english_christmas_and_observed_boxing_day_are_closed() -> None:
    cal = CalendarSpec.office_hours("Europe/London", country="GB", subdivision="ENG")
    # Fri 25 Dec and Mon 28 Dec (Boxing Day observed) are closed; GMT equals UTC.
    due = add_business_time(local("Europe/London", 2026, 12, 24, 16), 2 * H, cal)
    assert due == utc(2026, 12, 29, 10)
    assert cal.is_closed_on(date(2026, 12, 28))
    assert not cal.is_closed_on(date(2026, 12, 29))


# --- overnight intervals --------------------------------------------------------------------------


NIGHTS = CalendarSpec("UTC", weekly={day: ((time(22), time(6)),) for day in range(5)})


def test_overnight_interval_runs_into_the_next_morning() -> None:
    # Fri 05:00–06:00 belongs to Thursday's night, then Friday's night opens at 22:00.
    assert add_business_time(utc(2026, 1, 16, 5), 2 * H, NIGHTS) == utc(2026, 1, 16, 23)
    # Friday's night continues into Saturday although Saturday has no hours of its own.
    assert add_business_time(utc(2026, 1, 17, 5), H, NIGHTS) == utc(2026, 1, 17, 6)


def test_holiday_closes_the_night_starting_on_it_not_the_night_ending_on_it() -> None:
    thursday, monday = utc(2026, 1, 15), utc(2026, 1, 19)
    # Wed night spill (6h) + Thu night (8h) + Fri night (8h).
    assert business_time_between(thursday, monday, NIGHTS) == 22 * H
    friday_off = CalendarSpec("UTC", weekly=NIGHTS.weekly, holidays=frozenset({date(2026, 1, 16)}))
    assert business_time_between(thursday, monday, friday_off) == 14 * H
    assert business_time_between(utc(2026, 1, 16), utc(2026, 1, 16, 6), friday_off) == 6 * H


def test_adjacent_intervals_across_midnight_are_reported_as_one() -> None:
    cal = CalendarSpec("UTC", weekly={0: ((time(22), time(0)),), 1: ((time(0), time(6)),)})
    assert list(open_intervals(utc(2026, 1, 12), utc(2026, 1, 14), cal)) == [
        OpenInterval(utc(2026, 1, 12, 22), utc(2026, 1, 13, 6))
    ]


# --- daylight saving time -------------------------------------------------------------------------


def test_new_york_spring_forward_night_of_six_wall_hours_lasts_five() -> None:
    cal = every_day(US, (time(0), time(6)))
    sunday = local(US, 2026, 3, 8)
    assert business_time_between(sunday, sunday + timedelta(days=1), cal) == 5 * H
    # 00:00 EST is 05:00 UTC; three real hours later the clock shows 04:00 EDT.
    assert add_business_time(sunday, 3 * H, cal) == utc(2026, 3, 8, 8)


def test_new_york_fall_back_night_of_six_wall_hours_lasts_seven() -> None:
    cal = every_day(US, (time(0), time(6)))
    sunday = local(US, 2026, 11, 1)
    assert business_time_between(sunday, sunday + timedelta(days=1), cal) == 7 * H
    # 00:00 EDT is 04:00 UTC; six real hours later it is 05:00 EST.
    assert add_business_time(sunday, 6 * H, cal) == utc(2026, 11, 1, 10)


def test_berlin_one_to_four_interval_lasts_two_hours_in_march_and_four_in_october() -> None:
    cal = every_day(DE, (time(1), time(4)))
    march = list(open_intervals(local(DE, 2026, 3, 29), local(DE, 2026, 3, 30), cal))
    assert march == [OpenInterval(utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))]
    october = list(open_intervals(local(DE, 2026, 10, 25), local(DE, 2026, 10, 26), cal))
    assert october == [OpenInterval(utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))]


def test_whole_day_intervals_equal_calendar_time_across_dst() -> None:
    cal = every_day(US, (time(0), time(0)))
    start, end = local(US, 2026, 3, 1), local(US, 2026, 11, 15)
    assert business_time_between(start, end, cal) == end - start
    assert business_time_between(local(US, 2026, 11, 1), local(US, 2026, 11, 2), cal) == 25 * H


def test_opening_time_inside_the_spring_gap_opens_when_the_clock_jumps() -> None:
    cal = CalendarSpec(US, weekly={6: ((time(2, 30), time(4)),)})
    sunday = local(US, 2026, 3, 8)
    # 02:30 does not exist; the clock jumps from 02:00 EST to 03:00 EDT at 07:00 UTC.
    assert list(open_intervals(sunday, sunday + timedelta(days=1), cal)) == [
        OpenInterval(utc(2026, 3, 8, 7), utc(2026, 3, 8, 8))
    ]
    assert next_open(sunday, cal) == utc(2026, 3, 8, 7)


def test_interval_entirely_inside_the_spring_gap_has_no_duration() -> None:
    cal = CalendarSpec(DE, weekly={6: ((time(2, 15), time(2, 45)),)})
    gap_day = local(DE, 2026, 3, 29)
    assert business_time_between(gap_day, gap_day + timedelta(days=1), cal) == timedelta(0)
    # The next Sunday it exists again: 02:15 CEST is 00:15 UTC.
    assert next_open(gap_day, cal) == utc(2026, 4, 5, 0, 15)


def test_ambiguous_wall_times_resolve_to_their_first_occurrence() -> None:
    sunday = (2026, 11, 1)  # 01:00–02:00 happens twice in New York: EDT, then EST
    closing = CalendarSpec(US, weekly={6: ((time(0), time(1, 30)),)})
    assert list(open_intervals(local(US, *sunday), local(US, *sunday, 12), closing)) == [
        OpenInterval(utc(*sunday, 4), utc(*sunday, 5, 30))
    ]
    opening = CalendarSpec(US, weekly={6: ((time(1, 30), time(3)),)})
    assert list(open_intervals(local(US, *sunday), local(US, *sunday, 12), opening)) == [
        OpenInterval(utc(*sunday, 5, 30), utc(*sunday, 8))
    ]


def test_input_in_any_zone_gives_the_same_utc_answer() -> None:
    cal = CalendarSpec.office_hours(US)
    from_tokyo = datetime(2026, 1, 17, 6, tzinfo=ZoneInfo("Asia/Tokyo"))  # Fri 16:00 in New York
    assert add_business_time(from_tokyo, 2 * H, cal) == utc(2026, 1, 19, 15)


# --- 24/7 and edge rules --------------------------------------------------------------------------


def test_always_open_business_time_is_calendar_time() -> None:
    cal = CalendarSpec.twenty_four_seven(US)
    start, end = local(US, 2026, 3, 7, 12), local(US, 2026, 3, 9, 12)
    assert business_time_between(start, end, cal) == 47 * H  # spring forward loses an hour
    assert add_business_time(start, 47 * H, cal) == end
    assert next_open(start, cal) == start
    assert list(open_intervals(start, end, cal)) == [OpenInterval(start, end)]


def test_measuring_backwards_gives_zero_not_a_negative_duration() -> None:
    cal = CalendarSpec.office_hours("UTC")
    assert business_time_between(utc(2026, 1, 12, 15), utc(2026, 1, 12, 10), cal) == timedelta(0)


def test_zero_duration_from_a_closed_time_returns_the_start_unchanged() -> None:
    cal = CalendarSpec.office_hours(US)
    saturday_noon = local(US, 2026, 1, 17, 12)
    assert add_business_time(saturday_noon, timedelta(0), cal) == utc(2026, 1, 17, 17)
    one_microsecond = add_business_time(saturday_noon, timedelta(microseconds=1), cal)
    assert one_microsecond == utc(2026, 1, 19, 14, 0, 0, 1)


def test_next_open_is_the_instant_itself_when_open_else_the_next_opening() -> None:
    cal = CalendarSpec.office_hours("UTC")
    assert next_open(utc(2026, 1, 12, 10, 30), cal) == utc(2026, 1, 12, 10, 30)
    assert next_open(utc(2026, 1, 12, 17), cal) == utc(2026, 1, 13, 9)
    assert next_open(utc(2026, 1, 16, 18), cal) == utc(2026, 1, 19, 9)


# --- validation and guards ------------------------------------------------------------------------


def test_overlapping_intervals_in_a_day_are_rejected_with_both_named() -> None:
    with pytest.raises(ValueError, match="Mon 09:00–12:00 and Mon 11:00–13:00"):
        CalendarSpec("UTC", weekly={0: ((time(11), time(13)), (time(9), time(12)))})


def test_overnight_interval_overlapping_the_next_morning_is_rejected() -> None:
    with pytest.raises(ValueError, match="Tue 22:00–06:00 and Wed 05:00–09:00"):
        CalendarSpec("UTC", weekly={1: ((time(22), time(6)),), 2: ((time(5), time(9)),)})
    with pytest.raises(ValueError, match="overlapping"):
        CalendarSpec("UTC", weekly={6: ((time(20), time(2)),), 0: ((time(1), time(3)),)})


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="time zone"):
        CalendarSpec("Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="country"):
        CalendarSpec("UTC", country="XX")
    with pytest.raises(ValueError, match="needs a country"):
        CalendarSpec("UTC", subdivision="ENG")
    with pytest.raises(ValueError, match="always-open"):
        CalendarSpec("UTC", weekly={0: ((time(9), time(17)),)}, always_open=True)
    with pytest.raises(ValueError, match="weekday"):
        CalendarSpec("UTC", weekly={7: ((time(9), time(17)),)})


def test_naive_datetimes_and_negative_durations_are_rejected() -> None:
    cal = CalendarSpec.office_hours("UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(datetime(2026, 1, 12, 9), H, cal)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_time_between(utc(2026, 1, 12), datetime(2026, 1, 13), cal)
    with pytest.raises(ValueError, match="negative"):
        add_business_time(utc(2026, 1, 12, 9), -H, cal)


def test_calendar_without_working_intervals_never_opens() -> None:
    cal = CalendarSpec("UTC", weekly={0: ()})
    with pytest.raises(ValueError, match="no working intervals"):
        add_business_time(utc(2026, 1, 12), H, cal)
    with pytest.raises(ValueError, match="no working intervals"):
        next_open(utc(2026, 1, 12), cal)
    assert business_time_between(utc(2026, 1, 1), utc(2027, 1, 1), cal) == timedelta(0)
    assert add_business_time(utc(2026, 1, 12), timedelta(0), cal) == utc(2026, 1, 12)


def test_search_more_than_two_years_ahead_raises() -> None:
    all_closed = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(3 * 366))
    closed = CalendarSpec.office_hours("UTC", holidays=all_closed)
    with pytest.raises(ValueError, match="731 days"):
        add_business_time(utc(2026, 1, 5), H, closed)
    with pytest.raises(ValueError, match="731 days"):
        next_open(utc(2026, 1, 5), closed)
    # About five years of office hours is far past the horizon too.
    with pytest.raises(ValueError, match="731 days"):
        add_business_time(utc(2026, 1, 5), 10_000 * H, CalendarSpec.office_hours("UTC"))


def test_calendar_is_immutable_hashable_and_compares_by_value() -> None:
    weekly = {0: ((time(13), time(17)), (time(9), time(12)))}
    cal = CalendarSpec("UTC", weekly=weekly)
    weekly[1] = ((time(9), time(17)),)  # the caller's dict is not the calendar's
    same = CalendarSpec("UTC", weekly={0: ((time(9), time(12)), (time(13), time(17)))})
    assert cal == same
    assert hash(cal) == hash(same)
    assert 1 not in cal.weekly
    assert cal != CalendarSpec("UTC", weekly={0: ((time(9), time(12)),)})


# --- properties over random calendars -------------------------------------------------------------

WEEK_MINUTES = 7 * 24 * 60
DAY_MINUTES = 24 * 60
DST_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]
FIXED_ZONES = ["UTC", "Asia/Kolkata"]
INPUT_ZONES = [UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")]


def _minute_time(minute: int) -> time:
    return time(minute // 60, minute % 60)


@st.composite
def weeklies(draw: st.DrawFn) -> dict[int, tuple[tuple[time, time], ...]]:
    """Non-overlapping intervals laid on a circular week: lunch breaks, nights, whole days."""
    bounds = sorted(
        draw(st.lists(st.integers(0, WEEK_MINUTES - 1), min_size=2, max_size=24, unique=True))
    )
    rotation = draw(st.integers(0, WEEK_MINUTES - 1))
    weekly: defaultdict[int, list[tuple[time, time]]] = defaultdict(list)
    for start, end in zip(bounds[::2], bounds[1::2], strict=False):
        length = min(end - start, DAY_MINUTES)  # an interval spans at most one day
        # Rotating around the week keeps intervals disjoint and lets Sunday nights reach Monday.
        day, start_minute = divmod((start + rotation) % WEEK_MINUTES, DAY_MINUTES)
        end_minute = (start_minute + length) % DAY_MINUTES
        weekly[day].append((_minute_time(start_minute), _minute_time(end_minute)))
    return {day: tuple(intervals) for day, intervals in weekly.items()}


@st.composite
def calendars(draw: st.DrawFn, zones: list[str] = DST_ZONES + FIXED_ZONES) -> CalendarSpec:
    return CalendarSpec(
        draw(st.sampled_from(zones)),
        weekly=draw(weeklies()),
        holidays=draw(st.frozensets(st.dates(date(2025, 12, 25), date(2028, 3, 1)), max_size=30)),
        country=draw(st.sampled_from([None, "US", "DE"])),
    )


def weekly_capacity(cal: CalendarSpec) -> timedelta:
    total = timedelta(0)
    for intervals in cal.weekly.values():
        for start, end in intervals:
            wall = datetime.combine(date.min, end) - datetime.combine(date.min, start)
            total += wall if end > start else wall + timedelta(days=1)
    return total


instants = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.sampled_from(INPUT_ZONES),
)
PROPERTY = settings(max_examples=150, deadline=None)


@st.composite
def calendar_and_durations(draw: st.DrawFn, count: int = 1) -> tuple[CalendarSpec, list[timedelta]]:
    cal = draw(calendars())
    # Stay well inside the two-year search horizon even for a calendar open one minute a week.
    limit = min(300 * H, weekly_capacity(cal) * 20)
    durations = st.timedeltas(timedelta(0), limit)
    return cal, [draw(durations) for _ in range(count)]


@PROPERTY
@given(calendar_and_durations(), instants)
def test_measuring_an_added_duration_gives_it_back(
    case: tuple[CalendarSpec, list[timedelta]], start: datetime
) -> None:
    cal, (duration,) = case
    assert business_time_between(start, add_business_time(start, duration, cal), cal) == duration


@PROPERTY
@given(calendar_and_durations(count=2), instants)
def test_adding_more_never_ends_earlier(
    case: tuple[CalendarSpec, list[timedelta]], start: datetime
) -> None:
    cal, durations = case
    shorter, longer = sorted(durations)
    assert add_business_time(start, shorter, cal) <= add_business_time(start, longer, cal)


@PROPERTY
@given(calendars(), st.lists(instants, min_size=3, max_size=3))
def test_business_time_is_additive_over_consecutive_ranges(
    cal: CalendarSpec, points: list[datetime]
) -> None:
    a, b, c = sorted(points)
    whole = business_time_between(a, c, cal)
    assert whole == business_time_between(a, b, cal) + business_time_between(b, c, cal)
    assert timedelta(0) <= whole <= c - a


@PROPERTY
@given(calendar_and_durations(), instants)
def test_added_time_ends_in_open_time_or_at_an_interval_end(
    case: tuple[CalendarSpec, list[timedelta]], start: datetime
) -> None:
    cal, (duration,) = case
    assume(duration > timedelta(0))
    due = add_business_time(start, duration, cal)
    tick = timedelta(microseconds=1)
    # The last microsecond before the due instant was business time, so it was consumed.
    assert business_time_between(due - tick, due, cal) == tick


@PROPERTY
@given(calendars(), instants)
def test_next_open_skips_only_closed_time_and_lands_on_open_time(
    cal: CalendarSpec, at: datetime
) -> None:
    opening = next_open(at, cal)
    assert opening >= at
    assert business_time_between(at, opening, cal) == timedelta(0)
    assert business_time_between(opening, opening + timedelta(seconds=1), cal) > timedelta(0)


@PROPERTY
@given(calendars(), instants, st.timedeltas(timedelta(0), timedelta(days=20)))
def test_open_intervals_are_ordered_disjoint_merged_and_inside_the_range(
    cal: CalendarSpec, a: datetime, span: timedelta
) -> None:
    b = a + span
    intervals = list(open_intervals(a, b, cal))
    for interval in intervals:
        assert a <= interval.start < interval.end <= b
    for earlier, later in pairwise(intervals):
        assert earlier.end < later.start


@PROPERTY
@given(calendars(), st.dates(date(2026, 1, 1), date(2027, 12, 31)), st.data())
def test_a_holiday_removes_exactly_the_intervals_starting_on_that_date(
    cal: CalendarSpec, day: date, data: st.DataObject
) -> None:
    assume(not cal.is_closed_on(day))
    midnight = datetime.combine(day, time(), ZoneInfo(cal.timezone))
    offsets = st.timedeltas(timedelta(days=-2), timedelta(days=3))
    a, b = sorted([midnight + data.draw(offsets), midnight + data.draw(offsets)])
    with_holiday = CalendarSpec(
        cal.timezone, weekly=cal.weekly, holidays=cal.holidays | {day}, country=cal.country
    )
    # Only the holiday's own weekday hours, and only on that date (neighbouring weeks closed).
    only_that_day = CalendarSpec(
        cal.timezone,
        weekly={day.weekday(): cal.weekly.get(day.weekday(), ())},
        holidays=frozenset({day - timedelta(days=7), day + timedelta(days=7)}),
    )
    removed = business_time_between(a, b, only_that_day)
    assert business_time_between(a, b, with_holiday) == business_time_between(a, b, cal) - removed


@PROPERTY
@given(calendars(), instants, st.timedeltas(timedelta(0), timedelta(days=10)))
def test_business_time_is_the_sum_over_weekdays_and_closed_weekdays_add_nothing(
    cal: CalendarSpec, a: datetime, span: timedelta
) -> None:
    b = a + span
    per_weekday = [
        business_time_between(
            a,
            b,
            CalendarSpec(
                cal.timezone,
                weekly={day: cal.weekly.get(day, ())},
                holidays=cal.holidays,
                country=cal.country,
            ),
        )
        for day in range(7)
    ]
    for day in range(7):
        if not cal.weekly.get(day):
            assert per_weekday[day] == timedelta(0)
    assert sum(per_weekday, timedelta(0)) == business_time_between(a, b, cal)


def brute_force_minutes(a: datetime, b: datetime, cal: CalendarSpec) -> int:
    """Open minutes in [a, b), asking minute by minute whether the wall clock is in an interval."""
    zone = ZoneInfo(cal.timezone)
    count = 0
    moment = a
    while moment < b:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        for day in (wall.date(), wall.date() - timedelta(days=1)):
            if cal.is_closed_on(day):
                continue
            for start, end in cal.weekly.get(day.weekday(), ()):
                opens = datetime.combine(day, start)
                closes = datetime.combine(day if end > start else day + timedelta(days=1), end)
                if opens <= wall < closes:
                    count += 1
        moment += timedelta(minutes=1)
    return count


@settings(max_examples=60, deadline=None)
@given(
    calendars(zones=FIXED_ZONES),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    st.integers(0, 4 * DAY_MINUTES),
)
def test_fixed_offset_zones_match_a_minute_by_minute_count(
    cal: CalendarSpec, naive_start: datetime, minutes: int
) -> None:
    # Whole minutes at minute-aligned starts, so each sampled minute is entirely open or closed.
    a = naive_start.replace(second=0, microsecond=0, tzinfo=ZoneInfo(cal.timezone))
    b = a + timedelta(minutes=minutes)
    expected = timedelta(minutes=brute_force_minutes(a, b, cal))
    assert business_time_between(a, b, cal) == expected
