"""SLA reports: attainment, response-time distributions, breakdowns, volume and backlog over a
date range, the live panel, and the row-level export — all SQL aggregates over the SLA ledger
(`sla_clocks` joined to `conversations`), the same on SQLite and PostgreSQL.

Rules (docs/reports.md has the long form):
* A cycle counts in a range by its **start**; attainment counts cycles with a target (met,
  breached, still open; % met = met / (met + breached)); superseded cycles never count.
* Durations (median, p90, mean, histogram) are over cycles *measured*: stopped by a reply
  (response metrics) or by resolving (resolution). Business time is the clock's stored
  `counted_seconds`; calendar time is `stopped_at - started_at`.
* Percentiles are continuous (linear interpolation, PostgreSQL's `percentile_cont`); SQLite gets
  the same from a window-function query.
* Inbound volume is counted in SQL per UTC quarter-hour and the (at most a few thousand)
  buckets are placed in the viewer's time zone here, which is exact across DST changes for every
  zone whose offset is a multiple of 15 minutes (all of them today). New conversations and
  backlog are sums per local day.
* Cost: the in-range ledger is joined to conversations once per report, into a temporary table
  that every ledger figure aggregates (`_materialised_cycles`). On PostgreSQL the volume
  statements, which need no such table, run meanwhile on a second connection (`_alongside`).
* Scope: admins see every conversation; anyone else only their teams' (the viewer is passed in).
  Spam is never counted.

Every number carries the `listing.Filters` that list the conversations behind it.
Imports: models, extensions.db, services.listing, services.sla (labels), timeutil.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import Integer, Table, and_, case, cast, false, func, literal, or_, select, tuple_
from sqlalchemy.schema import CreateTableAs, DropTable
from sqlalchemy.sql import ColumnElement, Select

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import (
    OPEN_STATUSES,
    ChannelAccount,
    Conversation,
    Direction,
    Message,
    Role,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    StopReason,
    Tag,
    Team,
    User,
    conversation_tags,
)
from inbox.services.listing import Filters, cycle_clauses, duration_seconds
from inbox.services.sla import CYCLE_NOUNS, METRIC_LABELS

T = TypeVar("T")

METRICS = (SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE, SlaMetric.RESOLUTION)
BASES = ("business", "calendar")
OUTCOMES = ("met", "breached", "open")
PRESETS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom"}
DEFAULT_PRESET = "7d"
MAX_DAYS = 366
# Histogram buckets in seconds: [low, high), the last one open-ended.
HISTOGRAM = (
    ("< 15m", 0, 15 * 60),
    ("15m–1h", 15 * 60, 3600),
    ("1–4h", 3600, 4 * 3600),
    ("4–8h", 4 * 3600, 8 * 3600),
    ("8–24h", 8 * 3600, 24 * 3600),
    ("1–3d", 24 * 3600, 72 * 3600),
    ("> 3d", 72 * 3600, None),
)
DIMENSIONS = {
    "team": "Team",
    "agent": "Agent",
    "platform": "Platform",
    "priority": "Priority",
    "policy": "Policy",
}
QUARTER_HOUR = 900


# --- the question ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportQuery:
    """A date range [start, end) of UTC instants, the viewer's time zone (days, weekdays and
    hours are the viewer's) and conversation filters (team, agent, platform, channel account,
    kind, priority, policy, tag)."""

    start: datetime
    end: datetime
    tz: str = "UTC"
    filters: Filters = field(default_factory=Filters)
    preset: str = "custom"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def days(self) -> list[date]:
        first = self.start.astimezone(self.zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def args(self) -> dict[str, str]:
        """Query arguments that reproduce this report (filters, range and time zone)."""
        days = self.days()
        args = {"preset": self.preset, "tz": self.tz, **self.filters.args()}
        if self.preset == "custom":
            args.update({"from": days[0].isoformat(), "to": days[-1].isoformat()})
        return args


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day starts (DST-correct)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def parse_query(args: Mapping[str, str], *, now: datetime) -> ReportQuery:
    """Read a report query from query arguments: `preset` (today | 7d | 30d | custom, with
    `from`/`to` local dates, inclusive), `tz`, and the filters `team`, `assignee`, `platform`,
    `channel`, `kind`, `priority`, `policy`, `tag`. A bad value is an InboxError."""
    tz = (args.get("tz") or "UTC").strip()
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InboxError(f"Unknown time zone {tz!r}.", code="bad_filter") from None
    preset = (args.get("preset") or "").strip() or (
        "custom" if args.get("from") else DEFAULT_PRESET
    )
    if preset not in PRESETS:
        raise InboxError(f"Unknown preset {preset!r}.", code="bad_filter")
    today = now.astimezone(zone).date()
    if preset == "custom":
        try:
            first = date.fromisoformat((args.get("from") or "").strip())
            last = date.fromisoformat((args.get("to") or "").strip() or first.isoformat())
        except ValueError:
            raise InboxError("from and to must be dates (YYYY-MM-DD).", code="bad_filter") from None
        if last < first:
            raise InboxError("The range ends before it starts.", code="bad_filter")
        if (last - first).days >= MAX_DAYS:
            raise InboxError(f"A report covers at most {MAX_DAYS} days.", code="bad_filter")
    else:
        last = today
        first = today - timedelta(days={"today": 0, "7d": 6, "30d": 29}[preset])
    parsed = Filters.parse(args)
    filters = Filters(
        platform=parsed.platform,
        channel_account_id=parsed.channel_account_id,
        kind=parsed.kind,
        priority=parsed.priority,
        tag=parsed.tag,
        team_id=parsed.team_id,
        assignee=parsed.assignee,
        policy_id=parsed.policy_id,
    )
    return ReportQuery(
        start=local_midnight(first, zone),
        end=local_midnight(last + timedelta(days=1), zone),
        tz=tz,
        filters=filters,
        preset=preset,
    )


# --- scope -------------------------------------------------------------------------------------


def scope_team_ids(viewer: User) -> tuple[int, ...] | None:
    """None for admins (everything); otherwise the viewer's teams."""
    if viewer.has_role(Role.ADMIN):
        return None
    return tuple(sorted(t.id for t in viewer.teams))


def _scope(viewer: User) -> list[ColumnElement[bool]]:
    team_ids = scope_team_ids(viewer)
    clauses: list[ColumnElement[bool]] = [Conversation.is_spam.is_(False)]
    if team_ids is not None:
        clauses.append(Conversation.team_id.in_(team_ids) if team_ids else false())
    return clauses


def drill(query: ReportQuery, viewer: User, **sla: Any) -> dict[str, str]:
    """Inbox query arguments (view `all`) listing the conversations behind a number: the
    report's filters and scope plus SLA cycle conditions (`sla_metric`, `sla_outcome`, …) or
    other filter fields."""
    team_ids = scope_team_ids(viewer)
    filters = replace(query.filters, team_ids=team_ids or (), **sla)
    if team_ids == ():
        filters = replace(filters, team_ids=(0,))  # no team: nothing, as in the report
    return filters.args()


def cycle_filters(query: ReportQuery, metric: SlaMetric | None, outcome: str) -> dict[str, Any]:
    """The `Filters` fields of the cycles of `metric` with `outcome` started in the range."""
    return {
        "sla_metric": metric,
        "sla_outcome": outcome,
        "started_from": query.start,
        "started_to": query.end,
    }


# --- results -----------------------------------------------------------------------------------


@dataclass
class Attainment:
    metric: SlaMetric
    met: int = 0
    breached: int = 0
    open: int = 0

    @property
    def label(self) -> str:
        return METRIC_LABELS[self.metric]

    @property
    def unit(self) -> str:
        """What the numbers count ("next-response cycles"): not conversations, which one
        drill-down lists once however many of its cycles match."""
        return CYCLE_NOUNS[self.metric][1]

    @property
    def decided(self) -> int:
        return self.met + self.breached

    @property
    def pct_met(self) -> float | None:
        return round(100 * self.met / self.decided, 1) if self.decided else None


@dataclass
class Distribution:
    metric: SlaMetric
    basis: str
    count: int = 0
    median: float | None = None
    p90: float | None = None
    mean: float | None = None
    # (label, low, high, count) per HISTOGRAM bucket.
    histogram: list[tuple[str, int, int | None, int]] = field(default_factory=list)


@dataclass
class BreakdownRow:
    key: str  # the group's id or value ("" for none)
    label: str
    attainment: dict[SlaMetric, Attainment]
    median_first_response: float | None  # business seconds


@dataclass
class DayVolume:
    day: date
    inbound: int
    new_conversations: int
    backlog: int  # open conversations at the end of the local day


@dataclass
class SlaReport:
    query: ReportQuery
    attainment: list[Attainment]
    distributions: dict[tuple[SlaMetric, str], Distribution]
    breakdowns: dict[str, list[BreakdownRow]]
    days: list[DayVolume]
    # heatmap[weekday 0=Mon][hour] = inbound messages.
    heatmap: list[list[int]]


# --- the report -----------------------------------------------------------------------------

# The columns of the report's materialised cycles (see `_materialised_cycles`) that a breakdown
# groups by, per DIMENSIONS entry.
_DIMENSION_COLUMNS = {
    "team": Conversation.team_id,
    "agent": Conversation.assignee_id,
    "platform": ChannelAccount.platform,
    "priority": Conversation.priority,
    "policy": Conversation.sla_policy_id,
}


def _outcome() -> ColumnElement[str | None]:
    """A cycle's outcome (met, breached or open), NULL without a target."""
    k = SlaClock
    targeted = k.target_seconds.is_not(None)
    return case(
        (and_(targeted, k.breached_at.is_not(None)), "breached"),
        (and_(targeted, k.stopped_at.is_not(None)), "met"),
        (targeted, "open"),
    )


def _cycle_rows(query: ReportQuery, viewer: User) -> Select[Any]:
    """The cycles the report counts (scope, filters, range), one narrow row each: metric,
    outcome, measured, both durations and the breakdown dimensions."""
    return (
        select(
            SlaClock.metric.label("metric"),
            _outcome().label("outcome"),
            and_(*cycle_clauses(outcome="measured")).label("measured"),
            *(duration_seconds(basis).label(basis) for basis in BASES),
            *(column.label(name) for name, column in _DIMENSION_COLUMNS.items()),
        )
        .join(Conversation, Conversation.id == SlaClock.conversation_id)
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .where(
            *_scope(viewer),
            *query.filters.clauses(),
            *cycle_clauses(started_from=query.start, started_to=query.end),
        )
    )


@contextmanager
def _materialised_cycles(query: ReportQuery, viewer: User) -> Iterator[Table]:
    """`_cycle_rows` as a temporary table for the length of the block.

    Joining the in-range ledger to conversations is what a report costs (a scan of every
    clock started in the range); every figure is then an aggregate over this table, so the join
    runs once instead of once per figure. CREATE TABLE … AS (not INSERT … SELECT) because
    PostgreSQL runs its SELECT with parallel workers. Values are rendered into the statement
    as literals (SQLAlchemy's quoting), since DDL takes no bound parameters. A table left by a
    failed report on the same connection (SQLite may keep it after a rollback) is dropped first;
    the temporary schema is named so that no permanent table of that name can be hit."""
    schema = "pg_temp" if db.session.get_bind().dialect.name == "postgresql" else "temp"
    create = CreateTableAs(
        _cycle_rows(query, viewer), "report_cycles", schema=schema, temporary=True
    )
    db.session.execute(DropTable(create.table, if_exists=True))
    db.session.execute(create)
    yield create.table
    db.session.execute(DropTable(create.table))


def percentiles(
    base: Select[Any], fractions: tuple[float, ...] = (0.5, 0.9)
) -> dict[Any, list[float | None]]:
    """Continuous percentiles of each of `base`'s value columns (every column after the first)
    grouped by its first (`g`, `v1`, `v2`, …), in SQL: per group, [v1 at each fraction, v2 at
    each fraction, …]. One statement however many value columns, so the rows are read once.

    PostgreSQL: `percentile_cont`. SQLite: rows numbered per group by a window function per
    value column, then for each fraction p the values at positions floor(p(n-1)) and the next
    one are interpolated, which is percentile_cont's definition."""
    sub = base.subquery()
    g, values = sub.c[0], list(sub.c)[1:]
    if db.session.get_bind().dialect.name == "postgresql":
        columns = [func.percentile_cont(p).within_group(v.asc()) for v in values for p in fractions]
        rows = db.session.execute(select(g, *columns).group_by(g)).all()
    else:
        ranked = select(
            g.label("g"),
            func.count().over(partition_by=g).label("n"),
            *(v.label(f"v{j}") for j, v in enumerate(values)),
            *(
                (func.row_number().over(partition_by=g, order_by=v) - 1).label(f"i{j}")
                for j, v in enumerate(values)
            ),
        ).subquery()
        columns = []
        for j in range(len(values)):
            v, i = ranked.c[f"v{j}"], ranked.c[f"i{j}"]
            for p in fractions:
                pos = literal(p) * (ranked.c.n - 1)
                lo = cast(pos, Integer)  # floor: pos is never negative
                hi = lo + case((pos > lo, 1), else_=0)
                lo_v = func.max(case((i == lo, v)))
                hi_v = func.max(case((i == hi, v)))
                frac = func.max(pos - lo)
                columns.append(lo_v + frac * (hi_v - lo_v))
        rows = db.session.execute(select(ranked.c.g, *columns).group_by(ranked.c.g)).all()
    return {row[0]: [None if x is None else float(x) for x in row[1:]] for row in rows}


def _no_attainment() -> dict[SlaMetric, Attainment]:
    return {m: Attainment(m) for m in METRICS}


def _attainment_counts(
    cycles: Table,
) -> tuple[dict[SlaMetric, Attainment], dict[str, dict[Any, dict[SlaMetric, Attainment]]]]:
    """Attainment overall and per breakdown group, from one GROUP BY over every dimension,
    metric and outcome; its rows (one per combination present: hundreds, a few thousand with
    many agents) are summed here into the totals and each dimension's groups. A group exists
    once any cycle has that key, with a target or not."""
    c = cycles.c
    keys = [c[name] for name in DIMENSIONS]
    rows = db.session.execute(
        select(*keys, c.metric, c.outcome, func.count()).group_by(*keys, c.metric, c.outcome)
    ).all()
    totals = _no_attainment()
    groups: dict[str, dict[Any, dict[SlaMetric, Attainment]]] = {name: {} for name in DIMENSIONS}
    for *values, metric, outcome, n in rows:
        targets = [
            groups[name].setdefault(v, _no_attainment())
            for name, v in zip(DIMENSIONS, values, strict=True)
        ]
        if outcome is None:
            continue
        for attainment in (totals, *targets):
            counted = attainment[SlaMetric(metric)]
            setattr(counted, outcome, getattr(counted, outcome) + n)
    return totals, groups


def _distributions(cycles: Table) -> dict[tuple[SlaMetric, str], Distribution]:
    """Per metric and basis, over measured cycles: count, mean, histogram (one statement) and
    median and p90 (one more)."""
    c = cycles.c
    measured = select(c.metric).where(c.measured.is_(True))

    def histogram(value) -> list[ColumnElement[int]]:
        return [
            func.coalesce(
                func.sum(case((and_(value >= lo, value < hi) if hi else value >= lo, 1), else_=0)),
                0,
            )
            for _, lo, hi in HISTOGRAM
        ]

    # Per metric: count, then per basis its mean followed by its histogram buckets.
    stats = db.session.execute(
        measured.add_columns(
            func.count(),
            *(column for basis in BASES for column in (func.avg(c[basis]), *histogram(c[basis]))),
        ).group_by(c.metric)
    ).all()
    by_metric = {SlaMetric(row[0]): row for row in stats}
    # Per metric: median and p90 of each basis in turn.
    pcts = percentiles(measured.add_columns(*(c[basis] for basis in BASES)))
    width = 1 + len(HISTOGRAM)
    result: dict[tuple[SlaMetric, str], Distribution] = {}
    for i, basis in enumerate(BASES):
        for metric in METRICS:
            row = by_metric.get(metric)
            no_cycles = [None, *[0] * len(HISTOGRAM)]
            mean, *counts = row[2 + i * width : 2 + (i + 1) * width] if row else no_cycles
            median, p90 = pcts.get(metric, [None] * 2 * len(BASES))[2 * i : 2 * i + 2]
            result[(metric, basis)] = Distribution(
                metric,
                basis,
                count=int(row[1]) if row else 0,
                median=median,
                p90=p90,
                mean=None if mean is None else float(mean),
                histogram=[
                    (label, lo, hi, int(n))
                    for (label, lo, hi), n in zip(HISTOGRAM, counts, strict=True)
                ],
            )
    return result


def _labels(name: str, keys: list[Any]) -> dict[Any, str]:
    model = {"team": Team, "agent": User, "policy": SlaPolicy}.get(name)
    ids = [k for k in keys if k is not None]
    if model is None:
        return {k: str(k) for k in ids}
    if not ids:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def _breakdown_medians(cycles: Table) -> dict[str, dict[Any, float | None]]:
    """Per dimension and key: the median first response (business seconds) of measured cycles.

    PostgreSQL computes every dimension in one statement (`GROUPING SETS`, one set per
    dimension; `grouping(key) = 0` tells which set a row belongs to, since a key may itself be
    NULL: no team, unassigned); SQLite, which has no grouping sets, one `percentiles` per
    dimension."""
    c = cycles.c
    first_responses = (c.measured.is_(True), c.metric == SlaMetric.FIRST_RESPONSE)
    if db.session.get_bind().dialect.name != "postgresql":
        return {
            name: {
                key: values[0]
                for key, values in percentiles(
                    select(c[name], c.business).where(*first_responses), (0.5,)
                ).items()
            }
            for name in DIMENSIONS
        }
    keys = [c[name] for name in DIMENSIONS]
    rows = db.session.execute(
        select(
            *(func.grouping(key) for key in keys),
            *keys,
            func.percentile_cont(0.5).within_group(c.business.asc()),
        )
        .where(*first_responses)
        .group_by(func.grouping_sets(*(tuple_(key) for key in keys)))
    ).all()
    names = list(DIMENSIONS)
    medians: dict[str, dict[Any, float | None]] = {name: {} for name in names}
    for row in rows:
        grouped, values, median = row[: len(names)], row[len(names) : -1], row[-1]
        i = grouped.index(0)  # the one dimension this row's set groups by
        medians[names[i]][values[i]] = None if median is None else float(median)
    return medians


def _breakdown(
    name: str, groups: dict[Any, dict[SlaMetric, Attainment]], medians: dict[Any, float | None]
) -> list[BreakdownRow]:
    labels = _labels(name, list(groups))
    none_label = {"team": "No team", "agent": "Unassigned", "policy": "No policy"}.get(name, "—")
    result = [
        BreakdownRow(
            key="" if key is None else str(key),
            label=labels.get(key, none_label) if key is not None else none_label,
            attainment=attainment,
            median_first_response=medians.get(key),
        )
        for key, attainment in groups.items()
    ]
    return sorted(result, key=lambda row: row.label.lower())


def breakdown_filter(name: str, key: str) -> dict[str, Any] | None:
    """The Filters fields selecting one breakdown row (None when no filter can: no team)."""
    if name == "agent":
        return {"assignee": int(key) if key else "none"}
    if not key:
        return None
    field_name = {
        "team": "team_id",
        "platform": "platform",
        "priority": "priority",
        "policy": "policy_id",
    }[name]
    return {field_name: int(key) if name in ("team", "policy") else key}


def _conversations(query: ReportQuery, viewer: User) -> list[ColumnElement[bool]]:
    return [*_scope(viewer), *query.filters.clauses()]


def _quarter_hour(column) -> ColumnElement[int]:
    """Index of the UTC quarter-hour an instant falls in, per dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / QUARTER_HOUR), Integer)
    return cast(func.strftime("%s", column), Integer) / QUARTER_HOUR


def _volume(
    query: ReportQuery, where: list[ColumnElement[bool]]
) -> tuple[list[DayVolume], list[list[int]]]:
    """Inbound messages per local day and in the weekday × hour heatmap, new conversations and
    the backlog per local day, over the conversations `where` selects."""
    zone = query.zone
    inbound_bucket = _quarter_hour(Message.sent_at)
    inbound = db.session.execute(
        select(inbound_bucket, func.count())
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.sent_at >= query.start,
            Message.sent_at < query.end,
            *where,
        )
        .group_by(inbound_bucket)
    ).all()
    days = query.days()
    per_day_in = dict.fromkeys(days, 0)
    heatmap = [[0] * 24 for _ in range(7)]
    for bucket, n in inbound:
        local = datetime.fromtimestamp(int(bucket) * QUARTER_HOUR, UTC).astimezone(zone)
        per_day_in[local.date()] = per_day_in.get(local.date(), 0) + n
        heatmap[local.weekday()][local.hour] += n
    # One row of two sums per local day over the conversations: new = the first customer
    # message came that day; open at the day's end (backlog) = it came before the end and the
    # conversation was not resolved by then. Only the latest resolution is stored on the
    # conversation, so one resolved, reopened and resolved again counts as open until its last
    # resolution. Conversations that can count in neither (first message after the range, or
    # before it and resolved before the first day ended) are left out by the WHERE clause.
    fi, resolved = Conversation.first_inbound_at, Conversation.resolved_at
    starts = [local_midnight(d, zone) for d in days]
    ends = [local_midnight(d + timedelta(days=1), zone) for d in days]

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    new_columns = [
        count(and_(fi >= start, fi < end)) for start, end in zip(starts, ends, strict=True)
    ]
    backlog_columns = [
        count(and_(fi < end, or_(resolved.is_(None), resolved >= end))) for end in ends
    ]
    counts = db.session.execute(
        select(*new_columns, *backlog_columns).where(
            fi < query.end,
            or_(fi >= query.start, resolved.is_(None), resolved >= ends[0]),
            *where,
        )
    ).one()
    new, backlog = counts[: len(days)], counts[len(days) :]
    return (
        [
            DayVolume(d, per_day_in[d], int(n), int(b))
            for d, n, b in zip(days, new, backlog, strict=True)
        ],
        heatmap,
    )


@contextmanager
def _alongside(fn: Callable[[], T]) -> Iterator[Callable[[], T]]:
    """Run `fn` while the block runs, on PostgreSQL on a second connection; the block gets a
    callable that returns `fn`'s result (or raises its error).

    The ledger figures aggregate a temporary table, which only the report's own connection sees
    and PostgreSQL scans with a single process, so a second core sits idle meanwhile; `fn`
    (statements that need no such table) uses it, in a thread with its own app context, hence
    its own session, connection and transaction. Under READ COMMITTED each statement reads its
    own snapshot anyway, so this is no less consistent than running them in turn (and, like
    them, it sees only committed rows). SQLite runs `fn` when its result is asked for: one
    writer at a time, and a test's in-memory database is a single connection."""
    if db.session.get_bind().dialect.name != "postgresql":
        yield fn
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> T:
        with app.app_context():  # its teardown closes the thread's session
            return fn()

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(run).result


def sla_report(query: ReportQuery, *, viewer: User) -> SlaReport:
    """The whole report for `query` as `viewer` may see it."""
    where = _conversations(query, viewer)  # the scope reads the viewer's teams, in this session
    with (
        _materialised_cycles(query, viewer) as cycles,
        _alongside(lambda: _volume(query, where)) as volume,
    ):
        totals, groups = _attainment_counts(cycles)
        distributions = _distributions(cycles)
        medians = _breakdown_medians(cycles)
        breakdowns = {name: _breakdown(name, groups[name], medians[name]) for name in DIMENSIONS}
    days, heatmap = volume()
    return SlaReport(
        query=query,
        attainment=[totals[m] for m in METRICS],
        distributions=distributions,
        breakdowns=breakdowns,
        days=days,
        heatmap=heatmap,
    )


# --- live panel --------------------------------------------------------------------------------


@dataclass
class AgentLoad:
    user: User
    open_count: int


@dataclass
class LivePanel:
    # (team label, {status: count}) for open conversations.
    by_team: list[tuple[str, int | None, dict[str, int]]]
    at_risk: int
    overdue: int
    oldest_waiting: Conversation | None
    oldest_waiting_since: datetime | None
    agents: list[AgentLoad]

    @property
    def open_total(self) -> int:
        return sum(sum(counts.values()) for _, _, counts in self.by_team)


def live_panel(viewer: User, *, now: datetime) -> LivePanel:
    """What is happening now: open conversations by team and status, cycles at risk (warned,
    not breached) and overdue (breached, still running), the customer waiting longest for a
    response, and agents with their open load."""
    scope = _scope(viewer)
    open_ = Conversation.status.in_(OPEN_STATUSES)
    rows = db.session.execute(
        select(Conversation.team_id, Conversation.status, func.count())
        .where(*scope, open_)
        .group_by(Conversation.team_id, Conversation.status)
    ).all()
    names = _labels("team", [r[0] for r in rows])
    teams: dict[int | None, dict[str, int]] = {}
    for team_id, status, n in rows:
        teams.setdefault(team_id, {})[str(status)] = n
    by_team = sorted(
        ((names.get(t, "No team"), t, counts) for t, counts in teams.items()),
        key=lambda item: item[0].lower(),
    )

    def running(outcome: str) -> int:
        return (
            db.session.scalar(
                select(func.count(func.distinct(SlaClock.conversation_id)))
                .join(Conversation, Conversation.id == SlaClock.conversation_id)
                .where(*scope, open_, *cycle_clauses(outcome=outcome))
            )
            or 0
        )

    waiting = db.session.execute(
        select(Conversation, SlaClock.started_at)
        .join(SlaClock, SlaClock.conversation_id == Conversation.id)
        .where(
            *scope,
            open_,
            SlaClock.metric.in_((SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE)),
            SlaClock.stopped_at.is_(None),
        )
        .order_by(SlaClock.started_at, Conversation.id)
        .limit(1)
    ).first()
    team_ids = scope_team_ids(viewer)
    load = (
        select(Conversation.assignee_id, func.count().label("n"))
        .where(Conversation.is_spam.is_(False), open_)
        .group_by(Conversation.assignee_id)
        .subquery()
    )
    agents_q = (
        select(User, func.coalesce(load.c.n, 0))
        .outerjoin(load, load.c.assignee_id == User.id)
        .where(User.active.is_(True), User.role.in_((Role.AGENT, Role.SUPERVISOR)))
        .order_by(User.name)
    )
    if team_ids is not None:
        agents_q = agents_q.where(User.teams.any(Team.id.in_(team_ids)))
    return LivePanel(
        by_team=by_team,
        at_risk=running("at_risk"),
        overdue=running("overdue"),
        oldest_waiting=waiting[0] if waiting else None,
        oldest_waiting_since=waiting[1] if waiting else None,
        agents=[AgentLoad(u, int(n)) for u, n in db.session.execute(agents_q).all()],
    )


# --- row-level export ------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "conversation_id",
    "platform",
    "channel_account",
    "kind",
    "status",
    "priority",
    "team",
    "assignee",
    "policy",
    "first_inbound_at",
    "first_response_at",
    "resolved_at",
    *(
        f"{m}_{part}"
        for m in METRICS
        for part in ("business_seconds", "calendar_seconds", "outcome")
    ),
    "next_response_cycles",
    "tags",
]


def _outcome_expr(metric: SlaMetric) -> ColumnElement[Any]:
    """Per conversation: breached if any cycle breached, else open if any is running, else met
    (cycles with a target), empty without a target."""
    k = SlaClock
    mine = and_(k.metric == metric, k.target_seconds.is_not(None))
    breached = func.sum(case((and_(mine, k.breached_at.is_not(None)), 1), else_=0))
    running = func.sum(case((and_(mine, k.stopped_at.is_(None)), 1), else_=0))
    targeted = func.sum(case((mine, 1), else_=0))
    return case(
        (breached > 0, "breached"),
        (running > 0, "open"),
        (targeted > 0, "met"),
        else_="",
    )


def export_rows(query: ReportQuery, *, viewer: User, batch: int = 2000) -> Iterator[list[Any]]:
    """One row per conversation whose first customer message is in the range (EXPORT_COLUMNS).
    Durations are of measured cycles (summed over next-response cycles). The statement is
    built now (the viewer is read here) and the rows come lazily from a server-side cursor in
    batches, so memory stays flat however many rows there are and the iterator can be consumed
    after the request's objects are gone (a streamed response)."""
    k = SlaClock
    measured = and_(*cycle_clauses(outcome="measured"))
    durations = []
    for m in METRICS:
        for basis in BASES:
            durations.append(
                func.sum(case((and_(k.metric == m, measured), duration_seconds(basis))))
            )
        durations.append(_outcome_expr(m))
    not_superseded = or_(k.stop_reason.is_(None), k.stop_reason != StopReason.SUPERSEDED)
    per_conversation = (
        select(
            k.conversation_id.label("cid"),
            *[d.label(f"c{i}") for i, d in enumerate(durations)],
            func.sum(case((k.metric == SlaMetric.NEXT_RESPONSE, 1), else_=0)).label("nr"),
        )
        .where(not_superseded)
        .group_by(k.conversation_id)
        .subquery()
    )
    if db.session.get_bind().dialect.name == "postgresql":
        tag_list = func.string_agg(Tag.name, literal(" "))
    else:
        tag_list = func.group_concat(Tag.name, " ")
    tags = (
        select(conversation_tags.c.conversation_id.label("cid"), tag_list.label("tags"))
        .join(Tag, Tag.id == conversation_tags.c.tag_id)
        .group_by(conversation_tags.c.conversation_id)
        .subquery()
    )
    assignee = User.__table__.alias("assignee")
    stmt = (
        select(
            Conversation.id,
            ChannelAccount.platform,
            ChannelAccount.name,
            Conversation.kind,
            Conversation.status,
            Conversation.priority,
            Team.name,
            assignee.c.name,
            SlaPolicy.name,
            Conversation.first_inbound_at,
            Conversation.first_response_at,
            Conversation.resolved_at,
            *[per_conversation.c[f"c{i}"] for i in range(len(durations))],
            func.coalesce(per_conversation.c.nr, 0),
            func.coalesce(tags.c.tags, ""),
        )
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .outerjoin(assignee, assignee.c.id == Conversation.assignee_id)
        .outerjoin(SlaPolicy, SlaPolicy.id == Conversation.sla_policy_id)
        .outerjoin(per_conversation, per_conversation.c.cid == Conversation.id)
        .outerjoin(tags, tags.c.cid == Conversation.id)
        .where(
            Conversation.first_inbound_at >= query.start,
            Conversation.first_inbound_at < query.end,
            *_conversations(query, viewer),
        )
        .order_by(Conversation.id)
        .execution_options(yield_per=batch, stream_results=True)
    )
    return _stream(stmt)


def _stream(stmt: Select[Any]) -> Iterator[list[Any]]:
    for row in db.session.execute(stmt):
        yield list(row)


def summary_rows(report: SlaReport) -> Iterator[list[Any]]:
    """The aggregates as CSV rows (section, group, metric, basis, measure, value)."""
    yield ["section", "group", "metric", "basis", "measure", "value"]
    q = report.query
    yield ["range", "", "", "", "start", q.start.isoformat()]
    yield ["range", "", "", "", "end", q.end.isoformat()]
    yield ["range", "", "", "", "time_zone", q.tz]
    for a in report.attainment:
        for measure in ("met", "breached", "open", "pct_met"):
            yield ["attainment", "all", str(a.metric), "", measure, getattr(a, measure)]
    for (metric, basis), d in report.distributions.items():
        for measure in ("count", "median", "p90", "mean"):
            yield ["distribution", "all", str(metric), basis, measure, getattr(d, measure)]
        for label, _, _, n in d.histogram:
            yield ["histogram", label, str(metric), basis, "count", n]
    for name, rows in report.breakdowns.items():
        for row in rows:
            for a in row.attainment.values():
                for measure in ("met", "breached", "open", "pct_met"):
                    group = f"{name}:{row.label}"
                    yield ["breakdown", group, str(a.metric), "", measure, getattr(a, measure)]
    for day in report.days:
        for measure in ("inbound", "new_conversations", "backlog"):
            yield ["volume", day.day.isoformat(), "", "", measure, getattr(day, measure)]


def report_json(report: SlaReport) -> dict[str, Any]:
    """The report as JSON (the API's answer)."""
    q = report.query
    return {
        "range": {"start": q.start.isoformat(), "end": q.end.isoformat(), "tz": q.tz},
        "filters": q.filters.args(),
        "attainment": {
            str(a.metric): {
                "met": a.met,
                "breached": a.breached,
                "open": a.open,
                "pct_met": a.pct_met,
            }
            for a in report.attainment
        },
        "distributions": {
            f"{metric}:{basis}": {
                "metric": str(metric),
                "basis": basis,
                "count": d.count,
                "median_seconds": d.median,
                "p90_seconds": d.p90,
                "mean_seconds": d.mean,
                "histogram": [
                    {"bucket": label, "min_seconds": lo, "max_seconds": hi, "count": n}
                    for label, lo, hi, n in d.histogram
                ],
            }
            for (metric, basis), d in report.distributions.items()
        },
        "breakdowns": {
            name: [
                {
                    "key": row.key,
                    "label": row.label,
                    "median_first_response_seconds": row.median_first_response,
                    **{
                        str(a.metric): {
                            "met": a.met,
                            "breached": a.breached,
                            "open": a.open,
                            "pct_met": a.pct_met,
                        }
                        for a in row.attainment.values()
                    },
                }
                for row in rows
            ]
            for name, rows in report.breakdowns.items()
        },
        "volume": [
            {
                "day": d.day.isoformat(),
                "inbound": d.inbound,
                "new_conversations": d.new_conversations,
                "backlog": d.backlog,
            }
            for d in report.days
        ],
        "heatmap": report.heatmap,
    }
