"""Fixtures shared by the service tests: an admin (who writes rules) and an X brand account
with an access token (so auto-replies can be sent)."""

from __future__ import annotations

import pytest

from inbox.extensions import db
from inbox.models import Platform, Role
from inbox.services.channels import set_access_token
from tests import factories


@pytest.fixture
def admin(make_user):
    return make_user(Role.ADMIN)


@pytest.fixture
def account(app):
    acct = factories.channel(Platform.X, "brand-x", "@brand")
    set_access_token(acct, "test-token", actor=None)
    db.session.commit()
    return acct
