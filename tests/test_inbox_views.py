"""The inbox through the Flask test client: every action, the permission matrix (other teams'
conversations are 404), CSRF, collisions (409), keyset pagination, search, filters, bulk,
canned responses and notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inbox.extensions import db
from inbox.models import (
    AuditEvent,
    CannedResponse,
    Conversation,
    Kind,
    Notification,
    Platform,
    Priority,
    Role,
    Status,
)
from inbox.services import notifications
from inbox.services.accounts import get_or_create_team
from inbox.services.canned import create_response
from inbox.timeutil import utcnow
from tests import factories
from tests.conftest import login

JSON = {"Accept": "application/json"}


@pytest.fixture
def agent(make_user, client):
    user = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    login(client, user)
    return user


class OtherUser:
    """A second signed-in browser. Each of its requests runs in its own app context: the test's
    outer app context would otherwise keep the first user's cached current_user (flask.g)."""

    def __init__(self, app, user):
        self.app, self.client = app, app.test_client()
        login(self.client, user)

    def get(self, *args, **kwargs):
        with self.app.app_context():
            return self.client.get(*args, **kwargs)

    def post(self, *args, **kwargs):
        with self.app.app_context():
            return self.client.post(*args, **kwargs)


def post(client, conversation, action, **data):
    return client.post(f"/inbox/c/{conversation.id}/{action}", data=data, headers=JSON)


def fresh(conversation):
    db.session.expire_all()
    return db.session.get(Conversation, conversation.id)


def test_every_action_changes_the_conversation_and_is_audited(client, agent, make_user):
    bob = make_user(Role.AGENT, name="Bob Agent", email="bob@example.com")
    billing = get_or_create_team("Billing support")
    db.session.commit()
    c = factories.conversation(team="Social care")
    steps = [
        ("claim", {}, lambda c: c.assignee_id == agent.id),
        ("assign", {"assignee": bob.id}, lambda c: c.assignee_id == bob.id),
        ("unassign", {}, lambda c: c.assignee_id is None),
        ("priority", {"priority": "high"}, lambda c: c.priority is Priority.HIGH),
        ("tag", {"name": "refund"}, lambda c: [t.name for t in c.tags] == ["refund"]),
        ("untag", {"name": "refund"}, lambda c: c.tags == []),
        ("status", {"status": "pending"}, lambda c: c.status is Status.PENDING),
        ("status", {"status": "snoozed", "snooze": "4h"}, lambda c: c.snoozed_until is not None),
        ("status", {"status": "resolved"}, lambda c: c.status is Status.RESOLVED),
        ("spam", {"spam": "y"}, lambda c: c.is_spam),
        ("spam", {}, lambda c: not c.is_spam),
        ("note", {"text": "checking @bob"}, lambda c: c.messages[-1].text == "checking @bob"),
        ("team", {"team": billing.id}, lambda c: c.team_id == billing.id),
    ]
    for action, data, check in steps:
        response = post(client, c, action, **data)
        assert response.status_code == 200, (action, response.json)
        assert response.json["ok"] and response.json["message"]
        assert check(fresh(c)), action
    # Moved to Billing support: Alice (Social care) can no longer see it.
    assert post(client, c, "route", team=billing.id, note="x").status_code == 404
    actions = {e.action for e in db.session.query(AuditEvent).filter_by(target_id=c.id)}
    assert {
        "conversation.assign",
        "conversation.unassign",
        "conversation.priority",
        "conversation.tag",
        "conversation.untag",
        "conversation.status",
        "conversation.spam",
        "conversation.not_spam",
        "conversation.note",
        "conversation.team",
    } <= actions
    assert db.session.query(Notification).filter_by(user_id=bob.id, kind="mention").count() == 1


def test_status_change_answers_with_an_undo(client, agent):
    c = factories.conversation()
    response = post(client, c, "status", status="resolved", version=c.version)
    assert response.json["undo"] == {"action": "status", "status": "new", "snooze_until": None}
    undo = response.json["undo"]
    assert post(client, c, "status", status=undo["status"]).status_code == 200
    assert fresh(c).status is Status.NEW


def test_route_to_support_via_the_form(client, agent):
    c = factories.conversation(team="Social care")
    support = get_or_create_team("Tech support")
    db.session.commit()
    response = post(client, c, "route", team=support.id, note="Crash on Android 15")
    assert response.status_code == 200
    assert response.json["message"] == "Routed to Tech support"
    assert fresh(c).team_id == support.id


def test_stale_version_gets_409_with_the_current_version(client, agent):
    c = factories.conversation()
    seen = c.version
    factories.message(c, "are you there?")
    db.session.commit()
    response = post(client, c, "note", text="on it", version=seen)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert "changed since you opened it" in response.json["error"]["message"]
    assert response.json["version"] == fresh(c).version
    assert len(fresh(c).messages) == 2  # nothing applied
    again = post(client, c, "note", text="on it", version=response.json["version"])
    assert again.status_code == 200


def test_plain_form_post_redirects_with_a_flash(client, agent):
    c = factories.conversation()
    response = client.post(f"/inbox/c/{c.id}/claim", data={"version": c.version})
    assert response.status_code == 302
    assert response.location.endswith(f"/inbox/c/{c.id}")
    page = client.get(response.location)
    assert b"Assigned to you" in page.data


def test_invalid_action_input_is_a_clear_error(client, agent):
    c = factories.conversation()
    response = post(client, c, "status", status="snoozed")
    assert response.status_code == 400
    assert response.json["error"]["message"] == "Choose how long to snooze."
    assert post(client, c, "note", text="").status_code == 400
    assert post(client, c, "nonsense").status_code == 404


ROLES = [Role.AGENT, Role.SUPERVISOR, Role.ADMIN]


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_other_team_is_404_for_agents_only(client, make_user, role):
    user = make_user(role, team="Social care")
    login(client, user)
    other = factories.conversation(team="Billing support", text="billing secret")
    own = factories.conversation(team="Social care")
    expected = 404 if role is Role.AGENT else 200
    listing = client.get("/inbox/open").data
    assert (b"billing secret" in listing) is (role is not Role.AGENT)
    assert client.get(f"/inbox/c/{other.id}").status_code == expected
    assert client.get(f"/inbox/c/{other.id}", headers={"X-Fragment": "1"}).status_code == expected
    for action, data in [
        ("claim", {}),
        ("note", {"text": "x"}),
        ("status", {"status": "resolved"}),
    ]:
        assert post(client, other, action, **data).status_code == expected
    assert client.post(f"/inbox/c/{other.id}/presence", headers=JSON).status_code == expected
    assert client.post(f"/inbox/c/{other.id}/contact", data={"notes": "x"}).status_code in (
        (404,) if role is Role.AGENT else (302,)
    )
    assert client.get(f"/inbox/c/{own.id}").status_code == 200
    assert client.get("/admin/canned").status_code == (200 if role is Role.ADMIN else 403)


def test_anonymous_users_are_sent_to_sign_in(client):
    c = factories.conversation()
    for url in ("/inbox", f"/inbox/c/{c.id}", "/inbox/counts", "/inbox/stream", "/notifications"):
        assert client.get(url).status_code == 302
    assert client.post(f"/inbox/c/{c.id}/claim").status_code == 302


def test_csrf_is_required_on_action_forms(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        c = factories.conversation()
        client = app.test_client()
        login(client, user)
        assert client.post(f"/inbox/c/{c.id}/claim", headers=JSON).status_code == 400
        page = client.get(f"/inbox/c/{c.id}").data.decode()
        token = page.split('name="csrf-token" content="')[1].split('"')[0]
        ok = client.post(f"/inbox/c/{c.id}/claim", headers={**JSON, "X-CSRFToken": token})
        assert ok.status_code == 200
        form = client.post(f"/inbox/c/{c.id}/claim", data={"csrf_token": token}, headers=JSON)
        assert form.status_code == 200


def test_conversation_page_shows_thread_notes_edits_deletions_attachments_escaped(client, agent):
    c = factories.conversation(text="<script>alert(1)</script>", followers=5200)
    edited = factories.message(
        c,
        "photo",
        attachments=[
            {"type": "image", "url": "https://cdn.example/p.jpg"},
            {"type": "file", "url": "javascript:alert(1)"},
        ],
    )
    edited.edited_at = utcnow()
    gone = factories.message(c, "oops")
    gone.deleted_at = utcnow()
    db.session.commit()
    post(client, c, "note", text="internal <b>thought</b>")
    html = client.get(f"/inbox/c/{c.id}").data.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert 'class="msg msg-note"' in html and "internal &lt;b&gt;thought&lt;/b&gt;" in html
    assert ">edited<" in html
    assert "msg-deleted" in html and "Deleted by the author" in html
    assert 'src="https://cdn.example/p.jpg"' in html
    assert "javascript:alert" not in html
    assert "5,200 followers" in html


def test_a_customer_known_only_by_a_scoped_id_is_named_by_platform_and_id(client, agent):
    # Messenger and Instagram DM webhooks carry a page-scoped id and no name or handle.
    c = factories.conversation(platform=Platform.MESSENGER, team="Social care")
    identity = c.contact.identities[0]
    identity.external_user_id, identity.handle, identity.display_name = "2847561093847562", "", ""
    c.contact.display_name = ""
    db.session.commit()
    queue = client.get("/inbox/open").data.decode()
    page = client.get(f"/inbox/c/{c.id}").data.decode()
    for html in (queue, page):
        assert "Messenger user …7562" in html
    assert "<strong>@</strong>" not in page  # the message's author line


def test_conversation_page_shows_each_customer_messages_language_and_mood(client, agent):
    c = factories.conversation(text="x", team="Social care")
    angry = factories.message(c, "Third outage this week, this is terrible")
    angry.language, angry.sentiment = "en", -0.72
    db.session.commit()
    html = client.get(f"/inbox/c/{c.id}").data.decode()
    assert '<span class="lang" title="Language (detected)">en</span>' in html
    assert 'class="mood mood-negative" title="Sentiment -0.72 (VADER)">negative<' in html


def test_opening_marks_read_for_that_agent_only(client, agent, make_user):
    c = factories.conversation(team="Social care")
    assert b'class="row unread' in client.get("/inbox/open").data
    client.get(f"/inbox/c/{c.id}")
    assert b'class="row unread' not in client.get("/inbox/open").data
    other = OtherUser(client.application, make_user(Role.AGENT))
    assert b'class="row unread' in other.get("/inbox/open").data


def test_contact_notes_and_vip_are_editable_and_previous_conversations_linked(client, agent):
    first = factories.conversation(team="Social care", name="Maria")
    account = factories.channel(Platform.X, "brand-x")
    from inbox.services.ingest import get_or_create_conversation

    second, _ = get_or_create_conversation(
        account, "other-thread", kind=Kind.MENTION, is_public=True, contact=first.contact
    )
    factories.message(second, "again")
    db.session.commit()
    response = client.post(
        f"/inbox/c/{second.id}/contact", data={"notes": "Prefers DMs", "is_vip": "y"}, headers=JSON
    )
    assert response.json["message"] == "Contact saved"
    contact = fresh(first).contact
    assert contact.notes == "Prefers DMs" and contact.is_vip
    html = client.get(f"/inbox/c/{second.id}").data.decode()
    assert f'href="/inbox/c/{first.id}"' in html and "VIP" in html


def test_counts_per_view(client, agent, make_user):
    mine = factories.conversation(team="Social care")
    post(client, mine, "claim")
    factories.conversation(team="Social care")
    spam = factories.conversation(team="Social care")
    post(client, spam, "spam", spam="y")
    pending = factories.conversation(team="Social care")
    post(client, pending, "status", status="pending")
    factories.conversation(team="Billing support")  # invisible to Alice
    counts = client.get("/inbox/counts").json["views"]
    assert counts == {
        "breaching": 0,  # no SLA policy here
        "unassigned": 1,
        "mine": 1,
        "teams": 3,
        "open": 3,
        "pending": 1,
        "snoozed": 0,
        "resolved": 0,
        "spam": 1,
        "all": 3,  # every status, not spam
    }


def rows_ids(html: str) -> list[int]:
    return [int(x.split('"')[0]) for x in html.split('data-conversation="')[1:]]


def test_keyset_pagination_is_stable_while_new_conversations_arrive(client, agent):
    now = utcnow()
    made = [
        factories.conversation(team="Social care", sent_at=now - timedelta(hours=10 - i))
        for i in range(7)
    ]
    from inbox.views import inbox as inbox_view

    inbox_view_page = inbox_view.PAGE_SIZE
    inbox_view.PAGE_SIZE = 3
    try:
        first = client.get("/inbox/open").data.decode()
        assert rows_ids(first) == [c.id for c in made[:3]]  # oldest waiting first
        more = (
            first.split("data-more")[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
        )
        # Newcomers (older and newer than the cursor) arrive between the two requests.
        factories.conversation(team="Social care", sent_at=now - timedelta(hours=20))
        factories.conversation(team="Social care", sent_at=now)
        second = client.get(more).data.decode()
        assert rows_ids(second) == [c.id for c in made[3:6]]
    finally:
        inbox_view.PAGE_SIZE = inbox_view_page


def test_search_over_text_names_and_handles_escapes_wildcards(client, agent):
    a = factories.conversation(team="Social care", text="My router blinks red")
    b = factories.conversation(team="Social care", name="Zoë Quinn", handle="zq_fan")
    c = factories.conversation(team="Social care", text="100% broken")
    factories.conversation(team="Social care", text="nothing related")
    assert rows_ids(client.get("/inbox/open?q=ROUTER").data.decode()) == [a.id]
    assert rows_ids(client.get("/inbox/open?q=zoë").data.decode()) == [b.id]
    assert rows_ids(client.get("/inbox/open?q=@zq_").data.decode()) == [b.id]
    assert rows_ids(client.get("/inbox/open?q=100%25").data.decode()) == [c.id]
    assert b"No conversations match these filters" in client.get("/inbox/open?q=zzz").data


@pytest.mark.parametrize(
    ("view", "title", "detail"),
    [
        ("pending", "Nothing pending.", "waiting on the customer or someone else"),
        ("snoozed", "Nothing snoozed.", "come back on their own at the time you pick"),
        ("spam", "No spam.", "leave the other views"),
        ("resolved", "Nothing resolved yet.", "a new message from the customer reopens one"),
        ("breaching", "Nothing at risk.", "due within the hour"),
    ],
)
def test_each_empty_view_says_what_it_holds_not_that_new_ones_arrive_live(
    client, agent, view, title, detail
):
    factories.conversation(team="Social care")  # an open one: these views stay empty
    empty = client.get(f"/inbox/{view}").get_data(as_text=True).split("data-empty", 1)[1]
    assert f"<strong>{title}</strong>" in empty and detail in empty
    assert "appear here live" not in empty


def test_the_teams_view_of_someone_in_no_team_says_how_to_join_one(client, agent):
    factories.conversation(team="Social care")
    agent.teams.clear()
    db.session.commit()
    page = client.get("/inbox/teams").get_data(as_text=True)
    assert "You are in no team yet." in page


def test_the_notifications_page_highlights_the_bell_not_the_inbox_tab(client, agent):
    page = client.get("/notifications").get_data(as_text=True)
    nav = page.split('class="mainnav"', 1)[1].split("</nav>", 1)[0]
    assert 'class="active">Inbox' not in nav
    assert 'class="bell active"' in page and "aria-current=page" in page
    inbox = client.get("/inbox").get_data(as_text=True)
    assert 'class="active">Inbox' in inbox.split('class="mainnav"', 1)[1]


def test_a_filtered_list_is_titled_filtered_instead_of_showing_the_whole_views_count(client, agent):
    factories.conversation(team="Social care", text="My router blinks red")
    whole = client.get("/inbox/open").data.decode()
    assert 'data-count-title="open"' in whole
    assert "· filtered" not in whole
    searched = client.get("/inbox/open?q=router").data.decode()
    assert 'data-count-title="open"' not in searched
    assert "· filtered" in searched


def test_filters_narrow_the_list(client, agent):
    dm = factories.conversation(team="Social care", platform=Platform.WHATSAPP)
    mention = factories.conversation(team="Social care", kind=Kind.MENTION)
    post(client, mention, "priority", priority="urgent")
    post(client, mention, "tag", name="Outage")
    post(client, dm, "claim")
    ids = lambda q: rows_ids(client.get("/inbox/open?" + q).data.decode())  # noqa: E731
    assert ids("platform=whatsapp") == [dm.id]
    assert ids("kind=mention") == [mention.id]
    assert ids("public=public") == [mention.id]
    assert ids("public=private") == [dm.id]
    assert ids("priority=urgent") == [mention.id]
    assert ids("tag=outage") == [mention.id]
    assert ids(f"assignee={agent.id}") == [dm.id]
    assert ids("assignee=none") == [mention.id]
    assert ids(f"channel={dm.channel_account_id}") == [dm.id]
    assert sorted(ids(f"team={dm.team_id}")) == sorted([dm.id, mention.id])
    assert client.get("/inbox/open?kind=bogus").status_code == 400
    assert client.get("/inbox/nope").status_code == 404


def test_bulk_actions_apply_to_visible_conversations_and_skip_the_rest(client, agent):
    mine = [factories.conversation(team="Social care") for _ in range(3)]
    hidden = factories.conversation(team="Billing support")
    ids = ",".join(str(c.id) for c in [*mine, hidden])
    response = client.post(
        "/inbox/bulk", data={"ids": ids, "action": "tag", "value": "wave-1"}, headers=JSON
    )
    assert response.json["done"] == 3 and response.json["skipped"] == 1
    assert "Tagged: 3 conversations (1 skipped" in response.json["message"]
    assert fresh(hidden).tags == []
    client.post(
        "/inbox/bulk", data={"ids": ids, "action": "status", "value": "resolved"}, headers=JSON
    )
    client.post("/inbox/bulk", data={"ids": ids, "action": "claim"}, headers=JSON)
    client.post("/inbox/bulk", data={"ids": ids, "action": "spam"}, headers=JSON)
    for c in mine:
        c = fresh(c)
        assert c.status is Status.RESOLVED and c.assignee_id == agent.id and c.is_spam
    bad = client.post(
        "/inbox/bulk", data={"ids": ids, "action": "status", "value": "snoozed"}, headers=JSON
    )
    assert bad.status_code == 400


def test_canned_responses_admin_and_insert(client, make_user):
    admin = make_user(Role.ADMIN, name="Ada Admin")
    login(client, admin)
    response = client.post(
        "/admin/canned",
        data={"title": "Greeting", "body": "Hi {{contact_name}}, {{agent_first_name}} here"},
    )
    assert response.status_code == 302
    item = db.session.query(CannedResponse).one()
    client.post(f"/admin/canned/{item.id}", data={"title": "Hello", "body": item.body})
    assert fresh_title(item) == "Hello"
    c = factories.conversation(name="<b>Maria</b>")
    page = client.get(f"/inbox/c/{c.id}").data.decode()
    assert "Hello</option>" in page
    text = client.get(f"/inbox/c/{c.id}/canned/{item.id}").json["text"]
    assert text == "Hi <b>Maria</b>, Ada here"  # plain text; the page inserts it as a value
    client.post(f"/admin/canned/{item.id}/delete")
    assert db.session.query(CannedResponse).count() == 0


def test_the_canned_picker_sits_in_the_reply_composer(client, agent, make_user):
    create_response("Apology", "Sorry.", actor=make_user(Role.ADMIN), now=utcnow())
    page = client.get(f"/inbox/c/{factories.conversation().id}").data.decode()
    reply_form = page[page.index('data-action="reply"') : page.index('data-action="note"')]
    assert "data-canned" in reply_form
    assert "data-canned" not in page[page.index('data-action="note"') :]


def test_with_no_canned_responses_only_an_admin_is_told_where_to_add_them(
    app, client, agent, make_user
):
    c = factories.conversation()
    page = client.get(f"/inbox/c/{c.id}").data.decode()
    assert "data-canned" not in page  # an agent cannot add them: nothing to puzzle over
    page = OtherUser(app, make_user(Role.ADMIN)).get(f"/inbox/c/{c.id}").data.decode()
    assert "data-canned>" not in page
    assert 'href="/admin/canned" data-canned-hint>No canned responses yet' in page


def fresh_title(item):
    db.session.expire_all()
    return db.session.get(CannedResponse, item.id).title


def test_a_note_says_who_was_mentioned_but_not_notified(client, agent, make_user):
    make_user(Role.AGENT, name="Bob Billing", email="bob@example.com", team="Billing support")
    c = factories.conversation(team="Social care")
    answer = post(client, c, "note", text="Checking with billing @bob")
    assert answer.json["message"] == (
        "Note added; not notified: Bob Billing (not in this conversation's team)"
    )


def test_notifications_bell_list_and_mark_read(client, agent, make_user):
    bob = make_user(Role.AGENT, name="Bob Agent", email="bob@example.com")
    c = factories.conversation(team="Social care")
    post(client, c, "note", text="@bob please check")
    bob_client = OtherUser(client.application, bob)
    page = bob_client.get("/inbox").data.decode()
    assert "data-notification-count>1<" in page
    listing = bob_client.get("/notifications", headers={"X-Fragment": "1"}).data.decode()
    assert "Alice Agent mentioned you: @bob please check" in listing
    assert f"{c.contact.label} · Social care" in listing  # which customer, not only an id
    assert f'href="/inbox/c/{c.id}"' in listing
    bob_client.post("/notifications/read", headers=JSON)
    assert bob_client.get("/inbox/counts").json["notifications"] == 0


def test_a_sweeps_many_sla_notices_fold_into_one_entry_and_mentions_stay_single(
    client, agent, make_user
):
    boss = make_user(Role.SUPERVISOR, name="Sue Supervisor", email="sue@example.com")
    sweep, earlier = utcnow(), utcnow() - timedelta(hours=1)
    breached = [factories.conversation(team="Social care") for _ in range(3)]
    lone = factories.conversation(team="Social care")
    # One sweep writes its bulk notices and its one-by-one escalations apart: interleaved.
    for i, c in enumerate(breached):
        notifications.notify(boss, "sla.breach", f"breach #{c.id}", conversation=c, now=sweep)
        notifications.notify(boss, "sla.warn", f"warning {i}", conversation=lone, now=sweep)
    notifications.notify(boss, "sla.breach", "SLA breached alone", conversation=lone, now=earlier)
    notifications.notify(boss, "mention", "Alice mentioned you", conversation=lone, now=sweep)
    notifications.notify(boss, "mention", "Alice again", conversation=lone, now=sweep)
    db.session.commit()
    page = OtherUser(client.application, boss).get("/notifications").data.decode()
    entries = page.split('<li class="notification')[1:]
    # The two mentions (newest ids), the sweep's warnings and breaches, the earlier breach.
    assert len(entries) == 5
    assert ["Alice again" in entries[0], "Alice mentioned you" in entries[1]] == [True, True]
    assert "3 SLA warnings" in entries[2] and "warning 0" in entries[2]
    breaches = entries[3]
    assert "3 SLA breaches" in breaches and 'href="/inbox/breaching"' in breaches
    for c in breached:
        assert f'href="/inbox/c/{c.id}"' in breaches and f"breach #{c.id}" in breaches
    assert "SLA breached alone" in entries[4] and "data-notification-group" not in entries[4]
    assert "data-notification-count>9<" in page  # the bell still counts every unread notice
    # The page's heading is its h1; the bell's popover (the fragment) has its own.
    assert page.count(">Notifications</") == 1 and "<h1>Notifications</h1>" in page
    popover = OtherUser(client.application, boss).get("/notifications", headers={"X-Fragment": "1"})
    assert "<strong>Notifications</strong>" in popover.data.decode()


def test_a_folded_group_counts_every_notice_and_lists_the_newest(client, agent, make_user):
    boss = make_user(Role.SUPERVISOR, name="Sue Supervisor", email="sue@example.com")
    c = factories.conversation(team="Social care")
    sweep = utcnow()
    count = notifications.FOLD_WINDOW + 5  # more than the list reads
    for i in range(count):
        notifications.notify(boss, "sla.breach", f"breach {i}", conversation=c, now=sweep)
    db.session.commit()
    page = OtherUser(client.application, boss).get("/notifications").data.decode()
    group = page.split('<li class="notification')[1]
    assert f"{count} SLA breaches" in group
    assert group.count('href="/inbox/c/') == notifications.GROUP_SHOWN
    assert f"and {count - notifications.GROUP_SHOWN} more" in group
    assert f"breach {count - 1}<" in group  # the newest first


def test_presence_heartbeat_lists_other_viewers_and_typing(client, agent, make_user):
    bob = make_user(Role.AGENT, name="Bob Agent")
    c = factories.conversation(team="Social care")
    bob_client = OtherUser(client.application, bob)
    bob_client.post(f"/inbox/c/{c.id}/presence", data={"typing": "1"})
    viewers = client.post(f"/inbox/c/{c.id}/presence").json["viewers"]
    assert viewers == [{"id": bob.id, "name": "Bob Agent", "initials": "BA", "typing": True}]
    bob_client.post(f"/inbox/c/{c.id}/leave")
    assert client.post(f"/inbox/c/{c.id}/presence").json["viewers"] == []


def test_event_stream_sends_published_events_and_releases_its_database_connection(client, agent):
    from inbox.live import publish

    response = client.get("/inbox/stream", buffered=False)
    assert response.mimetype == "text/event-stream"
    stream = response.response
    assert next(stream).startswith(b"retry:")
    # The request holds no pooled connection while streaming.
    assert db.engine.pool.checkedout() == 0
    publish("notification", user_id=agent.id + 1000)  # someone else's: not sent
    publish("conversation.updated", conversation_id=7, action="tag", actor_id=agent.id)
    chunk = next(stream)
    while chunk.startswith(b":"):  # keep-alives
        chunk = next(stream)
    assert chunk == (
        b'data: {"event": "conversation.updated", "conversation_id": 7, '
        b'"action": "tag", "actor_id": ' + str(agent.id).encode() + b"}\n\n"
    )
    response.close()
