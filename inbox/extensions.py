"""The Flask extensions, created unbound; `create_app` binds them with init_app.

Imports: third-party only (and models.base for the declarative Base).
"""

from __future__ import annotations

import psycopg._queries
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Typed declarative base shared by every model."""


db = SQLAlchemy(model_class=Base)
# psycopg rewrites a statement's %(name)s placeholders as $n on every execute, and remembers the
# rewrite only for statements up to 4,096 bytes (it expects long ones to be one-off ORM
# batches). Our statements are built once per process from constant parts; get next's, which
# returns the conversation as JSON (≈ 6 KB), was re-parsed on every call: ≈ 13 % of its CPU
# (docs/benchmarks.md). The cache stays bounded (psycopg keeps 128 statements). A private
# setting (psycopg is pinned): an upgrade that renames it stops the app here, and
# test_psycopg_keeps_get_nexts_statement checks that the setting still works.
if not hasattr(psycopg._queries, "MAX_CACHED_STATEMENT_LENGTH"):
    raise RuntimeError("psycopg._queries.MAX_CACHED_STATEMENT_LENGTH is gone: see this comment")
psycopg._queries.MAX_CACHED_STATEMENT_LENGTH = 16_384
# compare_type so autogenerate notices type changes; batch mode so ALTERs work on SQLite.
migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
# Limits are opt-in per route (login); storage is Redis so all web processes share counts.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
