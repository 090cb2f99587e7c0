"""What each role may do: the view decorator and the predicates views and templates share.

Agents work the inbox; supervisors also read reports; admins also manage the workspace.
Imports: models, errors, flask_login.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_login import current_user, login_required

from inbox.errors import Forbidden
from inbox.models import Conversation, Role, User

F = TypeVar("F", bound=Callable[..., Any])


def can_view_reports(user: User) -> bool:
    return user.has_role(Role.SUPERVISOR, Role.ADMIN)


def can_admin(user: User) -> bool:
    return user.has_role(Role.ADMIN)


def can_act_on(user: User, conversation: Conversation) -> bool:
    """Whether `user` may work (reply to, change) `conversation`.

    Supervisors and admins may act on every conversation; agents on their own, on those of
    their teams, and on those in the shared queue (no team yet).
    """
    if not user.is_active:
        return False
    if user.has_role(Role.SUPERVISOR, Role.ADMIN):
        return True
    if conversation.assignee_id == user.id or conversation.team_id is None:
        return True
    return conversation.team_id in {team.id for team in user.teams}


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
