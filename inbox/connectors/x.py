"""X (Twitter) Account Activity API: CRC handshake, base64 signature, DM and tweet events.

The webhook delivers v1.1 objects keyed to our account by `for_user_id`: DMs in
`direct_message_events` (profiles in the `users` map), mentions and replies in
`tweet_create_events`, deletions in `tweet_delete_events`. Anything else is kept as unsupported.

Replies go out through the X API v2 with the account's OAuth 2.0 user token: a DM with
`POST /2/dm_conversations/with/:participant_id/messages` (the answer's `dm_event_id` is the `id`
of the DM event the webhook echoes back) and a public reply with `POST /2/tweets` and
`reply.in_reply_to_tweet_id` (the answer's `data.id` is the echoed tweet's `id_str`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from inbox.connectors.base import (
    ApiEndpoint,
    Attachment,
    Connector,
    Event,
    HandshakeReply,
    HttpAnswer,
    InboundMessage,
    MessageDeletion,
    OutboundReply,
    PermanentSendError,
    ReplyMode,
    SendResult,
    TransientSendError,
    UnsupportedEvent,
    header_value,
    id_str,
    path_segment,
    post_json,
    retry_after_seconds,
    sha256_signature,
    signature_matches,
    transient_http_error,
    utc_from_epoch,
)

SIGNATURE_HEADER = "x-twitter-webhooks-signature"

# X's CRC tokens are short base64 strings; a JSON body (what a webhook signature covers) can
# never match.
_CRC_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{1,128}")

# Top-level keys that give context to the event lists rather than being events themselves.
_CONTEXT_KEYS = frozenset({"for_user_id", "users", "apps", "user_has_blocked", "is_blocked_by"})

# X's media names mapped to the attachment types the other platforms use; X delivers GIFs as video.
_MEDIA_TYPES = {"photo": "image", "animated_gif": "video"}


class XConnector(Connector):
    """Translates the X Account Activity API webhook."""

    name = "x"
    reply_modes = (
        ReplyMode(
            platform="x", kind="dm", is_public=False, label="Direct message", max_length=10000
        ),
        ReplyMode(
            platform="x",
            kind="mention",
            is_public=True,
            label="Reply tweet",
            max_length=280,
            unit="x_weighted",
        ),
    )

    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = header_value(headers, SIGNATURE_HEADER)
        return signature_matches(raw_body, received, secret, "base64")

    def handshake(self, args: Mapping[str, str], secret: str) -> HandshakeReply | None:
        """Answer the CRC: the token signed with the consumer secret proves we hold it. The
        answer is the same HMAC that signs webhook bodies, so anyone could have us sign a
        forged delivery through it: only a token shaped like X's (a short base64 or uuid-like
        string, never a JSON body) is signed."""
        token = args.get("crc_token")
        if not token or not secret or not _CRC_TOKEN.fullmatch(token):
            return None
        response_token = sha256_signature(secret, token.encode(), "base64")
        return HandshakeReply(
            body=json.dumps({"response_token": response_token}), content_type="application/json"
        )

    def _parse(self, payload: dict[str, Any]) -> list[Event]:
        account_id = id_str(payload["for_user_id"])
        users: dict[str, Any] = payload.get("users", {})
        events: list[Event] = []
        for key, value in payload.items():
            if key in _CONTEXT_KEYS:
                continue
            if key == "direct_message_events":
                events.extend(_direct_message(account_id, item, users) for item in value)
            elif key == "tweet_create_events":
                events.extend(_tweet(account_id, item) for item in value)
            elif key == "tweet_delete_events":
                events.extend(_tweet_deletion(account_id, item) for item in value)
            else:
                items = value if isinstance(value, list) else [value]
                events.extend(
                    UnsupportedEvent(
                        platform="x",
                        account_id=account_id,
                        event_type=key,
                        reason=f"X '{key}' events are not handled",
                        raw={key: item},
                    )
                    for item in items
                )
        return events

    def send(self, reply: OutboundReply, api: ApiEndpoint) -> SendResult:
        if not reply.is_public:
            if not reply.recipient_id:
                raise PermanentSendError("no_recipient", "This conversation has no X user to DM.")
            recipient = path_segment(reply.recipient_id)
            url = f"{api.base_url}/2/dm_conversations/with/{recipient}/messages"
            answer = post_json(
                url, {"text": reply.text}, token=reply.access_token, timeout=api.timeout
            )
            _raise_for_error(answer)
            return SendResult(
                external_id=id_str(answer.body["data"]["dm_event_id"]), raw=answer.body
            )
        if not reply.reply_to_external_id:
            raise PermanentSendError(
                "no_parent", "There is no tweet in this conversation to reply to."
            )
        body = {"text": reply.text, "reply": {"in_reply_to_tweet_id": reply.reply_to_external_id}}
        answer = post_json(
            f"{api.base_url}/2/tweets", body, token=reply.access_token, timeout=api.timeout
        )
        _raise_for_error(answer)
        return SendResult(external_id=id_str(answer.body["data"]["id"]), raw=answer.body)


def _raise_for_error(answer: HttpAnswer) -> None:
    """Turn an X API v2 error answer (a problem+json body) into a send error."""
    if 200 <= answer.status < 300:
        if not isinstance(answer.body.get("data"), dict):
            raise PermanentSendError(str(answer.status), "X answered without the created item")
        return
    body = answer.body
    errors = body.get("errors") or [{}]
    message = str(
        body.get("detail") or errors[0].get("message") or body.get("title") or "X refused the reply"
    )
    if answer.status == 429:
        raise TransientSendError(f"X rate limit: {message}", retry_after=_rate_limit_wait(answer))
    transient = transient_http_error(answer, f"X is unavailable: {message}")
    if transient is not None:
        raise transient
    raise PermanentSendError(str(answer.status), message)


def _rate_limit_wait(answer: HttpAnswer) -> float | None:
    """X says when the rate-limit window resets (`x-rate-limit-reset`, epoch seconds)."""
    reset = answer.headers.get("x-rate-limit-reset")
    if reset and reset.isdigit():
        return max(int(reset) - time.time(), 0.0)
    return retry_after_seconds(answer.headers)


def _direct_message(account_id: str, event: dict[str, Any], users: dict[str, Any]) -> Event:
    if event["type"] != "message_create":
        return UnsupportedEvent(
            platform="x",
            account_id=account_id,
            event_type=f"direct_message_events:{event['type']}",
            reason=f"X direct message event type '{event['type']}' is not handled",
            raw=event,
        )
    create = event["message_create"]
    sender_id = id_str(create["sender_id"])
    data = create["message_data"]
    text: str = data.get("text", "")
    attachments: tuple[Attachment, ...] = ()
    media = data.get("attachment", {}).get("media")
    if media is not None:
        attachments = (_media_attachment(media),)
        # X appends the media's t.co link to the text; the attachment already carries the media.
        text = text.removesuffix(media.get("url", "")).rstrip()
    app_id = create.get("source_app_id")
    return InboundMessage(
        platform="x",
        account_id=account_id,
        external_id=id_str(event["id"]),
        kind="dm",
        is_public=False,
        # Our own DMs, sent from any app, come back to the webhook: they are outbound.
        direction="outbound" if sender_id == account_id else "inbound",
        sent_at=utc_from_epoch(event["created_timestamp"], "ms"),
        text=text,
        author_id=sender_id,
        recipient_id=id_str(create["target"]["recipient_id"]),
        app_id=None if app_id is None else id_str(app_id),
        attachments=attachments,
        raw=event,
        **_profile(users.get(sender_id, {})),
    )


def unescape_tweet_text(text: str) -> str:
    """A tweet's text as its author wrote it. X sends tweets with `&`, `<` and `>` as HTML
    entities (`&amp;` `&lt;` `&gt;`, and only those), so agents would read "&amp;" and the
    pages, which escape everything, would show it so. `&amp;` last: "&amp;lt;" is a literal
    "&lt;" the author typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _tweet(account_id: str, tweet: dict[str, Any]) -> Event:
    if "retweeted_status" in tweet:
        return UnsupportedEvent(
            platform="x",
            account_id=account_id,
            event_type="tweet_create_events:retweet",
            reason="retweets carry no new text to answer",
            raw=tweet,
        )
    # A truncated tweet holds its full text, entities and media in `extended_tweet`.
    body = tweet["extended_tweet"] if tweet.get("truncated") else tweet
    text = unescape_tweet_text(body["full_text"] if tweet.get("truncated") else body["text"])
    media = body.get("extended_entities", {}).get("media", [])
    author_id = id_str(tweet["user"]["id_str"])
    reply_to = tweet.get("in_reply_to_status_id_str")
    reply_to_user = tweet.get("in_reply_to_user_id_str")
    return InboundMessage(
        platform="x",
        account_id=account_id,
        external_id=id_str(tweet["id_str"]),
        kind="mention",
        is_public=True,
        direction="outbound" if author_id == account_id else "inbound",
        sent_at=utc_from_epoch(tweet["timestamp_ms"], "ms"),
        text=text,
        author_id=author_id,
        recipient_id=None if reply_to_user is None else id_str(reply_to_user),
        parent_external_id=None if reply_to is None else id_str(reply_to),
        attachments=tuple(_media_attachment(item) for item in media),
        raw=tweet,
        **_profile(tweet["user"]),
    )


def _tweet_deletion(account_id: str, event: dict[str, Any]) -> MessageDeletion:
    return MessageDeletion(
        platform="x",
        account_id=account_id,
        external_id=id_str(event["status"]["id"]),
        at=utc_from_epoch(event["timestamp_ms"], "ms"),
        raw=event,
    )


def _media_attachment(media: dict[str, Any]) -> Attachment:
    """A v1.1 media entity (DM attachment or tweet media) as an Attachment."""
    return Attachment(
        type=_MEDIA_TYPES.get(media["type"], media["type"]),
        # For videos and GIFs this is the poster image; the video itself needs the media id.
        url=media.get("media_url_https"),
        media_id=id_str(media["id_str"]),
    )


def _profile(user: dict[str, Any]) -> dict[str, Any]:
    """The author fields of an InboundMessage from a v1.1 user object (from `users` or a tweet)."""
    return {
        "author_handle": user.get("screen_name"),
        "author_name": user.get("name"),
        "author_follower_count": user.get("followers_count"),
        "author_verified": user.get("verified"),
    }
