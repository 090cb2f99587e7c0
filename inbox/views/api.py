"""The versioned JSON API under /api/v1, authenticated by bearer tokens only.

Session cookies are ignored here on purpose: a token cannot be sent by a forged cross-site form,
so the API needs no CSRF token, and a stolen page session cannot drive the API.
Conversations are read and changed through the same services and the same permission check
(`get_conversation_for`: 404 for what the caller may not see) as the web inbox.
Get next, the hot path, answers on PostgreSQL with JSON its claiming statement builds
(`conversation_sql`, the SQL twin of `conversation_json`, kept equal by a test).
Imports: services, connectors (the ingest format), models, extensions.db, errors, timeutil.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy import func, literal_column, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import FromClause

from inbox.connectors import ParseError
from inbox.connectors.api import parse_api_message
from inbox.errors import InboxError, json_error
from inbox.extensions import csrf, db
from inbox.models import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    Priority,
    Role,
    SlaClock,
    SlaPolicy,
    Status,
    Tag,
    Team,
    User,
    conversation_tags,
)
from inbox.permissions import may_see_reports
from inbox.services import assignment, helpdesk_status, listing, reports, sla
from inbox.services import conversations as actions
from inbox.services.accounts import user_for_token
from inbox.services.ingest import (
    Unhandled,
    apply_inbound_message,
    find_account,
    find_message,
)
from inbox.timeutil import as_utc, utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


# Views that check the bearer token THEMSELVES (on PostgreSQL): `authenticate_token` only reads
# the header and leaves the check to the view's one statement, so a view added here must check
# the token in its statement and answer 401 when it is refused. Their request runs in autocommit
# mode, that statement being atomic on its own. Get next is the API's hot path
# (docs/benchmarks.md); its statement checks the token, writes its last use (once a minute), the
# conversation and the audit row.
_TOKEN_IN_STATEMENT_VIEWS = {"api.claim_next_conversation"}


def _token_refused():
    return json_error(401, "unauthorized", "The token is invalid or has been revoked.")


@bp.before_request
def authenticate_token():
    if request.endpoint == "api.openapi":
        return None  # the description of the API is public
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return json_error(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    if request.endpoint in _TOKEN_IN_STATEMENT_VIEWS and db.engine.dialect.name == "postgresql":
        if not db.session().in_transaction():  # a test's session may have begun one already
            # No BEGIN and COMMIT round trips around a statement that is atomic on its own.
            db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        g.api_token = token.strip()
        return None
    user = user_for_token(token.strip())
    if user is None:
        return _token_refused()
    g.api_user = user
    if db.session.dirty:
        # last_used_at moved on (once a minute), kept even if the view writes nothing. Otherwise
        # no commit: the view goes on in this transaction, with the user as loaded here.
        db.session.commit()


@bp.route("/me")
def me():
    user = g.api_user
    return jsonify(
        {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "role": str(user.role),
            "teams": [t.name for t in user.teams],
        }
    )


@bp.errorhandler(InboxError)
def domain_error(error: InboxError):
    db.session.rollback()
    return json_error(error.status, error.code, error.message)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _user(user: User | assignment.Caller | None) -> dict[str, Any] | None:
    return None if user is None else {"id": user.id, "name": user.name, "email": user.email}


def clock_json(clock: SlaClock) -> dict[str, Any]:
    return {
        "metric": str(clock.metric),
        "cycle": clock.cycle,
        "policy": clock.policy.name if clock.policy else None,
        "started_at": _iso(clock.started_at),
        "due_at": _iso(clock.due_at),
        "stopped_at": _iso(clock.stopped_at),
        "stop_reason": str(clock.stop_reason) if clock.stop_reason else None,
        "warned_at": _iso(clock.warned_at),
        "breached_at": _iso(clock.breached_at),
        "paused_seconds": clock.paused_seconds,
    }


def conversation_json(c: Conversation, clocks: list[SlaClock] | None = None) -> dict[str, Any]:
    contact = c.contact
    return {
        "id": c.id,
        "platform": str(c.platform),
        "channel_account": {
            "id": c.channel_account.id,
            "name": c.channel_account.name,
            "external_account_id": c.channel_account.external_account_id,
        },
        "kind": str(c.kind),
        "is_public": c.is_public,
        "status": str(c.status),
        "priority": str(c.priority),
        "is_spam": c.is_spam,
        "snoozed_until": _iso(c.snoozed_until),
        "team": None if c.team is None else {"id": c.team.id, "name": c.team.name},
        "assignee": _user(c.assignee),
        "tags": sorted(t.name for t in c.tags),
        "contact": {
            "id": contact.id,
            "name": contact.display_name,
            "is_vip": contact.is_vip,
            "identities": [
                {
                    "platform": str(i.platform),
                    "external_user_id": i.external_user_id,
                    "handle": i.handle,
                    "display_name": i.display_name,
                    "follower_count": i.follower_count,
                }
                for i in contact.identities
            ],
        },
        "language": c.language,
        "sentiment": c.sentiment,
        "message_count": c.message_count,
        "first_inbound_at": _iso(c.first_inbound_at),
        "first_response_at": _iso(c.first_response_at),
        "last_inbound_at": _iso(c.last_inbound_at),
        "last_message_at": _iso(c.last_message_at),
        "resolved_at": _iso(c.resolved_at),
        "created_at": _iso(c.created_at),
        "version": c.version,
        "sla_state": str(c.sla_state),
        "sla_due_at": _iso(c.sla_due_at),
        "sla_clocks": [clock_json(k) for k in (clocks or [])],
        "url": url_for("inbox.conversation", conversation_id=c.id, _external=True),
    }


# --- the same answer, built by PostgreSQL -------------------------------------------------------
# Get next answers with the conversation it claimed. On PostgreSQL the claiming statement builds
# that JSON itself (`assignment.claim_next_by_token`): loading the conversation and its relations
# as ORM objects only to turn them into JSON was most of the call's CPU (docs/benchmarks.md,
# "get next"). `conversation_sql` is `conversation_json` written in SQL, less what the view
# knows already (the assignee is the caller, the url). Change the two together:
# test_get_next_answers_the_conversation_as_get_shows_it compares them field by field.


# SQL constants rather than parameters: fewer values to bind, and a statement psycopg can keep.
_UTC, _ISO = literal_column("'UTC'"), literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'""")
_NO_FRACTION, _PLUS = literal_column("'.000000+'"), literal_column("'+'")


def _iso_sql(instant: Any) -> Any:
    """`_iso` in SQL: Python's isoformat of a UTC instant (no fraction when it is zero)."""
    return func.replace(func.to_char(func.timezone(_UTC, instant), _ISO), _NO_FRACTION, _PLUS)


def _object(**fields: Any) -> Any:
    """json_build_object of `fields`; the keys are SQL constants, not parameters."""
    assert all(key.isidentifier() for key in fields)  # written into the SQL as they are
    pairs = [part for key, value in fields.items() for part in (literal_column(f"'{key}'"), value)]
    return func.json_build_object(*pairs)


def _list(element: Any, *order_by: Any) -> Any:
    """json_agg of `element` in `order_by` order; [] for no rows."""
    return func.coalesce(func.json_agg(aggregate_order_by(element, *order_by)), text("'[]'"))


def conversation_sql(conversation: FromClause) -> Any:
    """`conversation_json` as one PostgreSQL JSON value, of the row of `conversation` (a
    subquery of conversations: the claim's CTE), without "assignee" and "url"."""
    c = conversation.c
    account, contact, identity = ChannelAccount, Contact, ContactIdentity
    clock, policy, tag, team = SlaClock, SlaPolicy, Tag, Team
    identities = select(
        _list(
            _object(
                platform=identity.platform,
                external_user_id=identity.external_user_id,
                handle=identity.handle,
                display_name=identity.display_name,
                follower_count=identity.follower_count,
            ),
            identity.id,
        )
    ).where(identity.contact_id == contact.id)  # correlated to the contact it is nested in
    # COLLATE "C": code point order, as Python's sorted() puts the names.
    tags = (
        select(_list(tag.name, tag.name.collate("C")))
        .join(conversation_tags, conversation_tags.c.tag_id == tag.id)
        .where(conversation_tags.c.conversation_id == c.id)
    )
    clocks = (
        select(
            _list(
                _object(
                    metric=clock.metric,
                    cycle=clock.cycle,
                    policy=policy.name,
                    started_at=_iso_sql(clock.started_at),
                    due_at=_iso_sql(clock.due_at),
                    stopped_at=_iso_sql(clock.stopped_at),
                    stop_reason=clock.stop_reason,
                    warned_at=_iso_sql(clock.warned_at),
                    breached_at=_iso_sql(clock.breached_at),
                    paused_seconds=clock.paused_seconds,
                ),
                clock.started_at,
                clock.id,
            )
        )
        .select_from(clock)
        .outerjoin(policy, policy.id == clock.policy_id)
        .where(clock.conversation_id == c.id)
    )
    of_account = account.id == c.channel_account_id
    account_json = _object(
        id=account.id, name=account.name, external_account_id=account.external_account_id
    )
    contact_json = _object(
        id=contact.id,
        name=contact.display_name,
        is_vip=contact.is_vip,
        identities=identities.scalar_subquery(),
    )
    team_json = _object(id=team.id, name=team.name)
    return _object(
        id=c.id,
        platform=select(account.platform).where(of_account).scalar_subquery(),
        channel_account=select(account_json).where(of_account).scalar_subquery(),
        kind=c.kind,
        is_public=c.is_public,
        status=c.status,
        priority=c.priority,
        is_spam=c.is_spam,
        snoozed_until=_iso_sql(c.snoozed_until),
        team=select(team_json).where(team.id == c.team_id).scalar_subquery(),
        tags=tags.scalar_subquery(),
        contact=select(contact_json).where(contact.id == c.contact_id).scalar_subquery(),
        language=c.language,
        sentiment=c.sentiment,
        message_count=c.message_count,
        first_inbound_at=_iso_sql(c.first_inbound_at),
        first_response_at=_iso_sql(c.first_response_at),
        last_inbound_at=_iso_sql(c.last_inbound_at),
        last_message_at=_iso_sql(c.last_message_at),
        resolved_at=_iso_sql(c.resolved_at),
        created_at=_iso_sql(c.created_at),
        version=c.version,
        sla_state=c.sla_state,
        sla_due_at=_iso_sql(c.sla_due_at),
        sla_clocks=clocks.scalar_subquery(),
    )


def _completed_sql_answer(body: dict[str, Any], assignee: dict[str, Any]) -> dict[str, Any]:
    """`conversation_sql`'s answer made `conversation_json`'s: the fields the view knows, and
    a whole sentiment back to a float (PostgreSQL's JSON writes VADER's neutral 0.0 as 0)."""
    if body["sentiment"] is not None:
        body["sentiment"] = float(body["sentiment"])
    body["assignee"] = assignee  # the caller
    body["url"] = url_for("inbox.conversation", conversation_id=body["id"], _external=True)
    return body


def message_json(m: Message) -> dict[str, Any]:
    if m.author_identity is not None:
        author = {
            "type": "contact",
            "handle": m.author_identity.handle,
            "name": m.author_identity.display_name,
        }
    elif m.author_user is not None:
        author = {"type": "user", **(_user(m.author_user) or {})}
    else:
        author = None
    return {
        "id": m.id,
        "external_id": m.external_id,
        "direction": str(m.direction),
        "text": m.text,
        "sent_at": _iso(m.sent_at),
        "author": author,
        "status": str(m.delivery_status) if m.delivery_status else None,
        "error": m.delivery_error,
        "attachments": m.attachments,
        "edited_at": _iso(m.edited_at),
        "deleted_at": _iso(m.deleted_at),
    }


@bp.route("/conversations")
def list_conversations():
    try:
        limit = int(request.args.get("limit", 25))
    except ValueError:
        raise InboxError("limit must be a number.", code="bad_request") from None
    if not 1 <= limit <= listing.MAX_LIMIT:
        raise InboxError(f"limit must be between 1 and {listing.MAX_LIMIT}.", code="bad_request")
    page = listing.list_conversations(
        g.api_user,
        filters=listing.Filters.parse(request.args),
        sort=request.args.get("sort", listing.DEFAULT_SORT),
        cursor=request.args.get("cursor") or None,
        limit=limit,
    )
    clocks = sla.clocks_for([c.id for c in page.items])
    return jsonify(
        {
            "items": [conversation_json(c, clocks[c.id]) for c in page.items],
            "next_cursor": page.next_cursor,
        }
    )


@bp.post("/conversations/next")
def claim_next_conversation():
    """Claim the caller's most urgent eligible conversation: 200 with it, 204 if none, 401
    for a refused token (checked by the claiming statement itself on PostgreSQL)."""
    if db.engine.dialect.name == "postgresql":
        claimed = assignment.claim_next_by_token(g.api_token, now=utcnow(), answer=conversation_sql)
        if claimed is None:
            return _token_refused()
        body = None
        if claimed.answer is not None:
            body = _completed_sql_answer(claimed.answer, _user(claimed.caller))
    else:
        conversation = assignment.claim_next(g.api_user, now=utcnow(), with_relations=True)
        # Built before the commit, from what the claim loaded with the conversation (its
        # relations and clocks): after the commit every attribute would be expired and read
        # again. The assignee, the caller, is already in the session.
        body = None
        if conversation is not None:
            body = conversation_json(conversation, sla.in_ledger_order(conversation.sla_clocks))
    db.session.commit()  # the token's last use, when it was written, even with nothing to claim
    return ("", 204) if body is None else jsonify(body)


@bp.route("/conversations/<int:conversation_id>")
def get_conversation(conversation_id: int):
    conversation = actions.get_conversation_for(g.api_user, conversation_id)
    messages = db.session.scalars(
        db.select(Message)
        .where(Message.conversation_id == conversation.id)
        .options(selectinload(Message.author_identity), selectinload(Message.author_user))
        .order_by(Message.sent_at, Message.id)
    ).all()
    return jsonify(
        {
            **conversation_json(conversation, sla.clocks_for([conversation.id])[conversation.id]),
            "messages": [message_json(m) for m in messages],
        }
    )


PATCHABLE = {"status", "priority", "team", "assignee", "tags", "snooze_until", "version"}


@bp.route("/conversations/<int:conversation_id>", methods=["PATCH"])
def patch_conversation(conversation_id: int):
    """Change status, priority, team (id or null), assignee (id or null), tags (the full list).
    Send `version` (from a previous read) to be refused with 409 if it changed since."""
    user = g.api_user
    conversation = actions.get_conversation_for(user, conversation_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body:
        raise InboxError("Send a JSON object with the fields to change.", code="bad_request")
    unknown = set(body) - PATCHABLE
    if unknown:
        raise InboxError(
            f"Unknown or read-only fields: {', '.join(sorted(unknown))}.", code="bad_request"
        )
    version = body.get("version")
    if version is not None and not isinstance(version, int):
        raise InboxError("version must be an integer.", code="bad_request")
    now = utcnow()
    kw = {"actor": user, "now": now}
    # The version is checked by the first change only: later ones are this same request's.
    if "status" in body:
        status = _enum(Status, body["status"], "status")
        snooze = body.get("snooze_until")
        until = _datetime(snooze, "snooze_until") if snooze else None
        actions.set_status(conversation, status, snooze_until=until, version=version, **kw)
        version = None
    if "priority" in body:
        actions.set_priority(
            conversation, _enum(Priority, body["priority"], "priority"), version=version, **kw
        )
        version = None
    if "team" in body:
        team = None if body["team"] is None else _get(Team, body["team"], "team")
        actions.set_team(conversation, team, version=version, **kw)
        version = None
    if "assignee" in body:
        assignee = None if body["assignee"] is None else _get(User, body["assignee"], "assignee")
        actions.assign(conversation, assignee, version=version, **kw)
        version = None
    if "tags" in body:
        tags = body["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InboxError("tags must be a list of strings.", code="bad_request")
        actions.set_tags(conversation, tags, version=version, **kw)
    db.session.commit()
    return jsonify(
        conversation_json(conversation, sla.clocks_for([conversation.id])[conversation.id])
    )


def _enum(enum_cls, value, name: str):
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InboxError(f"{name} must be one of: {allowed}.", code="bad_request") from None


def _get(model, value, name: str):
    row = db.session.get(model, value) if isinstance(value, int) else None
    if row is None:
        raise InboxError(f"No such {name}: {value!r}.", code="bad_request")
    return row


def _datetime(value, name: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        raise InboxError(f"{name} must be an ISO 8601 date and time.", code="bad_request") from None


def _op(summary: str, *, params=(), body=None, responses=None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [
            {
                "name": n,
                "in": where,
                "required": where == "path",
                "schema": {"type": t},
                "description": d,
            }
            for n, where, t, d in params
        ],
        "responses": {
            **(responses or {"200": {"description": "OK"}}),
            "401": {"$ref": "#/components/responses/Error"},
        },
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


ID = ("id", "path", "integer", "Conversation id")


@bp.route("/openapi.json")
def openapi():
    """A hand-written OpenAPI 3.1 description of the endpoints that exist."""
    error = {
        "description": "Error",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            }
        },
    }
    filters = [
        ("status", "query", "string", "new|open|pending|snoozed|resolved|closed"),
        ("platform", "query", "string", "x|messenger|instagram|facebook|whatsapp|api"),
        ("channel", "query", "integer", "Channel account id"),
        ("kind", "query", "string", "dm|mention|comment"),
        ("public", "query", "string", "public|private"),
        ("priority", "query", "string", "low|normal|high|urgent"),
        ("team", "query", "integer", "Team id"),
        ("assignee", "query", "string", "User id, or 'none' for unassigned"),
        ("tag", "query", "string", "Tag name (any case)"),
        ("q", "query", "string", "Text in messages, contact names or handles"),
        ("sort", "query", "string", "waiting (default)|newest|oldest"),
        ("limit", "query", "integer", "1-100, default 25"),
        ("cursor", "query", "string", "next_cursor of the previous page"),
    ]
    patch_body = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "snooze_until": {"type": "string", "format": "date-time"},
            "priority": {"type": "string", "enum": [p.value for p in Priority]},
            "team": {"type": ["integer", "null"]},
            "assignee": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "version": {"type": "integer", "description": "Refuse with 409 if changed since"},
        },
    }
    external_status_body = {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "maxLength": helpdesk_status.MAX_STATUS},
            "external_id": {"type": "string", "maxLength": helpdesk_status.MAX_EXTERNAL_ID},
            "note": {"type": "string", "maxLength": helpdesk_status.MAX_NOTE},
            "resolve": {"type": "boolean", "default": False},
        },
    }
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "inbox API", "version": "1"},
        "servers": [{"url": url_for("api.me", _external=True).rsplit("/me", 1)[0]}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": error},
        },
        "paths": {
            "/me": {"get": _op("The token's user")},
            "/conversations": {
                "get": _op("List conversations you may see: {items, next_cursor}", params=filters)
            },
            "/conversations/{id}": {
                "get": _op(
                    "One conversation with its messages",
                    params=[ID],
                    responses={
                        "200": {"description": "OK"},
                        "404": {"$ref": "#/components/responses/Error"},
                    },
                ),
                "patch": _op(
                    "Change status, priority, team, assignee or tags",
                    params=[ID],
                    body=patch_body,
                    responses={
                        "200": {"description": "The updated conversation"},
                        "400": {"$ref": "#/components/responses/Error"},
                        "404": {"$ref": "#/components/responses/Error"},
                        "409": {"$ref": "#/components/responses/Error"},
                    },
                ),
            },
            "/conversations/next": {
                "post": _op(
                    "Claim the most urgent open unassigned conversation you may see (earliest "
                    "SLA deadline, then priority, then age)",
                    responses={
                        "200": {"description": "The conversation, now assigned to you"},
                        "204": {"description": "Nothing is waiting"},
                    },
                )
            },
            "/conversations/{id}/external-status": {
                "post": _op(
                    "An external helpdesk reports the status of the case it was sent: stored "
                    "with its case id, shown in the thread, audited; resolve=true resolves "
                    "the conversation",
                    params=[ID],
                    body=external_status_body,
                    responses={
                        "200": {"description": "The case as stored"},
                        "400": {"$ref": "#/components/responses/Error"},
                        "404": {"$ref": "#/components/responses/Error"},
                    },
                )
            },
            "/messages": {
                "post": _op(
                    "Ingest one message from a custom channel (admin token; idempotent on "
                    "message_id)",
                    body={"type": "object"},
                    responses={
                        "201": {"description": "Stored"},
                        "200": {"description": "Already stored (duplicate)"},
                        "400": {"$ref": "#/components/responses/Error"},
                        "403": {"$ref": "#/components/responses/Error"},
                        "422": {"$ref": "#/components/responses/Error"},
                    },
                )
            },
            "/reports/sla": {
                "get": _op(
                    "The SLA report (same numbers as /reports/): attainment, distributions, "
                    "breakdowns, volume; supervisors see their teams, admins everything",
                    params=[
                        ("preset", "query", "string", "today|7d (default)|30d|custom"),
                        ("from", "query", "string", "First local day (custom), YYYY-MM-DD"),
                        ("to", "query", "string", "Last local day (custom), inclusive"),
                        ("tz", "query", "string", "IANA time zone of the days (default UTC)"),
                        ("team", "query", "integer", "Team id"),
                        ("assignee", "query", "string", "User id, or 'none'"),
                        ("platform", "query", "string", "x|messenger|instagram|facebook|…"),
                        ("channel", "query", "integer", "Channel account id"),
                        ("kind", "query", "string", "dm|mention|comment"),
                        ("priority", "query", "string", "low|normal|high|urgent"),
                        ("policy", "query", "integer", "SLA policy id"),
                        ("tag", "query", "string", "Tag name"),
                    ],
                    responses={
                        "200": {"description": "The report"},
                        "400": {"$ref": "#/components/responses/Error"},
                        "403": {"$ref": "#/components/responses/Error"},
                    },
                )
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OK"}},
                }
            },
        },
    }
    return jsonify(spec)


@bp.post("/messages")
def ingest_message():
    """Ingest one message from a custom channel; idempotent on the caller's message_id."""
    if not g.api_user.has_role(Role.ADMIN):
        return json_error(403, "forbidden", "Ingesting messages needs an admin's token.")
    try:
        message = parse_api_message(request.get_json(silent=True), now=utcnow())
        stored = apply_inbound_message(message)
    except ParseError as exc:
        return json_error(400, "invalid", str(exc))
    except Unhandled as exc:
        return json_error(422, exc.kind, exc.reason)
    duplicate = stored is None
    if duplicate:
        stored = find_message(find_account("api", message.account_id), message.external_id)
    db.session.commit()
    body = {
        "message_id": stored.external_id,
        "id": stored.id,
        "conversation_id": stored.conversation_id,
        "duplicate": duplicate,
    }
    return jsonify(body), 200 if duplicate else 201


@bp.route("/conversations/<int:conversation_id>/replies", methods=["POST"])
def create_conversation_reply(conversation_id: int):
    conversation = actions.get_conversation_for(g.api_user, conversation_id)
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise InboxError('Send a JSON object with a "text" string.', code="bad_request")
    is_public = payload.get("is_public")
    if is_public is not None and not isinstance(is_public, bool):
        raise InboxError('"is_public" must be true or false.', code="bad_request")
    message = actions.reply(
        conversation,
        text=payload["text"],
        is_public=is_public,
        actor=g.api_user,
        now=utcnow(),
        version=payload.get("version") if isinstance(payload.get("version"), int) else None,
    )
    db.session.commit()
    return jsonify({**message_json(message), "conversation_id": message.conversation_id}), 201


@bp.post("/conversations/<int:conversation_id>/external-status")
def external_status(conversation_id: int):
    """The external helpdesk reports its case's status (optionally resolving the conversation)."""
    conversation = actions.get_conversation_for(g.api_user, conversation_id)
    update = helpdesk_status.parse_update(request.get_json(silent=True))
    case = helpdesk_status.record_status(conversation, update, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify(
        {
            "conversation_id": conversation.id,
            "external_id": case.external_id,
            "status": case.status,
            "note": case.note,
            "conversation_status": str(conversation.status),
            "updated_at": _iso(case.updated_at),
        }
    )


# --- reports --------------------------------------------------------------------------------


@bp.route("/reports/sla")
def sla_report():
    """The SLA report as JSON: the same service call, so the same numbers, as the web page."""
    agents_allowed = current_app.config["INBOX_AGENTS_SEE_TEAM_REPORTS"]
    if not may_see_reports(g.api_user, agents_allowed=agents_allowed):
        return json_error(403, "forbidden", "Reports are for supervisors and admins.")
    query = reports.parse_query(request.args, now=utcnow())
    return jsonify(reports.report_json(reports.sla_report(query, viewer=g.api_user)))
