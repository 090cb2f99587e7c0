"""Calling webhook URLs that admins configure (SLA escalation webhooks, helpdesk cases).

`post` sends raw bytes, so a signature computed over exactly those bytes stays valid, and
hands back any HTTP answer as a `WebhookAnswer` instead of raising, so each caller decides what
a status means. Only getting no answer at all (refused, reset, timed out, bad TLS) raises
`Unreachable`. URLs must be http(s): an admin-entered `file:` URL would read local files.
Redirects are not followed: a 3xx is the answer.
Imports: stdlib only.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# Enough of an answer's body for a person to see why it failed; never more is read into memory.
BODY_EXCERPT_BYTES = 2000


class WebhookError(Exception):
    """The webhook call did not succeed; the message is safe to show (no secrets in it)."""


class Unreachable(WebhookError):
    """No HTTP answer at all: worth trying again later."""


class Refused(WebhookError):
    """The receiver answered with a non-2xx status."""

    def __init__(self, answer: WebhookAnswer) -> None:
        super().__init__(f"the webhook answered HTTP {answer.status}")
        self.answer = answer


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    status: int
    body: str  # the first BODY_EXCERPT_BYTES of the answer, decoded leniently

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """429 and 5xx say "not now", so trying again later may succeed."""
        return self.status == 429 or self.status >= 500

    def raise_for_status(self) -> None:
        if not self.ok:
            raise Refused(self)


def check_url(url: str) -> str:
    """`url` stripped, if it is an absolute http(s) URL; ValueError otherwise."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("webhook URLs must be absolute http(s) URLs")
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer (a failure), not an address to call next: followed,
    it would carry the signature headers to wherever it points, inside our network included."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx, answered below like any status


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, *, headers: Mapping[str, str], timeout: float) -> WebhookAnswer:
    """POST `body` to `url` with `headers`; the answer, whatever its status."""
    request = urllib.request.Request(  # noqa: S310 (scheme checked by check_url)
        check_url(url), data=body, method="POST", headers={"User-Agent": "inbox/1", **headers}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return _answer(response.status, response.read(BODY_EXCERPT_BYTES))
    except urllib.error.HTTPError as error:
        with error:
            return _answer(error.code, error.read(BODY_EXCERPT_BYTES))
    except TimeoutError as exc:
        raise Unreachable(f"no answer within {timeout:g}s") from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        raise Unreachable(f"could not connect: {getattr(exc, 'reason', exc)}") from exc


def _answer(status: int, raw: bytes) -> WebhookAnswer:
    return WebhookAnswer(status=status, body=raw.decode("utf-8", errors="replace"))
