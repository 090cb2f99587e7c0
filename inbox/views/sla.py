"""The SLA timeline of one conversation at /conversations/<id>/sla (any signed-in role; the
conversation page embeds templates/sla/_timeline.html the same way).

Imports: models, extensions.db, services.sla, timeutil.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import login_required

from inbox.extensions import db
from inbox.models import Conversation
from inbox.services.sla import explain
from inbox.timeutil import utcnow

bp = Blueprint("sla", __name__)


@bp.route("/conversations/<int:conversation_id>/sla")
@login_required
def timeline(conversation_id: int):
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        abort(404)
    now = utcnow()
    return render_template(
        "sla/conversation.html",
        conversation=conversation,
        clocks=explain(conversation, now=now),
        now=now,
    )
