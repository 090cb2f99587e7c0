"""SLA report numbers against expectations computed here from the timestamps the test chose
(never through the report code): attainment, percentiles, business vs calendar time, filters,
scope, empty ranges, time-zone boundaries, volume, backlog, drill-down counts and the TWCS
sample's per-brand median first response.
"""

from __future__ import annotations

import csv
import io
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from inbox.extensions import db
from inbox.models import (
    ChannelAccount,
    Conversation,
    Direction,
    Platform,
    Priority,
    Role,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    Status,
)
from inbox.services import listing, reports, sla
from inbox.services.accounts import get_or_create_team
from inbox.services.conversations import add_tag, set_status
from inbox.services.csv_import import import_twcs, read_twcs
from tests import factories
from tests.conftest import SHARED_DATA

FR, NR, RES = SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE, SlaMetric.RESOLUTION
H = timedelta(hours=1)
M = timedelta(minutes=1)
NOW = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)
FR_TARGET, RES_TARGET = 3600, 8 * 3600


def q(**args) -> reports.ReportQuery:
    return reports.parse_query(MultiDict(args), now=NOW)


def pct_cont(values: list[float], p: float) -> float:
    """percentile_cont by its textbook definition (linear between closest ranks)."""
    xs = sorted(values)
    pos = p * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


@dataclass
class Spec:
    conv_id: int
    team: str
    platform: Platform
    priority: Priority
    inbound: datetime
    reply: datetime | None
    resolve: datetime | None

    @property
    def fr_stop(self) -> datetime | None:
        stops = [t for t in (self.reply, self.resolve) if t is not None]
        return min(stops) if stops else None

    def outcome(self, metric: SlaMetric) -> str:
        stop, target = (self.fr_stop, FR_TARGET) if metric is FR else (self.resolve, RES_TARGET)
        if stop is None:
            return "open"
        return "breached" if (stop - self.inbound).total_seconds() > target else "met"

    def fr_measured(self) -> float | None:
        if self.reply is None or (self.resolve is not None and self.resolve < self.reply):
            return None
        return (self.reply - self.inbound).total_seconds()


@pytest.fixture
def always_on(app) -> SlaPolicy:
    policy = SlaPolicy(
        position=1,
        name="24/7",
        first_response_seconds=FR_TARGET,
        next_response_seconds=2 * 3600,
        resolution_seconds=RES_TARGET,
        business_hours=False,
    )
    db.session.add(policy)
    db.session.flush()
    return policy


@pytest.fixture
def admin(make_user):
    return make_user(Role.ADMIN, team="Admins")


@pytest.fixture
def generated(app, always_on) -> list[Spec]:
    """60 conversations over Jan 12–21 2026 with random replies and resolutions."""
    rng = random.Random(6)
    accounts = {
        Platform.X: factories.channel(Platform.X, "brand-x", "@brand"),
        Platform.MESSENGER: factories.channel(Platform.MESSENGER, "brand-m", "Brand page"),
    }
    specs = []
    for _ in range(60):
        inbound = datetime(2026, 1, 12, tzinfo=UTC) + timedelta(minutes=rng.randrange(10 * 1440))
        reply = inbound + timedelta(minutes=rng.randrange(5, 180)) if rng.random() < 0.8 else None
        resolve = None
        if rng.random() < 0.6:
            resolve = (reply or inbound) + timedelta(minutes=rng.randrange(1, 900))
        platform = rng.choice(list(accounts))
        team = rng.choice(["Social care", "Billing"])
        priority = rng.choice([Priority.NORMAL, Priority.HIGH])
        conv = factories.conversation(
            account=accounts[platform], team=team, sent_at=inbound, commit=False
        )
        conv.priority = priority
        if reply is not None:
            factories.message(conv, "On it", direction=Direction.OUTBOUND, sent_at=reply)
        if resolve is not None:
            set_status(conv, Status.RESOLVED, actor=None, now=resolve)
        db.session.flush()
        specs.append(Spec(conv.id, team, platform, priority, inbound, reply, resolve))
    db.session.commit()
    return specs


def in_range(specs, start: datetime, end: datetime) -> list[Spec]:
    return [s for s in specs if start <= s.inbound < end]


def expected_attainment(specs, metric) -> dict[str, int]:
    counts = {"met": 0, "breached": 0, "open": 0}
    for s in specs:
        counts[s.outcome(metric)] += 1
    return counts


def test_attainment_and_distribution_equal_the_generated_timestamps(admin, generated):
    query = q(preset="custom", **{"from": "2026-01-13", "to": "2026-01-19"})
    report = reports.sla_report(query, viewer=admin)
    chosen = in_range(
        generated, datetime(2026, 1, 13, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC)
    )
    assert chosen and len(chosen) < len(generated)
    got = {a.metric: a for a in report.attainment}
    for metric in (FR, RES):
        want = expected_attainment(chosen, metric)
        assert (got[metric].met, got[metric].breached, got[metric].open) == (
            want["met"],
            want["breached"],
            want["open"],
        )
        assert got[metric].pct_met == round(100 * want["met"] / (want["met"] + want["breached"]), 1)
    assert (got[NR].met, got[NR].breached, got[NR].open) == (0, 0, 0)
    durations = [d for s in chosen if (d := s.fr_measured()) is not None]
    for basis in ("business", "calendar"):  # 24/7: business time is calendar time
        dist = report.distributions[(FR, basis)]
        assert dist.count == len(durations)
        assert dist.median == pytest.approx(statistics.median(durations), abs=1e-6)
        assert dist.p90 == pytest.approx(pct_cont(durations, 0.9), abs=1e-6)
        assert dist.mean == pytest.approx(statistics.fmean(durations), abs=1e-6)
        assert sum(n for *_, n in dist.histogram) == len(durations)
        under_15m = sum(1 for d in durations if d < 15 * 60)
        assert dist.histogram[0][3] == under_15m
    resolutions = [(s.resolve - s.inbound).total_seconds() for s in chosen if s.resolve]
    assert report.distributions[(RES, "calendar")].median == pytest.approx(
        statistics.median(resolutions), abs=1e-6
    )


def test_filters_and_breakdowns_count_only_matching_conversations(admin, generated):
    billing = get_or_create_team("Billing")
    query = q(
        preset="custom",
        team=str(billing.id),
        platform="x",
        **{"from": "2026-01-12", "to": "2026-01-21"},
    )
    report = reports.sla_report(query, viewer=admin)
    chosen = [s for s in generated if s.team == "Billing" and s.platform is Platform.X]
    want = expected_attainment(chosen, FR)
    fr = report.attainment[0]
    assert (fr.met, fr.breached, fr.open) == (want["met"], want["breached"], want["open"])

    everything = reports.sla_report(
        q(preset="custom", **{"from": "2026-01-12", "to": "2026-01-21"}), viewer=admin
    )
    by_team = {row.label: row for row in everything.breakdowns["team"]}
    for team in ("Social care", "Billing"):
        want = expected_attainment([s for s in generated if s.team == team], FR)
        got = by_team[team].attainment[FR]
        assert (got.met, got.breached, got.open) == (want["met"], want["breached"], want["open"])
        measured = [d for s in generated if s.team == team and (d := s.fr_measured()) is not None]
        assert by_team[team].median_first_response == pytest.approx(statistics.median(measured))
    by_priority = {row.key: row for row in everything.breakdowns["priority"]}
    for priority in (Priority.NORMAL, Priority.HIGH):
        want = expected_attainment([s for s in generated if s.priority is priority], RES)
        got = by_priority[str(priority)].attainment[RES]
        assert (got.met, got.breached, got.open) == (want["met"], want["breached"], want["open"])


def test_a_tag_with_quotes_filters_exactly_and_reports_run_twice_in_one_transaction(
    admin, generated
):
    # The report's cycles are materialised with CREATE TABLE … AS, whose filter values are
    # rendered into the statement: a tag with quotes and a backslash must still match exactly.
    odd = "it's \\ \"odd\" ''"
    tagged = generated[:5]
    for s in tagged:
        add_tag(db.session.get(Conversation, s.conv_id), odd, actor=None, now=NOW)
    db.session.commit()
    query = q(preset="custom", tag=odd, **{"from": "2026-01-12", "to": "2026-01-21"})
    for _ in range(2):  # the temporary table is gone after the first report
        fr = reports.sla_report(query, viewer=admin).attainment[0]
        want = expected_attainment(tagged, FR)
        assert (fr.met, fr.breached, fr.open) == (want["met"], want["breached"], want["open"])


def test_drilldown_lists_exactly_the_conversations_behind_each_number(admin, generated):
    query = q(preset="custom", **{"from": "2026-01-13", "to": "2026-01-19"})
    report = reports.sla_report(query, viewer=admin)
    for a in report.attainment:
        if a.metric is NR:
            continue
        for outcome in ("met", "breached", "open"):
            args = reports.drill(query, admin, **reports.cycle_filters(query, a.metric, outcome))
            filters = listing.Filters.parse(MultiDict(args))
            n = listing.count_conversations(admin, view="all", filters=filters)
            assert n == getattr(a, outcome), (a.metric, outcome)
    # A histogram bar's drill-down too.
    dist = report.distributions[(FR, "calendar")]
    label, lo, hi, count = dist.histogram[2]
    args = reports.drill(
        query,
        admin,
        **reports.cycle_filters(query, FR, "measured"),
        sla_basis="calendar",
        duration_min=lo,
        duration_max=hi,
    )
    filters = listing.Filters.parse(MultiDict(args))
    assert listing.count_conversations(admin, view="all", filters=filters) == count


def test_supervisor_sees_only_their_teams(make_user, generated):
    supervisor = make_user(Role.SUPERVISOR, team="Billing")
    query = q(preset="custom", **{"from": "2026-01-12", "to": "2026-01-21"})
    report = reports.sla_report(query, viewer=supervisor)
    want = expected_attainment([s for s in generated if s.team == "Billing"], FR)
    fr = report.attainment[0]
    assert (fr.met, fr.breached, fr.open) == (want["met"], want["breached"], want["open"])
    assert {row.label for row in report.breakdowns["team"]} == {"Billing"}
    rows = list(reports.export_rows(query, viewer=supervisor))
    assert len(rows) == sum(1 for s in generated if s.team == "Billing")


def test_empty_range_reports_zeros_and_no_percentages(admin, generated):
    report = reports.sla_report(
        q(preset="custom", **{"from": "2025-06-01", "to": "2025-06-03"}), viewer=admin
    )
    assert all((a.met, a.breached, a.open, a.pct_met) == (0, 0, 0, None) for a in report.attainment)
    dist = report.distributions[(FR, "business")]
    assert (dist.count, dist.median, dist.p90, dist.mean) == (0, None, None, None)
    assert [d.inbound for d in report.days] == [0, 0, 0]
    assert all(rows == [] for rows in report.breakdowns.values())


def test_volume_and_backlog_per_local_day(admin, generated):
    report = reports.sla_report(
        q(preset="custom", tz="America/New_York", **{"from": "2026-01-12", "to": "2026-01-21"}),
        viewer=admin,
    )
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    per_day = defaultdict(int)
    heat = [[0] * 24 for _ in range(7)]
    for s in generated:
        local = s.inbound.astimezone(ny)
        per_day[local.date()] += 1
        if date(2026, 1, 12) <= local.date() <= date(2026, 1, 21):
            heat[local.weekday()][local.hour] += 1
    for day in report.days:
        assert day.inbound == per_day[day.day]  # one customer message per conversation
        assert day.new_conversations == per_day[day.day]
        end = datetime.combine(day.day + timedelta(days=1), datetime.min.time(), tzinfo=ny)
        want = sum(
            1 for s in generated if s.inbound < end and (s.resolve is None or s.resolve >= end)
        )
        assert day.backlog == want
    assert report.heatmap == heat


def test_backlog_counts_conversations_from_before_the_range_until_they_are_resolved(
    app, admin, always_on
):
    """Arrivals before the first day and resolutions after the last one: each day's backlog
    is what was open at its end, computed here directly from the conversations."""
    jan = lambda day, hour=12: datetime(2026, 1, day, hour, tzinfo=UTC)  # noqa: E731
    cases = [  # (first customer message, resolved)
        (jan(2), None),  # long before, still open
        (jan(3), jan(14)),  # before, resolved on the third day
        (jan(4), jan(5)),  # before, resolved before the range: counts nowhere
        (jan(12, 1), jan(13, 23)),  # first day, resolved the next evening
        (jan(13), jan(30)),  # second day, resolved after the range
        (jan(16, 23), None),  # last day, still open
    ]
    for inbound, resolve in cases:
        conv = factories.conversation(sent_at=inbound, commit=False)
        if resolve is not None:
            set_status(conv, Status.RESOLVED, actor=None, now=resolve)
        db.session.flush()
    db.session.commit()
    report = reports.sla_report(
        q(preset="custom", **{"from": "2026-01-12", "to": "2026-01-16"}), viewer=admin
    )
    assert [d.day for d in report.days] == [date(2026, 1, n) for n in range(12, 17)]
    for day in report.days:
        start = datetime.combine(day.day, datetime.min.time(), tzinfo=UTC)
        end = start + timedelta(days=1)
        assert day.new_conversations == sum(1 for i, _ in cases if start <= i < end), day.day
        want = sum(1 for i, r in cases if i < end and (r is None or r >= end))
        assert day.backlog == want, day.day


def test_range_boundaries_follow_the_viewers_time_zone(app, admin, always_on):
    # 23:30 UTC on Monday 12 Jan is Tuesday 08:30 in Tokyo and Monday 18:30 in New York.
    conv = factories.conversation(sent_at=datetime(2026, 1, 12, 23, 30, tzinfo=UTC))
    factories.message(
        conv, "Hi", direction=Direction.OUTBOUND, sent_at=datetime(2026, 1, 13, 0, 10, tzinfo=UTC)
    )
    db.session.commit()

    def first_response(tz, day):
        report = reports.sla_report(
            q(preset="custom", tz=tz, **{"from": day, "to": day}), viewer=admin
        )
        return report.attainment[0].met, report.heatmap

    assert first_response("Asia/Tokyo", "2026-01-13")[0] == 1
    assert first_response("Asia/Tokyo", "2026-01-12")[0] == 0
    assert first_response("America/New_York", "2026-01-12")[0] == 1
    assert first_response("UTC", "2026-01-13")[0] == 0
    _, heat = first_response("Asia/Tokyo", "2026-01-13")
    assert heat[1][8] == 1  # Tuesday, 08h local


def test_presets_are_local_days_ending_today():
    query = q(preset="7d", tz="Asia/Tokyo")
    assert query.start == datetime(2026, 1, 18, 15, tzinfo=UTC)  # 19 Jan 00:00 JST
    assert query.end == datetime(2026, 1, 25, 15, tzinfo=UTC)
    assert len(query.days()) == 7
    assert q(preset="today").start == datetime(2026, 1, 25, tzinfo=UTC)
    assert len(q(preset="30d").days()) == 30


def test_business_time_excludes_nights_weekends_and_lunch(app, admin):
    office = factories.office_calendar()
    db.session.add(office)
    db.session.add(
        SlaPolicy(
            position=1,
            name="Office hours",
            first_response_seconds=2 * 3600,
            business_hours=True,
            calendar=office,
        )
    )
    db.session.flush()
    # (inbound, reply, business seconds, calendar seconds) worked out by hand.
    cases = [
        (
            datetime(2026, 1, 12, 10, 0, tzinfo=UTC),
            datetime(2026, 1, 12, 14, 0, tzinfo=UTC),
            3 * 3600,
            4 * 3600,
        ),
        (
            datetime(2026, 1, 16, 16, 0, tzinfo=UTC),
            datetime(2026, 1, 19, 10, 0, tzinfo=UTC),
            2 * 3600,
            66 * 3600,
        ),
        (
            datetime(2026, 1, 13, 11, 30, tzinfo=UTC),
            datetime(2026, 1, 13, 12, 45, tzinfo=UTC),
            1800,
            4500,
        ),
    ]
    for inbound, reply, _, _ in cases:
        conv = factories.conversation(sent_at=inbound, commit=False)
        factories.message(conv, "Answer", direction=Direction.OUTBOUND, sent_at=reply)
    db.session.commit()
    report = reports.sla_report(
        q(preset="custom", **{"from": "2026-01-12", "to": "2026-01-19"}), viewer=admin
    )
    business = sorted(c[2] for c in cases)
    calendar = sorted(c[3] for c in cases)
    assert report.distributions[(FR, "business")].median == business[1]
    assert report.distributions[(FR, "calendar")].median == calendar[1]
    assert report.distributions[(FR, "business")].mean == pytest.approx(sum(business) / 3)
    assert report.distributions[(FR, "calendar")].mean == pytest.approx(sum(calendar) / 3)
    # Two hours business target: the 3h one breached, the others met.
    fr = report.attainment[0]
    assert (fr.met, fr.breached, fr.open) == (2, 1, 0)
    stored = sorted(db.session.scalars(select(SlaClock.counted_seconds).filter_by(metric=FR)))
    assert stored == business


def test_percentiles_in_sql_equal_percentile_cont(app, admin, always_on):
    # Groups of odd, even and single sizes with repeated values.
    values = {1: [5, 1, 3], 2: [10, 20, 20, 40], 3: [7]}
    conv = factories.conversation(sent_at=NOW - H)
    rows = [(g, v) for g, vs in values.items() for v in vs]
    from sqlalchemy import literal, union_all

    base = union_all(*[select(literal(g).label("g"), literal(v).label("v")) for g, v in rows])
    got = reports.percentiles(select(base.subquery()), (0.5, 0.9, 0.25))
    for g, vs in values.items():
        assert got[g] == pytest.approx([pct_cont(vs, p) for p in (0.5, 0.9, 0.25)])
    assert conv.id


def test_row_export_has_one_row_per_conversation_with_durations(admin, generated):
    query = q(preset="custom", **{"from": "2026-01-13", "to": "2026-01-19"})
    rows = {
        r[0]: dict(zip(reports.EXPORT_COLUMNS, r, strict=True))
        for r in reports.export_rows(query, viewer=admin, batch=7)
    }
    chosen = in_range(
        generated, datetime(2026, 1, 13, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC)
    )
    assert set(rows) == {s.conv_id for s in chosen}
    for s in chosen:
        row = rows[s.conv_id]
        assert row["team"] == s.team
        assert row["first_response_outcome"] == s.outcome(FR)
        assert row["resolution_outcome"] == s.outcome(RES)
        measured = s.fr_measured()
        assert row["first_response_calendar_seconds"] == (
            None if measured is None else int(measured)
        )
        assert row["first_response_business_seconds"] == row["first_response_calendar_seconds"]


def test_live_panel_counts_open_work_now(app, admin, always_on, make_user):
    agent = make_user(Role.AGENT, team="Social care", name="Ann Agent")
    now = datetime.now(UTC)
    late = factories.conversation(sent_at=now - 3 * H, team="Social care")
    factories.conversation(sent_at=now - 5 * M, team="Social care")
    late.assignee = agent
    sla.sweep(now=now)
    db.session.commit()
    panel = reports.live_panel(admin, now=now)
    assert panel.overdue == 1  # first response 1h target: 3h waiting is breached
    assert panel.oldest_waiting.id == late.id
    assert {a.user.name: a.open_count for a in panel.agents}["Ann Agent"] == 1
    ((label, _, statuses),) = panel.by_team
    assert label == "Social care" and sum(statuses.values()) == 2


TWCS = SHARED_DATA / "twcs_sample.csv"


@pytest.mark.skipif(not TWCS.exists(), reason="../shared/data/twcs_sample.csv is not present")
def test_every_breakdown_row_carries_the_median_first_response_of_its_own_conversations(
    admin, generated, always_on
):
    """Each dimension's medians come from one grouped statement on PostgreSQL; a row must get
    its own group's median, including the groups whose key is NULL (no agent assigned)."""
    report = reports.sla_report(
        q(preset="custom", **{"from": "2026-01-12", "to": "2026-01-21"}), viewer=admin
    )

    def median_of(specs) -> float | None:
        measured = [d for s in specs if (d := s.fr_measured()) is not None]
        return statistics.median(measured) if measured else None

    expected = {
        "team": {
            row: median_of([s for s in generated if s.team == row])
            for row in ("Social care", "Billing")
        },
        "platform": {
            str(p): median_of([s for s in generated if s.platform is p])
            for p in (Platform.X, Platform.MESSENGER)
        },
        "priority": {
            str(p): median_of([s for s in generated if s.priority is p])
            for p in (Priority.NORMAL, Priority.HIGH)
        },
        "agent": {"Unassigned": median_of(generated)},
        "policy": {always_on.name: median_of(generated)},
    }
    for name, want in expected.items():
        rows = report.breakdowns[name]
        got = {
            (
                row.label if name in ("team", "agent", "policy") else row.key
            ): row.median_first_response
            for row in rows
        }
        assert got == {k: pytest.approx(v) for k, v in want.items()}, name


def test_twcs_per_brand_median_first_response_equals_the_csv(app, admin, always_on):
    text = TWCS.read_text(encoding="utf-8")
    import_twcs(read_twcs(io.StringIO(text)), now=NOW)
    rows = list(csv.DictReader(io.StringIO(text)))
    by_id = {r["tweet_id"]: r for r in rows}

    def stamp(r):
        return datetime.strptime(r["created_at"], "%a %b %d %H:%M:%S %z %Y")

    # Threads from the CSV: follow reply links to the root, as a conversation groups tweets.
    parent = {r["tweet_id"]: r["in_response_to_tweet_id"].split(".")[0] for r in rows}

    def root(tid):
        seen = set()
        while parent.get(tid) and parent[tid] in by_id and tid not in seen:
            seen.add(tid)
            tid = parent[tid]
        return tid

    threads = defaultdict(list)
    for r in rows:
        threads[root(r["tweet_id"])].append(r)
    # A report covers at most a year: the year up to the newest tweet.
    last_day = max(stamp(r) for r in rows).astimezone(UTC).date()
    first_day = last_day - timedelta(days=reports.MAX_DAYS - 1)
    expected = defaultdict(list)
    for thread in threads.values():
        thread.sort(key=lambda r: (stamp(r), int(r["tweet_id"])))
        brands = {r["author_id"] for r in thread if r["inbound"] == "False"}
        first_in = next((r for r in thread if r["inbound"] == "True"), None)
        if first_in is None or len(brands) != 1:
            continue
        reply = next(
            (r for r in thread if r["inbound"] == "False" and stamp(r) >= stamp(first_in)), None
        )
        if reply is not None and stamp(first_in).astimezone(UTC).date() >= first_day:
            expected[brands.pop()].append((stamp(reply) - stamp(first_in)).total_seconds())
    first, last = first_day.isoformat(), last_day.isoformat()
    report = reports.sla_report(q(preset="custom", **{"from": first, "to": last}), viewer=admin)
    accounts = dict(db.session.execute(select(ChannelAccount.name, ChannelAccount.id)).all())
    checked = 0
    for brand, durations in expected.items():
        if len(durations) < 3:
            continue
        one = reports.sla_report(
            q(preset="custom", channel=str(accounts[f"@{brand}"]), **{"from": first, "to": last}),
            viewer=admin,
        )
        assert one.distributions[(FR, "business")].median == pytest.approx(
            statistics.median(durations)
        ), brand
        checked += 1
    assert checked >= 3
    assert report.distributions[(FR, "calendar")].count == sum(map(len, expected.values()))
