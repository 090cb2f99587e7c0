"""WhatsApp Cloud API webhook: customer messages and the delivery statuses of ours.

Payloads are `object: whatsapp_business_account`; each `changes[].value` names our number in
`metadata.phone_number_id` (the channel account) and holds `messages[]` (with the senders'
profile names in `contacts[]`) and/or `statuses[]`. Handshake and signature are the Meta app's.

Replies go out as text messages with `POST /{phone-number-id}/messages`; the answer's
`messages[0].id` (a `wamid.…`) is the id later `statuses[]` webhooks report on. WhatsApp sends no
echo of our own messages, only those statuses.
"""

from __future__ import annotations

from typing import Any, cast, get_args

from inbox.connectors.base import (
    ApiEndpoint,
    Attachment,
    DeliveryStatus,
    Event,
    InboundMessage,
    OutboundReply,
    PermanentSendError,
    ReplyMode,
    SendResult,
    Status,
    UnsupportedEvent,
    id_str,
    path_segment,
    utc_from_epoch,
)
from inbox.connectors.meta import MetaAppConnector, graph_post

# WhatsApp media message types, mapped to the attachment types the other platforms use.
_MEDIA_TYPES = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "file",
    "sticker": "sticker",
}

# The statuses a DeliveryStatus carries; any status WhatsApp adds later is kept as unsupported.
_STATUSES = frozenset(get_args(Status))


class WhatsAppConnector(MetaAppConnector):
    """Translates the WhatsApp Cloud API webhook."""

    name = "whatsapp"
    reply_modes = (
        ReplyMode(
            platform="whatsapp", kind="dm", is_public=False, label="Message", max_length=4096
        ),
    )

    def send(self, reply: OutboundReply, api: ApiEndpoint) -> SendResult:
        if not reply.recipient_id:
            raise PermanentSendError("no_recipient", "This conversation has no WhatsApp number.")
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": reply.recipient_id,
            "type": "text",
            "text": {"preview_url": False, "body": reply.text},
        }
        answer = graph_post(api, f"{path_segment(reply.account_id)}/messages", body, reply)
        messages = answer.body.get("messages") or [{}]
        if "id" not in messages[0]:
            raise PermanentSendError(str(answer.status), "WhatsApp answered without a message id")
        return SendResult(external_id=id_str(messages[0]["id"]), raw=answer.body)

    def _parse(self, payload: dict[str, Any]) -> list[Event]:
        kind = payload["object"]
        entries: list[dict[str, Any]] = payload["entry"]
        if kind != "whatsapp_business_account":
            return [
                UnsupportedEvent(
                    platform="whatsapp",
                    account_id=None,
                    event_type=f"object:{kind}",
                    reason=f"WhatsApp webhook object '{kind}' is not handled",
                    raw=payload,
                )
            ]
        events: list[Event] = []
        for entry in entries:
            for change in entry["changes"]:
                if change["field"] == "messages":
                    events.extend(_messages_value(change["value"]))
                else:
                    # Account and template notices name the business account (WABA), not a number.
                    events.append(
                        UnsupportedEvent(
                            platform="whatsapp",
                            account_id=id_str(entry["id"]),
                            event_type=f"changes:{change['field']}",
                            reason=f"WhatsApp '{change['field']}' changes are not handled",
                            raw=change,
                        )
                    )
        return events


def _messages_value(value: dict[str, Any]) -> list[Event]:
    account_id = id_str(value["metadata"]["phone_number_id"])
    names = {
        id_str(contact["wa_id"]): contact.get("profile", {}).get("name")
        for contact in value.get("contacts", [])
    }
    events: list[Event] = [
        _message(account_id, message, names) for message in value.get("messages", [])
    ]
    events.extend(_status(account_id, status) for status in value.get("statuses", []))
    # Errors about the whole delivery rather than one message (e.g. a rate limit notice).
    events.extend(
        UnsupportedEvent(
            platform="whatsapp",
            account_id=account_id,
            event_type="errors",
            reason=_error_text(error),
            raw=error,
        )
        for error in value.get("errors", [])
    )
    return events


def _message(account_id: str, message: dict[str, Any], names: dict[str, str | None]) -> Event:
    kind = message["type"]
    sender_id = id_str(message["from"])
    attachments: tuple[Attachment, ...] = ()
    if kind == "text":
        text = message["text"]["body"]
    elif kind in _MEDIA_TYPES:
        media = message[kind]
        caption = media.get("caption")
        text = caption or ""
        attachments = (
            Attachment(type=_MEDIA_TYPES[kind], media_id=id_str(media["id"]), caption=caption),
        )
    elif kind == "button":
        # A tap on a quick-reply button of one of our template messages.
        text = message["button"]["text"]
    elif kind == "interactive":
        # A choice from one of our list or reply-button messages: `button_reply` or `list_reply`.
        interactive = message["interactive"]
        text = interactive[interactive["type"]]["title"]
    else:
        # `type: unsupported` names the real type inside, e.g. {"type": "poll_creation"}.
        inner = message.get(kind)
        detail = inner.get("type") if isinstance(inner, dict) else None
        reason = f"WhatsApp '{detail or kind}' message from {sender_id} is not handled"
        errors = message.get("errors", [])
        if errors:
            reason = f"{reason} ({errors[0].get('code')}: {_error_text(errors[0])})"
        return UnsupportedEvent(
            platform="whatsapp",
            account_id=account_id,
            event_type=f"messages:{kind}",
            reason=reason,
            raw=message,
        )
    context = message.get("context", {})
    return InboundMessage(
        platform="whatsapp",
        account_id=account_id,
        external_id=id_str(message["id"]),
        kind="dm",
        is_public=False,
        direction="inbound",
        sent_at=utc_from_epoch(message["timestamp"], "s"),
        text=text,
        author_id=sender_id,
        author_name=names.get(sender_id),
        recipient_id=account_id,
        # A reply quotes the message it answers, often one of ours.
        parent_external_id=None if "id" not in context else id_str(context["id"]),
        attachments=attachments,
        raw=message,
    )


def _status(account_id: str, status: dict[str, Any]) -> Event:
    state = status["status"]
    if state not in _STATUSES:
        return UnsupportedEvent(
            platform="whatsapp",
            account_id=account_id,
            event_type=f"statuses:{state}",
            reason=f"WhatsApp message status '{state}' is not handled",
            raw=status,
        )
    errors = status.get("errors", [])
    recipient_id = status.get("recipient_id")
    return DeliveryStatus(
        platform="whatsapp",
        account_id=account_id,
        external_id=id_str(status["id"]),
        status=cast(Status, state),
        at=utc_from_epoch(status["timestamp"], "s"),
        recipient_id=None if recipient_id is None else id_str(recipient_id),
        error_code=str(errors[0]["code"]) if errors else None,
        error_message=_error_text(errors[0]) if errors else None,
        raw=status,
    )


def _error_text(error: dict[str, Any]) -> str:
    """The most specific wording of a WhatsApp error object."""
    details = error.get("error_data", {}).get("details")
    return str(details or error.get("message") or error.get("title") or f"error {error['code']}")
