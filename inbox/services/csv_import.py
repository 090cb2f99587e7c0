"""Importing conversations from CSV: the public "Customer Support on Twitter" (TWCS) format.

Brand authors become X channel accounts, customers become contacts, reply chains become
conversations (one per connected thread, keyed by its root tweet like live X mentions), and
every tweet becomes a message. Safe to re-run: tweets already stored are skipped.
Imports: models, extensions.db, services.ingest, services.channels, services.sla.
"""

from __future__ import annotations

import csv
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from flask import current_app
from sqlalchemy import select

from inbox.bulk import insert_rows, update_rows
from inbox.connectors.x import unescape_tweet_text
from inbox.extensions import db
from inbox.models import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    Direction,
    Kind,
    Message,
    Platform,
    Priority,
    SlaState,
    Status,
    Team,
)
from inbox.services import sla
from inbox.services.channels import add_channel, find_channel
from inbox.services.ingest import (
    Profile,
    add_message,
    get_or_create_conversation,
    resolve_identity,
    summarize_messages,
)
from inbox.timeutil import utcnow

TWCS_COLUMNS = (
    "tweet_id",
    "author_id",
    "inbound",
    "created_at",
    "text",
    "response_tweet_id",
    "in_response_to_tweet_id",
)
_MENTION = re.compile(r"@(\w{1,15})")


class ImportFormatError(ValueError):
    """The file is not in the expected format; the message says what is wrong and where."""


@dataclass(frozen=True)
class Tweet:
    tweet_id: str
    author_id: str
    inbound: bool
    created_at: datetime
    text: str
    parent_id: str | None


@dataclass
class ImportResult:
    rows: int = 0
    conversations_created: int = 0
    messages_created: int = 0
    duplicates: int = 0
    # Tweets not imported because their thread names no brand (no brand reply, no mention of
    # a known brand) or has no customer tweet at all; reported, never silently dropped.
    skipped: int = 0
    accounts: set[str] = field(default_factory=set)

    def add(self, other: ImportResult) -> None:
        """Count in what another thread of the same import did."""
        self.conversations_created += other.conversations_created
        self.messages_created += other.messages_created
        self.duplicates += other.duplicates


@dataclass(frozen=True)
class ImportedContact:
    is_vip: bool  # what a policy's condition reads of the contact


@dataclass
class ImportedConversation:
    """A conversation this import inserted, with what the SLA hooks read and set of it: the
    clock phase runs them on these (with a preloaded batch) instead of loading Conversation
    objects, and writes the columns they set with one UPDATE per batch."""

    id: int
    team_id: int | None
    contact: ImportedContact
    # Its messages as `sla.message_rows` would read them, built from the rows inserted.
    rows: list[sla.MessageRow]
    # A thread where the brand spoke last is taken as resolved at that reply.
    resolves_at: datetime | None
    platform: Platform = Platform.X
    kind: Kind = Kind.MENTION
    priority: Priority = Priority.NORMAL
    is_public: bool = True
    tags: tuple[()] = ()
    status: Status = Status.OPEN
    resolved_at: datetime | None = None
    sla_policy_pinned: bool = False
    sla_policy_id: int | None = None
    sla_due_at: datetime | None = None
    sla_state: SlaState = SlaState.NONE


def read_twcs(stream: IO[str], *, limit: int | None = None) -> list[Tweet]:
    """Parse TWCS rows (only the first `limit`, to check a file quickly); raise
    ImportFormatError naming the line of the first bad row."""
    reader = csv.DictReader(stream)
    if tuple(reader.fieldnames or ()) != TWCS_COLUMNS:
        raise ImportFormatError(
            f"expected the TWCS header {','.join(TWCS_COLUMNS)}, got {reader.fieldnames}"
        )
    tweets: list[Tweet] = []
    for row in reader:
        if limit is not None and len(tweets) >= limit:
            break
        try:
            parent = row["in_response_to_tweet_id"].strip()
            tweets.append(
                Tweet(
                    tweet_id=row["tweet_id"].strip(),
                    author_id=row["author_id"].strip(),
                    inbound=row["inbound"].strip() == "True",
                    created_at=datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y"),
                    # The TWCS texts are tweets as X's API gave them, entities and all.
                    text=unescape_tweet_text(row["text"]),
                    # Published as a float ("3.0").
                    parent_id=str(int(float(parent))) if parent else None,
                )
            )
        except (ValueError, AttributeError) as exc:
            raise ImportFormatError(f"line {reader.line_num}: {exc}") from None
    return tweets


def threads(tweets: list[Tweet]) -> Iterator[list[Tweet]]:
    """Group tweets into reply-connected threads, each sorted by time (links to tweets missing
    from the file are dangling and simply ignored)."""
    parent: dict[str, str] = {t.tweet_id: t.tweet_id for t in tweets}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for t in tweets:
        if t.parent_id in parent:
            parent[find(t.tweet_id)] = find(t.parent_id)
    groups: dict[str, list[Tweet]] = {}
    for t in tweets:
        groups.setdefault(find(t.tweet_id), []).append(t)
    for group in groups.values():
        yield sorted(group, key=lambda t: (t.created_at, int(t.tweet_id)))


def _brand_of(thread: list[Tweet], brands: set[str]) -> str | None:
    for t in thread:
        if not t.inbound:
            return t.author_id
    for handle in _MENTION.findall(thread[0].text):
        if handle in brands:
            return handle
    return None


# Threads importing batches side by side on PostgreSQL (`import_twcs`).
IMPORT_THREADS = 2


@dataclass(frozen=True)
class _Plan:
    """What every batch of one import shares, as plain values (no ORM objects: batches run in
    threads with sessions of their own)."""

    accounts: dict[str, int]  # brand → channel account id
    team_id: int | None
    contacts: dict[str, tuple[int, int, bool]]  # customer → (contact id, identity id, VIP)
    now: datetime


def import_twcs(
    tweets: list[Tweet],
    *,
    now: datetime,
    team: Team | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 500,
) -> ImportResult:
    """Import parsed TWCS tweets and run the SLA clocks of the new conversations (as of
    `now`), committing every batch of `batch_size` threads with its clocks, so a long import
    keeps its progress if interrupted (a re-run skips what is stored). A thread where the brand
    spoke last is taken as resolved at that reply, which stops its clocks there.

    New threads are written with set-based inserts (a few statements per batch, not per row);
    a thread that is already partly stored goes through the per-message ingest path instead,
    which merges correctly whatever is there. On PostgreSQL `IMPORT_THREADS` threads take the
    batches in turn, each with a session and connection of its own: a batch spends about half
    its time waiting for the server (the trigram index of the messages' text) and half in
    Python, so on two cores two batches overlap. The customers' contacts are all created first,
    so two batches never race to create the same one (an interrupted import can leave contacts
    whose threads are not stored yet; the re-run uses them). SQLite takes one writer at a time:
    there the batches run one after the other in this thread.
    """
    result = ImportResult(rows=len(tweets))
    brands = {t.author_id for t in tweets if not t.inbound}
    attributed: list[tuple[str, list[Tweet]]] = []
    for thread in threads(tweets):
        brand = _brand_of(thread, brands)
        if brand is None or not any(t.inbound for t in thread):
            result.skipped += len(thread)
        else:
            attributed.append((brand, thread))
    plan = _Plan(
        accounts={
            # An account already connected keeps the name an admin gave it.
            brand: (
                find_channel(Platform.X, brand)
                or add_channel(Platform.X, brand, name=f"@{brand}")[0]
            ).id
            for brand in sorted({brand for brand, _ in attributed})
        },
        team_id=team.id if team else None,
        contacts=_customer_contacts(
            {t.author_id for _, thread in attributed for t in thread if t.inbound}
        ),
        now=now,
    )
    db.session.commit()  # what the batches' own sessions must see
    result.accounts = set(plan.accounts)
    batches = [attributed[i : i + batch_size] for i in range(0, len(attributed), batch_size)]
    if db.engine.dialect.name == "postgresql":
        _import_side_by_side(batches, plan, progress, result)
    else:
        done = 0
        for batch in batches:
            try:
                _import_batch(batch, plan, result)
            except BaseException:
                db.session.rollback()  # a failed batch leaves nothing behind
                raise
            done += len(batch)
            if progress:
                progress(done, len(attributed))
    return result


def _import_side_by_side(batches, plan: _Plan, progress, result: ImportResult) -> None:
    """Run `_import_batch` over `batches` in `IMPORT_THREADS` threads, counting into `result`;
    report progress from this thread (a progress bar is drawn by one thread); raise the first
    failure. A failure or an interrupt stops the others after the batch they are in (each is
    committed whole)."""
    app = current_app._get_current_object()
    todo, lock, stop = iter(batches), threading.Lock(), threading.Event()
    total = sum(len(b) for b in batches)
    done, failures = [0], []
    counts = [ImportResult() for _ in range(IMPORT_THREADS)]  # one per thread: no lock needed

    def fail(exc: BaseException) -> None:  # raised in the calling thread
        failures.append(exc)
        stop.set()

    def work(counted: ImportResult) -> None:
        try:
            with app.app_context():
                try:
                    while not stop.is_set():
                        with lock:
                            batch = next(todo, None)
                        if batch is None:
                            return
                        _import_batch(batch, plan, counted)
                        with lock:
                            done[0] += len(batch)
                except BaseException as exc:
                    fail(exc)
                finally:
                    db.session.remove()  # which rolls back a failed batch
        except BaseException as exc:  # the app context or the session's clean-up failed
            fail(exc)

    workers = [threading.Thread(target=work, args=(c,), daemon=True) for c in counts]
    for w in workers:
        w.start()
    try:
        for w in workers:
            while w.is_alive():
                w.join(timeout=0.2)
                if progress:
                    progress(done[0], total)
    finally:
        stop.set()
        for w in workers:
            w.join()
    if progress:
        progress(done[0], total)
    for counted in counts:
        result.add(counted)
    if failures:
        raise failures[0]


def _import_batch(batch, plan: _Plan, result: ImportResult) -> None:
    """One batch of threads, with the clocks of its new conversations, committed."""
    account_ids = list(plan.accounts.values())
    tweet_ids = [t.tweet_id for _, thread in batch for t in thread]
    stored = set(
        db.session.scalars(
            select(Message.external_id).where(
                Message.channel_account_id.in_(account_ids), Message.external_id.in_(tweet_ids)
            )
        )
    )
    fresh = []
    for brand, thread in batch:
        if not any(t.tweet_id in stored for t in thread):
            fresh.append((plan.accounts[brand], thread))
        elif all(t.tweet_id in stored for t in thread):
            result.duplicates += len(thread)
        else:
            _import_thread_by_message(thread, plan.accounts[brand], plan.team_id, result)
    if fresh:
        _run_clocks(_insert_threads(fresh, plan, result), now=plan.now)
    db.session.commit()


def _customer_contacts(customer_ids: set[str]) -> dict[str, tuple[int, int, bool]]:
    """(contact id, identity id, VIP) per X user id, creating the missing ones in bulk."""
    found = {}
    ordered = sorted(customer_ids)
    for start in range(0, len(ordered), 1000):  # within every database's bound parameters
        found.update(
            (row.external_user_id, (row.contact_id, row.id, row.is_vip))
            for row in db.session.execute(
                select(
                    ContactIdentity.external_user_id,
                    ContactIdentity.contact_id,
                    ContactIdentity.id,
                    Contact.is_vip,
                )
                .join(Contact, Contact.id == ContactIdentity.contact_id)
                .where(
                    ContactIdentity.platform == Platform.X,
                    ContactIdentity.external_user_id.in_(ordered[start : start + 1000]),
                )
            )
        )
    missing = sorted(customer_ids - set(found))
    if missing:
        now = utcnow()
        contact_ids = insert_rows(
            Contact.__table__,
            [{"display_name": uid, "created_at": now, "updated_at": now} for uid in missing],
            return_ids=True,
        )
        identity_ids = insert_rows(
            ContactIdentity.__table__,
            [
                {
                    "contact_id": cid,
                    "platform": Platform.X,
                    "external_user_id": uid,
                    "handle": uid,
                    "created_at": now,
                    "updated_at": now,
                }
                for uid, cid in zip(missing, contact_ids, strict=True)
            ],
            return_ids=True,
        )
        for uid, cid, iid in zip(missing, contact_ids, identity_ids, strict=True):
            found[uid] = (cid, iid, False)
    return found


def _insert_threads(fresh, plan: _Plan, result: ImportResult) -> list[ImportedConversation]:
    """Insert new threads (conversations and messages); the stand-ins their clocks run on."""
    contacts = plan.contacts
    now = utcnow()
    rows = []
    # The columns the clocks read come from the stand-ins (ids and rows are filled in below).
    imported = []
    for account_id, thread in fresh:
        times = summarize_messages((_direction(t), _at(t), False) for t in thread)
        contact_id, _, vip = contacts[next(t for t in thread if t.inbound).author_id]
        last = thread[-1]
        c = ImportedConversation(
            id=0,
            team_id=plan.team_id,
            contact=ImportedContact(vip),
            rows=[],
            resolves_at=None if last.inbound else _at(last),
        )
        imported.append(c)
        rows.append(
            {
                "channel_account_id": account_id,
                "contact_id": contact_id,
                "thread_key": f"tweet:{thread[0].tweet_id}",
                "kind": c.kind,
                "is_public": c.is_public,
                "status": c.status,
                "priority": c.priority,
                "team_id": c.team_id,
                "created_at": now,
                "updated_at": now,
                **times.__dict__,
            }
        )
    conversation_ids = insert_rows(Conversation.__table__, rows, return_ids=True)
    messages = [
        {
            "conversation_id": conversation_id,
            "channel_account_id": account_id,
            "external_id": t.tweet_id,
            "direction": _direction(t),
            "author_identity_id": contacts[t.author_id][1] if t.inbound else None,
            "text": t.text,
            "sent_at": _at(t),
            "created_at": now,
            "updated_at": now,
        }
        for conversation_id, (account_id, thread) in zip(conversation_ids, fresh, strict=True)
        for t in thread
    ]
    # The table, not the ORM entity: an ORM bulk insert splits the rows into runs by which
    # values are None (an outbound tweet has no author), which here is a statement per row.
    message_ids = iter(insert_rows(Message.__table__, messages, return_ids=True))
    result.conversations_created += len(conversation_ids)
    result.messages_created += len(messages)
    for c, conversation_id, (_, thread) in zip(imported, conversation_ids, fresh, strict=True):
        c.id = conversation_id
        # In the clocks' order, (sent_at, id): the thread's order, whose ids ascend.
        c.rows = [
            sla.MessageRow(next(message_ids), conversation_id, _direction(t), _at(t), None, False)
            for t in thread
        ]
    return imported


def _run_clocks(batch: list[ImportedConversation], *, now: datetime) -> None:
    """The SLA clocks of a batch of new conversations, from their message timestamps. The
    same hooks as live ingestion, over the batch at once: the messages are the rows the import
    inserted, the batch's clocks are read in one query (none, unless something wrote to these
    conversations meanwhile), the clocks it opens are written with two statements and the
    conversations' status and SLA columns with one."""
    preloaded = sla.preload([c.id for c in batch], rows={c.id: c.rows for c in batch})
    for c in batch:
        sla.recompute(c, now=now, preloaded=preloaded)
        if c.resolves_at is not None:
            c.status, c.resolved_at = Status.RESOLVED, c.resolves_at
            sla.on_status_change(c, Status.OPEN, actor=None, now=c.resolves_at, preloaded=preloaded)
    sla.write_opened(preloaded)
    update_rows(
        Conversation.__table__,
        [
            {
                "id": c.id,
                "status": c.status,
                "resolved_at": c.resolved_at,
                "sla_policy_id": c.sla_policy_id,
                "sla_due_at": c.sla_due_at,
                "sla_state": c.sla_state,
            }
            for c in batch
        ],
    )


def _direction(t: Tweet) -> Direction:
    return Direction.INBOUND if t.inbound else Direction.OUTBOUND


def _at(t: Tweet) -> datetime:
    return t.created_at.astimezone(UTC)


def _import_thread_by_message(thread, account_id, team_id, result: ImportResult) -> None:
    account = db.session.get(ChannelAccount, account_id)
    team = db.session.get(Team, team_id) if team_id is not None else None
    identities = {}
    for t in thread:
        if t.inbound and t.author_id not in identities:
            identities[t.author_id] = resolve_identity(
                Profile(Platform.X, t.author_id, handle=t.author_id)
            )
    first_customer = next(t for t in thread if t.inbound)
    conversation, created = get_or_create_conversation(
        account,
        f"tweet:{thread[0].tweet_id}",
        kind=Kind.MENTION,
        is_public=True,
        contact=identities[first_customer.author_id].contact,
        team=team,
    )
    result.conversations_created += created
    for t in thread:
        message = add_message(
            conversation,
            direction=_direction(t),
            text=t.text,
            sent_at=_at(t),
            external_id=t.tweet_id,
            author_identity=identities.get(t.author_id) if t.inbound else None,
            reopen=False,
        )
        if message is None:
            result.duplicates += 1
        else:
            result.messages_created += 1
    if created:
        # History: a thread where the brand spoke last is treated as resolved then. The SLA
        # clocks already ran from the message timestamps; resolving stops them at that instant.
        last = thread[-1]
        old_status = conversation.status
        if last.inbound:
            conversation.status = Status.OPEN
        else:
            conversation.status = Status.RESOLVED
            conversation.resolved_at = _at(last)
        sla.on_status_change(
            conversation,
            old_status,
            actor=None,
            now=conversation.resolved_at or _at(last),
        )
