"""What the external helpdesk tells us about a case (POST /api/v1/conversations/<id>/
external-status): validated, kept as the conversation's `HelpdeskCase` (its id and status),
written into the thread as a system line, audited, published live, and, when the helpdesk
says so, the conversation resolved through `conversations.set_status` so its SLA clocks stop
as for an agent's resolve.
Imports: models, extensions.db, errors, live, services.conversations, services.audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import Conversation, HelpdeskCase, Status, User
from inbox.services import conversations
from inbox.services.audit import record_audit

FIELDS = {"status", "external_id", "note", "resolve"}
MAX_STATUS = 64
MAX_EXTERNAL_ID = 128
MAX_NOTE = 2000


@dataclass(frozen=True)
class StatusUpdate:
    status: str
    external_id: str | None
    note: str | None
    resolve: bool


def _bad(message: str) -> InboxError:
    return InboxError(message, code="bad_request")


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        need = "is required and must be" if required else "must be"
        raise _bad(f'"{name}" {need} a non-empty string.')
    value = value.strip()
    if len(value) > limit:
        raise _bad(f'"{name}" is at most {limit} characters.')
    return value


def parse_update(body: Any) -> StatusUpdate:
    """The update in a request body, or InboxError (400) saying what is wrong with it."""
    if not isinstance(body, dict):
        raise _bad(
            'Send a JSON object: {"status": "…", "external_id": "…", "note": "…", '
            '"resolve": false}.'
        )
    unknown = set(body) - FIELDS
    if unknown:
        raise _bad(f"Unknown fields: {', '.join(sorted(unknown))}.")
    resolve = body.get("resolve", False)
    if not isinstance(resolve, bool):
        raise _bad('"resolve" must be true or false.')
    return StatusUpdate(
        status=_text(body, "status", MAX_STATUS, required=True) or "",
        external_id=_text(body, "external_id", MAX_EXTERNAL_ID, required=False),
        note=_text(body, "note", MAX_NOTE, required=False),
        resolve=resolve,
    )


def record_status(
    conversation: Conversation, update: StatusUpdate, *, actor: User, now: datetime
) -> HelpdeskCase:
    """Keep the helpdesk's status of `conversation`'s case and act on it (see the module)."""
    case = db.session.get(HelpdeskCase, conversation.id)
    before = None
    if case is None:
        case = HelpdeskCase(conversation_id=conversation.id, status=update.status, updated_at=now)
        db.session.add(case)
    else:
        before = {"status": case.status, "external_id": case.external_id}
    case.status = update.status
    case.external_id = update.external_id or case.external_id  # a later update may omit it
    case.note = update.note
    case.updated_at = now
    line = f"Helpdesk case {case.external_id or ''}".rstrip() + f": {update.status}"
    conversations.add_system_note(
        conversation, line + (f" — {update.note}" if update.note else ""), now=now, author=actor
    )
    record_audit(
        "conversation.external_status",
        conversation,
        actor=actor,
        before=before,
        after={
            "status": case.status,
            "external_id": case.external_id,
            "note": case.note,
            "resolve": update.resolve,
        },
        now=now,
    )
    publish_after_commit(
        db.session,
        "conversation.updated",
        conversation_id=conversation.id,
        action="external_status",
        actor_id=actor.id,
    )
    if update.resolve and conversation.is_open:
        conversations.set_status(conversation, Status.RESOLVED, actor=actor, now=now)
    return case
