"""Admin › Channels: an admin connects a brand account (deliveries that came before it are
then turned into messages by a real RQ worker), renames and pauses it, stores an access token
that is never shown, and reads the webhook URLs and which secrets are missing; only admins
reach the page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import AuditEvent, ChannelAccount, EventIssue, Message, Platform, Role
from inbox.services import events
from inbox.services.channels import access_token_for
from tests.conftest import WEBHOOK_SETTINGS, login, run_jobs, signed_post

X_ACCOUNT = "1522093748110303232"  # the brand account x_dm_event.json is addressed to


@pytest.fixture
def admin_client(webhook_app, make_user):
    client = webhook_app.test_client()
    login(client, make_user(Role.ADMIN, name="Ada Admin"))
    return client


def deliver(app, fixture: str) -> None:
    assert signed_post(app.test_client(), fixture).status_code == 200
    run_jobs(app)
    db.session.expire_all()


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def x_account() -> ChannelAccount:
    db.session.expire_all()
    return db.session.scalar(
        select(ChannelAccount).where(ChannelAccount.external_account_id == X_ACCOUNT)
    )


def connect(client, **extra):
    data = {"platform": "x", "account_id": X_ACCOUNT, "name": "Acme <script>x</script>", **extra}
    return client.post("/admin/channels", data=data)


def test_connecting_an_account_turns_the_deliveries_that_came_before_into_messages(
    webhook_app, admin_client
):
    deliver(webhook_app, "x_dm_event.json")  # nothing connected yet: kept as an issue
    assert count(Message) == 0 and count(EventIssue) == 1
    unconnected = admin_client.get("/admin/channels").get_data(as_text=True)
    assert f"x <code>{X_ACCOUNT}</code>: 1 delivery" in unconnected  # what to connect

    assert connect(admin_client, access_token="tok-Secret-123").status_code == 302
    page = admin_client.get("/admin/channels").get_data(as_text=True)
    assert "connected as “Acme &lt;script&gt;x&lt;/script&gt;”" in page  # escaped
    assert "<script>x</script>" not in page
    assert "1 delivery arrived while it was not connected or paused" in page
    assert "token stored" in page and "tok-Secret-123" not in page
    assert access_token_for(x_account()) == "tok-Secret-123"
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("channel.%")).order_by(AuditEvent.id)
    ).all()
    assert actions == ["channel.create", "channel.access_token_set"]
    assert "tok-Secret-123" not in str(db.session.scalars(select(AuditEvent.after)).all())

    assert admin_client.post(f"/admin/channels/{x_account().id}/replay").status_code == 302
    run_jobs(webhook_app)
    db.session.expire_all()
    assert count(Message) == 1 and count(EventIssue) == 0
    page = admin_client.get("/admin/channels").get_data(as_text=True)
    assert "arrived while it was not connected" not in page
    assert "Deliveries for accounts not connected" not in page
    assert "queued for processing again: 1." in page


def test_a_long_backlog_is_replayed_a_batch_at_a_time(webhook_app, admin_client):
    for _ in range(3):  # the same delivery three times: three stored events
        deliver(webhook_app, "x_dm_event.json")
    connect(admin_client)
    assert events.replay_waiting(x_account(), actor=None, limit=2) == (2, 1)
    db.session.commit()
    run_jobs(webhook_app)
    db.session.expire_all()
    assert events.waiting_counts() == {("x", X_ACCOUNT): 1}
    assert count(Message) == 1  # the one message, stored once whatever the replays


def test_a_paused_account_keeps_its_deliveries_until_it_is_resumed_and_replayed(
    webhook_app, admin_client
):
    connect(admin_client)
    account_id = x_account().id
    paused = admin_client.post(f"/admin/channels/{account_id}", data={"name": "Acme"})
    assert paused.status_code == 302 and x_account().active is False
    deliver(webhook_app, "x_dm_event.json")
    assert count(Message) == 0
    page = admin_client.get("/admin/channels").get_data(as_text=True)
    assert "paused" in page and "Resume it to replay them." in page
    assert admin_client.post(f"/admin/channels/{account_id}/replay").status_code == 409

    admin_client.post(f"/admin/channels/{account_id}", data={"name": "Acme", "active": "y"})
    admin_client.post(f"/admin/channels/{account_id}/replay")
    run_jobs(webhook_app)
    db.session.expire_all()
    assert count(Message) == 1
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("channel.%")).order_by(AuditEvent.id)
    ).all()
    assert actions == ["channel.create", "channel.rename", "channel.pause", "channel.resume"]


def test_connecting_an_account_again_is_refused_and_points_to_its_row(admin_client):
    connect(admin_client)
    before = count(AuditEvent)
    again = connect(admin_client, name="Acme Care", access_token="tok-other")
    page = again.get_data(as_text=True)
    assert again.status_code == 409
    account = x_account()
    assert "is already connected, as “Acme &lt;script&gt;x&lt;/script&gt;”" in page
    assert "Nothing was changed" in page
    assert f'href="/admin/channels?q={X_ACCOUNT}#channel-{account.id}"' in page
    assert f'id="channel-{account.id}" class=" selected"' in page
    assert 'value="Acme Care"' in page  # the form keeps what was typed
    # Nothing changed: same name, still no token, no twin, nothing audited.
    assert account.name == "Acme <script>x</script>" and account.access_token_encrypted is None
    assert count(ChannelAccount) == 1 and count(AuditEvent) == before


def test_the_channel_list_filters_by_name_handle_or_id_and_by_a_missing_token(admin_client):
    for platform, account_id, name in (
        ("x", "111", "@acme"),
        ("instagram", "222", "@acme_shop"),
        ("whatsapp", "333", "Acme +1 555"),
        ("api", "helpdesk", "Helpdesk bridge"),
    ):
        connect(admin_client, platform=platform, account_id=account_id, name=name)
    whatsapp = db.session.scalar(select(ChannelAccount).filter_by(external_account_id="333"))
    admin_client.post(f"/admin/channels/{whatsapp.id}/token", data={"access_token": "tok"})

    def listed(query: str) -> set[str]:
        page = admin_client.get("/admin/channels" + query).get_data(as_text=True)
        return {row.split('"', 1)[0] for row in page.split('data-channel="')[1:]}

    assert listed("") == {"x:111", "instagram:222", "whatsapp:333", "api:helpdesk"}
    assert listed("?q=%40ACME") == {"x:111", "instagram:222"}  # a handle, in any case
    assert listed("?q=33") == {"whatsapp:333"}  # the platform's id
    # Needs a token: not the one with a token, not the API channel that needs none.
    assert listed("?needs_token=1") == {"x:111", "instagram:222"}
    assert listed("?q=shop&needs_token=1") == {"instagram:222"}
    nothing = admin_client.get("/admin/channels?q=%3Cb%3Enope").get_data(as_text=True)
    assert "No account matches “&lt;b&gt;nope”" in nothing
    assert "0 of 4" in nothing


def test_a_replaced_access_token_is_stored_encrypted_and_never_shown(admin_client):
    connect(admin_client)
    account = x_account()
    assert "no token: replies cannot be sent" in admin_client.get("/admin/channels").text
    url = f"/admin/channels/{account.id}/token"
    assert admin_client.post(url, data={"access_token": " tok-New-456 "}).status_code == 302
    assert access_token_for(x_account()) == "tok-New-456"
    assert x_account().access_token_encrypted and b"tok-New-456" not in bytes(
        x_account().access_token_encrypted
    )
    admin_client.post(url, data={"access_token": "tok-New-456"})
    page = admin_client.get("/admin/channels").get_data(as_text=True)
    assert "already has that access token" in page and "tok-New-456" not in page
    assert admin_client.post(url, data={"access_token": ""}).status_code == 400


def test_an_incomplete_account_is_refused_with_a_message(admin_client):
    refused = admin_client.post("/admin/channels", data={"platform": "x", "name": "Acme"})
    assert refused.status_code == 400
    assert "Choose the platform and give the account" in refused.text
    assert count(ChannelAccount) == 0
    unknown = admin_client.post(
        "/admin/channels", data={"platform": "myspace", "account_id": "1", "name": "A"}
    )
    assert unknown.status_code == 400


def test_the_webhook_setup_shows_each_callback_url_and_which_secrets_are_missing(
    make_app, make_user
):
    partly = {**WEBHOOK_SETTINGS, "INBOX_META_APP_SECRET": "", "INBOX_META_VERIFY_TOKEN": ""}
    app = make_app(**partly)
    with app.app_context():
        client = app.test_client()
        login(client, make_user(Role.ADMIN))
        page = client.get("/admin/channels").get_data(as_text=True)
    assert "http://localhost/webhooks/x" in page and "http://localhost/webhooks/meta" in page
    assert page.count("missing: set <code>INBOX_META_APP_SECRET</code>") == 2  # meta, whatsapp
    assert "missing: set <code>INBOX_META_VERIFY_TOKEN</code>" in page
    assert "missing: set <code>INBOX_X_CONSUMER_SECRET</code>" not in page
    assert WEBHOOK_SETTINGS["INBOX_X_CONSUMER_SECRET"] not in page


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_only_admins_reach_the_channel_pages(client, make_user, role):
    login(client, make_user(role))
    account = ChannelAccount(platform=Platform.X, external_account_id="1", name="Acme")
    db.session.add(account)
    db.session.commit()
    assert client.get("/admin/channels").status_code == 403
    assert client.post("/admin/channels", data={"platform": "x"}).status_code == 403
    for action in ("", "/token", "/replay"):
        assert client.post(f"/admin/channels/{account.id}{action}").status_code == 403
