"""Writing many rows of one table in one statement (CSV imports, the SLA clocks they open).

On PostgreSQL the rows go in as one array per column, `INSERT … SELECT … FROM unnest(…)` and
`UPDATE … FROM unnest(…)`: the statement's text is the same for any number of rows, so the
driver does not parse a new multi-row VALUES statement per batch (psycopg does that in Python,
and for an import it took longer than the server's work), and nothing is sent a row at a time
(psycopg's executemany sends a statement per row). The arrays go in binary: psycopg's text
form quotes and escapes every element with regular expressions, ≈ 20 times slower for a
column of timestamps or text. Elsewhere (SQLite) an executemany.
Imports: extensions.db.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Dialect,
    Table,
    TableValuedAlias,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    func,
    insert,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeEngine

from inbox.extensions import db


def insert_rows(
    table: Table, rows: Sequence[Mapping[str, Any]], *, return_ids: bool = False
) -> list[int]:
    """Insert `rows` (every one with the same keys) into `table`; with `return_ids`, return
    the new primary keys in the order of `rows`.

    A column the rows leave out gets its Python-side default as Core would (a callable one is
    called once for the statement), else its server default or NULL."""
    if not rows:
        return []
    if not _postgresql():
        if not return_ids:
            db.session.execute(insert(table), rows)
            return []
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(db.session.scalars(statement, rows))
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    for column in table.columns:
        if column.key in columns or column.primary_key or column.default is None:
            continue
        default = column.default
        value = default.arg if default.is_scalar else default.arg(None)
        columns[column.key] = [value] * len(rows)
    statement = _insert_statement(table, tuple(columns), return_ids)
    result = db.session.execute(statement, _arrays(table, columns))
    # The rows are inserted in the query's order, so their serial ids ascend in that order
    # (what SQLAlchemy's own ordered multi-row insert relies on); RETURNING's order is not
    # promised, hence the sort.
    return sorted(result.scalars()) if return_ids else []


def update_rows(table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Set, in each row of `table` whose id is a row's "id", that row's other values (every
    row with the same keys); columns with an `onupdate` default get it as Core gives it."""
    if not rows:
        return
    names = [name for name in rows[0] if name != "id"]
    if not _postgresql():
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({name: bindparam(f"row_{name}") for name in names})
        )
        db.session.execute(
            statement,
            [{"row_id": r["id"], **{f"row_{name}": r[name] for name in names}} for r in rows],
        )
        return
    columns = {name: [row[name] for row in rows] for name in ["id", *names]}
    db.session.execute(_update_statement(table, tuple(columns)), _arrays(table, columns))


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


class _BinaryList(list):
    """An array parameter psycopg sends in binary (the dumper is registered for this type on
    the connection, so no other list changes form)."""


class _BinaryArray(TypeDecorator[list[Any]]):
    """ARRAY of `item_type` whose bound value is a `_BinaryList` of the items as `item_type`
    binds them (ARRAY's own processing would hand psycopg a plain list)."""

    impl = ARRAY(Text)
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return ARRAY(self.item_type)

    def bind_processor(self, dialect: Dialect):
        item = self.item_type.dialect_impl(dialect).bind_processor(dialect)
        if item is None:
            return _BinaryList
        return lambda values: _BinaryList(None if v is None else item(v) for v in values)


# The statements are built once per table and columns, the arrays bound by name at each
# execution: building and hashing a new statement (its cache key) was most of the Python
# time of a small batch's insert.
@functools.cache
def _insert_statement(table: Table, names: tuple[str, ...], return_ids: bool) -> Executable:
    values = _unnest(table, names)
    query = values.select().with_only_columns(*_typed(table, values, names))
    statement = insert(table).from_select(list(names), query.order_by(values.c.position))
    return statement.returning(table.c.id) if return_ids else statement


@functools.cache
def _update_statement(table: Table, names: tuple[str, ...]) -> Executable:
    values = _unnest(table, names)
    typed = dict(zip(names, _typed(table, values, names), strict=True))
    return (
        update(table)
        .where(table.c.id == values.c.id)
        .values({name: typed[name] for name in names if name != "id"})
    )


def _unnest(table: Table, names: tuple[str, ...]) -> TableValuedAlias:
    """unnest() of one array parameter per column (bound as `_array_<name>`), numbered by
    `position`. JSON values travel as text (an array of JSON documents is not a type the
    driver adapts); `_typed` casts them back."""
    arrays = (
        bindparam(
            f"_array_{name}",
            type_=_BinaryArray(
                Text() if isinstance(table.c[name].type, JSON) else table.c[name].type
            ),
        )
        for name in names
    )
    return func.unnest(*arrays).table_valued(*names, with_ordinality="position").render_derived()


def _arrays(table: Table, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The execution's parameters: one array per column, JSON documents as text."""
    # Imported here: on SQLite (the embedded default) psycopg is never loaded.
    from psycopg.types.array import ListBinaryDumper

    adapters = db.session.connection().connection.dbapi_connection.adapters
    adapters.register_dumper(_BinaryList, ListBinaryDumper)
    return {
        f"_array_{name}": [json.dumps(v) for v in values]
        if isinstance(table.c[name].type, JSON)
        else values
        for name, values in columns.items()
    }


def _typed(table: Table, values: TableValuedAlias, names: tuple[str, ...]) -> list[Any]:
    return [
        cast(values.c[name], table.c[name].type)
        if isinstance(table.c[name].type, JSON)
        else values.c[name]
        for name in names
    ]
