"""Conversations to reply to, one per platform and kind, built from the recorded webhook ids.

Each case names our account, the customer and the customer's message as the fixtures in
tests/fixtures/webhooks do, and what the platform's send call must look like for a reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from inbox.extensions import db
from inbox.models import Conversation, Direction, Kind, Platform, Team
from inbox.services.channels import add_channel, set_access_token
from inbox.services.ingest import Profile, add_message, get_or_create_conversation, resolve_identity
from tests.fake_platforms import GRAPH_VERSION

TOKEN = "EAAtest-Sup3rS3cretT0ken-Do-Not-Log-7c1e4b9a"  # noqa: S105 (a test token)
NOW = datetime(2025, 3, 15, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    platform: Platform
    kind: Kind
    account_id: str
    customer_id: str
    inbound_id: str
    path: str  # the path the send call must hit on the fake server
    text: str = "Thanks, we're on it. ^Priya"

    @property
    def is_public(self) -> bool:
        return self.kind is not Kind.DM

    def expected_body(self, text: str) -> dict[str, Any]:
        if self.platform is Platform.X:
            if self.kind is Kind.DM:
                return {"text": text}
            return {"text": text, "reply": {"in_reply_to_tweet_id": self.inbound_id}}
        if self.platform is Platform.WHATSAPP:
            return {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": self.customer_id,
                "type": "text",
                "text": {"preview_url": False, "body": text},
            }
        if self.kind is Kind.DM:
            body: dict[str, Any] = {
                "recipient": {"id": self.customer_id},
                "message": {"text": text},
            }
            if self.platform is Platform.MESSENGER:
                body["messaging_type"] = "RESPONSE"
            return body
        return {"message": text}


_G = f"/graph/{GRAPH_VERSION}"

CASES: dict[str, Case] = {
    "x_dm": Case(
        Platform.X,
        Kind.DM,
        "1522093748110303232",
        "1388201945730502657",
        "1900475006471704576",
        "/x/2/dm_conversations/with/1388201945730502657/messages",
    ),
    "x_reply_tweet": Case(
        Platform.X,
        Kind.MENTION,
        "1522093748110303232",
        "1388201945730502657",
        "1900831163052789760",
        "/x/2/tweets",
    ),
    "messenger": Case(
        Platform.MESSENGER,
        Kind.DM,
        "104857392018475",
        "7712093845561203",
        "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDE",
        f"{_G}/104857392018475/messages",
    ),
    "instagram_dm": Case(
        Platform.INSTAGRAM,
        Kind.DM,
        "17841460123456789",
        "1129384756473829",
        "aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDYwMTIzNDU2Nzg5OjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI3NjAxNzcyMzE1ODMxMjM0NQ",
        f"{_G}/17841460123456789/messages",
    ),
    "instagram_comment": Case(
        Platform.INSTAGRAM,
        Kind.COMMENT,
        "17841460123456789",
        "6784512093847561",
        "18132987465011234",
        f"{_G}/18132987465011234/replies",
    ),
    "facebook_comment": Case(
        Platform.FACEBOOK,
        Kind.COMMENT,
        "104857392018475",
        "8899001122334455",
        "122190345566778899_1029384756102938",
        f"{_G}/122190345566778899_1029384756102938/comments",
    ),
    "whatsapp": Case(
        Platform.WHATSAPP,
        Kind.DM,
        "118273645501928",
        "15557654321",
        "wamid.HBgLMTU1NTc2NTQzMjEVAgASGBQzRUIwQjEyRDk0QzE4MEZGNkMwQQA=",
        f"{_G}/118273645501928/messages",
    ),
}


def make_conversation(
    case: Case,
    *,
    token: str | None = TOKEN,
    team: Team | None = None,
    inbound_text: str = "Hello, my fibre keeps dropping.",
) -> Conversation:
    """A conversation with one inbound customer message, committed."""
    account, _ = add_channel(case.platform, case.account_id, name=f"Brightwave {case.platform}")
    if token is not None:
        set_access_token(account, token, actor=None)
    identity = resolve_identity(Profile(case.platform, case.customer_id, handle="marisol_reads"))
    conversation, _ = get_or_create_conversation(
        account,
        f"{case.kind}:{case.inbound_id}",
        kind=case.kind,
        is_public=case.is_public,
        contact=identity.contact,
        team=team,
    )
    add_message(
        conversation,
        direction=Direction.INBOUND,
        text=inbound_text,
        sent_at=NOW - timedelta(minutes=30),
        external_id=case.inbound_id,
        author_identity=identity,
    )
    db.session.commit()
    return conversation
