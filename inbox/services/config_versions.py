"""Version tokens of the configuration each process caches (SLA policies with their
calendars, routing rules): which models make up which configuration, the flush hook that
replaces a configuration's token in the transaction writing one of its models, and reading
a token. Reading one is a single-row query, made once per transaction: another process's
edit is seen by the first transaction that starts after its commit. Writes that bypass the
ORM (raw SQL) do not replace a token.

Imports: extensions.db, models.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from inbox.extensions import db
from inbox.models.config import ConfigVersion

_WATCHED: dict[str, tuple[type, ...]] = {}
_CHANGED = "inbox.config_changed"  # Session.info: {name: the transaction that wrote it}
_READ = "inbox.config_tokens"  # Session.info: (the transaction, {name: token read in it})


def watch(name: str, *models: type) -> None:
    """Replace `name`'s token whenever an ORM flush inserts, changes or deletes one of
    `models`."""
    _WATCHED[name] = models


def token(name: str) -> str | None:
    """`name`'s token as this transaction first read it; None until its configuration is
    first written. Read once per transaction: a bulk import asks for it per conversation."""
    transaction = db.session().get_transaction()
    read_in, tokens = db.session.info.get(_READ, (None, {}))
    if transaction is None or read_in is not transaction:
        # Every configuration's token in one query: a delivery's processing needs two.
        rows = db.session.execute(select(ConfigVersion.name, ConfigVersion.token))
        tokens = {n: t for n, t in rows}
        db.session.info[_READ] = (db.session().get_transaction(), tokens)
    return tokens.get(name)


def changed_here(name: str) -> bool:
    """Whether the session's current transaction wrote `name`'s configuration: its
    uncommitted state is no one else's, so it must not go into a process-wide cache."""
    writer = db.session.info.get(_CHANGED, {}).get(name)
    return writer is not None and writer is db.session().get_transaction()


def _replace_token(session: Session, name: str) -> None:
    # An upsert, so two first-ever writes at once cannot collide on the missing row.
    table = ConfigVersion.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    new = dialect.insert(table).values(name=name, token=uuid4().hex)
    session.connection().execute(
        new.on_conflict_do_update(index_elements=[table.c.name], set_={"token": new.excluded.token})
    )
    session.info.setdefault(_CHANGED, {})[name] = session.get_transaction()
    session.info.pop(_READ, None)


def _touches(session: Session, models: tuple[type, ...]) -> bool:
    return any(isinstance(o, models) for o in (*session.new, *session.deleted)) or any(
        isinstance(o, models) and session.is_modified(o) for o in session.dirty
    )


# On every session (the app's and those a service opens on its connection).
@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, flush_context: Any, instances: Any) -> None:
    for name, models in _WATCHED.items():
        if _touches(session, models):
            _replace_token(session, name)
