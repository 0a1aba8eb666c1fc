"""A customer's record (the "360 view") as a pure fold over their facts in time order.

Same facts, same record, byte for byte (`canonical`): incremental consumption, a consumer
killed and restarted, and a full replay all produce it. Nothing here reads a clock.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Sequence

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
}


def canonical(value: Any) -> str:
    """The one JSON spelling of a value (sorted keys, no spaces, ASCII), so equal means byte-identical."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def ordered(facts: Iterable[Fact]) -> List[Fact]:
    """Time order, ties broken by the fact's canonical text: one order for any arrival order."""
    return sorted(facts, key=lambda fact: (fact["t"], canonical(fact)))


def fold(customer_id: str, facts: Sequence[Fact]) -> Dict[str, Any]:
    record: Dict[str, Any] = {
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
    channels: Dict[str, Dict[str, Any]] = {}
    identities: List[str] = []
    for fact in ordered(facts):
        kind, at = fact["k"], fact["t"]
        record["events"] += 1
        record["first_seen"] = at if record["first_seen"] is None else record["first_seen"]
        record["last_seen"] = at
        if fact.get("ch"):
            seen = channels.setdefault(fact["ch"], {"first_seen": at, "last_seen": at, "messages": 0})
            seen["last_seen"] = at
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
        elif kind == IDENTITY_LINKED and fact["identity"] not in identities:
            identities.append(fact["identity"])
        elif kind == IDENTITY_UNLINKED and fact["identity"] in identities:
            identities.remove(fact["identity"])
    record["channels"] = channels
    record["identities"] = identities
    return record


def _keep(items: List[Dict[str, Any]], item: Dict[str, Any]) -> None:
    items.append(item)
    del items[:-KEEP_LATEST]
