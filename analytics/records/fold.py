"""A customer's record (the "360 view"), scores and stage as a fold over their facts in the log's order.

Same facts, same record, byte for byte (`canonical`): incremental consumption, a consumer
killed and restarted, and a full replay all produce it. Nothing here reads a clock.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence

import orjson

from analytics.engagement.rules import Rules, load_rules
from analytics.engagement.score import EngagementState
from analytics.funnel.rules import FunnelRules, load_funnel_rules
from analytics.funnel.stages import FunnelState
from analytics.records.facts import BOT, SESSION_STARTED, USER, Fact
from analytics.schema import (
    FAQ_ANSWERED,
    FAQ_SUGGESTED,
    FAQ_UNANSWERED,
    FALLBACK,
    FEEDBACK,
    HANDOVER_REQUESTED,
    IDEA,
    IDENTITY_LINKED,
    IDENTITY_UNLINKED,
    LEAD_FIELD_CAPTURED,
    LEAD_SUBMITTED,
    PROBLEM,
    RECOMMENDATION,
    REFERRAL,
    loads,
)

RECORD_VERSION = 1
KEEP_LATEST = 20  # quotes per list (feedback, ideas, problems) kept in the record, newest last

_COUNTERS = {
    USER: "messages",
    BOT: "bot_messages",
    SESSION_STARTED: "sessions",
    FAQ_ANSWERED: "faq_answered",
    FAQ_SUGGESTED: "faq_suggested",
    FAQ_UNANSWERED: "faq_unanswered",
    FALLBACK: "fallbacks",
    FEEDBACK: "feedback",
    IDEA: "ideas",
    PROBLEM: "problems",
    LEAD_SUBMITTED: "leads_submitted",
    HANDOVER_REQUESTED: "handovers",
    RECOMMENDATION: "recommendations",
    REFERRAL: "referrals",
}


_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)  # json.dumps would build one per call


# `canonical`'s inverse (the standard library reads what it spelled); nothing a state keeps is an
# integer past 64 bits, which orjson would read back as a float.
parse = loads


def canonical(value: Any) -> str:
    """The one JSON spelling of a value (sorted keys, no spaces, UTF-8), so equal means byte-identical.

    orjson spells it (a replay writes millions). What orjson refuses (text with a lone surrogate, an
    integer past 64 bits) the standard library spells, as it always did: the same value always takes
    the same path, so the spelling is still one per value."""
    try:
        return orjson.dumps(value, option=_SORTED).decode()
    except TypeError:  # orjson.JSONEncodeError
        return _STDLIB.encode(value)


def ordered(facts: Iterable[Fact]) -> List[Fact]:
    """The log's order (each fact's `o`, from its stream entry id), whatever order they arrived in."""
    return sorted(facts, key=lambda fact: (fact.get("o", ""), fact.get("id", "")))


def new_record(customer_id: str) -> Dict[str, Any]:
    return {
        "customer_id": customer_id,
        "version": RECORD_VERSION,
        "first_seen": None,
        "last_seen": None,
        "channels": {},
        "counts": {name: 0 for name in sorted(set(_COUNTERS.values()))},
        "feedback": [],
        "ideas": [],
        "problems": [],
        "lead": {},
        "identities": [],
        "last_handover": None,
        "events": 0,
    }


def step_record(record: Dict[str, Any], fact: Fact) -> None:
    """Apply the next fact to the record (in place)."""
    kind, at = fact["k"], fact["t"]
    record["events"] += 1
    record["first_seen"] = at if record["first_seen"] is None else min(record["first_seen"], at)
    record["last_seen"] = at if record["last_seen"] is None else max(record["last_seen"], at)
    if fact.get("ch"):
        seen = record["channels"].setdefault(fact["ch"], {"first_seen": at, "last_seen": at, "messages": 0})
        seen["first_seen"], seen["last_seen"] = min(seen["first_seen"], at), max(seen["last_seen"], at)
        seen["messages"] += kind == USER
    counter = _COUNTERS.get(kind)
    if counter:
        record["counts"][counter] += 1
    if kind == FEEDBACK:
        _keep(record["feedback"], {"at": at, "text": fact["text"], "sentiment": fact["sentiment"], "context": fact["context"]})
    elif kind in (IDEA, PROBLEM):
        _keep(record["ideas" if kind == IDEA else "problems"], {"at": at, "ref": fact["ref"], "text": fact["text"], "context": fact["context"]})
    elif kind == LEAD_FIELD_CAPTURED and fact.get("field"):
        # What the customer said stays beside the normalised value.
        record["lead"][fact["field"]] = {"value": fact["value"], "said": fact.get("raw", fact["value"]), "at": at}
    elif kind == LEAD_SUBMITTED:
        record["lead_submitted"] = {"at": at, "ref": fact["ref"]}
    elif kind == HANDOVER_REQUESTED:
        record["last_handover"] = {"at": at, "reason": fact["reason"]}
    elif kind == RECOMMENDATION and fact.get("score") is not None:
        record["last_recommendation"] = {"at": at, "score": fact["score"]}
    elif kind == IDENTITY_LINKED and fact["identity"] not in record["identities"]:
        record["identities"].append(fact["identity"])
    elif kind == IDENTITY_UNLINKED and fact["identity"] in record["identities"]:
        record["identities"].remove(fact["identity"])


class CustomerState:
    """Everything kept about one customer, folded one fact at a time in the log's order.

    A rebuild is the same loop from an empty state, so a record kept incrementally and one
    rebuilt from the log are the same bytes.
    """

    def __init__(self, customer_id: str, rules: Rules, funnel_rules: FunnelRules, data: Optional[Dict[str, Any]] = None) -> None:
        data = data or {}
        self.record: Dict[str, Any] = data.get("record") or new_record(customer_id)
        self.engagement = EngagementState(rules, data.get("engagement"))
        self.funnel = FunnelState(funnel_rules, rules.half_life_seconds, data.get("funnel"))
        self.last_order: str = data.get("last_order", "")

    def apply(self, fact: Fact) -> None:
        step_record(self.record, fact)
        self.engagement.step(fact)
        self.funnel.step(fact, self.engagement.total_log())
        self.last_order = max(self.last_order, str(fact.get("o", "")))

    def to_json(self) -> Dict[str, Any]:
        return {"record": self.record, "engagement": self.engagement.to_json(), "funnel": self.funnel.to_json(), "last_order": self.last_order}

    def view(self) -> Dict[str, Any]:
        """The customer's record as people and pages read it: the 360 view, scores and stage."""
        return {**self.record, "engagement": self.engagement.view(self.record["last_seen"]), "funnel": self.funnel.view()}


def fold(customer_id: str, facts: Sequence[Fact], rules: Optional[Rules] = None, funnel_rules: Optional[FunnelRules] = None) -> Dict[str, Any]:
    """The record of a customer with these facts (any order)."""
    state = CustomerState(customer_id, rules or load_rules(), funnel_rules or load_funnel_rules())
    for fact in ordered(facts):
        state.apply(fact)
    return state.view()


def _keep(items: List[Dict[str, Any]], item: Dict[str, Any]) -> None:
    items.append(item)
    del items[:-KEEP_LATEST]
