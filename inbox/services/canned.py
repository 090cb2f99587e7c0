"""Canned responses: managing them and rendering their {{placeholders}} for a conversation.

Rendering is plain placeholder substitution, never a template engine: the values come from
social content (contact names) and must not be able to run or inject anything.
Imports: models, extensions.db, errors, services.audit.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import CannedResponse, Conversation, User
from inbox.services.audit import record_audit

PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# Anything written as a placeholder, known or not: checked when a response is saved.
_ANY_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
PLACEHOLDERS = {
    "contact_name": "the customer's name",
    "contact_first_name": "the customer's first name",
    "contact_handle": "the customer's handle on this platform (with @)",
    "agent_name": "your name",
    "agent_first_name": "your first name",
    "team_name": "the conversation's team",
    "platform": "the platform (X, Instagram …)",
}


def placeholder_values(conversation: Conversation, agent: User) -> dict[str, str]:
    contact = conversation.contact
    identity = next(
        (i for i in contact.identities if i.platform == conversation.platform),
        contact.identities[0] if contact.identities else None,
    )
    handle = identity.handle if identity and identity.handle else ""
    name = contact.display_name or (identity.display_name if identity else "") or handle
    return {
        "contact_name": name,
        "contact_first_name": name.split()[0] if name.split() else "",
        "contact_handle": f"@{handle.lstrip('@')}" if handle else "",
        "agent_name": agent.name,
        "agent_first_name": agent.name.split()[0] if agent.name.split() else agent.name,
        "team_name": conversation.team.name if conversation.team else "",
        "platform": conversation.platform.label,
    }


def render(body: str, values: dict[str, str]) -> str:
    """Replace each known {{name}}; unknown placeholders stay as written so a typo is visible."""
    return PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), body)


def all_responses() -> list[CannedResponse]:
    return list(db.session.scalars(select(CannedResponse).order_by(CannedResponse.title)))


def _check(title: str, body: str, *, current: CannedResponse | None) -> tuple[str, str]:
    title, body = title.strip(), body.strip()
    if not title or not body:
        raise InboxError("A canned response needs a title and a text.")
    # A mistyped {{first_name}} would reach the customer as written.
    unknown = sorted({name for name in _ANY_PLACEHOLDER.findall(body) if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS)
        raise InboxError(
            f"Unknown placeholder {', '.join(f'{{{{{n}}}}}' for n in unknown)}. Use one of {known}."
        )
    clash = db.session.scalar(select(CannedResponse).where(CannedResponse.title == title))
    if clash is not None and clash is not current:
        raise InboxError(f"A canned response called “{title}” already exists.")
    return title, body


def create_response(title: str, body: str, *, actor: User, now: datetime) -> CannedResponse:
    title, body = _check(title, body, current=None)
    response = CannedResponse(title=title, body=body, created_at=now, updated_at=now)
    db.session.add(response)
    db.session.flush()
    record_audit("canned.create", response, actor=actor, after={"title": title}, now=now)
    return response


def update_response(
    response: CannedResponse, title: str, body: str, *, actor: User, now: datetime
) -> None:
    title, body = _check(title, body, current=response)
    before = {"title": response.title, "body": response.body}
    response.title, response.body = title, body
    record_audit(
        "canned.update",
        response,
        actor=actor,
        before=before,
        after={"title": title, "body": body},
        now=now,
    )


def delete_response(response: CannedResponse, *, actor: User, now: datetime) -> None:
    record_audit("canned.delete", response, actor=actor, before={"title": response.title}, now=now)
    db.session.delete(response)
