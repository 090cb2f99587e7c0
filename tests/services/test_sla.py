"""SLA clock scenarios, written from DESIGN.md §5 and docs/sla.md with fixed instants.

The office calendar is UTC, Mon–Fri 09:00–12:00 and 13:00–17:00 (lunch 12–13). 2026-01-12 is
a Monday. Expected values are worked out by hand from the rules, not read off the code.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import delete, event, func, select, update

from inbox.extensions import db
from inbox.live import listen
from inbox.models import (
    ClockEventKind,
    Conversation,
    Direction,
    Kind,
    Message,
    Notification,
    Platform,
    Priority,
    Role,
    SlaClock,
    SlaClockEvent,
    SlaMetric,
    SlaPolicy,
    SlaState,
    Status,
    StopReason,
    WarnMode,
)
from inbox.services import sla
from inbox.services.accounts import get_or_create_team
from inbox.services.channels import add_channel
from inbox.services.csv_import import import_twcs, read_twcs
from inbox.services.ingest import Profile, add_message, get_or_create_conversation, resolve_identity
from inbox.services.sla_config import save_policy
from inbox.timeutil import utcnow
from tests.conftest import ROOT, SHARED_DATA, wait_for
from tests.support.statements import captured_statements

H = timedelta(hours=1)
M = timedelta(minutes=1)


def mon(hour: int, minute: int = 0, day: int = 12) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def tue(hour: int, minute: int = 0) -> datetime:
    return mon(hour, minute, day=13)


@pytest.fixture
def convo(app):
    account, _ = add_channel(Platform.X, "brand", name="@brand")
    counter = iter(range(1, 10_000))

    def factory(priority: Priority = Priority.NORMAL):
        n = next(counter)
        who = resolve_identity(Profile(Platform.X, f"cust{n}", handle=f"cust{n}"))
        conversation, _ = get_or_create_conversation(
            account, f"dm:{n}", kind=Kind.DM, is_public=False, contact=who.contact
        )
        conversation.priority = priority
        conversation.identity = who  # for the helpers below
        db.session.flush()
        return conversation

    return factory


def customer(conversation, at: datetime, now: datetime | None = None) -> Message:
    """An inbound message through the real ingestion path."""
    return add_message(
        conversation,
        direction=Direction.INBOUND,
        text="hello",
        sent_at=at,
        author_identity=conversation.identity,
        now=now or at,
    )


def ours(conversation, at: datetime, *, direction=Direction.OUTBOUND, author=True, auto=False):
    """A reply (author=True: by an agent; False: an echo from the native app) or a note."""
    message = Message(
        conversation=conversation,
        channel_account_id=conversation.channel_account_id,
        direction=direction,
        text="reply",
        sent_at=at,
        author_user_id=author_id(conversation) if author else None,
        is_auto_reply=auto,
    )
    db.session.add(message)
    db.session.flush()
    sla.on_message(conversation, message, now=at)
    return message


def author_id(conversation) -> int:
    from inbox.services.accounts import create_user

    user = getattr(conversation, "_agent", None)
    if user is None:
        user = create_user(
            f"agent{conversation.id}@example.com", name="Agent", role=Role.AGENT, password="x" * 12
        )
        conversation._agent = user
    return user.id


def set_status(conversation, status: Status, at: datetime) -> None:
    old = conversation.status
    conversation.status = status
    sla.on_status_change(conversation, old, actor=None, now=at)


def clock(conversation, metric: SlaMetric, cycle: int = 1) -> SlaClock:
    return db.session.scalar(
        select(SlaClock).filter_by(conversation_id=conversation.id, metric=metric, cycle=cycle)
    )


def events(c: SlaClock, kind: ClockEventKind) -> list[SlaClockEvent]:
    return db.session.scalars(select(SlaClockEvent).filter_by(clock_id=c.id, kind=kind)).all()


FR, NR, RES = SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE, SlaMetric.RESOLUTION


# --- first response ------------------------------------------------------------------------


def test_first_response_met_across_lunch_counts_business_time_only(default_policy, convo):
    c = convo()
    customer(c, mon(11, 12))
    fr = clock(c, FR)
    # 11:12–12:00 is 48m, lunch is free, 13:00–14:12 is the remaining 1h 12m.
    assert fr.started_at == mon(11, 12) and fr.due_at == mon(14, 12)
    ours(c, mon(13, 40))
    assert fr.stopped_at == mon(13, 40) and fr.stop_reason is StopReason.REPLIED
    assert fr.breached_at is None
    assert len(events(fr, ClockEventKind.MET)) == 1
    [explained] = [e for e in sla.explain(c, now=mon(15)) if e.clock.metric is FR]
    assert explained.summary == "1h 28m business time against a 2h target: met"
    assert [(g.start, g.end) for g in explained.not_counted] == [(mon(12), mon(13))]
    assert "break" in explained.not_counted[0].reason


def test_first_response_breached_overnight(default_policy, convo):
    c = convo()
    customer(c, mon(16, 30))
    fr = clock(c, FR)
    # 30m on Monday, then the night is closed: the other 1h 30m runs Tue 09:00–10:30.
    assert fr.due_at == tue(10, 30)
    ours(c, tue(11))
    assert fr.breached_at == tue(10, 30)
    assert [e.at for e in events(fr, ClockEventKind.BREACH)] == [tue(10, 30)]
    assert events(fr, ClockEventKind.MET) == []
    [explained] = [e for e in sla.explain(c, now=tue(12)) if e.clock.metric is FR]
    assert explained.outcome == "breached"
    assert explained.summary == "2h 30m business time against a 2h target: breached (30m over)"
    assert explained.not_counted[0].start == mon(17)
    assert explained.not_counted[0].reason == "outside business hours"


def test_a_clock_open_for_days_names_its_uncounted_stretches_in_one_line(default_policy, convo):
    c = convo()
    customer(c, mon(11))
    # Still open on Wednesday noon: lunch and the night on Monday, the night and lunch on
    # Tuesday, Tuesday night and nothing more (Wednesday morning is business time).
    [explained] = [e for e in sla.explain(c, now=mon(12, day=14)) if e.clock.metric is FR]
    assert [g.kind for g in explained.not_counted] == ["break", "closed", "break", "closed"]
    assert (
        explained.not_counted_summary == "4 stretches not counted: breaks, outside business hours"
    )
    explained.not_counted = explained.not_counted[1:2]
    assert explained.not_counted_summary == "1 stretch not counted: outside business hours"


def test_note_does_not_stop_first_response(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 30), direction=Direction.NOTE)
    assert clock(c, FR).running


def test_echo_of_a_native_app_reply_stops_first_response(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 30), author=False)
    fr = clock(c, FR)
    assert fr.stopped_at == mon(9, 30) and fr.stop_reason is StopReason.REPLIED


def test_echo_does_not_count_when_the_policy_says_so(default_policy, convo):
    default_policy.count_echoes = False
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 30), author=False)
    assert clock(c, FR).running


def test_auto_reply_does_not_stop_first_response(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 1), auto=True)
    assert clock(c, FR).running
    ours(c, mon(9, 40))
    assert clock(c, FR).stopped_at == mon(9, 40)


def test_outbound_before_any_customer_message_starts_nothing(default_policy, convo):
    c = convo()
    ours(c, mon(9))
    assert db.session.scalar(select(func.count(SlaClock.id))) == 0
    assert c.sla_state is SlaState.NONE


# --- next response -------------------------------------------------------------------------


def test_second_customer_message_in_the_same_wait_does_not_move_next_response(
    default_policy, convo
):
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 10))
    customer(c, mon(9, 20))
    customer(c, mon(9, 40))
    nr = clock(c, NR)
    assert nr.started_at == mon(9, 20) and nr.due_at == mon(14, 20)
    assert clock(c, NR, 2) is None
    ours(c, mon(10))
    assert nr.stopped_at == mon(10)
    customer(c, mon(10, 5))
    assert clock(c, NR, 2).started_at == mon(10, 5)


def test_resolving_stops_next_response(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 10))
    customer(c, mon(9, 20))
    set_status(c, Status.RESOLVED, mon(9, 50))
    nr = clock(c, NR)
    assert nr.stopped_at == mon(9, 50) and nr.stop_reason is StopReason.RESOLVED
    assert clock(c, RES).stopped_at == mon(9, 50)
    assert c.sla_state is SlaState.NONE and c.sla_due_at is None


# --- resolution: pauses and reopen ---------------------------------------------------------


def test_pending_pauses_resolution_only(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    set_status(c, Status.PENDING, mon(10))
    res, fr = clock(c, RES), clock(c, FR)
    assert res.paused and res.due_at is None
    # First response keeps running while we wait on the customer.
    assert fr.running and not fr.paused and fr.due_at == mon(11)
    set_status(c, Status.OPEN, mon(14))
    # 1h counted before the pause; 7h remain from Mon 14:00: 14–17, Tue 9–12, Tue 13–14.
    assert not res.paused and res.due_at == tue(14)
    assert res.paused_seconds == 3 * 3600  # 10–12 and 13–14 of business time
    assert [e.kind for e in res.events] == [
        ClockEventKind.START,
        ClockEventKind.PAUSE,
        ClockEventKind.RESUME,
    ]


def test_snoozed_pauses_resolution_too(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    set_status(c, Status.SNOOZED, mon(9, 30))
    assert clock(c, RES).pauses[-1]["why"] == "snoozed"
    assert sla.counted_time(clock(c, RES), tue(9)) == 30 * M


def test_reply_sent_during_a_pause_still_stops_first_response(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    set_status(c, Status.PENDING, mon(9, 15))
    ours(c, mon(9, 45))
    assert clock(c, FR).stopped_at == mon(9, 45)
    assert clock(c, RES).paused


def test_reopen_after_resolution_resumes_the_resolution_clock(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    ours(c, mon(9, 30))
    set_status(c, Status.RESOLVED, mon(10))
    res = clock(c, RES)
    assert res.stopped_at == mon(10) and sla.counted_time(res, mon(10)) == H
    customer(c, mon(11))  # the customer writes again: reopened through ingestion
    assert c.status is Status.OPEN
    assert res.running and res.pauses[-1] == {
        "start": mon(10).isoformat(),
        "end": mon(11).isoformat(),
        "why": "resolved",
    }
    assert sla.counted_time(res, mon(11, 30)) == 90 * M
    # 8h target: 1h used, 7h from 11:00 → 11–12, 13–17 (5h), Tue 09:00–11:00.
    assert res.due_at == tue(11)
    assert clock(c, NR).started_at == mon(11)
    assert [e.kind for e in res.events][-1] is ClockEventKind.RESUME


def test_resolution_met_and_breached_are_recorded_at_resolve(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    set_status(c, Status.RESOLVED, tue(15))  # 7h Monday + 5h Tuesday > 8h
    res = clock(c, RES)
    assert res.breached_at == tue(10)
    assert res.stop_reason is StopReason.RESOLVED
    # First response was never answered: resolving ends it, it does not run forever.
    assert clock(c, FR).stop_reason is StopReason.RESOLVED


# --- policy selection and changes ----------------------------------------------------------


def test_priority_change_mid_cycle_recomputes_due_from_the_original_start(
    default_policy, office, convo
):
    urgent = SlaPolicy(
        position=10,
        name="Urgent",
        priorities=["urgent"],
        first_response_seconds=30 * 60,
        calendar=office,
    )
    db.session.add(urgent)
    c = convo()
    customer(c, mon(9))
    fr = clock(c, FR)
    assert c.sla_policy_id == default_policy.id and fr.due_at == mon(11)
    c.priority = Priority.URGENT
    sla.on_attributes_change(c, actor=None, now=mon(9, 10))
    assert c.sla_policy_id == urgent.id
    assert fr.started_at == mon(9) and fr.due_at == mon(9, 30)
    [change] = events(fr, ClockEventKind.POLICY_CHANGE)
    assert change.at == mon(9, 10) and change.detail["old_due_at"].startswith("2026-01-12 11:00")
    # The urgent policy has no resolution target: that clock keeps measuring without one.
    assert clock(c, RES).target_seconds is None and clock(c, RES).due_at is None


def test_first_matching_policy_wins_in_order(office, convo):
    vip = SlaPolicy(position=1, name="VIP", vip=True, first_response_seconds=600)
    anyone = SlaPolicy(position=2, name="Anyone", first_response_seconds=7200)
    db.session.add_all([anyone, vip])
    c = convo()
    c.contact.is_vip = True
    assert sla.select_policy(c) is vip
    c.contact.is_vip = False
    assert sla.select_policy(c) is anyone
    anyone.active = False
    assert sla.select_policy(c) is None


def test_policy_edited_in_another_app_instance_reaches_the_cached_policies(
    make_app, app, default_policy, convo, admin
):
    # Each process caches the active policies behind a version token that every policy or
    # calendar write replaces: the hooks here stop reading the policies, and an edit made
    # through another app instance (its own session and transaction) is seen after its commit.
    db.session.commit()
    customer(convo(), mon(9))  # reads the policies once, under the current token
    db.session.commit()
    statements: list[str] = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        before = convo()
        customer(before, mon(9))
        db.session.commit()
        assert not [s for s in statements if "FROM sla_policies" in s]
        assert clock(before, FR).due_at == mon(11)  # the 2h target
        other = make_app()
        with other.app_context():
            policy = db.session.get(SlaPolicy, default_policy.id)
            save_policy(
                policy, {"first_response_seconds": 3600}, actor=db.session.merge(admin), now=mon(8)
            )
            db.session.commit()
            db.session.remove()
        after = convo()
        customer(after, mon(9))
        assert clock(after, FR).due_at == mon(10)  # the edited 1h target
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)


def test_a_never_configured_sla_is_cached_too_and_its_token_read_once_per_transaction(convo):
    # No policy or calendar was ever written (no token): the hooks must not read the policies
    # again for every message, and the configuration tokens are one query per transaction.
    customer(convo(), mon(9))  # reads the (empty) policies once
    db.session.commit()

    def two_messages():
        customer(convo(), mon(9))
        customer(convo(), mon(10))
        db.session.commit()

    statements = [statement for statement, _ in captured_statements(two_messages)]
    assert not [s for s in statements if "FROM sla_policies" in s]
    assert len([s for s in statements if "FROM config_versions" in s]) == 1


def test_a_new_conversations_clocks_are_written_in_two_statements_and_never_read_back(
    default_policy, convo
):
    # A conversation built in this transaction has no clocks to read; the two it opens and
    # their START events are one INSERT each, and the next hook of the same transaction
    # (a second message in the same wait) finds them without asking the database.
    c = convo()

    def two_messages():
        customer(c, mon(9))
        customer(c, mon(9, 30))

    statements = [statement for statement, _ in captured_statements(two_messages)]
    assert not [s for s in statements if "FROM sla_clocks" in s]
    # (SQLite hands back inserted ids in order only one row per statement, in process.)
    per_row = db.engine.dialect.name == "sqlite"
    assert len([s for s in statements if s.startswith("INSERT INTO sla_clocks ")]) == (
        2 if per_row else 1
    )
    assert len([s for s in statements if s.startswith("INSERT INTO sla_clock_events ")]) == 1
    db.session.commit()
    assert (clock(c, FR).due_at, clock(c, RES).due_at) == (mon(11), tue(10))
    assert c.sla_due_at == mon(11) and c.sla_state is SlaState.OK
    for metric in (FR, RES):
        (start,) = clock(c, metric).events
        assert (start.kind, start.at, start.reason) == (
            ClockEventKind.START,
            mon(9),
            "first customer message",
        )
    assert db.session.scalar(select(func.count()).select_from(SlaClock)) == 2


def test_a_thread_merged_in_the_transaction_that_built_it_leaves_one_ledger(default_policy, app):
    # The customer's reply arrives first, threaded under the parent tweet's id; the parent then
    # arrives in its own thread, in the same transaction, and the reply's thread (its clocks
    # just written and loaded) is folded into it.
    account, _ = add_channel(Platform.X, "brand", name="@brand")
    who = resolve_identity(Profile(Platform.X, "cust", handle="cust"))

    def thread(key: str) -> Conversation:
        conversation, _ = get_or_create_conversation(
            account, key, kind=Kind.MENTION, is_public=True, contact=who.contact
        )
        return conversation

    def tweet(conversation, tweet_id: str, at: datetime) -> None:
        add_message(
            conversation,
            direction=Direction.INBOUND,
            text="hello",
            sent_at=at,
            external_id=tweet_id,
            author_identity=who,
            now=at,
        )

    orphan = thread("tweet:100")
    tweet(orphan, "101", mon(10))
    root = thread("tweet:99")
    tweet(root, "100", mon(9))
    db.session.commit()
    assert db.session.scalars(select(Conversation.id)).all() == [root.id]
    assert root.message_count == 2
    assert clock(root, FR).started_at == mon(9) and clock(root, RES).started_at == mon(9)
    assert db.session.scalar(select(func.count()).select_from(SlaClock)) == 2


# --- out of order --------------------------------------------------------------------------


def test_late_customer_message_moves_the_start_earlier(default_policy, convo):
    c = convo()
    customer(c, mon(10), now=mon(10))
    customer(c, mon(9), now=mon(10, 1))  # dated earlier, delivered later
    fr = clock(c, FR)
    assert fr.started_at == mon(9) and fr.due_at == mon(11)
    assert clock(c, RES).started_at == mon(9)
    assert len(events(fr, ClockEventKind.ADJUST)) == 1


def test_late_reply_stops_the_cycle_when_it_was_sent(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    customer(c, mon(9, 45))
    ours(c, mon(11, 30))  # FR stopped late: breached at 11:00
    assert clock(c, FR).breached_at == mon(11)
    ours(c, mon(9, 30))  # the echo of a reply actually sent at 09:30 arrives late
    fr = clock(c, FR)
    assert fr.stopped_at == mon(9, 30) and fr.breached_at is None
    # The 09:45 message came after that reply: it opened a next-response cycle.
    nr = clock(c, NR)
    assert nr.started_at == mon(9, 45) and nr.stopped_at == mon(11, 30)


# --- the sweep -----------------------------------------------------------------------------


def test_sweep_warns_and_breaches_once_each(default_policy, convo):
    c = convo()
    customer(c, mon(9))
    fr = clock(c, FR)
    assert fr.warn_at == mon(10, 30)  # 75% of 2h
    assert sla.sweep(now=mon(10)).warned == []
    first = sla.sweep(now=mon(10, 45))
    assert first.warned == [fr.id] and first.breached == []
    # The set-based statements keep the objects already in the session up to date.
    assert fr.warned_at == mon(10, 30) and c.sla_state is SlaState.WARNING
    assert sla.sweep(now=mon(10, 50)).warned == []
    assert sla.sweep(now=mon(11, 5)).breached == [fr.id]
    assert sla.sweep(now=mon(11, 6)).breached == []
    db.session.commit()
    assert len(events(fr, ClockEventKind.WARN)) == 1
    assert len(events(fr, ClockEventKind.BREACH)) == 1
    assert fr.breached_at == mon(11)
    assert c.sla_state is SlaState.BREACHED and c.sla_due_at == mon(11)


def test_sweep_marks_from_changes_made_earlier_in_the_transaction_not_yet_flushed(
    default_policy, convo
):
    # The sweep's statements are Core, not ORM-enabled: the session's changes still go first.
    c = convo()
    customer(c, mon(9))
    fr = clock(c, FR)
    db.session.flush()
    fr.warn_at = mon(9, 30)
    assert fr in db.session.dirty
    assert sla.sweep(now=mon(9, 45)).warned == [fr.id]
    assert fr.warned_at == mon(9, 30) and c.sla_state is SlaState.WARNING


def test_sweep_of_many_records_escalates_and_announces_each_conversation(
    office, default_policy, convo, make_user
):
    # One sweep over conversations with and without escalations: every mark gets its event,
    # only the escalating policy's conversation gets the action, each one is announced.
    urgent = SlaPolicy(
        position=1,
        name="High",
        priorities=["high"],
        first_response_seconds=2 * 3600,
        calendar=office,
        warning_actions=[{"type": "notify", "to": ["assignee"]}],
    )
    db.session.add(urgent)
    agent = make_user(Role.AGENT)
    plain = [convo() for _ in range(3)]
    high = convo(Priority.HIGH)
    high.assignee_id = agent.id
    for c in [*plain, high]:
        customer(c, mon(9))
    db.session.commit()
    stream = listen(timeout=0.5)
    assert next(stream) is None  # subscribed
    result = sla.sweep(now=mon(10, 45))
    db.session.commit()
    announced = []
    while (event := next(stream)) is not None:  # until half a second of silence
        if event["event"] == "conversation.sla":
            announced.append(event)
    stream.close()
    assert sorted(result.warned) == sorted(clock(c, FR).id for c in [*plain, high])
    for c in [*plain, high]:
        (warn,) = events(clock(c, FR), ClockEventKind.WARN)
        assert (warn.at, warn.reason, warn.detail) == (
            mon(10, 30),
            "warning threshold reached",
            {"due_at": str(mon(11))},
        )
        assert c.sla_state is SlaState.WARNING
    assert [(n.user_id, n.conversation_id) for n in db.session.scalars(select(Notification))] == [
        (agent.id, high.id)
    ]
    assert sorted(announced, key=lambda e: e["conversation_id"]) == [
        {
            "event": "conversation.sla",
            "conversation_id": c.id,
            "sla_state": "warning",
            "sla_due_at": str(mon(11)),
        }
        for c in sorted([*plain, high], key=lambda c: c.id)
    ]


def test_two_sweeps_at_once_record_each_mark_once(app, default_policy, convo):
    conversations = [convo() for _ in range(20)]
    for c in conversations:
        customer(c, mon(9))
    db.session.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run():
        try:
            with app.app_context():
                barrier.wait()
                sla.sweep(now=mon(12))
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    counts = dict(
        db.session.execute(
            select(SlaClockEvent.kind, func.count()).group_by(SlaClockEvent.kind)
        ).all()
    )
    # Per conversation the first response (due 11:00, warned at 10:30) is warned and
    # breached; resolution warns at 75% of 8h (Mon 16:00), not yet.
    assert counts[ClockEventKind.WARN] == 20
    assert counts[ClockEventKind.BREACH] == 20


def test_two_sweeps_at_once_notify_each_recipient_once_per_mark(
    app, default_policy, convo, make_user
):
    # The notify escalation runs from the marked rows (no objects): the assignee, and the
    # team's active supervisors (every active supervisor when the item has no team), each
    # get one notification per warn/breach mark, however many sweeps run at once.
    social = get_or_create_team("Social care")
    ours_supervisor = make_user(Role.SUPERVISOR, team="Social care")
    other_supervisor = make_user(Role.SUPERVISOR, team="Billing support")
    retired = make_user(Role.SUPERVISOR, team="Social care")
    retired.active = False
    assignee = make_user(Role.AGENT, team="Social care")
    default_policy.warning_actions = [{"type": "notify", "to": ["assignee"]}]
    default_policy.breach_actions = [{"type": "notify", "to": ["assignee", "supervisors"]}]
    with_team, without_team = [convo() for _ in range(4)], [convo() for _ in range(4)]
    for c in with_team + without_team:
        c.assignee_id = assignee.id
        c.team = social if c in with_team else None
        customer(c, mon(9))
    db.session.commit()
    barrier = threading.Barrier(2)
    results: list[sla.SweepResult] = []

    def run():
        with app.app_context():
            barrier.wait()
            results.append(sla.sweep(now=mon(11, 15)))
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = sorted(
        (n.conversation_id, n.kind, n.user_id) for n in db.session.scalars(select(Notification))
    )
    expected = []
    for c in with_team + without_team:
        breach_to = [ours_supervisor] if c in with_team else [ours_supervisor, other_supervisor]
        expected.append((c.id, "sla.warn", assignee.id))
        expected += [(c.id, "sla.breach", u.id) for u in [assignee, *breach_to]]
    assert got == sorted(expected)
    assert sum(r.actions for r in results) == len(expected)
    note = db.session.scalar(
        select(Notification).filter_by(conversation_id=with_team[0].id, kind="sla.breach")
    )
    assert note.text == (
        f"SLA breached: first response on conversation #{with_team[0].id} was due at "
        "2026-01-12 11:00 UTC"
    )


def test_sweep_passes_over_a_conversation_being_changed_instead_of_deadlocking(
    app, default_policy, convo, postgres
):
    # An agent's reply locks the conversation row and then its clocks; a sweep that locked
    # the clock first and then waited for the conversation deadlocked with it (PostgreSQL
    # aborted one of them: the agent saw a 503).
    c = convo()
    customer(c, mon(9))
    db.session.commit()
    conversation_id = c.id
    changing, swept = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    results: list[sla.SweepResult] = []

    def agent():
        try:
            with app.app_context():
                mine = db.session.get(type(c), conversation_id)
                mine.identity = c.identity
                mine.priority = Priority.HIGH
                db.session.flush()  # the conversation's row is now locked
                changing.set()
                swept.wait(2)  # SQLite serialises writers: there the sweep waits for us
                ours(mine, mon(12, 30))  # the reply stops the first-response clock
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            changing.set()

    def sweeper():
        try:
            with app.app_context():
                changing.wait(10)
                results.append(sla.sweep(now=mon(12)))
                db.session.commit()
                swept.set()
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=agent), threading.Thread(target=sweeper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    if postgres:  # row locks: the sweep skipped the locked conversation without waiting
        assert results[0].warned == [] and results[0].breached == []
    db.session.expire_all()
    fr = clock(db.session.get(type(c), conversation_id), FR)
    assert fr.stopped_at == mon(12, 30) and fr.breached_at == mon(11)


# --- escalations ---------------------------------------------------------------------------


def test_breach_escalations_raise_priority_reassign_and_notify(default_policy, convo, make_user):
    billing = get_or_create_team("Billing support")
    supervisor = make_user(Role.SUPERVISOR, team="Social care")
    make_user(Role.SUPERVISOR, team="Billing support")  # another team's: not notified
    assignee = make_user(Role.AGENT, team="Social care")
    default_policy.warning_actions = [{"type": "notify", "to": ["assignee"]}]
    default_policy.breach_actions = [
        {"type": "notify", "to": ["assignee", "supervisors"]},
        {"type": "raise_priority"},
        {"type": "reassign", "team_id": billing.id},
    ]
    c = convo()
    c.team = get_or_create_team("Social care")
    c.assignee_id = assignee.id
    customer(c, mon(9))
    sla.sweep(now=mon(10, 40))
    notes = db.session.scalars(select(Notification)).all()
    assert [(n.user_id, n.kind) for n in notes] == [(assignee.id, "sla.warn")]
    assert notes[0].text == f"SLA warning: first response on conversation #{c.id} is due in 20m"
    result = sla.sweep(now=mon(11, 1))
    assert result.breached == [clock(c, FR).id]
    db.session.commit()
    breach_notes = db.session.scalars(select(Notification).filter_by(kind="sla.breach")).all()
    assert {n.user_id for n in breach_notes} == {assignee.id, supervisor.id}
    assert c.priority is Priority.HIGH
    assert c.team_id == billing.id and c.assignee_id is None


def test_breach_webhook_is_called_from_an_outbound_job(app, default_policy, convo, worker_process):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        default_policy.breach_actions = [{"type": "webhook", "url": url}]
        c = convo()
        customer(c, mon(9))
        sla.sweep(now=mon(11, 1))
        assert received == []  # not inside the sweep's transaction
        db.session.commit()
        wait_for(lambda: received, timeout=30, what="the webhook call")
    finally:
        server.shutdown()
    # The worker's own periodic sweep runs at real time and may also find the resolution clock
    # of this (long past) conversation breached; the sweep above is about first response.
    assert [r for r in received if r["metric"] == "first_response"] == [
        {
            "event": "sla.breach",
            "conversation_id": c.id,
            "metric": "first_response",
            "cycle": 1,
            "policy": "Default",
            "at": mon(11).isoformat(),
            "due_at": mon(11).isoformat(),
        }
    ]


# --- imports -------------------------------------------------------------------------------


TWCS_FILES = [ROOT / "tests" / "fixtures" / "csv" / "twcs_small.csv"]
if (SHARED_DATA / "twcs_sample.csv").exists():  # licensed material; CI has it
    TWCS_FILES.append(SHARED_DATA / "twcs_sample.csv")


@pytest.mark.parametrize("path", TWCS_FILES, ids=lambda p: p.name)
def test_twcs_import_gets_first_response_times_from_the_tweets(app, path):
    # With a 24/7 policy the first-response time must equal the first brand reply minus the
    # first customer tweet of the thread, computed here from the CSV rows themselves.
    db.session.add(
        SlaPolicy(position=1, name="24/7", first_response_seconds=3600, business_hours=False)
    )
    db.session.flush()
    text = path.read_text(encoding="utf-8")
    import_twcs(read_twcs(io.StringIO(text)), now=utcnow())
    rows = {r["tweet_id"]: r for r in csv.DictReader(io.StringIO(text))}

    def stamp(row):
        return datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y")

    clocks = db.session.scalars(select(SlaClock).filter_by(metric=FR)).all()
    assert clocks
    for fr in clocks:
        thread = sorted(
            (rows[m.external_id] for m in fr.conversation.messages),
            key=lambda r: (stamp(r), int(r["tweet_id"])),
        )
        first_in = next(r for r in thread if r["inbound"] == "True")
        first_out = next(
            (r for r in thread if r["inbound"] == "False" and stamp(r) >= stamp(first_in)), None
        )
        assert fr.started_at == stamp(first_in)
        if first_out is not None:
            assert fr.stop_reason is StopReason.REPLIED
            assert sla.counted_time(fr, fr.stopped_at) == stamp(first_out) - stamp(first_in)
        else:
            assert fr.stop_reason is not StopReason.REPLIED
        # Threads where the brand spoke last were resolved then: nothing is left running.
        if fr.conversation.status is Status.RESOLVED:
            assert not clock(fr.conversation, RES).running


def _ledger_snapshot() -> dict[str, list[tuple]]:
    ledger: dict[str, list[tuple]] = {}
    for c in db.session.scalars(select(SlaClock).order_by(SlaClock.id)):
        ledger.setdefault(c.conversation.thread_key, []).append(
            (
                c.metric,
                c.cycle,
                c.policy_id,
                c.started_at,
                c.due_at,
                c.warn_at,
                c.stopped_at,
                c.stop_reason,
                c.counted_seconds,
                c.paused_seconds,
                c.breached_at,
                tuple(
                    (e.kind, e.at, e.reason, json.dumps(e.detail, sort_keys=True))
                    for e in sorted(c.events, key=lambda e: e.id)
                ),
            )
        )
    for c in db.session.scalars(select(Conversation)):
        ledger.setdefault(c.thread_key, []).append(
            (c.status, c.resolved_at, c.sla_policy_id, c.sla_due_at, c.sla_state)
        )
    return ledger


def test_batched_import_clocks_equal_the_clocks_built_one_conversation_at_a_time(app, office):
    # The import's clock phase runs the hooks on stand-ins built from the rows it inserted and
    # writes each batch at once; the result must be the very ledger the per-conversation hooks
    # build on the stored conversations (business hours, a warning threshold and resolutions
    # give every kind of event; a VIP policy needs the stand-in to know a known contact's VIP).
    vip = resolve_identity(Profile(Platform.X, "900002", handle="900002")).contact
    vip.is_vip = True
    db.session.add(
        SlaPolicy(
            position=0, name="vip", vip=True, first_response_seconds=600, business_hours=False
        )
    )
    db.session.add(
        SlaPolicy(
            position=1,
            name="office",
            first_response_seconds=2 * 3600,
            next_response_seconds=3600,
            resolution_seconds=8 * 3600,
            business_hours=True,
            calendar=office,
            warn_mode=WarnMode.PERCENT,
            warn_value=75,
        )
    )
    db.session.flush()
    text = TWCS_FILES[0].read_text(encoding="utf-8")
    now = utcnow()
    import_twcs(read_twcs(io.StringIO(text)), now=now, batch_size=2)  # the last batch partly filled
    pending = db.session.execute(select(Conversation.id, Conversation.resolved_at)).all()
    assert any(at is None for _, at in pending)
    assert any(at is not None for _, at in pending)
    batched = _ledger_snapshot()
    assert batched["tweet:5"][-1][2] == db.session.scalar(select(SlaPolicy.id).filter_by(vip=True))

    db.session.execute(delete(SlaClockEvent))
    db.session.execute(delete(SlaClock))
    db.session.execute(
        update(Conversation).values(
            status=Status.OPEN, resolved_at=None, sla_policy_id=None, sla_due_at=None
        )
    )
    db.session.commit()
    db.session.expunge_all()
    for conversation_id, resolved_at in pending:
        conversation = db.session.get(Conversation, conversation_id)
        sla.recompute(conversation, now=now)
        if resolved_at is not None:
            conversation.status = Status.RESOLVED
            conversation.resolved_at = resolved_at
            sla.on_status_change(conversation, Status.OPEN, actor=None, now=resolved_at)
    db.session.commit()
    assert _ledger_snapshot() == batched
