"""Connecting brand accounts (channel accounts) and storing their access tokens encrypted.

A token is encrypted with `inbox.encryption` before it reaches the session and decrypted only
when a reply is sent; it never goes into the audit log, a log line or an exception message.
`api_endpoint` says where each platform's API is, for replies and for fetching what a webhook
only names by id.
Imports: models, extensions.db, encryption, connectors (ApiEndpoint), services.audit,
flask.current_app (settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from inbox import encryption
from inbox.connectors import ApiEndpoint
from inbox.extensions import db
from inbox.models import ChannelAccount, Platform, User
from inbox.services.audit import record_audit

# The kind of `EventIssue` a delivery part gets when its account is not connected (or paused).
UNKNOWN_ACCOUNT = "unknown_account"


def add_channel(
    platform: Platform, account_id: str, *, name: str, actor: User | None = None
) -> tuple[ChannelAccount, bool]:
    """Return the account for (platform, account_id), creating it if needed: idempotent.

    The second value says whether it was created. An existing account gets the new name (the
    CLI and the demo rely on that; the admin page refuses an existing one instead).
    """
    account = find_channel(platform, account_id)
    if account is not None:
        update_channel(account, name=name, active=account.active, actor=actor)
        return account, False
    account = ChannelAccount(platform=platform, external_account_id=account_id, name=name)
    db.session.add(account)
    db.session.flush()
    record_audit(
        "channel.create",
        account,
        actor=actor,
        after={"platform": str(platform), "account_id": account_id, "name": name},
    )
    return account, True


def find_channel(platform: Platform, account_id: str) -> ChannelAccount | None:
    """The connected account with this platform id, if any."""
    return db.session.scalar(
        select(ChannelAccount).where(
            ChannelAccount.platform == platform, ChannelAccount.external_account_id == account_id
        )
    )


def needs_token(account: ChannelAccount) -> bool:
    """Replies from it cannot be sent until an access token is stored (an API channel needs
    none, as the channels page says)."""
    return account.platform is not Platform.API and not account.access_token_encrypted


def account_matches(account: ChannelAccount, *, text: str, token_missing: bool) -> bool:
    """The admin list's filter: `text` in the name (a handle such as @acme) or the platform's
    id, in any case; `token_missing` keeps only accounts that need a token. Applied in Python:
    the page lists every account anyway (a workspace has tens, not thousands)."""
    if token_missing and not needs_token(account):
        return False
    folded = text.casefold()
    return folded in account.name.casefold() or folded in account.external_account_id.casefold()


def update_channel(account: ChannelAccount, *, name: str, active: bool, actor: User | None) -> None:
    """Rename the account and pause or resume it (a paused account's deliveries are kept, each
    listed as an unknown account, and not turned into messages); each change is audited."""
    if account.name != name:
        record_audit(
            "channel.rename",
            account,
            actor=actor,
            before={"name": account.name},
            after={"name": name},
        )
        account.name = name
    if account.active != active:
        record_audit("channel.resume" if active else "channel.pause", account, actor=actor)
        account.active = active


def set_access_token(
    account: ChannelAccount, token: str, *, actor: User | None, now: datetime | None = None
) -> bool:
    """Store `token` encrypted on `account`; return False (and change nothing) if it is the
    token already stored, so re-running `add-channel --access-token` is idempotent."""
    token = token.strip()
    if not token:
        raise ValueError("the access token is empty")
    try:
        if access_token_for(account) == token:
            return False
    except encryption.DecryptionError:
        pass  # unreadable with today's keys (rotated out): replacing it is the fix
    replaced = account.access_token_encrypted is not None
    account.access_token_encrypted = encryption.encrypt(current_app.config, token)
    db.session.flush()
    # The audit row says that the token changed, never what it is.
    record_audit(
        "channel.access_token_set",
        account,
        actor=actor,
        after={"replaced": replaced},
        now=now,
    )
    return True


def access_token_for(account: ChannelAccount) -> str | None:
    """The account's decrypted access token, or None if none is stored.

    Raises encryption.DecryptionError when the configured keys cannot read it.
    """
    if account.access_token_encrypted is None:
        return None
    return encryption.decrypt(current_app.config, account.access_token_encrypted)


def api_endpoint(config: Mapping[str, Any], platform: Platform) -> ApiEndpoint:
    """Where `platform`'s API is, from the settings (tests point them at a local fake)."""
    timeout = float(config["INBOX_SEND_TIMEOUT_SECONDS"])
    if platform is Platform.X:
        return ApiEndpoint(base_url=config["INBOX_X_API_BASE"], timeout=timeout)
    base = f"{config['INBOX_GRAPH_API_BASE']}/{config['INBOX_GRAPH_API_VERSION']}"
    return ApiEndpoint(base_url=base, timeout=timeout)
