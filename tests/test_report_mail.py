"""Scheduled SLA summaries: subscribing from the reports page, the periodic job sending each
due period once through a real SMTP conversation (a tiny local server records the mail)."""

from __future__ import annotations

import email
import email.message
import smtplib
import socket
import socketserver
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from inbox import jobs
from inbox.extensions import db
from inbox.models import Frequency, ReportSubscription, Role
from inbox.services import report_mail
from tests.conftest import login
from tests.services.test_reports import (  # noqa: F401 (fixtures)
    FR,
    always_on,
    expected_attainment,
    generated,
)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: greeting, EHLO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 test-smtp ready")
        sender, recipients = None, []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            self.server.verbs.append(verb)
            if verb in ("EHLO", "HELO"):
                self.reply("250 test-smtp")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.messages.append((sender, recipients, b"".join(data)))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.messages = []
    server.verbs = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def mail_app(app, smtp_server):
    app.config.update(
        INBOX_SMTP_HOST="127.0.0.1",
        INBOX_SMTP_PORT=smtp_server.server_address[1],
        INBOX_SMTP_FROM="reports@inbox.test",
    )
    return app


def test_supervisor_subscribes_and_the_job_sends_each_period_once(
    mail_app,
    make_user,
    smtp_server,
    generated,  # noqa: F811
):
    supervisor = make_user(Role.SUPERVISOR, team="Billing", email="boss@example.com")
    client = mail_app.test_client()
    login(client, supervisor)
    response = client.post("/reports/subscriptions", data={"frequency": "daily", "tz": "UTC"})
    assert response.status_code == 302
    page = client.get("/reports/")
    assert 'data-subscription="daily"' in page.text
    sub = db.session.scalar(select(ReportSubscription))
    assert sub.frequency is Frequency.DAILY

    # The summary of Tuesday 13 Jan goes out on Wednesday, once, however often the job runs.
    wednesday = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)
    jobs_now = [wednesday]
    original = jobs.utcnow
    jobs.utcnow = lambda: jobs_now[0]
    try:
        assert jobs.send_report_mail() == 1
        assert jobs.send_report_mail() == 0
        assert len(smtp_server.messages) == 1
        jobs_now[0] = datetime(2026, 1, 15, 6, 0, tzinfo=UTC)
        assert jobs.send_report_mail() == 1
    finally:
        jobs.utcnow = original
    sender, recipients, raw = smtp_server.messages[0]
    assert recipients == ["boss@example.com"]
    message = email.message_from_bytes(raw)
    assert message["Subject"] == "[inbox] SLA summary for 2026-01-13 (UTC)"
    body = message.get_payload(decode=True).decode()
    tuesday = [
        s
        for s in generated
        if s.team == "Billing" and s.inbound.date() == datetime(2026, 1, 13).date()
    ]
    want = expected_attainment(tuesday, FR)
    assert f"{want['met']} met, {want['breached']} breached, {want['open']} open" in body


def test_weekly_period_is_last_monday_to_sunday(app, make_user):
    user = make_user(Role.SUPERVISOR)
    sub = ReportSubscription(user_id=user.id, frequency=Frequency.WEEKLY, timezone="Asia/Tokyo")
    # Sunday 18 Jan 23:30 UTC is already Monday 19 Jan in Tokyo: the week of 12–18 Jan is over.
    key, first, last = report_mail.due_period(sub, datetime(2026, 1, 18, 23, 30, tzinfo=UTC))
    assert (key, first.isoformat(), last.isoformat()) == ("2026-W03", "2026-01-12", "2026-01-18")


def test_a_failed_send_is_retried_on_the_next_run(mail_app, make_user, smtp_server):
    user = make_user(Role.SUPERVISOR)
    report_mail.subscribe(
        user, Frequency.DAILY, timezone="UTC", filters={}, actor=user, now=datetime.now(UTC)
    )
    db.session.commit()
    port = smtp_server.server_address[1]
    smtp_server.shutdown()
    smtp_server.server_close()
    with socket.socket() as probe:  # nothing listens there now
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert jobs.send_report_mail() == 0
    db.session.expire_all()
    assert db.session.scalar(select(ReportSubscription.last_period)) is None


def test_the_smtp_password_is_never_sent_over_a_plain_connection(smtp_server):
    """The test relay offers no STARTTLS (as when someone on the path strips it): with a user
    configured the mail is refused before AUTH, so the password never crosses in clear."""
    settings = report_mail.SmtpSettings(
        host="127.0.0.1",
        port=smtp_server.server_address[1],
        user="reports",
        password="relay-password",
        sender="reports@inbox.test",
    )
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@inbox.test", "b@inbox.test", "x"
    with pytest.raises(smtplib.SMTPException, match="plain connection"):
        report_mail.send_mail(settings, message)
    assert "AUTH" not in smtp_server.verbs and "EHLO" in smtp_server.verbs
    assert smtp_server.messages == []
