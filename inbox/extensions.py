"""The Flask extensions, created unbound; `create_app` binds them with init_app.

Imports: third-party only (and models.base for the declarative Base).
"""

from __future__ import annotations

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
# compare_type so autogenerate notices type changes; batch mode so ALTERs work on SQLite.
migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
# Limits are opt-in per route (login); storage is Redis so all web processes share counts.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
