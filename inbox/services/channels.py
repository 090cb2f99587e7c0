"""Connecting brand accounts (channel accounts) and storing their access tokens encrypted.

Imports: models, extensions.db.
"""

from __future__ import annotations

from sqlalchemy import select

from inbox.extensions import db
from inbox.models import ChannelAccount, Platform, User
from inbox.services.audit import record_audit


def add_channel(
    platform: Platform, account_id: str, *, name: str, actor: User | None = None
) -> tuple[ChannelAccount, bool]:
    """Return the account for (platform, account_id), creating it if needed: idempotent.

    The second value says whether it was created. An existing account gets the new name.
    """
    account = db.session.scalar(
        select(ChannelAccount).where(
            ChannelAccount.platform == platform, ChannelAccount.external_account_id == account_id
        )
    )
    if account is not None:
        if account.name != name:
            record_audit(
                "channel.rename",
                account,
                actor=actor,
                before={"name": account.name},
                after={"name": name},
            )
            account.name = name
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
