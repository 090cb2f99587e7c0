"""Column types and mixins shared by the model modules.

`UTCDateTime` stores timestamps as timezone-aware UTC on PostgreSQL and as naive UTC on SQLite,
and always hands back aware UTC datetimes, so no code ever compares naive with aware times.
`trigram_index` declares the PostgreSQL-only indexes the text search reads, and
`include_object_for` keeps Alembic's comparison of models and database to what the database
in use was given.
Imports: extensions (Base), timeutil.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import DDL, DateTime, Dialect, Enum, Index, TypeDecorator, event
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import SchemaItem

from inbox.extensions import Base
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


# pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the schema's owner may
# create it without being a superuser.
TRIGRAM_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
event.listen(
    Base.metadata, "before_create", DDL(TRIGRAM_EXTENSION).execute_if(dialect="postgresql")
)

# New entries wait in the index's pending list, which every search reads through, until it
# outgrows this limit (kB) and is merged: the default 4 MB made a search tens of ms slower.
TRIGRAM_INDEX_STORAGE = {"gin_pending_list_limit": 512}


def trigram_index(name: str, column: str) -> Index:
    """A pg_trgm GIN index on a text column: PostgreSQL answers `ILIKE '%…%'` from it (the
    trigrams of the pattern), instead of reading every row. PostgreSQL only: SQLite has no
    such index, and keeps scanning."""
    return Index(
        name,
        column,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
        postgresql_with=TRIGRAM_INDEX_STORAGE,
    ).ddl_if(dialect="postgresql")


def include_object_for(dialect: str):
    """Alembic's `include_object` filter for a database of `dialect`: leaves out the models'
    objects declared for other databases only (`ddl_if`), which autogenerate, not reading
    that condition, would otherwise report as missing."""

    def include(
        object_: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        # SQLAlchemy keeps ddl_if's condition there (None when the object has none).
        condition = getattr(object_, "_ddl_if", None)
        return reflected or condition is None or condition.dialect in (None, dialect)

    return include
