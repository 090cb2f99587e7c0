"""The version tokens behind the per-process configuration caches (services.config_versions)."""

import threading

from inbox.extensions import db
from inbox.models import RoutingRule, SlaPolicy
from inbox.services import config_versions


def add_policy(name: str = "Standard") -> SlaPolicy:
    policy = SlaPolicy(position=1, name=name, first_response_seconds=3600)
    db.session.add(policy)
    return policy


def test_a_configurations_first_write_creates_its_token_and_each_later_write_replaces_it(app):
    assert config_versions.token("sla") is None
    policy = add_policy()
    db.session.commit()
    first = config_versions.token("sla")
    assert first is not None
    policy.first_response_seconds = 7200
    db.session.commit()
    assert config_versions.token("sla") not in (None, first)


def test_a_write_replaces_only_its_own_configurations_token(app):
    add_policy()
    db.session.add(RoutingRule(name="VIPs", conditions=[], actions=[]))
    db.session.commit()
    routing_token = config_versions.token("routing")
    add_policy("Second")
    db.session.commit()
    assert config_versions.token("routing") == routing_token


def test_a_transaction_knows_it_changed_a_configuration_until_it_ends(app):
    assert not config_versions.changed_here("sla")
    add_policy()
    db.session.flush()
    assert config_versions.changed_here("sla")
    assert not config_versions.changed_here("routing")
    db.session.commit()
    assert not config_versions.changed_here("sla")


def test_two_first_writes_at_once_both_commit(app, make_app):
    """The token row is upserted: a second transaction creating it meanwhile waits for the
    first (PostgreSQL) instead of failing on the primary key."""
    other = make_app()
    errors: list[BaseException] = []
    flushed = threading.Event()

    def second_writer() -> None:
        with other.app_context():
            try:
                flushed.wait(10)
                add_policy("From another process")
                db.session.commit()
            except BaseException as error:  # noqa: BLE001 (reported by the test below)
                errors.append(error)

    thread = threading.Thread(target=second_writer)
    thread.start()
    add_policy()
    db.session.flush()  # this transaction has inserted the token row, not yet committed
    flushed.set()
    thread.join(0.5)  # the other writer is now waiting on that row
    db.session.commit()
    thread.join(10)
    assert errors == []
    assert db.session.query(SlaPolicy).count() == 2
    assert config_versions.token("sla") is not None
