"""Importing conversations from CSV: the public "Customer Support on Twitter" (TWCS) format.

Brand authors become X channel accounts, customers become contacts, reply chains become
conversations (one per connected thread, keyed by its root tweet like live X mentions), and
every tweet becomes a message. Safe to re-run: tweets already stored are skipped.
Imports: models, extensions.db, services.ingest, services.channels, services.sla.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO

from inbox.extensions import db
from inbox.models import Direction, Kind, Platform, Status, Team
from inbox.services.channels import add_channel
from inbox.services.ingest import Profile, add_message, get_or_create_conversation, resolve_identity
from inbox.services.sla import on_status_change

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


def read_twcs(stream: IO[str]) -> list[Tweet]:
    """Parse TWCS rows; raise ImportFormatError naming the line of the first bad row."""
    reader = csv.DictReader(stream)
    if tuple(reader.fieldnames or ()) != TWCS_COLUMNS:
        raise ImportFormatError(
            f"expected the TWCS header {','.join(TWCS_COLUMNS)}, got {reader.fieldnames}"
        )
    tweets = []
    for row in reader:
        try:
            parent = row["in_response_to_tweet_id"].strip()
            tweets.append(
                Tweet(
                    tweet_id=row["tweet_id"].strip(),
                    author_id=row["author_id"].strip(),
                    inbound=row["inbound"].strip() == "True",
                    created_at=datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y"),
                    text=row["text"],
                    # Published as a float ("3.0").
                    parent_id=str(int(float(parent))) if parent else None,
                )
            )
        except (ValueError, AttributeError) as exc:
            raise ImportFormatError(f"line {reader.line_num}: {exc}") from None
    return tweets


def _threads(tweets: list[Tweet]) -> Iterator[list[Tweet]]:
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


def import_twcs(
    tweets: list[Tweet],
    *,
    team: Team | None = None,
    shift: timedelta = timedelta(0),
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 200,
) -> ImportResult:
    """Import parsed TWCS tweets; commits every `batch_size` threads so a long import keeps its
    progress if interrupted (a re-run skips what is stored). `shift` moves every timestamp
    (demo data is shifted so its newest tweet is recent)."""
    result = ImportResult(rows=len(tweets))
    brands = {t.author_id for t in tweets if not t.inbound}
    threads = list(_threads(tweets))
    accounts = {}
    for index, thread in enumerate(threads, 1):
        brand = _brand_of(thread, brands)
        customer_tweets = [t for t in thread if t.inbound]
        if brand is None or not customer_tweets:
            result.skipped += len(thread)
        else:
            if brand not in accounts:
                accounts[brand], _ = add_channel(Platform.X, brand, name=f"@{brand}")
            _import_thread(thread, accounts[brand], team, shift, result)
        if progress:
            progress(index, len(threads))
        if index % batch_size == 0:
            db.session.commit()
    result.accounts = set(accounts)
    return result


def _import_thread(thread, account, team, shift, result: ImportResult) -> None:
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
            direction=Direction.INBOUND if t.inbound else Direction.OUTBOUND,
            text=t.text,
            sent_at=(t.created_at + shift).astimezone(UTC),
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
            conversation.resolved_at = (last.created_at + shift).astimezone(UTC)
        on_status_change(
            conversation,
            old_status,
            actor=None,
            now=conversation.resolved_at or (last.created_at + shift).astimezone(UTC),
        )
