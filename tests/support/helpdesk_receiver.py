"""A helpdesk's webhook endpoint for tests: a real HTTP server on 127.0.0.1 that checks each
case the way a receiver would (HMAC-SHA256 of the raw body with the shared secret, compared in
constant time with `X-Inbox-Signature`), answers 401 to a bad signature, and otherwise gives the
answers queued with `answer(...)` (200 when none is queued). Every request is recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    @property
    def case(self) -> dict[str, Any]:
        return json.loads(self.body)


class HelpdeskReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self._answers: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/hooks/inbox"

    def start(self) -> HelpdeskReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, body: str = "", *, times: int = 1) -> None:
        with self._lock:
            self._answers.extend([(status, body)] * times)

    def verify(self, raw_body: bytes, signature: str) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), raw_body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())

    def _next_answer(self) -> tuple[int, str]:
        with self._lock:
            return self._answers.pop(0) if self._answers else (200, '{"case": "HD-1"}')

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                valid = receiver.verify(raw, self.headers.get("X-Inbox-Signature", ""))
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers), raw, valid))
                status, body = receiver._next_answer() if valid else (401, "bad signature")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler
