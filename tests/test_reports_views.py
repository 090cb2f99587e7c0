"""The SLA report pages, exports and API: who may see what, the page's charts and links, the
drill-down into the inbox, the streamed CSV, and the API answering the same numbers."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from html import unescape

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from inbox.extensions import db
from inbox.models import BusinessCalendar, ChannelAccount, Direction, Role, SlaPolicy
from inbox.services import report_mail, reports
from inbox.services.accounts import create_api_token
from tests import factories
from tests.conftest import login
from tests.services.test_reports import (  # noqa: F401 (fixtures)
    FR,
    M,
    admin,
    always_on,
    expected_attainment,
    generated,
)

RANGE = {"preset": "custom", "from": "2026-01-12", "to": "2026-01-21"}


def test_agents_get_403_unless_the_setting_allows_their_own_teams(make_app, make_user):
    app = make_app()
    with app.app_context():
        agent = make_user(Role.AGENT)
        client = app.test_client()
        login(client, agent)
        assert client.get("/reports/").status_code == 403
        assert client.get("/reports/conversations.csv").status_code == 403
    allowed = make_app(INBOX_AGENTS_SEE_TEAM_REPORTS=True)
    with allowed.app_context():
        client = allowed.test_client()
        login(client, agent)
        page = client.get("/reports/")
        assert page.status_code == 200
        assert "your teams only" in page.text


def test_supervisor_page_counts_only_their_teams(client, make_user, generated):  # noqa: F811
    supervisor = make_user(Role.SUPERVISOR, team="Billing")
    login(client, supervisor)
    page = client.get("/reports/", query_string=RANGE)
    assert page.status_code == 200
    want = expected_attainment([s for s in generated if s.team == "Billing"], FR)
    card = page.text.split('data-metric="first_response"', 1)[1]
    assert re.search(rf"<strong>{want['met']}</strong> met", card)
    assert re.search(rf"<strong>{want['breached']}</strong> breached", card)


def test_page_has_charts_and_every_drilldown_opens_matching_conversations(
    client,
    admin,  # noqa: F811
    generated,  # noqa: F811
):
    login(client, admin)
    page = client.get("/reports/", query_string=RANGE)
    assert page.status_code == 200
    for chart in ("attainment", "histogram", "line", "heatmap"):
        assert f'data-chart="{chart}"' in page.text
    card = page.text.split('data-metric="first_response"', 1)[1].split("</div>\n    </div>", 1)[0]
    links = re.findall(r'<a href="([^"]+)" data-outcome="(\w+)"[^>]*><strong>(\d+)</strong>', card)
    assert len(links) == 3
    for url, outcome, number in links:
        inbox = client.get(unescape(url))
        assert inbox.status_code == 200
        count = re.search(r"data-drilldown-count>(\d+)<", inbox.text)
        assert count and count.group(1) == number, outcome


def test_row_csv_streams_one_row_per_conversation(client, admin, generated):  # noqa: F811
    login(client, admin)
    response = client.get("/reports/conversations.csv", query_string=RANGE)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == len(generated)
    summary = client.get("/reports/sla.csv", query_string=RANGE)
    lines = list(csv.reader(io.StringIO(summary.get_data(as_text=True))))
    met = next(r for r in lines if r[:5] == ["attainment", "all", "first_response", "", "met"])
    assert int(met[5]) == expected_attainment(generated, FR)["met"]


def test_row_csv_cells_cannot_be_spreadsheet_formulas(client, admin, generated):  # noqa: F811
    account = db.session.scalars(select(ChannelAccount)).first()
    account.name = '=HYPERLINK("http://evil.example","open")'
    db.session.commit()
    login(client, admin)
    response = client.get("/reports/conversations.csv", query_string=RANGE)
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'" + account.name in cells
    assert not [c for c in cells if c.startswith(("=", "+", "@"))]


def test_api_answers_the_same_numbers_as_the_page(client, admin, make_user, generated):  # noqa: F811
    token = create_api_token(admin)
    got = client.get(
        "/api/v1/reports/sla", query_string=RANGE, headers={"Authorization": f"Bearer {token}"}
    )
    assert got.status_code == 200
    want = expected_attainment(generated, FR)
    fr = got.json["attainment"]["first_response"]
    assert (fr["met"], fr["breached"], fr["open"]) == (want["met"], want["breached"], want["open"])
    assert len(got.json["volume"]) == 10
    agent = make_user(Role.AGENT)
    denied = client.get(
        "/api/v1/reports/sla",
        headers={"Authorization": f"Bearer {create_api_token(agent)}"},
    )
    assert denied.status_code == 403 and denied.json["error"]["code"] == "forbidden"
    assert "/reports/sla" in client.get("/api/v1/openapi.json").json["paths"]


def test_bad_report_arguments_are_400_on_the_report_page_saying_why(client, admin):  # noqa: F811
    login(client, admin)
    zone = client.get("/reports/?tz=Mars/Olympus")
    assert zone.status_code == 400
    assert "Unknown time zone &#39;Mars/Olympus&#39;. Showing the default report" in zone.text
    assert 'data-chart="attainment"' in zone.text  # the report itself, with its filters
    backwards = client.get("/reports/?preset=custom&from=2026-02-01&to=2026-01-01")
    assert backwards.status_code == 400 and "The range ends before it starts." in backwards.text


def test_the_report_counts_cycles_and_the_drilldown_says_it_lists_conversations(
    client,
    admin,  # noqa: F811
    always_on,  # noqa: F811
):
    # One conversation, three customer messages each answered in 10 minutes: one first
    # response and two next-response cycles, all met. The report says 2 (cycles), the inbox
    # lists 1 (conversation), and both say which they count.
    t0 = datetime(2026, 1, 13, 9, tzinfo=UTC)
    conv = factories.conversation(sent_at=t0, commit=False)
    for n in range(1, 6):
        direction = Direction.OUTBOUND if n % 2 else Direction.INBOUND
        factories.message(conv, f"message {n}", direction=direction, sent_at=t0 + n * 10 * M)
    db.session.commit()
    login(client, admin)
    page = client.get("/reports/", query_string=RANGE).text
    card = page.split('data-metric="next_response"', 1)[1]
    assert re.search(r"data-unit>2 of 2 next-response cycles met<", card)
    assert "100.0% met (2 of 2 next-response cycles)" in page
    first = page.split('data-metric="first_response"', 1)[1]
    assert re.search(r"data-unit>1 of 1 first responses met<", first)
    met = re.search(r'<a href="([^"]+)" data-outcome="met"', card).group(1)
    inbox = client.get(unescape(met)).text
    banner = unescape(inbox.split("data-drilldown>", 1)[1].split("</p>", 1)[0])
    assert re.search(r"data-drilldown-count>1</strong> conversation with", banner)
    assert "with a next-response cycle met, started from 2026-01-12 00:00 UTC" in banner
    assert "One conversation can have several next-response cycles" in banner


def test_a_metric_without_results_says_so_in_its_unit(client, admin, generated):  # noqa: F811
    login(client, admin)
    page = client.get("/reports/", query_string=RANGE).text
    card = page.split('data-metric="next_response"', 1)[1]
    assert "data-unit>no next-response cycles met or breached<" in card


@pytest.fixture
def weekend_reply(app):
    """Office hours Mon–Fri 09–17 UTC; a customer writes on Saturday 17 Jan 2026 at 10:00 and
    is answered at 10:09: 0s of business time, 9m of calendar time."""
    office = BusinessCalendar(
        name="Office", timezone="UTC", weekly={str(d): [["09:00", "17:00"]] for d in range(5)}
    )
    db.session.add_all(
        [office, SlaPolicy(name="Office", first_response_seconds=3600, calendar=office)]
    )
    saturday = datetime(2026, 1, 17, 10, tzinfo=UTC)
    conv = factories.conversation(sent_at=saturday, commit=False)
    factories.message(conv, "On it", direction=Direction.OUTBOUND, sent_at=saturday + 9 * M)
    db.session.commit()
    return conv


def test_headline_business_times_carry_their_calendar_times_beside_them(
    client,
    admin,  # noqa: F811
    weekend_reply,
):
    login(client, admin)
    card = client.get("/reports/", query_string=RANGE).text.split('data-metric="first_response"')[1]
    assert 'data-times="median">median 0s business · 9m calendar<' in card
    assert 'data-times="p90">p90 0s business · 9m calendar<' in card
    # In calendar hours the card has one figure each: nothing to set beside it.
    card = client.get("/reports/", query_string={**RANGE, "basis": "calendar"}).text
    card = card.split('data-metric="first_response"')[1]
    assert 'data-times="median">median 9m<' in card


def test_the_mailed_summary_sets_calendar_time_beside_business_time(
    app,
    admin,  # noqa: F811
    weekend_reply,
):
    query = reports.parse_query(MultiDict(RANGE), now=datetime(2026, 1, 25, tzinfo=UTC))
    text = report_mail.summary_text(reports.sla_report(query, viewer=admin), admin, "Weekly")
    assert (
        "First response: 100.0% met (1 met, 0 breached, 0 open); median 0s business · 9m calendar"
        in text
    )
