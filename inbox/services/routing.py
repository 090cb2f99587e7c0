"""Routing rules: validating them, evaluating their conditions against a conversation and
applying their actions, in order, when a customer writes (`on_inbound`, called by ingestion
in the worker), plus the dry run of a rule being edited (`matching_conversations`).

A rule is a list of conditions (all must hold; none means always) and a list of actions, each a
`{"type": …}` dict (`CONDITION_TYPES` / `ACTION_TYPES` below). Rules run by position; a matching
rule with `stop` ends the run. Actions go through the same services an agent's click does
(so they are audited and published the same way) with the system as actor, and each applied
action is also audited as `routing.action` with the rule's name. Actions that would change
nothing are skipped, so a rule re-run on every message is quiet: the auto-reply goes once per
conversation, and "assign" only fills an empty assignee (a rule never takes an item from an
agent who has it).
Each process compiles the active rules once (conditions into functions with their values
prepared, regexes compiled) and checks per message, with one small query, the version token
of the "routing" configuration, which every rule change replaces (services.config_versions),
so an edit made anywhere applies to the next message everywhere.
Nothing here commits.
Imports: models, extensions.db, errors, services.conversations, services.assignment,
services.replies, services.sla, services.calendar, services.config_versions, services.listing,
services.audit, services.helpdesk, timeutil.
"""

from __future__ import annotations

import functools
import logging
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import (
    BusinessCalendar,
    ChannelAccount,
    ContactIdentity,
    Conversation,
    Direction,
    Kind,
    Message,
    Platform,
    Priority,
    RoutingRule,
    SlaPolicy,
    Team,
    User,
)
from inbox.services import assignment, config_versions, helpdesk, replies, sla
from inbox.services import conversations as actions
from inbox.services.audit import record_audit
from inbox.services.calendar import business_time_between
from inbox.services.listing import SENTIMENTS, sentiment_label

log = logging.getLogger(__name__)

MAX_PATTERN_LENGTH = 200
# Regexes run over at most this much of a message: bounds the work of any pattern.
MAX_MATCHED_TEXT = 4000
# A group repeated without bound ("+", "*", "{n,}") whose body holds a repetition, an
# alternation or an optional part ("(a+)+", "(\w*)*", "(x|y+){2,}", "(a|aa)+", "((a|aa))+",
# "(a?a?)+") is the shape of catastrophic backtracking; Python's re has no timeout, so such
# patterns are refused when the rule is saved.
_UNBOUNDED_REPEAT = re.compile(r"[+*]|\{\d*,\}")
# In a group's body: a repetition, an alternation, or an optional part ("(a?a?)+"); a "?" right
# after "(" opens a group kind ("(?:", "(?P<x>") instead.
_REPEAT_OR_CHOICE = re.compile(r"[+*}|]|(?<!\()\?")
# Verbose mode ignores spaces, so "(a|aa) +" repeats the group: refused rather than parsed.
_VERBOSE_FLAG = re.compile(r"\(\?[a-zA-Z]*x")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")

CONDITION_TYPES = {
    "platform": "Platform is any of",
    "channel": "Channel account is any of",
    "kind": "Kind is any of",
    "visibility": "Visibility is",
    "text_contains": "Text contains any of",
    "text_regex": "Text matches the pattern",
    "language": "Language is any of",
    "sentiment": "Sentiment is",
    "vip": "Contact is VIP",
    "followers_at_least": "Author has at least N followers",
    "verified": "Author is verified",
    "business_hours": "Within business hours",
    "tags": "Has any of the tags",
}
ACTION_TYPES = {
    "set_team": "Set team",
    "set_priority": "Set priority",
    "add_tags": "Add tags",
    "assign": "Assign to agent",
    "mark_spam": "Mark as spam",
    "auto_reply": "Send an auto-reply (once per conversation)",
    "apply_sla_policy": "Apply SLA policy",
}


class RuleInvalid(InboxError):
    status = 400
    code = "rule_invalid"


# --- validation ------------------------------------------------------------------------------


def check_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a rule's regex, refusing what could run away (length, nested quantifiers,
    backreferences) or does not compile."""
    if not pattern:
        raise RuleInvalid("The pattern is empty.")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RuleInvalid(f"Patterns are at most {MAX_PATTERN_LENGTH} characters.")
    if (
        _repeats_a_risky_group(pattern)
        or _BACKREFERENCE.search(pattern)
        or _VERBOSE_FLAG.search(pattern)
    ):
        raise RuleInvalid(
            "That pattern could take very long on some texts (a repeated group containing a "
            "repetition, or a backreference). Simplify it, e.g. use a word list instead."
        )
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        # re's own words ("missing ), unterminated subpattern at position 0") keep the detail;
        # the frame says what is wrong and how a literal bracket is written.
        where = f" (at character {exc.pos + 1})" if exc.pos is not None else ""
        raise RuleInvalid(
            f"The pattern is not a valid regular expression: {exc.msg}{where}. To match a "
            "character such as ( [ + ? * literally, put a backslash before it: \\(."
        ) from None


def _repeats_a_risky_group(pattern: str) -> bool:
    """Whether a group repeated without bound holds a repetition or an alternation, at any
    depth (escapes and character classes are skipped: "[+|]" is two literal characters)."""
    opened: list[int] = []  # where each open group's body starts in `body`
    body: list[str] = []  # the pattern with escapes and classes reduced to a placeholder
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            body.append("x")
            i += 2
            continue
        if char == "[":
            # To the class's end: a "]" first (after any "^") is literal, "\\]" too.
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            body.append("x")
            continue
        if char == "(":
            opened.append(len(body))
        elif char == ")" and opened:
            inner = "".join(body[opened.pop() :])
            if _UNBOUNDED_REPEAT.match(pattern, i + 1) and _REPEAT_OR_CHOICE.search(inner):
                return True
        body.append(char)
        i += 1
    return False


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RuleInvalid(f"{what}: give at least one value.")
    cleaned = [v.strip() for v in value if v.strip()]
    if not cleaned:
        raise RuleInvalid(f"{what}: give at least one value.")
    return cleaned


def _member(values: list[str], allowed: Iterable[str], what: str) -> list[str]:
    allowed = set(allowed)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise RuleInvalid(f"{what}: unknown value {bad[0]!r}.")
    return values


def _ids(value: Any, model: type, what: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise RuleInvalid(f"{what}: choose at least one.")
    ids = []
    for v in value:
        if not isinstance(v, int) or db.session.get(model, v) is None:
            raise RuleInvalid(f"{what}: no such {model.__name__} {v!r}.")
        ids.append(v)
    return ids


def _one_id(value: Any, model: type, what: str) -> int:
    return _ids([value], model, what)[0]


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise RuleInvalid(f"{what}: true or false.")
    return value


def validate_condition(c: Any) -> dict[str, Any]:
    """The condition normalised, or RuleInvalid saying what is wrong with it."""
    if not isinstance(c, dict) or c.get("type") not in CONDITION_TYPES:
        raise RuleInvalid(f"Unknown condition {c!r}.")
    kind = c["type"]
    label = CONDITION_TYPES[kind]
    if kind == "platform":
        return {"type": kind, "values": _member(_strings(c.get("values"), label), Platform, label)}
    if kind == "kind":
        return {"type": kind, "values": _member(_strings(c.get("values"), label), Kind, label)}
    if kind == "channel":
        return {"type": kind, "values": _ids(c.get("values"), ChannelAccount, label)}
    if kind == "visibility":
        return {"type": kind, "value": _member([c.get("value")], ("public", "private"), label)[0]}
    if kind in ("text_contains", "tags"):
        return {"type": kind, "values": _strings(c.get("values"), label)}
    if kind == "language":
        return {"type": kind, "values": [v.lower() for v in _strings(c.get("values"), label)]}
    if kind == "text_regex":
        pattern = c.get("pattern") if isinstance(c.get("pattern"), str) else ""
        check_pattern(pattern)
        return {"type": kind, "pattern": pattern}
    if kind == "sentiment":
        return {"type": kind, "value": _member([c.get("value")], SENTIMENTS, label)[0]}
    if kind in ("vip", "verified"):
        return {"type": kind, "value": _bool(c.get("value", True), label)}
    if kind == "followers_at_least":
        n = c.get("value")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise RuleInvalid(f"{label}: a whole number, 0 or more.")
        return {"type": kind, "value": n}
    # business_hours: on the given calendar, else the conversation's team's
    out: dict[str, Any] = {"type": kind, "value": _bool(c.get("value", True), label)}
    if c.get("calendar_id") is not None:
        out["calendar_id"] = _one_id(c["calendar_id"], BusinessCalendar, label)
    return out


def validate_action(a: Any) -> dict[str, Any]:
    if not isinstance(a, dict) or a.get("type") not in ACTION_TYPES:
        raise RuleInvalid(f"Unknown action {a!r}.")
    kind = a["type"]
    label = ACTION_TYPES[kind]
    if kind == "set_team":
        return {"type": kind, "team_id": _one_id(a.get("team_id"), Team, label)}
    if kind == "set_priority":
        return {"type": kind, "priority": _member([a.get("priority")], Priority, label)[0]}
    if kind == "add_tags":
        names = [actions.normalize_tag(t) for t in _strings(a.get("tags"), label)]
        return {"type": kind, "tags": names}
    if kind == "assign":
        user_id = _one_id(a.get("user_id"), User, label)
        if not db.session.get(User, user_id).active:
            raise RuleInvalid(f"{label}: that user is deactivated.")
        return {"type": kind, "user_id": user_id}
    if kind == "mark_spam":
        return {"type": kind}
    if kind == "auto_reply":
        text = a.get("text").strip() if isinstance(a.get("text"), str) else ""
        if not text:
            raise RuleInvalid(f"{label}: write the message.")
        if len(text) > 1000:
            raise RuleInvalid(f"{label}: at most 1000 characters.")
        return {"type": kind, "text": text}
    return {"type": kind, "policy_id": _one_id(a.get("policy_id"), SlaPolicy, label)}


def save_rule(
    rule: RoutingRule | None,
    *,
    name: str,
    active: bool,
    stop: bool,
    conditions: list[Any],
    actions_: list[Any],
    actor: User,
    now: datetime,
) -> RoutingRule:
    """Create (rule None; placed last) or update a rule after validating every part."""
    name = " ".join((name or "").split())
    if not name:
        raise RuleInvalid("Give the rule a name.")
    if not actions_:
        raise RuleInvalid("A rule needs at least one action.")
    conds = [validate_condition(c) for c in conditions]
    acts = [validate_action(a) for a in actions_]
    before = None
    if rule is None:
        last = db.session.scalar(select(RoutingRule.position).order_by(RoutingRule.position.desc()))
        rule = RoutingRule(position=(last or 0) + 10)
        db.session.add(rule)
    else:
        before = _snapshot(rule)
    rule.name, rule.active, rule.stop = name, active, stop
    rule.conditions, rule.actions = conds, acts
    db.session.flush()
    action = "routing_rule.create" if before is None else "routing_rule.update"
    record_audit(action, rule, actor=actor, before=before, after=_snapshot(rule), now=now)
    return rule


def _snapshot(rule: RoutingRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "position": rule.position,
        "active": rule.active,
        "stop": rule.stop,
        "conditions": rule.conditions,
        "actions": rule.actions,
    }


def move_rule(rule: RoutingRule, step: int, *, actor: User, now: datetime) -> None:
    """Swap `rule` with its neighbour above (step -1) or below (+1)."""
    ordered = ordered_rules(active_only=False)
    index = next(i for i, r in enumerate(ordered) if r.id == rule.id)
    other_index = index + step
    if not 0 <= other_index < len(ordered):
        return
    ordered[index], ordered[other_index] = ordered[other_index], ordered[index]
    for position, r in enumerate(ordered, start=1):
        r.position = position * 10
    record_audit("routing_rule.move", rule, actor=actor, after={"position": rule.position}, now=now)


def delete_rule(rule: RoutingRule, *, actor: User, now: datetime) -> None:
    record_audit("routing_rule.delete", rule, actor=actor, before=_snapshot(rule), now=now)
    db.session.delete(rule)


def ordered_rules(*, active_only: bool = True) -> list[RoutingRule]:
    query = select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)
    if active_only:
        query = query.where(RoutingRule.active.is_(True))
    return list(db.session.scalars(query))


def _name(model: type, id_: int, attr: str = "name") -> str:
    row = db.session.get(model, id_)
    return getattr(row, attr) if row is not None else f"#{id_} (deleted)"


def describe_condition(c: dict[str, Any]) -> str:
    """One line a person reads in the rule list ("Text contains any of: refund, chargeback")."""
    label = CONDITION_TYPES.get(c.get("type"), str(c.get("type")))
    kind = c.get("type")
    if kind == "channel":
        return f"{label}: " + ", ".join(_name(ChannelAccount, i) for i in c["values"])
    if kind == "text_regex":
        return f"{label} /{c['pattern']}/"
    if kind in ("vip", "verified"):
        return label if c["value"] else f"Not: {label.lower()}"
    if kind == "business_hours":
        where = "Within" if c["value"] else "Outside"
        calendar = f" ({_name(BusinessCalendar, c['calendar_id'])})" if "calendar_id" in c else ""
        return f"{where} business hours{calendar}"
    if "values" in c:
        return f"{label}: " + ", ".join(map(str, c["values"]))
    return f"{label}: {c.get('value')}"


def describe_action(a: dict[str, Any]) -> str:
    label = ACTION_TYPES.get(a.get("type"), str(a.get("type")))
    kind = a.get("type")
    if kind == "set_team":
        return f"{label}: {_name(Team, a['team_id'])}"
    if kind == "set_priority":
        return f"{label}: {a['priority']}"
    if kind == "add_tags":
        return f"{label}: " + ", ".join(a["tags"])
    if kind == "assign":
        return f"{label}: {_name(User, a['user_id'])}"
    if kind == "auto_reply":
        return f"Auto-reply: “{a['text'][:60]}{'…' if len(a['text']) > 60 else ''}”"
    if kind == "apply_sla_policy":
        return f"{label}: {_name(SlaPolicy, a['policy_id'])}"
    return label


# --- evaluation --------------------------------------------------------------------------------


class Facts:
    """What conditions look at: the conversation and the customer message being routed. What
    no action can change (the text, the platform, the author's reach, business hours on a
    calendar) is worked out once per message, on first use, however many rules ask."""

    def __init__(self, conversation: Conversation, message: Message | None, now: datetime):
        self.conversation = conversation
        self.message = message
        self.now = now
        self._business_hours: dict[int | None, bool] = {}

    @functools.cached_property
    def text(self) -> str:
        return (self.message.text if self.message is not None else "")[:MAX_MATCHED_TEXT]

    @functools.cached_property
    def folded_text(self) -> str:
        return self.text.casefold()

    @functools.cached_property
    def platform(self) -> str:
        return str(self.conversation.platform)

    @functools.cached_property
    def language(self) -> str:
        return (self.conversation.language or "").lower()

    @functools.cached_property
    def identities(self) -> list[ContactIdentity]:
        author = self.message.author_identity if self.message is not None else None
        return [author] if author is not None else list(self.conversation.contact.identities)

    @functools.cached_property
    def followers(self) -> int:
        return max((i.follower_count or 0 for i in self.identities), default=0)

    @functools.cached_property
    def verified(self) -> bool:
        return any(i.verified for i in self.identities)

    def in_business_hours(self, calendar_id: int | None) -> bool:
        """Whether the customer wrote within business hours on `calendar_id` (None: the
        conversation's team's calendar, as it is now: an earlier rule may have set the team)."""
        if calendar_id is None and self.conversation.team is not None:
            calendar_id = self.conversation.team.calendar_id
        if calendar_id not in self._business_hours:
            calendar = db.session.get(BusinessCalendar, calendar_id or 0)
            spec = sla.calendar_spec(calendar)  # no calendar: always open
            # When the customer wrote (an away message answers messages sent after hours).
            at = self.message.sent_at if self.message is not None else self.now
            inside = business_time_between(at, at + timedelta(seconds=1), spec) > timedelta(0)
            self._business_hours[calendar_id] = inside
        return self._business_hours[calendar_id]


Test = Callable[[Facts], bool]


def _never(facts: Facts) -> bool:
    return False


def compile_condition(cond: dict[str, Any]) -> Test:
    """The condition as a function of the facts, with its values prepared (sets, case-folded
    words, the compiled regex) so that evaluating it does no parsing."""
    kind = cond["type"]
    if kind == "platform":
        platforms = frozenset(cond["values"])
        return lambda f: f.platform in platforms
    if kind == "channel":
        channels = frozenset(cond["values"])
        return lambda f: f.conversation.channel_account_id in channels
    if kind == "kind":
        kinds = frozenset(cond["values"])
        return lambda f: str(f.conversation.kind) in kinds
    if kind == "visibility":
        public = cond["value"] == "public"
        return lambda f: f.conversation.is_public == public
    if kind == "text_contains":
        words = tuple(word.casefold() for word in cond["values"])
        return lambda f: any(word in f.folded_text for word in words)
    if kind == "text_regex":
        try:
            pattern = check_pattern(cond["pattern"])
        except RuleInvalid:  # stored before the guard existed or edited by hand: never matches
            return _never
        return lambda f: pattern.search(f.text) is not None
    if kind == "language":
        languages = frozenset(cond["values"])
        return lambda f: f.language in languages
    if kind == "sentiment":
        label = cond["value"]
        return lambda f: sentiment_label(f.conversation.sentiment) == label
    if kind == "vip":
        vip = cond["value"]
        return lambda f: bool(f.conversation.contact.is_vip) == vip
    if kind == "followers_at_least":
        least = cond["value"]
        return lambda f: f.followers >= least
    if kind == "verified":
        verified = cond["value"]
        return lambda f: f.verified == verified
    if kind == "business_hours":
        inside, calendar_id = cond["value"], cond.get("calendar_id")
        return lambda f: f.in_business_hours(calendar_id) == inside
    if kind == "tags":
        wanted = frozenset(t.casefold() for t in cond["values"])
        # Read each time: an earlier rule's "add tags" counts for the later ones.
        return lambda f: any(t.name.casefold() in wanted for t in f.conversation.tags)
    return _never


def compile_conditions(conditions: list[dict[str, Any]]) -> Test:
    """All of `conditions` must hold (none: always)."""
    tests = tuple(compile_condition(cond) for cond in conditions)
    return lambda facts: all(test(facts) for test in tests)


@dataclass(frozen=True)
class CompiledRule:
    """An active rule ready to run: what `apply_rules` needs of it, and no database row."""

    id: int
    name: str
    stop: bool
    actions: tuple[dict[str, Any], ...]
    matches: Test


def compile_rule(rule: RoutingRule) -> CompiledRule:
    return CompiledRule(
        rule.id, rule.name, rule.stop, tuple(rule.actions), compile_conditions(rule.conditions)
    )


config_versions.watch("routing", RoutingRule)
# Per engine (one per app, i.e. per database): (version token, the compiled active rules).
_compiled: weakref.WeakKeyDictionary[Engine, tuple[str | None, tuple[CompiledRule, ...]]] = (
    weakref.WeakKeyDictionary()
)


def active_rules() -> tuple[CompiledRule, ...]:
    """The active rules in order, compiled once per process and rebuilt when the rules'
    version token (changed by every edit, in any process) differs from the one they were
    built under: one small query per call."""
    # The token first, then the rules: rules newer than their token only cause one rebuild
    # more, while rules older than it would be kept until the next edit.
    token = config_versions.token("routing")
    cached = _compiled.get(db.engine)
    # A None token (no rule ever written) is cached too: the first write creates a token.
    if cached is not None and cached[0] == token:
        return cached[1]
    rules = tuple(compile_rule(rule) for rule in ordered_rules())
    _compiled[db.engine] = (token, rules)
    return rules


# --- actions -------------------------------------------------------------------------------------


def _set_team(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    team = db.session.get(Team, a["team_id"])
    if team is None or c.team_id == team.id:
        return False
    actions.set_team(c, team, actor=None, now=now)
    # A rule routing to a team is a hand-off like an agent's: its helpdesk gets the case.
    helpdesk.open_case(c, team, note="Routed by a routing rule.", actor=None, now=now)
    return True


def _set_priority(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    priority = Priority(a["priority"])
    if c.priority is priority:
        return False
    actions.set_priority(c, priority, actor=None, now=now)
    return True


def _add_tags(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    have = {t.name.casefold() for t in c.tags}
    missing = [t for t in a["tags"] if t.casefold() not in have]
    for name in missing:
        actions.add_tag(c, name, actor=None, now=now)
    return bool(missing)


def _assign(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    user = db.session.get(User, a["user_id"])
    if c.assignee_id is not None or user is None or not user.active:
        return False
    actions.assign(c, user, actor=None, now=now, reason="routing rule")
    return True


def _mark_spam(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    if c.is_spam:
        return False
    actions.mark_spam(c, True, actor=None, now=now)
    return True


def _auto_reply(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    already = db.session.scalar(
        select(Message.id).where(Message.conversation_id == c.id, Message.is_auto_reply.is_(True))
    )
    if already is not None:
        return False
    replies.create_auto_reply(c, text=a["text"], now=now)
    return True


def _apply_sla_policy(c: Conversation, a: dict[str, Any], now: datetime) -> bool:
    policy = db.session.get(SlaPolicy, a["policy_id"])
    if policy is None or (c.sla_policy_pinned and c.sla_policy_id == policy.id):
        return False
    c.sla_policy_id = policy.id
    c.sla_policy_pinned = True
    db.session.flush()
    sla.on_attributes_change(c, actor=None, now=now)
    return True


_ACTIONS: dict[str, Callable[[Conversation, dict[str, Any], datetime], bool]] = {
    "set_team": _set_team,
    "set_priority": _set_priority,
    "add_tags": _add_tags,
    "assign": _assign,
    "mark_spam": _mark_spam,
    "auto_reply": _auto_reply,
    "apply_sla_policy": _apply_sla_policy,
}


def apply_rules(
    conversation: Conversation, message: Message | None, *, now: datetime
) -> list[tuple[str, str]]:
    """Run the active rules in order over `conversation` (for the customer's `message`);
    returns the (rule name, action type) pairs applied."""
    applied: list[tuple[str, str]] = []
    facts = Facts(conversation, message, now)
    for rule in active_rules():
        if not rule.matches(facts):
            continue
        for action in rule.actions:
            try:
                changed = _ACTIONS[action["type"]](conversation, action, now)
            except InboxError as error:  # e.g. the channel cannot send: note it, go on
                record_audit(
                    "routing.action_failed",
                    conversation,
                    actor=None,
                    after={
                        "rule": rule.name,
                        "rule_id": rule.id,
                        "action": action,
                        "error": error.message,
                    },
                    now=now,
                )
                continue
            if changed:
                applied.append((rule.name, action["type"]))
                record_audit(
                    "routing.action",
                    conversation,
                    actor=None,
                    after={"rule": rule.name, "rule_id": rule.id, "action": action},
                    now=now,
                )
        if rule.stop:
            break
    return applied


def on_inbound(message: Message, *, now: datetime) -> None:
    """A customer message was stored (new conversation or not): apply the rules, then offer
    the conversation to its team's auto-assignment if it is still unassigned."""
    conversation = message.conversation
    apply_rules(conversation, message, now=now)
    if conversation.assignee_id is None and conversation.team is not None:
        assignment.assign_backlog(conversation.team, now=now)


def matching_conversations(rule: RoutingRule, *, limit: int, now: datetime) -> list[Conversation]:
    """Dry run for "test this rule" (a supervisor or admin editing it): which of the latest
    `limit` conversations (by their latest customer message) `rule` would match. Writes
    nothing."""
    recent = db.session.scalars(
        select(Conversation)
        .where(Conversation.last_inbound_at.is_not(None))
        .order_by(Conversation.last_inbound_at.desc(), Conversation.id.desc())
        .limit(limit)
    ).all()
    matches = compile_conditions(rule.conditions)
    matched = []
    for conversation in recent:
        latest = db.session.scalar(
            select(Message)
            .where(
                Message.conversation_id == conversation.id,
                Message.direction == Direction.INBOUND,
            )
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        )
        if matches(Facts(conversation, latest, now)):
            matched.append(conversation)
    return matched
