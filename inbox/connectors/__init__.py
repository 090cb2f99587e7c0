"""Platform connectors: one module per platform, one base class, one registry.

Each connector verifies a webhook delivery's signature over the raw body, answers the platform's
verification GET, and parses a payload into the plain dataclasses of `inbox.connectors.base`.
Connectors only translate: no database, no request, no clock. The registry maps the webhook name
(`/webhooks/<name>`) to its connector, and each platform to the connector that sends its
replies. `REPLY_MODES` says, as data, how each kind of conversation can be answered on each
platform (public or private, and the platform's length limit) for the composer and validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from inbox.connectors.base import (
    ApiEndpoint,
    Attachment,
    Connector,
    DeliveryStatus,
    Event,
    HandshakeReply,
    InboundMessage,
    Kind,
    MessageDeletion,
    MessageEdit,
    OutboundReply,
    ParseError,
    PermanentSendError,
    Platform,
    ReplyMode,
    SendError,
    SendResult,
    StatusWatermark,
    TransientSendError,
    UnsupportedEvent,
)
from inbox.connectors.meta import MetaConnector
from inbox.connectors.whatsapp import WhatsAppConnector
from inbox.connectors.x import XConnector

CONNECTORS: Mapping[str, type[Connector]] = MappingProxyType(
    {cls.name: cls for cls in (XConnector, MetaConnector, WhatsAppConnector)}
)


# Which connector sends for each platform (one Meta app serves Messenger, Instagram and Pages).
_SENDERS: Mapping[str, str] = MappingProxyType(
    {"x": "x", "messenger": "meta", "instagram": "meta", "facebook": "meta", "whatsapp": "whatsapp"}
)

# (platform, kind) → the ways to answer it, public first.
REPLY_MODES: Mapping[tuple[str, str], tuple[ReplyMode, ...]] = MappingProxyType(
    {
        key: tuple(
            sorted(
                (
                    mode
                    for cls in CONNECTORS.values()
                    for mode in cls.reply_modes
                    if (mode.platform, mode.kind) == key
                ),
                key=lambda mode: not mode.is_public,
            )
        )
        for key in {(m.platform, m.kind) for cls in CONNECTORS.values() for m in cls.reply_modes}
    }
)


def reply_modes(platform: str, kind: str) -> tuple[ReplyMode, ...]:
    """How a `kind` conversation on `platform` can be answered; empty if it cannot be."""
    return REPLY_MODES.get((platform, kind), ())


def connector_for_platform(platform: str) -> Connector:
    """The connector that sends replies on `platform`; LookupError if none does."""
    try:
        return get_connector(_SENDERS[platform])
    except KeyError:
        raise LookupError(f"no connector sends on {platform!r}") from None


def webhook_platforms(name: str) -> tuple[str, ...]:
    """The platforms whose deliveries come to /webhooks/<name> (the connector's own)."""
    return tuple(platform for platform, sender in _SENDERS.items() if sender == name)


def get_connector(name: str) -> Connector:
    """The connector for a webhook name ("x", "meta", "whatsapp"); LookupError if there is none."""
    try:
        return CONNECTORS[name]()
    except KeyError:
        raise LookupError(f"no connector named {name!r}") from None


__all__ = [
    "CONNECTORS",
    "REPLY_MODES",
    "ApiEndpoint",
    "Attachment",
    "Connector",
    "DeliveryStatus",
    "Event",
    "HandshakeReply",
    "InboundMessage",
    "Kind",
    "MessageDeletion",
    "MessageEdit",
    "MetaConnector",
    "OutboundReply",
    "ParseError",
    "PermanentSendError",
    "Platform",
    "ReplyMode",
    "SendError",
    "SendResult",
    "StatusWatermark",
    "TransientSendError",
    "UnsupportedEvent",
    "WhatsAppConnector",
    "XConnector",
    "connector_for_platform",
    "get_connector",
    "reply_modes",
    "webhook_platforms",
]
