"""Customer messages stored together (`ingest.apply_events`, a statement per table for a whole
delivery) give exactly the rows the one-by-one path gives: contacts, conversations, messages,
classification, routing, audit and the SLA ledger."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from inbox.connectors import Attachment, InboundMessage, MessageEdit
from inbox.extensions import db
from inbox.models import (
    AuditEvent,
    ClockEventKind,
    ContactIdentity,
    Conversation,
    Message,
    Platform,
    SlaClock,
    Status,
)
from inbox.services import sla
from inbox.services.channels import add_channel
from inbox.services.ingest import Unhandled, apply_event, apply_events, batched_bookkeeping
from tests.services.test_routing import rule

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, in business hours
NOW = T0 + timedelta(minutes=30)


def dm(p: str, n: int, who: str, text: str, at: datetime, **extra) -> InboundMessage:
    return InboundMessage(
        platform="x",
        account_id=f"{p}-brand",
        external_id=f"{p}-{n}",
        kind="dm",
        is_public=False,
        direction="inbound",
        sent_at=at,
        text=text,
        author_id=f"{p}-{who}",
        author_handle=f"{p}-{who}",
        **extra,
    )


def delivery(p: str) -> list:
    """One delivery's events for brand `p`: new and existing customers, a duplicate, a late
    message, a high-reach author, an attachment, an unknown account, a public post and a reply
    to it, an edit, and a customer writing again into a resolved conversation."""
    mention = dict(kind="mention", is_public=True)
    return [
        dm(p, 1, "ana", "Your app deleted all my photos, this is terrible", T0),
        dm(p, 2, "ana", "Gracias, ya funciona todo perfectamente", T0 + timedelta(minutes=1)),
        dm(
            p,
            3,
            "bob",
            "",
            T0 + timedelta(minutes=2),
            author_follower_count=50_000,
            attachments=(Attachment(type="image", url="https://x.test/a.jpg"),),
        ),
        dm(p, 1, "ana", "Your app deleted all my photos, this is terrible", T0),
        replace(dm(p, 5, "cara", "anyone there", T0), account_id="nope"),
        replace(dm(p, 6, "cara", "@brand my refund please", T0), **mention),
        replace(
            dm(p, 7, "cara", "@brand still waiting, awful", T0 + timedelta(1)),
            **mention,
            parent_external_id=f"{p}-6",
        ),
        dm(p, 8, "ana", "I love this app so much, great job!", T0 - timedelta(days=1)),
        MessageEdit(
            platform="x",
            account_id=f"{p}-brand",
            external_id=f"{p}-1",
            text="Your app deleted my photos",
            at=T0 + timedelta(minutes=5),
        ),
        dm(p, 9, "dan", "it broke again", T0 + timedelta(minutes=3)),
        dm(p, 10, "bob", "any news?", T0 + timedelta(minutes=4), author_follower_count=51_000),
    ]


def resolved_thread_of_dan(p: str) -> None:
    """Before the delivery: dan wrote once, and the conversation was resolved."""
    with batched_bookkeeping(now=T0):
        apply_event(dm(p, 0, "dan", "it is broken", T0 - timedelta(hours=2)))
    conversation = db.session.scalar(
        select(Conversation).where(Conversation.thread_key == f"dm:{p}-dan")
    )
    conversation.status = Status.RESOLVED
    conversation.resolved_at = T0 - timedelta(hours=1)
    sla.on_status_change(conversation, Status.OPEN, actor=None, now=T0 - timedelta(hours=1))
    db.session.commit()


def one_by_one(events) -> list[tuple[int, str]]:
    issues = []
    with batched_bookkeeping(now=NOW):
        for index, item in enumerate(events):
            try:
                apply_event(item)
            except Unhandled as issue:
                issues.append((index, issue.kind))
    return issues


def snapshot(p: str) -> dict:
    """Everything the delivery wrote for brand `p`, with the brand's prefix taken out."""

    def plain(value):
        return value.replace(f"{p}-", "") if isinstance(value, str) else value

    conversations = db.session.scalars(
        select(Conversation)
        .where(Conversation.thread_key.like(f"%{p}-%"))
        .order_by(Conversation.thread_key)
    ).all()
    result = {}
    for c in conversations:
        messages = db.session.scalars(
            select(Message).where(Message.conversation_id == c.id).order_by(Message.external_id)
        ).all()
        clocks = db.session.scalars(
            select(SlaClock)
            .where(SlaClock.conversation_id == c.id)
            .order_by(SlaClock.metric, SlaClock.cycle)
        ).all()
        audit = db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_type == "conversation", AuditEvent.target_id == c.id)
            .order_by(AuditEvent.id)
        ).all()
        result[plain(c.thread_key)] = {
            "conversation": {
                k: plain(getattr(c, k))
                for k in (
                    "kind",
                    "is_public",
                    "status",
                    "priority",
                    "language",
                    "sentiment",
                    "message_count",
                    "first_inbound_at",
                    "last_inbound_at",
                    "last_message_at",
                    "first_response_at",
                    "resolved_at",
                    "sla_policy_id",
                    "sla_due_at",
                    "sla_state",
                    "version",
                )
            },
            "contact": plain(c.contact.identities[0].external_user_id),
            "tags": sorted(t.name for t in c.tags),
            "messages": [
                (
                    plain(m.external_id),
                    m.direction,
                    m.text,
                    m.sent_at,
                    m.language,
                    m.sentiment,
                    m.attachments,
                    m.history,
                    m.edited_at,
                    plain(m.author_identity.external_user_id) if m.author_identity else None,
                )
                for m in messages
            ],
            "clocks": [
                (
                    k.metric,
                    k.cycle,
                    k.started_at,
                    k.due_at,
                    k.stopped_at,
                    k.stop_reason,
                    k.pauses,
                )
                for k in clocks
            ],
            "clock_events": [
                [e.kind for e in sorted(k.events, key=lambda e: e.id)] for k in clocks
            ],
            "audit": audit,
        }
    identities = db.session.scalars(
        select(ContactIdentity)
        .where(ContactIdentity.external_user_id.like(f"{p}-%"))
        .order_by(ContactIdentity.external_user_id)
    ).all()
    result["identities"] = [
        (
            plain(i.external_user_id),
            plain(i.handle),
            i.follower_count,
            i.verified,
            plain(i.contact.display_name),
        )
        for i in identities
    ]
    return result


def test_a_delivery_stored_together_gives_the_rows_of_the_one_by_one_path(
    app, default_policy, admin
):
    rule(
        admin,
        "Unhappy",
        conditions=[{"type": "sentiment", "value": "negative"}],
        actions=[{"type": "add_tags", "tags": ["unhappy"]}],
    )
    for p in ("a", "b"):
        add_channel(Platform.X, f"{p}-brand", name=f"@{p}")
        resolved_thread_of_dan(p)
    together, by_one = delivery("a"), delivery("b")

    issues = [(i, u.kind) for i, u in apply_events(together, now=NOW)]
    db.session.commit()
    assert issues == one_by_one(by_one) == [(4, "unknown_account")]
    db.session.commit()
    db.session.expire_all()

    a, b = snapshot("a"), snapshot("b")
    events_a = {key: a[key].pop("clock_events") for key in a if key != "identities"}
    events_b = {key: b[key].pop("clock_events") for key in b if key != "identities"}
    assert a == b
    # The ledgers end the same. On the way, the one-by-one path may record more: a rule's
    # action re-runs the clocks before the rest of the delivery is stored, so a late message
    # of the same delivery moves a start that was already written (an ADJUST event).
    assert events_a == {
        key: [[kind for kind in clock if kind != ClockEventKind.ADJUST] for clock in clocks]
        for key, clocks in events_b.items()
    }
    # The scenario did what it says (so the comparison is not of two empty results).
    assert set(a) == {"dm:ana", "dm:bob", "dm:dan", "tweet:6", "identities"}
    assert len(a["dm:ana"]["messages"]) == 3 and a["dm:ana"]["tags"] == ["unhappy"]
    assert a["dm:bob"]["conversation"]["priority"] == "high"  # the reach boost, once
    assert a["dm:dan"]["conversation"]["status"] == Status.OPEN  # reopened
    assert len(a["tweet:6"]["messages"]) == 2
    assert a["dm:ana"]["clocks"] and a["dm:ana"]["messages"][0][7]  # clocks; the edit's history


def applied_with_statements(items) -> list[str]:
    """Apply `items` to a brand account "a" in one transaction; the SQL statements it ran."""
    add_channel(Platform.X, "a-brand", name="@a")
    db.session.commit()
    statements: list[str] = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        apply_events(items, now=NOW)
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return statements


def test_customer_messages_of_a_delivery_are_stored_with_a_statement_per_table(app, default_policy):
    items = [
        dm("a", n, f"cust{n % 20}", f"message {n}", T0 + timedelta(seconds=n)) for n in range(100)
    ]
    statements = [s.split()[:3] for s in applied_with_statements(items)]
    assert db.session.query(Message).count() == 100
    assert db.session.query(Conversation).count() == 20
    # 100 messages of 20 new customers: a few dozen statements, not several per message.
    if db.engine.dialect.name == "sqlite":
        # SQLAlchemy cannot batch an INSERT … RETURNING whose ids must come back in order on
        # SQLite, so there each row is its own (in-process, cheap) INSERT; the reads still
        # happen once.
        statements = [s for s in statements if s[0] != "INSERT"]
    assert len(statements) < 30, statements


def test_new_conversations_are_inserted_with_their_first_message_s_labels(app, default_policy):
    """Each new conversation is written once after its INSERT (the bookkeeping), not also for
    the language and sentiment its first message gives it."""
    texts = ["I love this, thank you so much!", "This is awful and I am angry.", "🙂🙂"]
    items = [dm("a", n, f"new{n}", texts[n % 3], T0 + timedelta(seconds=n)) for n in range(9)]
    statements = applied_with_statements(items)
    updates = [s for s in statements if s.startswith("UPDATE conversations")]
    assert len(updates) == 1, updates  # the times, version and SLA state of all nine
    pairs = db.session.execute(
        select(
            Conversation.language, Conversation.sentiment, Message.language, Message.sentiment
        ).join(Message, Message.conversation_id == Conversation.id)
    ).all()
    assert len(pairs) == 9
    assert all((c_lang, c_sent) == (m_lang, m_sent) for c_lang, c_sent, m_lang, m_sent in pairs)
    assert {s > 0 for _, s, _, _ in pairs if s is not None} == {True, False}  # both kinds
