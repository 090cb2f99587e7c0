"""A fake of the platforms' APIs: a real HTTP server on 127.0.0.1 for tests.

It serves the X API v2 under `/x` and the Graph API under `/graph/<version>`, records every call
(method, path, headers, JSON body), answers with bodies and ids shaped like the platforms' own,
and fails on demand with each platform's real error shapes (`fail(...)` with the builders below).
Sends are POSTs; the one read is Instagram's mentioned comment/media (`add_mention` sets what
it answers).
Point the app at it with `FakePlatforms.config()` (in-process) or `.env()` (the worker).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GRAPH_VERSION = "v23.0"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def token(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None


@dataclass
class Failure:
    """An answer to give instead of success to the next request(s) whose path contains `match`."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    match: str = ""
    times: int = 1
    delay: float = 0.0
    # X-style rate limit: answer with `x-rate-limit-reset` this many seconds after the request.
    reset_in: int | None = None


# --- Error answers exactly as the platforms shape them -------------------------------------------


def x_problem(
    status: int, detail: str, title: str, headers: dict[str, str] | None = None
) -> Failure:
    return Failure(
        status=status,
        body={"title": title, "detail": detail, "type": "about:blank", "status": status},
        headers=headers or {},
    )


def x_rate_limited(reset_in: int) -> Failure:
    headers = {"x-rate-limit-limit": "200", "x-rate-limit-remaining": "0"}
    failure = x_problem(429, "Too Many Requests", "Too Many Requests", headers)
    failure.reset_in = reset_in
    return failure


def x_duplicate_tweet() -> Failure:
    return x_problem(
        403, "You are not allowed to create a Tweet with duplicate content.", "Forbidden"
    )


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    status: int = 400,
    details: str | None = None,
    is_transient: bool = False,
    headers: dict[str, str] | None = None,
) -> Failure:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjKlMnOp",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if is_transient:
        error["is_transient"] = True
    return Failure(status=status, body={"error": error}, headers=headers or {})


def messenger_outside_window() -> Failure:
    return graph_error(
        10,
        "(#10) This message is sent outside of allowed window. Learn more about the new policy "
        "here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
        subcode=2018278,
    )


def graph_invalid_token() -> Failure:
    return graph_error(
        190,
        "Error validating access token: Session has expired on Tuesday, 18-Mar-25 10:00:00 PDT.",
        subcode=463,
        status=401,
    )


def graph_rate_limited(retry_after: int | None = None) -> Failure:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return graph_error(
        613, "(#613) Calls to this api have exceeded the rate limit.", headers=headers
    )


def whatsapp_window_closed() -> Failure:
    return graph_error(
        131047,
        "(#131047) Re-engagement message",
        subcode=2494010,
        details="Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    )


def server_error() -> Failure:
    return Failure(status=500, body={"error": "internal"})


# --- The server ------------------------------------------------------------------------------


class FakePlatforms:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._forced_ids: list[str] = []
        self._mentions: dict[str, dict[str, Any]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # lifecycle
    def start(self) -> FakePlatforms:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def config(self) -> dict[str, Any]:
        """App settings pointing every platform at this server."""
        return {
            "INBOX_X_API_BASE": f"{self.base_url}/x",
            "INBOX_GRAPH_API_BASE": f"{self.base_url}/graph",
            "INBOX_GRAPH_API_VERSION": GRAPH_VERSION,
        }

    def env(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.config().items()}

    # control
    def fail(
        self, failure: Failure, *, times: int = 1, match: str = "", delay: float = 0.0
    ) -> None:
        failure.times, failure.match, failure.delay = times, match, delay
        with self._lock:
            self._failures.append(failure)

    def force_id(self, external_id: str) -> None:
        """Answer the next successful send with this id (e.g. the id a recorded echo carries)."""
        with self._lock:
            self._forced_ids.append(external_id)

    def add_mention(self, object_id: str, **fields: Any) -> None:
        """What `GET /{ig-user-id}?fields=mentioned_comment.comment_id(<object_id>){…}` (or
        `mentioned_media.media_id(…)`) answers: the comment or media's fields."""
        with self._lock:
            self._mentions[object_id] = {"id": object_id, **fields}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._failures.clear()

    def calls_to(self, fragment: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if fragment in c.path]

    # internals
    def _take_failure(self, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.match in path and failure.times > 0:
                    failure.times -= 1
                    return failure
        return None

    def _next_id(self) -> tuple[int, str | None]:
        with self._lock:
            return next(self._ids), (self._forced_ids.pop(0) if self._forced_ids else None)

    def _success(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        n, forced = self._next_id()
        snowflake = forced or str(1900900000000000000 + n)
        if match := re.fullmatch(r"/x/2/dm_conversations/with/([^/]+)/messages", path):
            participant = match.group(1)
            return 201, {
                "data": {
                    "dm_conversation_id": f"{participant}-1522093748110303232",
                    "dm_event_id": snowflake,
                }
            }
        if path == "/x/2/tweets":
            return 201, {
                "data": {
                    "id": snowflake,
                    "text": body.get("text", ""),
                    "edit_history_tweet_ids": [snowflake],
                }
            }
        if match := re.fullmatch(
            rf"/graph/{GRAPH_VERSION}/([^/]+)/(messages|replies|comments)", path
        ):
            node, edge = match.groups()
            if edge == "messages" and body.get("messaging_product") == "whatsapp":
                wamid = base64.b64encode(f"HBgLMTU1NTEyMzQ1NjcVAgARGBI{n:08d}".encode()).decode()
                return 200, {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": forced or f"wamid.{wamid}"}],
                }
            if edge == "messages":
                recipient = body["recipient"]["id"]
                if "messaging_type" in body:  # Messenger
                    mid = "m_" + base64.urlsafe_b64encode(
                        f"fake-mid-{n:06d}".encode()
                    ).decode().rstrip("=")
                else:  # Instagram
                    mid = (
                        base64.urlsafe_b64encode(f"ig_item:1:IGMessageID:{node}:{n:030d}".encode())
                        .decode()
                        .rstrip("=")
                    )
                return 200, {"recipient_id": recipient, "message_id": forced or mid}
            if edge == "replies":  # Instagram comment reply
                return 200, {"id": forced or str(18140000000000000 + n)}
            # Facebook comment reply: ids are "<object>_<comment>"
            return 200, {"id": forced or f"{node.split('_')[0]}_{1029384756200000 + n}"}
        return 404, {
            "error": {
                "message": f"Unknown path components: {path}",
                "type": "OAuthException",
                "code": 2500,
            }
        }

    def _read(self, path: str) -> tuple[int, dict[str, Any]]:
        """The Graph API's answer to a GET: only Instagram's mentioned comment / media."""
        url = urlsplit(path)
        fields = parse_qs(url.query).get("fields", [""])[0]
        match = re.fullmatch(r"(mentioned_comment|mentioned_media)\.\w+\(([^)]+)\)\{.*\}", fields)
        node = re.fullmatch(rf"/graph/{GRAPH_VERSION}/([^/]+)", url.path)
        with self._lock:
            found = self._mentions.get(match.group(2)) if match and node else None
        if found is None:
            return 400, graph_error(
                100, "Unsupported get request. Object does not exist or cannot be loaded."
            ).body
        return 200, {match.group(1): found, "id": node.group(1)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                if not self._record_or_fail("POST", body):
                    status, answer = fake._success(
                        self.path, body if isinstance(body, dict) else {}
                    )
                    self._reply(status, answer, {})

            def do_GET(self) -> None:  # noqa: N802
                if not self._record_or_fail("GET", None):
                    self._reply(*fake._read(self.path), {})

            def _record_or_fail(self, method: str, body: Any) -> bool:
                """Record the call; answer with a queued failure if one matches (True)."""
                call = Call(
                    method=method,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.time(),
                )
                with fake._lock:
                    fake.calls.append(call)
                failure = fake._take_failure(self.path)
                if failure is None:
                    return False
                time.sleep(failure.delay)
                headers = dict(failure.headers)
                if failure.reset_in is not None:
                    reset = int(time.time()) + failure.reset_in
                    headers["x-rate-limit-reset"] = str(reset)
                self._reply(failure.status, failure.body, headers)
                return True

            def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                # The client may have given up already (a timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output quiet

        return Handler


@contextlib.contextmanager
def running_fake() -> Iterator[FakePlatforms]:
    fake = FakePlatforms().start()
    try:
        yield fake
    finally:
        fake.stop()
