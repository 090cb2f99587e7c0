"""Routing rules: ordered conditions and actions the worker applies to new conversations and
new inbound messages (services.routing evaluates them).

Imports: extensions, models.base.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
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
