"""Column types and mixins shared by the model modules.

`UTCDateTime` stores timestamps as timezone-aware UTC on PostgreSQL and as naive UTC on SQLite,
and always hands back aware UTC datetimes, so no code ever compares naive with aware times.
Imports: extensions (Base), timeutil.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Enum, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

from inbox.timeutil import as_utc, utcnow


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite has no time zone type; store naive UTC so string comparison orders correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def enum_column(enum_cls: type[enum.StrEnum], **kwargs: Any) -> Mapped[Any]:
    """A StrEnum stored as its value in a VARCHAR (no native ENUM type, so adding a value needs
    no type migration) and loaded back as the enum member."""
    length = max(16, *(len(m.value) for m in enum_cls))
    return mapped_column(
        Enum(
            enum_cls,
            native_enum=False,
            create_constraint=False,
            length=length,
            values_callable=lambda members: [m.value for m in members],
            validate_strings=True,
        ),
        **kwargs,
    )


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
