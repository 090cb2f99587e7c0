"""Every route of the app, read from its URL map, against who may call it: a route added without
its sign-in or role check fails here. Anonymous callers are sent to sign in (pages) or get 401
(API); agents get 403 on every page of the admin blueprints (admin, sla_admin, routing_admin),
and supervisors reach routing there and nothing else; an admin page naming a missing object is
404. (Checks outside those blueprints, such as the supervisors' agent list and the API's report
scope, have their own tests.)
"""

from __future__ import annotations

import re

import pytest

from inbox.extensions import db
from inbox.models import Role
from inbox.services import routing
from inbox.timeutil import utcnow
from tests.conftest import login

# Reachable signed out, each for its reason: signing in, the health probe, the API's public
# description, and the platforms' webhooks (their signature is the check).
PUBLIC = {
    "auth.login",
    "health.healthz",
    "api.openapi",
    "webhooks.handshake",
    "webhooks.receive",
    "static",
}
# Of the admin area, what supervisors run (permissions.ROUTING_ROLES).
SUPERVISOR_ADMIN_ENDPOINTS = {
    "routing_admin.index",
    "routing_admin.rule",
    "routing_admin.move",
    "routing_admin.delete",
    "routing_admin.team",
}
ADMIN_BLUEPRINTS = ("admin.", "sla_admin.", "routing_admin.")


def _requests(app, fill: str = "1") -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every route, its parameters filled with `fill`."""
    out = []
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        method = "GET" if "GET" in methods else methods[0]
        out.append((rule.endpoint, method, re.sub(r"<(?:\w+:)?\w+>", fill, rule.rule)))
    return sorted(out)


def test_the_url_map_is_read_whole(app):
    endpoints = {endpoint for endpoint, _, _ in _requests(app)}
    # The guards below mean something only if they see the app's routes.
    assert {"inbox.index", "api.claim_next_conversation", "admin.people"} <= endpoints
    assert len(endpoints) > 60


def test_every_route_but_the_public_ones_needs_a_signed_in_caller(app, client):
    unguarded = []
    for endpoint, method, url in _requests(app):
        if endpoint in PUBLIC:
            continue
        res = client.open(url, method=method)
        if endpoint.startswith("api."):
            ok = res.status_code == 401
        else:
            ok = res.status_code == 302 and res.headers["Location"].startswith("/login")
        if not ok:
            unguarded.append((endpoint, method, url, res.status_code))
    assert unguarded == []


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_admin_pages_refuse_roles_below_admin(app, client, make_user, role):
    user = make_user(role)  # and team 1, Social care
    # Rule 1, so the pages supervisors may use answer with the rule, not 404.
    routing.save_rule(
        None,
        name="r",
        active=True,
        stop=False,
        conditions=[],
        actions_=[{"type": "mark_spam"}],
        actor=user,
        now=utcnow(),
    )
    db.session.commit()
    login(client, user)
    wrong = []
    for endpoint, method, url in _requests(app):
        if not endpoint.startswith(ADMIN_BLUEPRINTS):
            continue
        allowed = role is Role.SUPERVISOR and endpoint in SUPERVISOR_ADMIN_ENDPOINTS
        status = client.open(url, method=method).status_code
        served = status not in (401, 403) and status < 500
        if (not served) if allowed else status != 403:
            wrong.append((endpoint, method, url, status))
    assert wrong == []


def test_an_admin_page_naming_a_missing_object_answers_404(app, client, make_user):
    login(client, make_user(Role.ADMIN))
    wrong = []
    for endpoint, method, url in _requests(app, fill="999999"):
        if endpoint.startswith(ADMIN_BLUEPRINTS) and "999999" in url:
            status = client.open(url, method=method).status_code
            if status != 404:
                wrong.append((endpoint, method, url, status))
    assert wrong == []
