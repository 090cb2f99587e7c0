"""The connector contract: the base class, the events every connector returns, shared helpers.

A connector translates one platform's traffic and nothing else: it checks a delivery's
signature over the raw body, answers the platform's GET handshake, and turns a JSON payload into
the plain, frozen dataclasses below. It never touches the database, the request or the clock;
services decide what an event means for conversations, contacts and SLA clocks.

Outbound, `Connector.send` turns an `OutboundReply` into the platform's HTTP call and its answer
into a `SendResult`, or a `TransientSendError` (try again later) or `PermanentSendError` (the
platform refused; its own message is kept). That HTTP call is the only side effect a connector
has, and only jobs make it.
Imports: stdlib only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

Platform = Literal["x", "messenger", "instagram", "facebook", "whatsapp"]
Kind = Literal["dm", "mention", "comment"]
Direction = Literal["inbound", "outbound"]
Status = Literal["sent", "delivered", "read", "failed"]

# Epoch units as each platform documents them; "auto" is for fields whose unit varies in practice.
EpochUnit = Literal["s", "ms", "auto"]

# Any epoch above this many seconds (year 5138) must be milliseconds.
_LARGEST_EPOCH_SECONDS = 10**11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ParseError(ValueError):
    """The payload is not shaped the way the platform documents it (it is kept, not parsed)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Attachment:
    """One media item of a message; `url` when the platform gives one, `media_id` to fetch it."""

    type: str  # image | video | audio | file | sticker | … as the platform names it
    url: str | None = None
    media_id: str | None = None
    caption: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundMessage:
    """A message, mention or comment seen on a channel account, ours (outbound echo) or theirs.

    `account_id` is our channel account's external id; `author_id` is whoever wrote it (our own
    account for an echo). For captioned media the caption is also the `text`, so snippets and
    search see what the customer typed. `needs_fetch` marks payloads that carry only ids (IG
    mentions): the text and author must be fetched from the platform before showing it.
    """

    platform: Platform
    account_id: str
    external_id: str
    kind: Kind
    is_public: bool
    direction: Direction
    sent_at: datetime
    text: str = ""
    author_id: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    author_follower_count: int | None = None
    author_verified: bool | None = None
    recipient_id: str | None = None
    parent_external_id: str | None = None
    root_external_id: str | None = None
    app_id: str | None = None
    needs_fetch: bool = False
    attachments: tuple[Attachment, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def contact_id(self) -> str | None:
        """The other party: the author of an inbound message, the recipient of our echo."""
        return self.author_id if self.direction == "inbound" else self.recipient_id


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageEdit:
    """A message or comment whose text was changed on the platform."""

    platform: Platform
    account_id: str
    external_id: str
    text: str
    at: datetime
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageDeletion:
    """A message or comment removed (unsent, deleted) on the platform."""

    platform: Platform
    account_id: str
    external_id: str
    at: datetime
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryStatus:
    """The platform's report on one of our outbound messages (`external_id`)."""

    platform: Platform
    account_id: str
    external_id: str
    status: Status
    at: datetime
    recipient_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusWatermark:
    """Every outbound message to `contact_id` sent up to `up_to` reached `status`.

    Messenger reports reads (and deliveries without message ids) this way instead of per message.
    """

    platform: Platform
    account_id: str
    contact_id: str
    status: Literal["delivered", "read"]
    up_to: datetime
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class UnsupportedEvent:
    """Anything received that no other event describes, kept so an admin can see it.

    `account_id` is None when the payload names no account we could read (e.g. an unknown object).
    `event_type` is a stable key to group by; `reason` is for people.
    """

    platform: Platform
    account_id: str | None
    event_type: str
    reason: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


Event = (
    InboundMessage
    | MessageEdit
    | MessageDeletion
    | DeliveryStatus
    | StatusWatermark
    | UnsupportedEvent
)


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeReply:
    """The body and content type to answer a platform's verification GET with (status 200)."""

    body: str
    content_type: str


class Connector(ABC):
    """One platform's webhook translator. Stateless: secrets are passed in on every call."""

    name: ClassVar[str]  # the registry key, also the webhook path: /webhooks/<name>

    @abstractmethod
    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        """True only if `headers` carry the platform's signature of exactly `raw_body`."""

    @abstractmethod
    def handshake(self, args: Mapping[str, str], secret: str) -> HandshakeReply | None:
        """The reply to a verification GET with query `args`, or None to refuse it."""

    def parse(self, payload: object) -> list[Event]:
        """Translate a decoded webhook body into events, in payload order.

        Raises ParseError when the payload is not shaped as documented; a missing key or a
        wrong type deep inside is reported the same way, so callers handle one exception.
        """
        if not isinstance(payload, dict):
            raise ParseError(f"{self.name} payload must be a JSON object")
        try:
            return self._parse(payload)
        except ParseError:
            raise
        except (LookupError, TypeError, AttributeError, ValueError, ArithmeticError) as exc:
            raise ParseError(f"{self.name} payload is malformed: {exc!r}") from exc

    @abstractmethod
    def _parse(self, payload: dict[str, Any]) -> list[Event]:
        """Platform-specific translation; may raise KeyError/TypeError/… on malformed input."""

    # How each kind of conversation on this connector's platforms can be answered (for the
    # composer and for validation); empty for a connector that cannot send.
    reply_modes: ClassVar[tuple[ReplyMode, ...]] = ()

    @abstractmethod
    def send(self, reply: OutboundReply, api: ApiEndpoint) -> SendResult:
        """Post `reply` to the platform at `api`; the result carries the id the platform gave it
        (the same id its webhook echo will carry). Raises TransientSendError or
        PermanentSendError; never returns without a platform id."""

    def fetch(
        self, message: InboundMessage, api: ApiEndpoint, *, access_token: str
    ) -> InboundMessage:
        """`message` (parsed with `needs_fetch`) completed from the platform's API: its text,
        author and time. Raises TransientSendError or PermanentSendError like `send`. Only
        connectors whose webhooks carry bare ids (Meta, for Instagram mentions) override it."""
        raise PermanentSendError(
            "not_supported", f"{self.name} messages cannot be fetched from the platform"
        )


def sha256_signature(secret: str, message: bytes, encoding: Literal["hex", "base64"]) -> str:
    """`sha256=<digest>` of HMAC-SHA256(secret, message), the form X and Meta both use."""
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")
    return f"sha256={text}"


def signature_matches(
    raw_body: bytes, received: str | None, secret: str, encoding: Literal["hex", "base64"]
) -> bool:
    """Constant-time check of a received `sha256=…` header value against the raw body."""
    # An empty secret is a misconfiguration; anyone can sign with an empty key, so accept nothing.
    if not secret or not received:
        return False
    expected = sha256_signature(secret, raw_body, encoding)
    # Compare bytes: compare_digest rejects non-ASCII str, and a header is attacker-controlled.
    return hmac.compare_digest(expected.encode(), received.encode("utf-8", "surrogateescape"))


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name, whether `headers` is Flask's or a plain dict."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def id_str(value: object) -> str:
    """A platform id as a string; ids arrive as strings or (Meta app ids, X tweet ids) numbers."""
    # bool is an int subclass, and a JSON true where an id belongs is a malformed payload.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParseError(f"expected an id, got {value!r}")
    return str(value)


def utc_from_epoch(value: object, unit: EpochUnit) -> datetime:
    """A timezone-aware UTC datetime from an epoch number or numeric string."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParseError(f"expected an epoch timestamp, got {value!r}")
    try:
        number = int(value)
    except ValueError as exc:
        raise ParseError(f"expected an epoch timestamp, got {value!r}") from exc
    # Integer arithmetic keeps milliseconds exact, where float division could round them.
    if unit == "ms" or (unit == "auto" and number > _LARGEST_EPOCH_SECONDS):
        return _EPOCH + timedelta(milliseconds=number)
    return _EPOCH + timedelta(seconds=number)


# --- Sending ---------------------------------------------------------------------------------

# How a platform measures a reply's length: Unicode characters, UTF-8 bytes (Instagram DMs), or
# X's weighted count (tweets: most scripts weigh 1, CJK and emoji 2, every URL 23).
LengthUnit = Literal["chars", "utf8_bytes", "x_weighted"]

# X counts code points in these ranges (Latin, Greek, Cyrillic, Hebrew, Arabic, Indic …, and
# some punctuation) as 1 and everything else as 2 (twitter-text configuration v3).
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_X_URL_WEIGHT = 23


def x_weighted_length(text: str) -> int:
    """A tweet's length as X counts it. Emoji sequences joined by ZWJ are counted per code
    point here, which overestimates them a little: a reply is never refused by X for length
    after passing this check."""
    length = 0
    for word in text.split(" "):
        if word.startswith(("http://", "https://")) and len(word) > 8:
            length += _X_URL_WEIGHT
            continue
        for char in word:
            point = ord(char)
            length += 1 if any(lo <= point <= hi for lo, hi in _X_LIGHT_RANGES) else 2
    return length + text.count(" ")


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyMode:
    """One way to answer a kind of conversation on a platform, with the platform's limit."""

    platform: Platform
    kind: Kind
    is_public: bool
    label: str  # what the composer calls it: "Reply tweet", "Direct message" …
    max_length: int
    unit: LengthUnit = "chars"

    def length(self, text: str) -> int:
        if self.unit == "utf8_bytes":
            return len(text.encode("utf-8"))
        if self.unit == "x_weighted":
            return x_weighted_length(text)
        return len(text)


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiEndpoint:
    """Where a platform's API is (tests point it at a local fake) and how long to wait for it."""

    base_url: str  # no trailing slash; for the Graph API it includes the version: …/v23.0
    timeout: float = 20.0


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboundReply:
    """One reply to send. `account_id` is our channel account's platform id (X user id, Page id,
    IG professional account id, WhatsApp phone number id); `recipient_id` the customer's id for
    private messages; `reply_to_external_id` the tweet or comment a public reply answers."""

    platform: Platform
    kind: Kind
    is_public: bool
    account_id: str
    text: str
    # repr=False: a reply may end up in a log line or a traceback; its token never may.
    access_token: str = field(repr=False)
    recipient_id: str | None = None
    reply_to_external_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SendResult:
    """The platform accepted the reply: `external_id` is the id its webhooks will use for it."""

    external_id: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class SendError(Exception):
    """Sending failed; `message` is safe to show an agent (no token, no request headers)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientSendError(SendError):
    """Worth trying again later: network trouble, HTTP 429/5xx, the platform's rate limits.
    `retry_after` is how many seconds the platform asked us to wait, when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """The platform refused the reply and would refuse it again (expired token, closed
    messaging window, duplicate tweet …). `code` is the platform's error code as text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A platform's HTTP answer: status, headers (lower-cased names) and decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]


def path_segment(value: str) -> str:
    """An id from a payload as one segment of an API path: `/`, `?`, `#` and `..` cannot change
    which endpoint the brand's token is sent to (quote's default keeps `/`)."""
    if value in (".", ".."):  # dot segments: a server would resolve them to this or the parent
        return value.replace(".", "%2E")
    return urllib.parse.quote(value, safe="")


def post_json(url: str, body: dict[str, Any], *, token: str, timeout: float) -> HttpAnswer:
    """POST `body` as JSON with a bearer token; any HTTP status comes back as an HttpAnswer.

    The token travels only in the Authorization header, never in the URL, so URLs may be logged.
    Network failures (refused, reset, timeout) raise TransientSendError.
    """
    return _call("POST", url, json.dumps(body).encode(), token=token, timeout=timeout)


def get_json(url: str, *, token: str, timeout: float) -> HttpAnswer:
    """GET `url` with a bearer token; answers and failures as for `post_json`."""
    return _call("GET", url, None, token=token, timeout=timeout)


def _call(method: str, url: str, data: bytes | None, *, token: str, timeout: float) -> HttpAnswer:
    # Base URLs come from configuration; refuse anything but HTTP(S) (no file: or ftp: URLs).
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"platform API URLs must be http(s), got {url.split(':', 1)[0]!r}")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": "inbox/1 (+social care desk)",
    }
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return _answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return _answer(error.code, error.headers, error.read())
    except TimeoutError as exc:
        raise TransientSendError(f"the platform did not answer within {timeout:g}s") from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientSendError(f"could not reach the platform: {reason}") from exc


def _answer(status: int, headers: Any, raw: bytes) -> HttpAnswer:
    try:
        decoded = json.loads(raw) if raw else {}
    except ValueError:
        decoded = {}
    return HttpAnswer(
        status=status,
        headers={key.lower(): value for key, value in headers.items()},
        body=decoded if isinstance(decoded, dict) else {"value": decoded},
    )


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), if any."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def transient_http_error(answer: HttpAnswer, message: str) -> TransientSendError | None:
    """The generic HTTP rule every platform follows: 429 and 5xx are worth retrying."""
    if answer.status == 429 or answer.status >= 500:
        return TransientSendError(
            f"{message} (HTTP {answer.status})", retry_after=retry_after_seconds(answer.headers)
        )
    return None
