"""Routing rules: ordered conditions and actions the worker applies to new conversations and
new inbound messages (services.routing evaluates them), and the version token that tells every
process when its compiled copy of the rules is out of date.

Imports: extensions, models.base.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, String, event, insert, update
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import Base
from inbox.models.base import TimestampMixin


class RoutingRule(TimestampMixin, Base):
    """One rule: when every condition holds, apply the actions; with `stop`, later rules are
    skipped. Conditions and actions are lists of {"type": …, …} (see services.routing)."""

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(default=100)
    name: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(default=True)
    stop: Mapped[bool] = mapped_column(default=False)
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class RoutingRulesVersion(Base):
    """A single row whose token changes, in the same transaction, with every insert, update or
    delete of a rule made through the ORM: a process compares it (one cheap query) with the
    token its compiled rules were built under. A fresh random token rather than a counter, so
    a value seen inside a transaction that rolled back can never come back meaning other
    rules."""

    __tablename__ = "routing_rules_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32))


def new_token() -> str:
    return uuid.uuid4().hex


@event.listens_for(RoutingRulesVersion.__table__, "after_create")
def _seed_version(target: Any, connection: Any, **kw: Any) -> None:
    # create_all (tests, benchmarks) gets the row the migration inserts.
    connection.execute(insert(target).values(id=1, token=new_token()))


@event.listens_for(RoutingRule, "after_insert")
@event.listens_for(RoutingRule, "after_update")
@event.listens_for(RoutingRule, "after_delete")
def _rules_changed(mapper: Any, connection: Any, target: RoutingRule) -> None:
    connection.execute(update(RoutingRulesVersion.__table__).values(token=new_token()))
