"""Every setting of the application: its name, default and how it is parsed from the environment.

Nothing else in the package reads os.environ for settings. `load_config(environ)` is called by
`create_app`, never at import time, so importing this module has no side effects.
Imports: stdlib only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, NamedTuple


class ConfigError(RuntimeError):
    """A setting is missing or malformed; raised at start-up with a message that says which."""


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def env_int_list(environ: Mapping[str, str], name: str, default: list[int]) -> list[int]:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated integers, got {raw!r}") from None
    if not values or any(value < 0 for value in values):
        raise ConfigError(f"{name} needs at least one non-negative integer, got {raw!r}")
    return values


def database_uri(url: str) -> str:
    """Normalise DATABASE_URL: plain postgres URLs are pinned to psycopg 3 explicitly.

    SQLAlchemy 2.0 mapped `postgresql://` to psycopg2 and 2.1 maps it to psycopg 3; naming the
    driver keeps the behaviour the same whichever is installed (and Heroku-style `postgres://`).
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def limits_storage_uri(redis_url: str) -> str:
    """The same Redis as a Flask-Limiter storage URI (it spells unix sockets `redis+unix://`)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


class WebhookSecrets(NamedTuple):
    """The settings one webhook endpoint needs: the secret that signs its deliveries, and the
    one its verification handshake uses."""

    signing: str
    handshake: str


# Per endpoint (/webhooks/<name>): X signs its CRC with the consumer secret; Meta's endpoints
# (WhatsApp's included: one Meta app) echo the challenge for our verify token.
WEBHOOK_SECRETS: Mapping[str, WebhookSecrets] = MappingProxyType(
    {
        "x": WebhookSecrets("INBOX_X_CONSUMER_SECRET", "INBOX_X_CONSUMER_SECRET"),
        "meta": WebhookSecrets("INBOX_META_APP_SECRET", "INBOX_META_VERIFY_TOKEN"),
        "whatsapp": WebhookSecrets("INBOX_META_APP_SECRET", "INBOX_META_VERIFY_TOKEN"),
    }
)


def load_config(environ: Mapping[str, str], instance_path: str) -> dict[str, Any]:
    """Build the settings dict from the environment; `create_app` applies overrides after it."""
    default_db = "sqlite:///" + os.path.join(instance_path, "inbox.db")
    redis_url = environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "SECRET_KEY": environ.get("SECRET_KEY") or None,
        "TESTING": env_bool(environ, "INBOX_TESTING", False),
        "SQLALCHEMY_DATABASE_URI": database_uri(environ.get("DATABASE_URL", default_db)),
        # No ping on every checkout: inbox.db_pool pings a connection that sat idle longer than
        # INBOX_DB_PING_AFTER_IDLE seconds.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False},
        "INBOX_DB_PING_AFTER_IDLE": env_int(environ, "INBOX_DB_PING_AFTER_IDLE", 1),
        # PostgreSQL connections pooled per process (`engine_options`).
        "INBOX_DB_POOL_SIZE": env_int(environ, "INBOX_DB_POOL_SIZE", 16),
        "REDIS_URL": redis_url,
        # Queues are named by purpose so operators can scale them separately.
        "RQ_QUEUES": [
            q for q in environ.get("RQ_QUEUES", "ingest,outbound,default").split(",") if q
        ],
        # Run each job in a forked process (RQ's default) instead of in the worker process.
        "INBOX_WORKER_FORK": env_bool(environ, "INBOX_WORKER_FORK", False),
        # Workers lower their CPU priority by this much (nice): where web and workers share
        # cores, a webhook's answer goes first and processing catches up (0 turns it off).
        "INBOX_WORKER_NICE": env_int(environ, "INBOX_WORKER_NICE", 10),
        # The worker's heartbeat job runs this often; /healthz fails after 3 missed beats.
        "INBOX_HEARTBEAT_SECONDS": env_int(environ, "INBOX_HEARTBEAT_SECONDS", 10),
        # Pending webhook events older than this are re-enqueued (Redis was down, a worker died).
        "INBOX_EVENT_REQUEUE_SECONDS": env_int(environ, "INBOX_EVENT_REQUEUE_SECONDS", 60),
        # A worker processes up to this many pending webhook deliveries in one transaction
        # (PostgreSQL): they share their statements, which is most of a small delivery's cost.
        "INBOX_EVENTS_PER_TRANSACTION": env_int(environ, "INBOX_EVENTS_PER_TRANSACTION", 20),
        # How often the worker's SLA sweep marks warnings and breaches.
        "INBOX_SLA_SWEEP_SECONDS": env_int(environ, "INBOX_SLA_SWEEP_SECONDS", 30),
        # Online agents not seen (no page load, no heartbeat) for this long become away.
        "INBOX_AWAY_AFTER_MINUTES": env_int(environ, "INBOX_AWAY_AFTER_MINUTES", 15),
        # A new conversation from a verified author or one with this many followers starts one
        # priority step higher (services.classify).
        "INBOX_HIGH_REACH_FOLLOWERS": env_int(environ, "INBOX_HIGH_REACH_FOLLOWERS", 10_000),
        # How often the assignment sweep runs: idle agents away, stale items back to the
        # queue, every auto-assigned team's backlog handed out.
        "INBOX_ASSIGNMENT_SWEEP_SECONDS": env_int(environ, "INBOX_ASSIGNMENT_SWEEP_SECONDS", 60),
        # Request bodies above this are refused with 413. Meta documents webhook bodies up to
        # 3 MB, so the default leaves room above that.
        "MAX_CONTENT_LENGTH": env_int(environ, "INBOX_MAX_BODY_BYTES", 4 * 1024 * 1024),
        # A CSV uploaded on the Import page may be larger (it is stored until imported).
        "INBOX_MAX_IMPORT_BYTES": env_int(environ, "INBOX_MAX_IMPORT_BYTES", 64_000_000),
        # Cookies: HttpOnly and SameSite always; Secure unless explicitly serving plain HTTP
        # (the embedded `make run` on localhost turns it off).
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env_bool(environ, "INBOX_SECURE_COOKIES", True),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": env_bool(environ, "INBOX_SECURE_COOKIES", True),
        # "Remember me" for two weeks, not Flask-Login's year: the cookie holds no expiry of its
        # own and stays valid until then (deactivating the user still ends it at once).
        "REMEMBER_COOKIE_DURATION": timedelta(days=env_int(environ, "INBOX_REMEMBER_DAYS", 14)),
        "PERMANENT_SESSION_LIFETIME": env_int(environ, "INBOX_SESSION_HOURS", 12) * 3600,
        "WTF_CSRF_ENABLED": env_bool(environ, "INBOX_CSRF_ENABLED", True),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        # Login throttling, shared by all web processes through Redis.
        "INBOX_LOGIN_RATE_LIMIT": environ.get("INBOX_LOGIN_RATE_LIMIT", "10 per minute"),
        "RATELIMIT_STORAGE_URI": environ.get(
            "RATELIMIT_STORAGE_URI", limits_storage_uri(redis_url)
        ),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Platform secrets (DESIGN §9). Never logged.
        "INBOX_X_CONSUMER_SECRET": environ.get("INBOX_X_CONSUMER_SECRET", ""),
        "INBOX_META_APP_SECRET": environ.get("INBOX_META_APP_SECRET", ""),
        "INBOX_META_VERIFY_TOKEN": environ.get("INBOX_META_VERIFY_TOKEN", ""),
        # A live-update stream (SSE) ends after this long and the browser reconnects, so a web
        # thread is never held forever by one tab.
        "INBOX_SSE_SECONDS": env_int(environ, "INBOX_SSE_SECONDS", 300),
        # Move everything the app holds once built (models, compiled routes, templates' code)
        # out of the garbage collector's reach: a full collection then walks only what requests
        # create, instead of pausing one request in a dozen by ≈ 50–250 ms (the conversation
        # page's slow samples). Off under TESTING, where an app per test is built and dropped.
        "INBOX_GC_FREEZE": env_bool(environ, "INBOX_GC_FREEZE", True),
        # Agents may open the SLA reports, limited to their own teams' conversations.
        "INBOX_AGENTS_SEE_TEAM_REPORTS": env_bool(environ, "INBOX_AGENTS_SEE_TEAM_REPORTS", False),
        # Outgoing mail for scheduled reports; no host: nothing is sent. Never logged.
        "INBOX_SMTP_HOST": environ.get("INBOX_SMTP_HOST", ""),
        "INBOX_SMTP_PORT": env_int(environ, "INBOX_SMTP_PORT", 587),
        "INBOX_SMTP_USER": environ.get("INBOX_SMTP_USER", ""),
        "INBOX_SMTP_PASSWORD": environ.get("INBOX_SMTP_PASSWORD", ""),
        "INBOX_SMTP_FROM": environ.get("INBOX_SMTP_FROM", "inbox@localhost"),
        # STARTTLS when the server offers it (turn off only for a local relay).
        "INBOX_SMTP_STARTTLS": env_bool(environ, "INBOX_SMTP_STARTTLS", True),
        "INBOX_DEMO_CSV": environ.get("INBOX_DEMO_CSV", ""),
        # Encrypts channel access tokens at rest: comma-separated Fernet keys, the first one
        # encrypts and all decrypt (rotate by prepending a new key, then re-save the tokens).
        # Unset: one key derived from SECRET_KEY with HKDF (rotating SECRET_KEY then needs the
        # tokens re-entered, so production should set this). Never logged.
        "INBOX_ENCRYPTION_KEY": environ.get("INBOX_ENCRYPTION_KEY", ""),
        # Platform APIs replies are sent to (tests point them at a local fake platform).
        "INBOX_X_API_BASE": environ.get("INBOX_X_API_BASE", "https://api.x.com").rstrip("/"),
        "INBOX_GRAPH_API_BASE": environ.get(
            "INBOX_GRAPH_API_BASE", "https://graph.facebook.com"
        ).rstrip("/"),
        "INBOX_GRAPH_API_VERSION": environ.get("INBOX_GRAPH_API_VERSION", "v23.0"),
        "INBOX_SEND_TIMEOUT_SECONDS": env_int(environ, "INBOX_SEND_TIMEOUT_SECONDS", 20),
        # Seconds between send attempts after a transient failure (one retry per entry); a
        # platform's own "retry after" is honoured when longer, up to INBOX_SEND_MAX_WAIT_SECONDS.
        "INBOX_SEND_RETRY_INTERVALS": env_int_list(
            environ, "INBOX_SEND_RETRY_INTERVALS", [10, 60, 300, 900, 3600]
        ),
        "INBOX_SEND_MAX_WAIT_SECONDS": env_int(environ, "INBOX_SEND_MAX_WAIT_SECONDS", 3600),
        # Where people reach this inbox: the links in helpdesk cases point here.
        "INBOX_PUBLIC_URL": environ.get("INBOX_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        # Helpdesk case webhooks: the time a receiver has to answer, and the seconds between
        # attempts after a network error, a 429 or a 5xx (one retry per entry).
        "INBOX_HELPDESK_TIMEOUT_SECONDS": env_int(environ, "INBOX_HELPDESK_TIMEOUT_SECONDS", 10),
        "INBOX_HELPDESK_RETRY_INTERVALS": env_int_list(
            environ, "INBOX_HELPDESK_RETRY_INTERVALS", [30, 120, 600, 1800, 7200]
        ),
    }


# .env.example's placeholder: a deployment that copied the file as is would sign sessions with
# a key anyone can read, and so let anyone forge an admin's session cookie.
SAMPLE_SECRET_KEY = "change-me"  # noqa: S105 (the known value we refuse)
# The session and remember-me cookies are signed with SECRET_KEY (and the stored access tokens
# encrypted with a key derived from it): a short one can be guessed offline from one cookie.
# 32 characters is `secrets.token_hex(16)`; `make run` generates 64.
MIN_SECRET_KEY_LENGTH = 32
_HOW_TO_GENERATE_ONE = "Generate one: python -c 'import secrets; print(secrets.token_hex(32))'"


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """SQLAlchemy's engine options for the database the app ends up with (after overrides).
    PostgreSQL: one pooled connection per request thread (README's gunicorn runs 16 per
    process); with fewer, the threads beyond the pool open an overflow connection per request
    and close it after, and PostgreSQL forks a backend for each (docs/benchmarks.md, get
    next). SQLite keeps SQLAlchemy's own pool (an in-memory database's takes no size)."""
    options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        options.setdefault("pool_size", config["INBOX_DB_POOL_SIZE"])
        options.setdefault("pool_use_lifo", True)  # why: inbox.db_pool
    return options


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse to start with settings that would be unsafe or cannot work."""
    if config.get("INBOX_DB_POOL_SIZE", 1) < 1:
        # SQLAlchemy reads 0 as "no limit": never what a smaller number meant.
        raise ConfigError("INBOX_DB_POOL_SIZE must be at least 1.")
    if not config.get("SECRET_KEY"):
        if config.get("TESTING"):
            return
        raise ConfigError(
            "SECRET_KEY is not set. Set it in the environment (see .env.example); "
            "`make run` generates one under instance/."
        )
    if config["SECRET_KEY"] == SAMPLE_SECRET_KEY:
        raise ConfigError("SECRET_KEY is still .env.example's placeholder. " + _HOW_TO_GENERATE_ONE)
    if len(config["SECRET_KEY"]) < MIN_SECRET_KEY_LENGTH and not config.get("TESTING"):
        raise ConfigError(
            f"SECRET_KEY is too short ({len(config['SECRET_KEY'])} characters; at least "
            f"{MIN_SECRET_KEY_LENGTH}). " + _HOW_TO_GENERATE_ONE + ". Stored access tokens and "
            "helpdesk secrets are encrypted with a key derived from SECRET_KEY unless "
            "INBOX_ENCRYPTION_KEY is set: to keep them readable, first set INBOX_ENCRYPTION_KEY "
            "to what `python -m inbox.encryption` prints with the old SECRET_KEY."
        )
