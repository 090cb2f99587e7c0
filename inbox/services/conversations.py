"""What agents do to a conversation: who may see it, claim/assign, status, priority, tags, spam,
internal notes with @mentions, routing to a support team (and its helpdesk), contact notes and
read state.

Every action checks (and bumps) the conversation's `version` so a stale form is refused with
Conflict instead of silently overwriting a colleague's change, records an audit event and
publishes a live update after commit. Nothing here commits.
Auto-assignment hears about freed capacity and unassigned arrivals through `queue_changed` /
`capacity_freed`, which enqueue `jobs.assign_team_backlog` after the commit.
Imports: models, extensions.db, errors, live, queue, services.audit, services.ingest,
services.notifications, services.helpdesk.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, false, func, or_, select, true, update
from sqlalchemy.sql import ColumnElement

from inbox.errors import Conflict, InboxError, NotFound
from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import (
    OPEN_STATUSES,
    AssignmentMode,
    Contact,
    Conversation,
    ConversationRead,
    Direction,
    Message,
    Priority,
    Role,
    Status,
    Tag,
    Team,
    User,
    in_values,
    team_members,
)
from inbox.queue import enqueue_after_commit
from inbox.services import helpdesk, replies, sla
from inbox.services.audit import record_audit
from inbox.services.ingest import add_message
from inbox.services.notifications import notify

MANAGER_ROLES = (Role.SUPERVISOR, Role.ADMIN)
BACKLOG_JOB = "inbox.jobs.assign_team_backlog"
MAX_NOTE_LENGTH = 5000
MAX_TAG_LENGTH = 64
MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._-]*)")


# --- Who may see what ---------------------------------------------------------------------------


def sees_everything(user: User) -> bool:
    return user.has_role(*MANAGER_ROLES)


def visibility_clause(user: User) -> ColumnElement[bool]:
    """SQL condition for the conversations `user` may see and act on: supervisors and admins
    all; agents those of their teams, those assigned to them, and unowned ones (no team, no
    assignee) from the shared queue."""
    if sees_everything(user):
        return true()
    team_ids = [t.id for t in user.teams]
    return _agent_sees(Conversation.team_id.in_(team_ids) if team_ids else false(), user.id)


def agent_visibility_clause(user_id: ColumnElement[int]) -> ColumnElement[bool]:
    """`visibility_clause` of an agent whose teams the statement itself looks up: with
    `user_id` a bind parameter, one statement (built and compiled once) serves every agent and
    the caller needs no query for the user's teams."""
    members = select(team_members.c.team_id).where(team_members.c.user_id == user_id)
    return _agent_sees(Conversation.team_id.in_(members), user_id)


def caller_visibility_clause(
    user_id: ColumnElement[int], role: ColumnElement[str]
) -> ColumnElement[bool]:
    """`visibility_clause` of a caller the statement itself looks up, id and role (get next
    by bearer token): a manager sees everything, an agent as `agent_visibility_clause`."""
    return or_(in_values(role, MANAGER_ROLES), agent_visibility_clause(user_id))


def _agent_sees(in_their_teams: ColumnElement[bool], user_id: Any) -> ColumnElement[bool]:
    return or_(
        in_their_teams,
        Conversation.assignee_id == user_id,
        and_(Conversation.team_id.is_(None), Conversation.assignee_id.is_(None)),
    )


def can_see(user: User, conversation: Conversation) -> bool:
    if sees_everything(user) or conversation.assignee_id == user.id:
        return True
    if conversation.team_id is None:
        return conversation.assignee_id is None
    return conversation.team_id in {t.id for t in user.teams}


def get_conversation_for(user: User, conversation_id: int) -> Conversation:
    """The conversation if `user` may see it. Otherwise NotFound (404, not 403), so ids of other
    teams' conversations reveal nothing."""
    conversation = db.session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, visibility_clause(user))
    )
    if conversation is None:
        raise NotFound("No such conversation (or it belongs to a team you are not in).")
    return conversation


# --- Shared bookkeeping of every action ----------------------------------------------------------


def _claim_version(conversation: Conversation, expected: int | None) -> None:
    """Bump the version in one conditional UPDATE: if the caller says which version it saw and
    someone changed the row since (even in a transaction committing right now), refuse."""
    db.session.flush()
    stmt = update(Conversation).where(Conversation.id == conversation.id)
    if expected is not None:
        stmt = stmt.where(Conversation.version == expected)
    result = db.session.execute(
        stmt.values(version=Conversation.version + 1).execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        db.session.refresh(conversation)
        raise Conflict(
            "This conversation changed since you opened it (a colleague acted on it or the "
            "customer wrote again). Reload to see the change, or apply anyway."
        )
    db.session.refresh(conversation, ["version"])


def _done(
    conversation: Conversation,
    action: str,
    *,
    actor: User | None,
    now: datetime,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    record_audit(
        f"conversation.{action}", conversation, actor=actor, before=before, after=after, now=now
    )
    conversation.updated_at = now
    db.session.flush()
    announce(conversation, action, actor=actor)


def announce(conversation: Conversation, action: str, *, actor: User | None) -> None:
    """The live update of an action on `conversation`, published after the commit."""
    announce_change(
        conversation.id, conversation.version, action, actor_id=actor.id if actor else None
    )


def announce_change(
    conversation_id: int, version: int, action: str, *, actor_id: int | None
) -> None:
    """`announce` for a conversation known by id and new version only (no ORM object)."""
    publish_after_commit(
        db.session,
        "conversation.updated",
        conversation_id=conversation_id,
        action=action,
        actor_id=actor_id,
        version=version,
    )


def _owner_state(conversation: Conversation) -> dict[str, Any]:
    return {"assignee_id": conversation.assignee_id, "team_id": conversation.team_id}


# --- Assignment ---------------------------------------------------------------------------------


def assign(
    conversation: Conversation,
    assignee: User | None,
    *,
    actor: User | None,
    now: datetime,
    version: int | None = None,
    reason: str | None = None,
) -> None:
    """Assign to `assignee` (None unassigns). Assigning to a deactivated user is refused.
    `actor` None is the system (auto-assignment, a rule); `reason` goes to the audit entry."""
    if assignee is not None and not assignee.active:
        raise InboxError(f"{assignee.name} is deactivated and cannot be assigned.")
    _claim_version(conversation, version)
    before = _owner_state(conversation)
    conversation.assignee = assignee
    record_assignment(conversation, before=before, actor=actor, now=now, reason=reason)
    if before["assignee_id"] is not None and before["assignee_id"] != conversation.assignee_id:
        capacity_freed(db.session.get(User, before["assignee_id"]))
    if assignee is None:
        queue_changed(conversation.team)


def record_assignment(
    conversation: Conversation,
    *,
    before: dict[str, Any],
    actor: User | None,
    now: datetime,
    reason: str | None = None,
) -> None:
    """The bookkeeping of an assignee change already made to `conversation` by `assign`:
    assignment time, status, audit, live update. (`services.assignment`'s claims do the same
    inside their claiming statement.)"""
    db.session.flush()  # the relationship sets assignee_id only at flush
    conversation.assigned_at = now if conversation.assignee_id is not None else None
    if conversation.assignee_id is not None and conversation.status is Status.NEW:
        conversation.status = Status.OPEN
    action = "assign" if conversation.assignee_id is not None else "unassign"
    after = _owner_state(conversation)
    if reason:
        after["reason"] = reason
    _done(conversation, action, actor=actor, now=now, before=before, after=after)


def queue_changed(team: Team | None) -> None:
    """A conversation entered `team`'s queue unassigned: let auto-assignment look after the
    commit (a job, so the agent's request does not wait for it)."""
    if team is not None and team.assignment_mode is not AssignmentMode.MANUAL:
        enqueue_after_commit(db.session, BACKLOG_JOB, team.id)


def capacity_freed(agent: User | None) -> None:
    """`agent` has one conversation fewer: their auto-assigned teams may give them the next."""
    if agent is None:
        return
    for team in agent.teams:
        queue_changed(team)


def claim(
    conversation: Conversation, *, actor: User, now: datetime, version: int | None = None
) -> None:
    assign(conversation, actor, actor=actor, now=now, version=version)


def set_team(
    conversation: Conversation,
    team: Team | None,
    *,
    actor: User | None,
    now: datetime,
    version: int | None = None,
) -> None:
    _claim_version(conversation, version)
    before = _owner_state(conversation)
    conversation.team = team
    db.session.flush()
    sla.on_attributes_change(conversation, actor=actor, now=now)  # the team picks the policy
    _done(
        conversation, "team", actor=actor, now=now, before=before, after=_owner_state(conversation)
    )
    if conversation.assignee_id is None:
        queue_changed(team)


def route_to_support(
    conversation: Conversation,
    team: Team,
    *,
    note: str,
    actor: User,
    now: datetime,
    version: int | None = None,
) -> Message:
    """Hand the conversation to `team`'s queue: unassigned there, open again, with the handoff
    note in the thread and the team's members notified, and a case sent to the team's helpdesk
    if it has one. History is kept as it was."""
    note = note.strip()
    if not note:
        raise InboxError("Write a handoff note so the support team knows what is needed.")
    _claim_version(conversation, version)
    old_status = conversation.status
    before = {**_owner_state(conversation), "status": str(conversation.status)}
    previous_assignee = conversation.assignee
    conversation.team = team
    conversation.assignee = None
    conversation.assigned_at = None
    conversation.snoozed_until = None
    if conversation.status is not Status.NEW:
        conversation.status = Status.OPEN
        conversation.resolved_at = None
    db.session.flush()
    # The conversation keeps its SLA history: a reopen resumes its clocks, and the support
    # team's policy applies from the original start.
    sla.on_status_change(conversation, old_status, actor=actor, now=now)
    sla.on_attributes_change(conversation, actor=actor, now=now)
    message = _note_message(conversation, f"Routed to {team.name}: {note}", actor=actor, now=now)
    for member in team.members:
        if member.id != actor.id and member.active:
            notify(
                member,
                "routed",
                f"{actor.name} routed a conversation to {team.name}: {note}",
                conversation=conversation,
                now=now,
            )
    db.session.flush()
    after = {**_owner_state(conversation), "status": str(conversation.status), "note": note}
    _done(conversation, "route", actor=actor, now=now, before=before, after=after)
    helpdesk.open_case(conversation, team, note=note, actor=actor, now=now)
    capacity_freed(previous_assignee)
    queue_changed(team)
    return message


# --- Status, priority, spam, tags ---------------------------------------------------------------


def set_status(
    conversation: Conversation,
    status: Status,
    *,
    actor: User | None,
    now: datetime,
    snooze_until: datetime | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Change the status and return the previous state (`status`, `snooze_until`), which is
    what an Undo sends back."""
    if status is Status.SNOOZED and (snooze_until is None or snooze_until <= now):
        raise InboxError("Choose a time in the future to snooze until.")
    _claim_version(conversation, version)
    previous = {
        "status": str(conversation.status),
        "snooze_until": conversation.snoozed_until.isoformat()
        if conversation.snoozed_until
        else None,
    }
    conversation.status = status
    conversation.snoozed_until = snooze_until if status is Status.SNOOZED else None
    if status in (Status.RESOLVED, Status.CLOSED):
        conversation.resolved_at = conversation.resolved_at or now
    else:
        conversation.resolved_at = None
    after = {
        "status": str(status),
        "snooze_until": snooze_until.isoformat() if snooze_until else None,
    }
    db.session.flush()
    sla.on_status_change(conversation, Status(previous["status"]), actor=actor, now=now)
    _done(conversation, "status", actor=actor, now=now, before=previous, after=after)
    if status in (Status.RESOLVED, Status.CLOSED) and Status(previous["status"]) in OPEN_STATUSES:
        capacity_freed(conversation.assignee)
    return previous


def wake_snoozed(*, now: datetime) -> int:
    """Reopen every snoozed conversation whose time has come (periodic job); return how many."""
    due = db.session.scalars(
        select(Conversation).where(
            Conversation.status == Status.SNOOZED, Conversation.snoozed_until <= now
        )
    ).all()
    for conversation in due:
        set_status(conversation, Status.OPEN, actor=None, now=now)
    return len(due)


def set_priority(
    conversation: Conversation,
    priority: Priority,
    *,
    actor: User | None,
    now: datetime,
    version: int | None = None,
) -> None:
    _claim_version(conversation, version)
    before = {"priority": str(conversation.priority)}
    conversation.priority = priority
    db.session.flush()
    sla.on_attributes_change(conversation, actor=actor, now=now)
    _done(
        conversation,
        "priority",
        actor=actor,
        now=now,
        before=before,
        after={"priority": str(priority)},
    )


def mark_spam(
    conversation: Conversation,
    spam: bool,
    *,
    actor: User | None,
    now: datetime,
    version: int | None = None,
) -> None:
    _claim_version(conversation, version)
    before = {"is_spam": conversation.is_spam}
    conversation.is_spam = spam
    _done(
        conversation,
        "spam" if spam else "not_spam",
        actor=actor,
        now=now,
        before=before,
        after={"is_spam": spam},
    )


def normalize_tag(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InboxError("A tag needs a name.")
    if len(name) > MAX_TAG_LENGTH:
        raise InboxError(f"Tags are at most {MAX_TAG_LENGTH} characters.")
    return name


def get_or_create_tag(name: str) -> Tag:
    """The tag called `name` (case-insensitively), created if new."""
    name = normalize_tag(name)
    tag = db.session.scalar(select(Tag).where(func.lower(Tag.name) == name.lower()))
    if tag is None:
        tag = Tag(name=name)
        db.session.add(tag)
        db.session.flush()
    return tag


def add_tag(
    conversation: Conversation,
    name: str,
    *,
    actor: User | None,
    now: datetime,
    version: int | None = None,
) -> Tag:
    tag = get_or_create_tag(name)
    if tag in conversation.tags:
        return tag
    _claim_version(conversation, version)
    conversation.tags.append(tag)
    db.session.flush()
    sla.on_attributes_change(conversation, actor=actor, now=now)  # policies match on tags
    _done(conversation, "tag", actor=actor, now=now, before=None, after={"added": tag.name})
    return tag


def remove_tag(
    conversation: Conversation,
    name: str,
    *,
    actor: User,
    now: datetime,
    version: int | None = None,
) -> None:
    wanted = normalize_tag(name).lower()
    tag = next((t for t in conversation.tags if t.name.lower() == wanted), None)
    if tag is None:
        return
    _claim_version(conversation, version)
    conversation.tags.remove(tag)
    db.session.flush()
    sla.on_attributes_change(conversation, actor=actor, now=now)
    _done(conversation, "untag", actor=actor, now=now, before={"removed": tag.name}, after=None)


def set_tags(
    conversation: Conversation,
    names: list[str],
    *,
    actor: User,
    now: datetime,
    version: int | None = None,
) -> None:
    """Replace the whole tag set (the API's PATCH)."""
    tags = [get_or_create_tag(n) for n in names]
    _claim_version(conversation, version)
    before = {"tags": sorted(t.name for t in conversation.tags)}
    conversation.tags = list({t.id: t for t in tags}.values())
    db.session.flush()
    sla.on_attributes_change(conversation, actor=actor, now=now)
    _done(
        conversation,
        "tags",
        actor=actor,
        now=now,
        before=before,
        after={"tags": sorted(t.name for t in conversation.tags)},
    )


# --- Replies -------------------------------------------------------------------------------------


def reply(
    conversation: Conversation,
    *,
    text: str,
    is_public: bool | None,
    actor: User,
    now: datetime,
    version: int | None = None,
) -> Message:
    """Answer the customer from the inbox (services.replies sends it); refused with Conflict if
    the conversation changed since the agent saw `version`, so nobody answers blind."""
    _claim_version(conversation, version)
    return replies.create_reply(conversation, text=text, is_public=is_public, actor=actor, now=now)


# --- Notes and mentions -------------------------------------------------------------------------


def add_system_note(
    conversation: Conversation, text: str, *, now: datetime, author: User | None = None
) -> Message:
    """A note written by the system (auto-assignment, rules) into the thread, for the history.
    `author`: the user whose call wrote it (an integration's API token), shown in the thread
    instead of "System", so no token can put words in the system's mouth."""
    message = _note_message(conversation, text, actor=author, now=now)
    publish_after_commit(
        db.session, "message.created", conversation_id=conversation.id, message_id=message.id
    )
    return message


def _note_message(
    conversation: Conversation, text: str, *, actor: User | None, now: datetime
) -> Message:
    message = add_message(
        conversation, direction=Direction.NOTE, text=text, sent_at=now, author_user=actor
    )
    assert message is not None  # notes have no external id, so they are never duplicates
    return message


def mentioned_users(text: str, *, exclude: User | None = None) -> list[User]:
    """Active users named by `@token` in `text`: the token is the local part of their email or
    their first name (when no one else shares it)."""
    tokens = {t.lower().rstrip(".") for t in MENTION_RE.findall(text)}
    if not tokens:
        return []
    users = db.session.scalars(select(User).where(User.active.is_(True))).all()
    first_names: dict[str, list[User]] = {}
    for user in users:
        first = user.name.split()[0].lower() if user.name.split() else ""
        first_names.setdefault(first, []).append(user)
    found: dict[int, User] = {}
    for user in users:
        if user.email.split("@")[0] in tokens:
            found[user.id] = user
    for token in tokens:
        same = first_names.get(token, [])
        if len(same) == 1:
            found[same[0].id] = same[0]
    return [u for u in found.values() if exclude is None or u.id != exclude.id]


class NoteAdded(NamedTuple):
    message: Message
    notified: list[User]  # the mentioned colleagues who may see the conversation
    unreachable: list[User]  # mentioned but outside its teams: not notified, said to the writer


def add_note(
    conversation: Conversation,
    text: str,
    *,
    actor: User,
    now: datetime,
    version: int | None = None,
) -> NoteAdded:
    """Add an internal note; colleagues @mentioned in it who may see the conversation are
    notified (the others are returned, so the writer learns they were not)."""
    text = text.strip()
    if not text:
        raise InboxError("The note is empty.")
    if len(text) > MAX_NOTE_LENGTH:
        raise InboxError(f"Notes are at most {MAX_NOTE_LENGTH} characters.")
    _claim_version(conversation, version)
    message = _note_message(conversation, text, actor=actor, now=now)
    mentioned = mentioned_users(text, exclude=actor)
    notified = [u for u in mentioned if can_see(u, conversation)]
    for user in notified:
        notify(
            user,
            "mention",
            f"{actor.name} mentioned you: {text[:200]}",
            conversation=conversation,
            now=now,
        )
    db.session.flush()
    _done(
        conversation,
        "note",
        actor=actor,
        now=now,
        before=None,
        after={"message_id": message.id, "mentioned": [u.id for u in notified]},
    )
    return NoteAdded(message, notified, [u for u in mentioned if u not in notified])


# --- Contact and read state ---------------------------------------------------------------------


def update_contact(
    contact: Contact, *, notes: str, is_vip: bool, actor: User, now: datetime
) -> None:
    before = {"notes": contact.notes, "is_vip": contact.is_vip}
    contact.notes = notes.strip()
    vip_changed = contact.is_vip != is_vip
    contact.is_vip = is_vip
    if vip_changed:  # policies can match VIP contacts: re-select for their open conversations
        db.session.flush()
        for conversation in db.session.scalars(
            select(Conversation).where(
                Conversation.contact_id == contact.id, Conversation.status.in_(OPEN_STATUSES)
            )
        ):
            sla.on_attributes_change(conversation, actor=actor, now=now)
    record_audit(
        "contact.update",
        contact,
        actor=actor,
        before=before,
        after={"notes": contact.notes, "is_vip": is_vip},
        now=now,
    )
    publish_after_commit(db.session, "contact.updated", contact_id=contact.id)


def mark_read(conversation: Conversation, user: User, *, now: datetime) -> None:
    row = db.session.get(ConversationRead, (user.id, conversation.id))
    if row is None:
        db.session.add(
            ConversationRead(user_id=user.id, conversation_id=conversation.id, last_read_at=now)
        )
    elif row.last_read_at < now:
        row.last_read_at = now


def previous_conversations(
    conversation: Conversation, user: User, *, limit: int = 10
) -> list[Conversation]:
    """The contact's other conversations that `user` may see, newest first."""
    return list(
        db.session.scalars(
            select(Conversation)
            .where(
                Conversation.contact_id == conversation.contact_id,
                Conversation.id != conversation.id,
                visibility_clause(user),
            )
            .order_by(Conversation.created_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
    )
