"""Small builders for test data, going through the real ingestion services so conversations
look exactly as webhooks would leave them. Generic on purpose: any test module may use them.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

from inbox.extensions import db
from inbox.models import (
    BusinessCalendar,
    ChannelAccount,
    Conversation,
    Direction,
    Kind,
    Message,
    Platform,
    Team,
)
from inbox.services.accounts import get_or_create_team
from inbox.services.channels import add_channel
from inbox.services.csv_import import TWCS_COLUMNS
from inbox.services.ingest import Profile, add_message, get_or_create_conversation, resolve_identity
from inbox.timeutil import utcnow

_seq = itertools.count(1)


def channel(
    platform: Platform = Platform.X, account_id: str = "brand-1", name: str = "@brand"
) -> ChannelAccount:
    return add_channel(platform, account_id, name=name)[0]


def conversation(
    *,
    text: str = "Hello, I need help",
    platform: Platform = Platform.X,
    kind: Kind = Kind.DM,
    is_public: bool | None = None,
    team: Team | str | None = None,
    name: str | None = None,
    handle: str | None = None,
    followers: int | None = None,
    sent_at: datetime | None = None,
    account: ChannelAccount | None = None,
    commit: bool = True,
) -> Conversation:
    """A conversation with one inbound customer message (a new contact each call)."""
    n = next(_seq)
    account = account or channel(platform, f"brand-{platform}")
    identity = resolve_identity(
        Profile(
            account.platform,
            f"user-{n}",
            handle=handle or f"customer{n}",
            display_name=name or f"Customer {n}",
            follower_count=followers,
        )
    )
    if isinstance(team, str):
        team = get_or_create_team(team)
    conv, _ = get_or_create_conversation(
        account,
        f"thread-{n}",
        kind=kind,
        is_public=kind is not Kind.DM if is_public is None else is_public,
        contact=identity.contact,
        team=team,
    )
    message(conv, text, sent_at=sent_at or utcnow() - timedelta(minutes=n % 50 + 1))
    if commit:
        db.session.commit()
    return conv


def message(
    conv: Conversation,
    text: str,
    *,
    direction: Direction = Direction.INBOUND,
    sent_at: datetime | None = None,
    **extra,
) -> Message:
    """Add a message to `conv` (inbound from its contact by default); does not commit."""
    identity = conv.contact.identities[0] if direction is Direction.INBOUND else None
    added = add_message(
        conv,
        direction=direction,
        text=text,
        sent_at=sent_at or utcnow(),
        external_id=f"ext-{next(_seq)}",
        author_identity=identity,
        **extra,
    )
    assert added is not None
    return added


def office_calendar() -> BusinessCalendar:
    """The office week the SLA tests count in: Monday to Friday 9–17 UTC with lunch 12–13, no
    holidays (in the session, flushed)."""
    calendar = BusinessCalendar(
        name="Office",
        timezone="UTC",
        weekly={str(d): [["09:00", "12:00"], ["13:00", "17:00"]] for d in range(5)},
        holidays=[],
    )
    db.session.add(calendar)
    db.session.flush()
    return calendar


def twcs_file(threads: int, *, brand: str = "AcmeHelp", text: str = "my order is late") -> bytes:
    """A TWCS CSV of `threads` threads, each a customer tweet and the brand's reply, as a
    spreadsheet or the dataset would write it (csv quoting, X's date format)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TWCS_COLUMNS)
    start = datetime(2017, 10, 31, 22, 0, tzinfo=UTC)
    for i in range(threads):
        asked, customer = start + timedelta(minutes=i), f"{900000 + i}"
        reply_id, ask_id = f"{2 * i + 2}", f"{2 * i + 1}"
        writer.writerow(
            [ask_id, customer, "True", _twcs_time(asked), f"@{brand} {text}", reply_id, ""]
        )
        writer.writerow(
            [
                reply_id,
                brand,
                "False",
                _twcs_time(asked + timedelta(minutes=4)),
                "On it",
                "",
                ask_id,
            ]
        )
    return out.getvalue().encode()


def _twcs_time(at: datetime) -> str:
    return at.strftime("%a %b %d %H:%M:%S +0000 %Y")
