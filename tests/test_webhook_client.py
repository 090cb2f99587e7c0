"""webhook_client against a real local HTTP server: every status comes back as an answer (the
caller decides), only no answer at all raises, the answer's body is cut to the excerpt, and
non-http(s) URLs are refused; the SLA escalation webhook, which shares it, raises on a refusal."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select

from inbox import webhook_client
from inbox.connectors.base import sha256_signature
from inbox.extensions import db
from inbox.models import SlaClockEvent, SlaPolicy
from inbox.services import sla
from tests import factories
from tests.conftest import free_port
from tests.support.helpdesk_receiver import HelpdeskReceiver

SECRET = "client-test-secret-1234"


@pytest.fixture
def receiver():
    server = HelpdeskReceiver(SECRET).start()
    yield server
    server.stop()


def signed_post(receiver, body: bytes = b'{"a":1}') -> webhook_client.WebhookAnswer:
    headers = {"X-Inbox-Signature": sha256_signature(SECRET, body, "hex")}
    return webhook_client.post(receiver.url, body, headers=headers, timeout=5)


def test_any_status_is_an_answer_and_the_body_is_an_excerpt(receiver):
    receiver.answer(503, "x" * 5000)
    answer = signed_post(receiver)
    assert (answer.status, answer.ok, answer.transient) == (503, False, True)
    assert answer.body == "x" * webhook_client.BODY_EXCERPT_BYTES
    with pytest.raises(webhook_client.Refused):
        answer.raise_for_status()
    receiver.answer(404, "nope")
    assert not signed_post(receiver).transient
    assert signed_post(receiver).ok  # nothing queued: 200
    assert receiver.received[0].body == b'{"a":1}'  # sent as given, byte for byte


def test_a_redirect_is_an_answer_not_followed():
    """A receiver answering 302 to an internal address: the signed call is not repeated there."""
    hits = []

    class Target(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    class Redirect(Target):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{target.server_port}/internal")
            self.send_header("Content-Length", "0")
            self.end_headers()

    target, redirect = HTTPServer(("127.0.0.1", 0), Target), HTTPServer(("127.0.0.1", 0), Redirect)
    for server in (target, redirect):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = webhook_client.post(
            f"http://127.0.0.1:{redirect.server_port}/hook", b"{}", headers={}, timeout=5
        )
    finally:
        for server in (target, redirect):
            server.shutdown()
            server.server_close()
    assert (answer.status, answer.ok, answer.transient) == (302, False, False)
    assert hits == []


def test_no_answer_raises_unreachable():
    with pytest.raises(webhook_client.Unreachable, match="could not connect"):
        webhook_client.post(f"http://127.0.0.1:{free_port()}/", b"{}", headers={}, timeout=2)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "https://", "/x"])
def test_only_absolute_http_urls_are_called(url):
    with pytest.raises(ValueError):
        webhook_client.post(url, b"{}", headers={}, timeout=2)


def test_the_sla_escalation_webhook_raises_when_refused(app, receiver):
    db.session.add(SlaPolicy(name="Std", first_response_seconds=600, business_hours=False))
    db.session.commit()
    factories.conversation()
    event = db.session.scalar(select(SlaClockEvent).limit(1))
    with pytest.raises(webhook_client.Refused, match="HTTP 401"):
        sla.deliver_webhook(event, receiver.url)  # unsigned: this receiver answers 401
    [request] = receiver.received
    assert request.case["event"] == "sla.start"
