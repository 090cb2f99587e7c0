"""The SLA timeline of one conversation at /conversations/<id>/sla (any signed-in role that may
see the conversation; the conversation page embeds templates/sla/_timeline.html the same way).

Imports: services.conversations (visibility), services.sla, timeutil.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from inbox.services.conversations import get_conversation_for
from inbox.services.sla import explain
from inbox.timeutil import utcnow

bp = Blueprint("sla", __name__)


@bp.route("/conversations/<int:conversation_id>/sla")
@login_required
def timeline(conversation_id: int):
    # Team visibility as on the conversation page: 404 for another team's conversation.
    conversation = get_conversation_for(current_user, conversation_id)
    now = utcnow()
    return render_template(
        "sla/conversation.html",
        conversation=conversation,
        clocks=explain(conversation, now=now),
        now=now,
    )
