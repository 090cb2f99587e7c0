"""Platform connectors: one module per platform, one base class, one registry.

Each connector verifies a webhook delivery's signature over the raw body, answers the platform's
verification GET, and parses a payload into the plain dataclasses of `inbox.connectors.base`.
Connectors only translate: no database, no request, no clock. The registry maps the webhook name
(`/webhooks/<name>`) to its connector.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from inbox.connectors.base import (
    Attachment,
    Connector,
    DeliveryStatus,
    Event,
    HandshakeReply,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ParseError,
    StatusWatermark,
    UnsupportedEvent,
)
from inbox.connectors.meta import MetaConnector
from inbox.connectors.whatsapp import WhatsAppConnector
from inbox.connectors.x import XConnector

CONNECTORS: Mapping[str, type[Connector]] = MappingProxyType(
    {cls.name: cls for cls in (XConnector, MetaConnector, WhatsAppConnector)}
)


def get_connector(name: str) -> Connector:
    """The connector for a webhook name ("x", "meta", "whatsapp"); LookupError if there is none."""
    try:
        return CONNECTORS[name]()
    except KeyError:
        raise LookupError(f"no connector named {name!r}") from None


__all__ = [
    "CONNECTORS",
    "Attachment",
    "Connector",
    "DeliveryStatus",
    "Event",
    "HandshakeReply",
    "InboundMessage",
    "MessageDeletion",
    "MessageEdit",
    "MetaConnector",
    "ParseError",
    "StatusWatermark",
    "UnsupportedEvent",
    "WhatsAppConnector",
    "XConnector",
    "get_connector",
]
