"""Fixtures shared by the service tests: an admin (who writes rules), an X brand account
with an access token (so auto-replies can be sent), and an office-hours SLA policy."""

from __future__ import annotations

import pytest

from inbox.extensions import db
from inbox.models import BusinessCalendar, Platform, Role, SlaPolicy
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


@pytest.fixture
def office(app) -> BusinessCalendar:
    return factories.office_calendar()


@pytest.fixture
def default_policy(office) -> SlaPolicy:
    policy = SlaPolicy(
        position=100,
        name="Default",
        first_response_seconds=2 * 3600,
        next_response_seconds=4 * 3600,
        resolution_seconds=8 * 3600,
        calendar=office,
        business_hours=True,
        warn_value=75,
    )
    db.session.add(policy)
    db.session.flush()
    return policy
