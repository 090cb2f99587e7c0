"""Demo data for `make run`: users of every role, teams, channel accounts and conversations.

Conversations come from the real TWCS sample when it is available (its threads spread over the
last two weeks, see `recent_threads`) and are generated otherwise; a routing rule sends the
sample's billing questions to Billing support. Loading twice adds nothing.
Imports: models, extensions.db, services.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import (
    BusinessCalendar,
    Conversation,
    Direction,
    Kind,
    Message,
    Platform,
    Priority,
    Role,
    SlaPolicy,
    Status,
    Team,
    User,
)
from inbox.services import routing
from inbox.services.accounts import create_user, get_or_create_team
from inbox.services.channels import add_channel
from inbox.services.csv_import import Tweet, import_twcs, read_twcs, threads
from inbox.services.ingest import Profile, add_message, get_or_create_conversation, resolve_identity
from inbox.services.sla import on_status_change

DEMO_PASSWORD = "inbox-demo"  # noqa: S105 (demo users only, printed by make run)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    name: str
    role: Role
    team: str


DEMO_USERS = (
    DemoLogin("admin@example.com", "Ada Admin", Role.ADMIN, "Social care"),
    DemoLogin("supervisor@example.com", "Sam Supervisor", Role.SUPERVISOR, "Social care"),
    DemoLogin("alice@example.com", "Alice Agent", Role.AGENT, "Social care"),
    DemoLogin("bob@example.com", "Bob Agent", Role.AGENT, "Billing support"),
)
DEMO_TEAMS = ("Social care", "Billing support", "Tech support")
DEMO_CHANNELS = (
    (Platform.MESSENGER, "1029384756", "Acme on Messenger"),
    (Platform.FACEBOOK, "1029384756", "Acme Facebook Page"),
    (Platform.INSTAGRAM, "17841400000000001", "@acme on Instagram"),
    (Platform.WHATSAPP, "106540352242922", "Acme WhatsApp +1 555 0100"),
    (Platform.X, "2244994945", "@AcmeSupport"),
)


@dataclass
class DemoSummary:
    created_users: int
    conversations: int
    source: str


def load_demo(*, csv_path: Path | None, now: datetime) -> DemoSummary:
    """Create the demo workspace (idempotent) and return what is there."""
    teams = {name: get_or_create_team(name) for name in DEMO_TEAMS}
    created = 0
    for login in DEMO_USERS:
        if db.session.scalar(select(User.id).where(User.email == login.email)) is None:
            create_user(
                login.email,
                name=login.name,
                role=login.role,
                password=DEMO_PASSWORD,
                teams=[teams[login.team]],
            )
            created += 1
    accounts = [add_channel(p, aid, name=name)[0] for p, aid, name in DEMO_CHANNELS]
    _sla_setup()
    if db.session.scalar(select(func.count(Conversation.id))):
        source = "existing"
    elif csv_path is not None and csv_path.exists():
        with csv_path.open(newline="", encoding="utf-8") as stream:
            tweets = read_twcs(stream)
        import_twcs(recent_threads(tweets, now=now), now=now, team=teams["Social care"])
        _route_billing(teams["Billing support"], now=now)
        source = str(csv_path)
    else:
        _generate(accounts, teams, now)
        source = "generated"
    db.session.flush()
    return DemoSummary(
        created_users=created,
        conversations=db.session.scalar(select(func.count(Conversation.id))) or 0,
        source=source,
    )


# The demo's one routing rule: what a care team sets up first, and work for Billing support.
BILLING_RULE = "Billing questions go to Billing support"
BILLING_WORDS = ("bill", "charge", "refund", "payment", "invoice", "subscription", "paid")


def _route_billing(billing: Team, *, now: datetime) -> None:
    """Create the billing rule and run it over the imported conversations, as the worker runs
    rules on arrival (the import inserts rows set-wise, without running them); each move is
    in the conversation's history under the rule's name."""
    admin = db.session.scalar(select(User).where(User.email == DEMO_USERS[0].email))
    routing.save_rule(
        None,
        name=BILLING_RULE,
        active=True,
        stop=False,
        conditions=[{"type": "text_contains", "values": list(BILLING_WORDS)}],
        actions_=[{"type": "set_team", "team_id": billing.id}],
        actor=admin,
        now=now,
    )
    latest = (
        select(Message.conversation_id, func.max(Message.id).label("message_id"))
        .where(Message.direction == Direction.INBOUND)
        .group_by(Message.conversation_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Conversation, Message)
        .join(latest, latest.c.conversation_id == Conversation.id)
        .join(Message, Message.id == latest.c.message_id)
    ).all()
    for conversation, message in rows:
        routing.apply_rules(conversation, message, now=now)


def recent_threads(tweets: list[Tweet], *, now: datetime, days: int = 14) -> list[Tweet]:
    """The sample's threads moved into the last `days` days, in their original order, each at
    its own time of day and whole: the gaps inside a thread (the brands' response times) stay
    exactly as recorded. Most of the TWCS sample is from one day (31 Oct 2017) with a tail back
    to 2011, so one shift for all would leave a week's report nearly empty."""
    ordered = sorted(threads(tweets), key=lambda thread: thread[0].created_at)
    end = now - timedelta(minutes=5)
    first_day = (end - timedelta(days=days - 1)).astimezone(UTC).date()
    moved: list[Tweet] = []
    for rank, thread in enumerate(ordered):
        start = thread[0].created_at.astimezone(UTC)
        day = first_day + timedelta(days=rank * days // len(ordered))
        target = datetime.combine(day, start.time(), tzinfo=UTC)
        while target + (thread[-1].created_at - start) > end:
            target -= timedelta(days=1)
        moved += [
            dataclasses.replace(t, created_at=t.created_at + (target - start)) for t in thread
        ]
    return moved


def _sla_setup() -> None:
    """An office calendar (London, Mon–Fri 9–17, lunch 12–13, UK holidays) and three policies,
    created before any conversation so the demo's clocks run under them."""
    if db.session.scalar(select(func.count(SlaPolicy.id))):
        return
    office = BusinessCalendar(
        name="London office",
        timezone="Europe/London",
        weekly={str(day): [["09:00", "12:00"], ["13:00", "17:00"]] for day in range(5)},
        holidays=[],
        country="GB",
        subdivision="ENG",
    )
    escalate = [{"type": "notify", "to": ["assignee", "supervisors"]}]
    common = {"calendar": office, "business_hours": True, "warn_value": 75}
    db.session.add_all(
        [
            office,
            SlaPolicy(
                position=10,
                name="Urgent",
                priorities=["urgent"],
                first_response_seconds=1800,
                next_response_seconds=3600,
                resolution_seconds=8 * 3600,
                breach_actions=escalate,
                **common,
            ),
            SlaPolicy(
                position=20,
                name="VIP contacts",
                vip=True,
                first_response_seconds=1800,
                next_response_seconds=2 * 3600,
                resolution_seconds=16 * 3600,
                breach_actions=escalate,
                **common,
            ),
            SlaPolicy(
                position=100,
                name="Default",
                first_response_seconds=2 * 3600,
                next_response_seconds=4 * 3600,
                resolution_seconds=24 * 3600,
                warning_actions=[{"type": "notify", "to": ["assignee"]}],
                breach_actions=escalate,
                **common,
            ),
        ]
    )
    db.session.flush()


_OPENERS = (
    "My order #{n} still hasn't arrived, it was due last week 😕",
    "Hi, I was charged twice for my subscription this month. Can you help?",
    "The app keeps crashing when I open settings on Android 15",
    "¿Pueden ayudarme a cambiar la dirección de envío?",
    "مرحبا، لم يصل طلبي بعد",
    "Love the new update!! 🎉 but where did dark mode go?",
    "How do I cancel my plan? Can't find it anywhere",
    "Your store on Main St was closed during opening hours today",
    "Is there a student discount?",
    "I need an invoice with my company's VAT number for order {n}",
)
_REPLIES = (
    "Sorry about that! Could you send us a DM with your order number?",
    "Thanks for reaching out, we're looking into it now.",
    "Happy to help — I've passed this to our billing team.",
)


def _generate(accounts, teams, now: datetime) -> None:
    rng = random.Random(2026)
    team_list = list(teams.values())
    for n in range(60):
        account = accounts[n % len(accounts)]
        platform = account.platform
        kind = {
            Platform.FACEBOOK: Kind.COMMENT,
            Platform.X: Kind.MENTION if n % 2 else Kind.DM,
        }.get(platform, Kind.DM)
        identity = resolve_identity(
            Profile(
                platform,
                f"demo-{platform}-{n}",
                handle=f"customer{n}",
                display_name=rng.choice(("Maria", "Jon", "Priya", "Wei", "Fatima", "Lukas"))
                + f" {chr(65 + n % 26)}.",
                follower_count=rng.choice((12, 340, 5200, 120000)),
            )
        )
        conversation, _ = get_or_create_conversation(
            account,
            f"demo:{n}",
            kind=kind,
            is_public=kind is not Kind.DM,
            contact=identity.contact,
            team=team_list[n % len(team_list)],
        )
        # Before the first message, so the SLA policy is chosen with the final priority.
        conversation.priority = rng.choice(
            (Priority.NORMAL, Priority.NORMAL, Priority.HIGH, Priority.URGENT, Priority.LOW)
        )
        started = now - timedelta(minutes=rng.randint(3, 60 * 48))
        add_message(
            conversation,
            direction=Direction.INBOUND,
            text=rng.choice(_OPENERS).format(n=10000 + n),
            sent_at=started,
            external_id=f"demo-msg-{n}-0",
            author_identity=identity,
            now=now,
        )
        old_status = conversation.status
        if n % 3 == 0:
            replied = started + timedelta(minutes=rng.randint(5, 240))
            add_message(
                conversation,
                direction=Direction.OUTBOUND,
                text=rng.choice(_REPLIES),
                sent_at=replied,
                external_id=f"demo-msg-{n}-1",
                now=now,
            )
            conversation.status = Status.PENDING if n % 2 else Status.RESOLVED
            if conversation.status is Status.RESOLVED:
                conversation.resolved_at = conversation.last_message_at
            on_status_change(conversation, old_status, actor=None, now=min(replied, now))
        else:
            conversation.status = Status.OPEN if n % 4 else Status.NEW
            on_status_change(conversation, old_status, actor=None, now=now)
