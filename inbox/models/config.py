"""Version tokens of the configuration that each process caches (services.config_versions
reads and replaces them).

Imports: extensions.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import Base


class ConfigVersion(Base):
    """One row per cached configuration (`name`: "sla", "routing") whose token is replaced, in
    the same transaction, by every ORM write to one of that configuration's models: a
    process's cached copy is current exactly while the token it was read under is the stored
    one. Random rather than a counter, so a token seen in a transaction that rolled back, or
    in a database that was dropped and created again (tests), never comes back meaning other
    contents."""

    __tablename__ = "config_versions"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
