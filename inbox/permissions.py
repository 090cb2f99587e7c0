"""What each role may do: the view decorator and the predicates views and templates share.

Agents work the inbox; supervisors also read reports and run routing (rules and each team's
auto-assignment); admins also manage the workspace (people, channels, SLA, helpdesk hand-off).
Imports: models, errors, flask_login.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_login import current_user, login_required

from inbox.errors import Forbidden
from inbox.models import Role, User

F = TypeVar("F", bound=Callable[..., Any])


def can_view_reports(user: User) -> bool:
    return user.has_role(Role.SUPERVISOR, Role.ADMIN)


def may_see_reports(user: User, *, agents_allowed: bool) -> bool:
    """Supervisors and admins; agents too (their own teams' numbers) when `agents_allowed`
    (the INBOX_AGENTS_SEE_TEAM_REPORTS setting)."""
    return can_view_reports(user) or (agents_allowed and user.has_role(Role.AGENT))


# Routing rules and team auto-assignment: the queue is a supervisor's to run.
ROUTING_ROLES = (Role.SUPERVISOR, Role.ADMIN)


def can_admin(user: User) -> bool:
    return user.has_role(Role.ADMIN)


def role_required(*roles: Role) -> Callable[[F], F]:
    """Require a signed-in user with one of `roles` (403 otherwise, login redirect if anonymous)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.has_role(*roles):
                raise Forbidden("Your role does not give access to this page.")
            return view(*args, **kwargs)

        return login_required(wrapped)  # type: ignore[return-value]

    return decorator
