"""`flask --app inbox …` commands (DESIGN §9): create-user, add-channel, import-csv, seed-demo,
replay-events.

Each command is a boundary: it calls services and commits once (imports commit in batches).
Imports: services, models, extensions.db, timeutil.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy import or_, select

from inbox.extensions import db
from inbox.models import EventState, InboundEvent, Platform, Role
from inbox.services.accounts import (
    create_api_token,
    create_user,
    get_or_create_team,
    new_password,
)
from inbox.services.channels import add_channel, set_access_token
from inbox.services.csv_import import (
    ImportFormatError,
    import_twcs,
    read_twcs,
)
from inbox.services.demo import DEMO_PASSWORD, DEMO_USERS, load_demo
from inbox.services.events import process_event, replay, reset_for_replay
from inbox.timeutil import utcnow


@click.command("create-user")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.AGENT.value)
@click.option("--team", "teams", multiple=True, help="Team name (created if new); repeatable.")
@click.option("--password", help="Generated and printed when omitted.")
@click.option("--api-token", is_flag=True, help="Also create an API token and print it.")
def create_user_command(email, name, role, teams, password, api_token):
    """Create a user who can sign in (and optionally use the API)."""
    generated = password is None
    password = password or new_password()
    try:
        user = create_user(
            email,
            name=name,
            role=Role(role),
            password=password,
            teams=[get_or_create_team(t) for t in teams],
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    token = create_api_token(user) if api_token else None
    db.session.commit()
    click.echo(f"created {user.role} {user.email} (id {user.id})")
    if generated:
        click.echo(f"password: {password}")
    if token:
        click.echo(f"api token: {token}")


@click.command("add-channel")
@click.option("--platform", type=click.Choice([p.value for p in Platform]), required=True)
@click.option("--account-id", required=True, help="The platform's id of the page/handle/number.")
@click.option("--name", required=True)
@click.option(
    "--access-token",
    envvar="INBOX_CHANNEL_ACCESS_TOKEN",
    help="The platform token replies are sent with (stored encrypted). Prefer the "
    "INBOX_CHANNEL_ACCESS_TOKEN environment variable: options show up in shell history.",
)
def add_channel_command(platform, account_id, name, access_token):
    """Connect a brand account (idempotent: running it again changes only the name and token)."""
    account, created = add_channel(Platform(platform), account_id, name=name)
    token_changed = False
    if access_token:
        try:
            token_changed = set_access_token(account, access_token, actor=None)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(
        f"{'created' if created else 'exists'}: {account.platform} {account_id} (id {account.id})"
    )
    if token_changed:
        click.echo("access token stored (encrypted)")


@click.command("import-csv")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["twcs"]), default="twcs")
@click.option("--team", help="Team that receives the imported conversations.")
def import_csv_command(path, fmt, team):
    """Import conversations from a CSV file (safe to re-run: stored tweets are skipped)."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            tweets = read_twcs(stream)
    except ImportFormatError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    target = get_or_create_team(team) if team else None
    with click.progressbar(length=1, label=f"Importing {len(tweets)} tweets") as bar:
        result = import_twcs(tweets, now=utcnow(), team=target, progress=_progress(bar))
    click.echo(
        f"{result.messages_created} messages and {result.conversations_created} conversations "
        f"created; {result.duplicates} already stored; {result.skipped} skipped (no brand); "
        f"{len(result.accounts)} brand accounts"
    )


def _progress(bar):
    """A (done, total) callback that drives a click progress bar."""

    def update(done: int, total: int) -> None:
        bar.length = total
        bar.update(done - bar.pos)

    return update


@click.command("seed-demo")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="TWCS file to use.")
def seed_demo_command(csv_path):
    """Load demo users, teams, channels and conversations (idempotent)."""
    path = csv_path or (
        Path(current_app.config["INBOX_DEMO_CSV"]) if current_app.config["INBOX_DEMO_CSV"] else None
    )
    summary = load_demo(csv_path=path, now=utcnow())
    db.session.commit()
    click.echo(
        f"demo data: {summary.conversations} conversations ({summary.source}), "
        f"{summary.created_users} users created"
    )
    click.echo(f"logins (password: {DEMO_PASSWORD}):")
    for login in DEMO_USERS:
        click.echo(f"  {login.role.value:<10} {login.email}")


@click.command("replay-events")
@click.option("--id", "ids", type=int, multiple=True, help="Event id; repeatable.")
@click.option("--failed", is_flag=True, help="Every failed event.")
@click.option("--inline", is_flag=True, help="Process here instead of enqueueing to workers.")
def replay_events_command(ids, failed, inline):
    """Process stored webhook events again (safe: stored messages are never duplicated)."""
    if not ids and not failed:
        raise click.UsageError("name events with --id, or pass --failed")
    query = select(InboundEvent)
    query = query.where(
        or_(InboundEvent.id.in_(ids), InboundEvent.state == EventState.FAILED)
        if failed
        else InboundEvent.id.in_(ids)
    )
    events = db.session.scalars(query.order_by(InboundEvent.id)).all()
    missing = set(ids) - {e.id for e in events}
    if missing:
        raise click.ClickException(f"no such event: {', '.join(map(str, sorted(missing)))}")
    for event in events:
        if inline:
            reset_for_replay(event)
            process_event(event, now=utcnow())
        else:
            replay(event, actor=None)
    db.session.commit()
    if inline:
        states = ", ".join(f"#{e.id} {e.state}" for e in events)
        click.echo(f"replayed {len(events)} events: {states}")
    else:
        click.echo(f"enqueued {len(events)} events for processing")


def register(app: Flask) -> None:
    for command in (
        replay_events_command,
        create_user_command,
        add_channel_command,
        import_csv_command,
        seed_demo_command,
    ):
        app.cli.add_command(command)
