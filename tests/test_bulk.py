"""inbox.bulk: many rows in one statement (unnest arrays on PostgreSQL, executemany elsewhere)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from inbox.bulk import insert_rows, update_rows
from inbox.extensions import db
from inbox.models import ClockEventKind, Contact, SlaClock, SlaClockEvent, SlaMetric, StopReason
from tests import factories

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_insert_rows_returns_the_new_ids_in_the_order_of_the_rows(app):
    names = [f"contact {n}" for n in (5, 1, 4, 2, 3)]
    ids = insert_rows(
        Contact.__table__,
        [{"display_name": name, "created_at": T0, "updated_at": T0} for name in names],
        return_ids=True,
    )
    stored = dict(db.session.execute(select(Contact.id, Contact.display_name)).all())
    assert [stored[i] for i in ids] == names


def test_insert_rows_keeps_json_nulls_enums_and_times_and_fills_python_defaults(app):
    conversation = factories.conversation()
    pauses = [{"start": T0.isoformat(), "end": None, "why": "pending"}]
    ids = insert_rows(
        SlaClock.__table__,
        [
            {
                "conversation_id": conversation.id,
                "metric": SlaMetric.RESOLUTION,
                "cycle": 2,  # the factory's ingestion opened cycle 1
                "started_at": T0,
                "stopped_at": None,
                "stop_reason": None,
                "pauses": pauses,
            },
            {
                "conversation_id": conversation.id,
                "metric": SlaMetric.FIRST_RESPONSE,
                "cycle": 2,
                "started_at": T0,
                "stopped_at": T0 + timedelta(minutes=5),
                "stop_reason": StopReason.REPLIED,
                "pauses": [],
            },
        ],
        return_ids=True,
    )
    insert_rows(
        SlaClockEvent.__table__,
        [
            {
                "clock_id": ids[0],
                "kind": ClockEventKind.START,
                "at": T0,
                "detail": {"policy": None, "text": 'a "quoted" 📶 word'},
                "recorded_at": T0,
            }
        ],
    )
    db.session.expire_all()
    resolution, first = (db.session.get(SlaClock, i) for i in ids)
    assert (resolution.metric, resolution.pauses, resolution.stop_reason) == (
        SlaMetric.RESOLUTION,
        pauses,
        None,
    )
    assert resolution.paused_seconds == 0 and resolution.target_seconds is None  # defaults
    assert (first.stopped_at, first.stop_reason) == (T0 + timedelta(minutes=5), StopReason.REPLIED)
    (event,) = resolution.events
    assert event.detail == {"policy": None, "text": 'a "quoted" 📶 word'}
    assert event.reason == ""  # a scalar default


def test_update_rows_sets_each_rows_values_and_leaves_other_rows_alone(app):
    ids = insert_rows(
        Contact.__table__,
        [{"display_name": f"c{n}", "created_at": T0, "updated_at": T0} for n in range(3)],
        return_ids=True,
    )
    update_rows(
        Contact.__table__,
        [
            {"id": ids[2], "display_name": "third", "is_vip": True},
            {"id": ids[0], "display_name": "first", "is_vip": False},
        ],
    )
    db.session.expire_all()
    rows = db.session.execute(select(Contact.id, Contact.display_name, Contact.is_vip)).all()
    assert sorted(rows) == [
        (ids[0], "first", False),
        (ids[1], "c1", False),
        (ids[2], "third", True),
    ]
