"""Users, teams and API tokens: creating them, checking passwords and resolving tokens.

Imports: models, errors, extensions.db, services.audit, timeutil.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import CTE
from werkzeug.security import check_password_hash, generate_password_hash

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import ApiToken, Role, Team, User
from inbox.services.audit import record_audit
from inbox.timeutil import as_utc, utcnow

TOKEN_PREFIX = "ibx_"  # noqa: S105 (a prefix that makes leaked tokens recognisable)
LAST_USED_PRECISION = timedelta(minutes=1)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def get_or_create_team(name: str) -> Team:
    team = db.session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        db.session.add(team)
        db.session.flush()
    return team


def create_user(
    email: str,
    *,
    name: str,
    role: Role,
    password: str,
    teams: list[Team] | None = None,
    actor: User | None = None,
) -> User:
    """Add a user (flushes, does not commit). Raises ValueError if the email is taken."""
    email = normalize_email(email)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValueError(f"a user with email {email} already exists")
    user = User(
        email=email,
        name=name,
        role=role,
        password_hash=generate_password_hash(password),
        teams=list(teams or []),
    )
    db.session.add(user)
    db.session.flush()
    record_audit("user.create", user, actor=actor, after={"email": email, "role": str(role)})
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = generate_password_hash(password)


def new_password() -> str:
    """A password for a new or reset account, shown once to the admin who hands it over."""
    return secrets.token_urlsafe(12)


def update_user(user: User, *, role: Role, teams: list[Team], active: bool, actor: User) -> None:
    """An admin changes someone's role, teams or access (audited). Admins cannot demote or
    deactivate themselves: the workspace would risk having no admin left."""
    if user.id == actor.id and (role is not Role.ADMIN or not active):
        raise InboxError("You cannot remove your own admin role or deactivate yourself.")
    before = _user_state(user)
    user.role, user.teams, user.active = role, list(teams), active
    after = _user_state(user)
    if after != before:
        record_audit("user.update", user, actor=actor, before=before, after=after)


def reset_password(user: User, *, actor: User) -> str:
    """A new password for `user` (audited, never logged); returned to show once."""
    password = new_password()
    set_password(user, password)
    record_audit("user.password_reset", user, actor=actor)
    return password


def _user_state(user: User) -> dict[str, object]:
    return {
        "role": str(user.role),
        "teams": sorted(t.name for t in user.teams),
        "active": user.active,
    }


def authenticate(email: str, password: str) -> User | None:
    """Return the active user with these credentials, or None (same answer for every failure)."""
    user = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        # Hash anyway so response time does not reveal whether the address exists.
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(
    user: User, *, name: str = "api", now: datetime | None = None, actor: User | None = None
) -> str:
    """Create a token for `user` and return it; only its hash is stored, so show it now.
    `actor`: who made it (an admin), when not `user` themselves."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(user=user, name=name, token_hash=_hash_token(token), created_at=now or utcnow())
    )
    db.session.flush()
    record_audit("api_token.create", user, actor=actor or user, after={"name": name})
    return token


def revoke_api_token(token: ApiToken, *, actor: User | None, now: datetime | None = None) -> None:
    token.revoked_at = now or utcnow()
    record_audit("api_token.revoke", token.user, actor=actor, after={"name": token.name})


def _usable_token(token_hash: ColumnElement[str]) -> tuple[ColumnElement[bool], ...]:
    """The token with this hash, if not revoked and its user active (joined to the user)."""
    return (
        ApiToken.token_hash == token_hash,
        ApiToken.revoked_at.is_(None),
        User.active.is_(True),
    )


@functools.cache
def _token_with_user() -> Select[tuple[User, int, datetime | None]]:
    # Built once per process (every request runs it): SQLAlchemy then neither rebuilds the
    # statement nor works out its cache key again. The user is the one entity loaded; of the
    # token only what the check needs (an ORM token as well cost a tenth of a get next).
    return (
        select(User, ApiToken.id, ApiToken.last_used_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(*_usable_token(bindparam("hashed_token")))
    )


def user_for_token(token: str, *, now: datetime | None = None) -> User | None:
    """Resolve a bearer token to its active user (one query, and a second once a minute to
    write the token's last use); revoked tokens and inactive
    users get None. `last_used_at` is kept to the minute (`LAST_USED_PRECISION`): a token in
    constant use is written once a minute, not on every request (the session is then dirty)."""
    params = token_params(token, now=now or utcnow())
    if params is None:
        return None
    row = db.session.execute(_token_with_user(), params).one_or_none()
    if row is None:
        return None
    user, token_id, last_used_at = row
    if last_used_at is None or last_used_at <= params["used_before"]:
        stored = db.session.get(ApiToken, token_id)
        if stored is not None:
            stored.last_used_at = params["now"]
    return user


def token_params(token: str, *, now: datetime) -> dict[str, Any] | None:
    """The parameters of a token check (`user_for_token`, `token_caller`): the token's hash,
    `now` and the instant before which its last use is written again; None for what cannot
    be one of our tokens. (No parameter is named after a column: in an UPDATE, SQLAlchemy sets
    that column from a parameter of its name.)"""
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = as_utc(now)  # a statement run as SQL text (get next) has no type to convert it
    return {
        "hashed_token": _hash_token(token),
        "now": now,
        "used_before": now - LAST_USED_PRECISION,
    }


def token_caller() -> tuple[CTE, CTE]:
    """`user_for_token` as parts of another statement, for a request whose one statement
    checks its own token (get next): the CTE `caller` (the token's active user: id, role,
    name, email; no row for a revoked or unknown token or an inactive user) and the CTE that
    writes the token's `last_used_at`, once a minute as `user_for_token` does. Parameters:
    `token_params`."""
    caller = (
        select(User.id, User.role, User.name, User.email, ApiToken.id.label("token_id"))
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(*_usable_token(bindparam("hashed_token")))
        .cte("caller")
    )
    touched = (
        update(ApiToken)
        .where(
            ApiToken.id == select(caller.c.token_id).scalar_subquery(),
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at <= bindparam("used_before", type_=ApiToken.last_used_at.type),
            ),
        )
        .values(last_used_at=bindparam("now", type_=ApiToken.last_used_at.type))
        .cte("touched")
    )
    return caller, touched
