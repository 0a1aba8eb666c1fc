"""The lead funnel as a pure fold over a customer's facts in time order.

Stages move forward only, each change recorded with its time, its reason and the event that
caused it. Fit (who they are) does not decay; engagement (what they do) is the customer's
engagement capability at that moment, so the same facts always give the same history.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from analytics.engagement.score import EPOCH, Contribution, combine, value_at
from analytics.funnel.rules import STAGES, FunnelRules
from analytics.records.facts import Fact

VISITOR, SUSPECT, PROSPECT, LEAD, OPPORTUNITY = range(len(STAGES))
LEAD_EMAIL = "lead_email"
LEAD_COMPANY = "lead_company"
LEAD_ROLE = "lead_role"
LEAD_BUDGET = "lead_budget"
LEAD_TIMELINE = "lead_timeline"


def fit_score(fields: Dict[str, str], rules: FunnelRules) -> Tuple[float, Dict[str, float]]:
    """0-100 from what the customer said about themselves, with the part each answer gave."""
    parts: Dict[str, float] = {}
    role = fields.get(LEAD_ROLE)
    if role:
        parts["role"] = next((points for pattern, points in rules.role_points if pattern.search(role)), 0.0)
    if fields.get(LEAD_BUDGET) in rules.budget_points:
        parts["budget"] = rules.budget_points[fields[LEAD_BUDGET]]
    if fields.get(LEAD_TIMELINE) in rules.timeline_points:
        parts["timeline"] = rules.timeline_points[fields[LEAD_TIMELINE]]
    if fields.get(LEAD_COMPANY):
        parts["company"] = rules.company_points
    return min(100.0, sum(parts.values())), parts


def funnel(facts: Sequence[Fact], rules: FunnelRules, contributions: Sequence[Contribution], half_life: float) -> Dict[str, Any]:
    stage = VISITOR
    history: List[Dict[str, Any]] = []
    identified: Optional[str] = None
    interest: Optional[str] = None
    fields: Dict[str, str] = {}
    engagement_log: Optional[float] = None
    pending = list(contributions)
    used = 0
    sales: Optional[Dict[str, Any]] = None

    def move(to: int, at: float, event: str, reason: str) -> None:
        nonlocal stage
        while stage < to:
            stage += 1
            history.append({"stage": STAGES[stage], "at": at, "reason": reason, "event_id": event})

    for fact in facts:
        at, kind, event = fact["t"], fact["k"], str(fact.get("id", ""))
        if not history:
            history.append({"stage": STAGES[VISITOR], "at": at, "reason": "first contact", "event_id": event})
        while used < len(pending) and pending[used].at <= at:
            c = pending[used]
            engagement_log = combine([engagement_log, math.log2(c.points) + (c.at - EPOCH) / half_life])
            used += 1
        if kind == "user" and fact.get("ch") in rules.identified_channels and identified is None:
            identified = f"wrote on {fact['ch']}, which proves who they are"
        if kind == "user" and fact.get("intent") in rules.interest_intents and interest is None:
            interest = f"asked about an offering ({fact['intent']})"
        if kind == "identity_linked" and identified is None:
            identified = f"confirmed {str(fact.get('identity', '')).split(':', 1)[0] or 'an identity'}"
        if kind == "lead_field_captured" and fact.get("field"):
            fields[fact["field"]] = str(fact.get("value") or "")
            interest = interest or "started the sales form"
            if fact["field"] == LEAD_EMAIL and identified is None:
                identified = "gave an e-mail address in the sales form"
        if identified:
            move(SUSPECT, at, event, identified)
        if identified and interest:
            move(PROSPECT, at, event, interest)
        known = all(fields.get(name) for name in rules.lead_fields)
        if stage >= PROSPECT and known:
            move(LEAD, at, event, "need, timeline, role and budget known")
        fit, _ = fit_score(fields, rules)
        engaged = value_at(engagement_log, at, half_life)
        if stage >= LEAD and fit >= rules.min_fit and engaged >= rules.min_engagement:
            move(OPPORTUNITY, at, event, f"qualified: fit {fit:g} ≥ {rules.min_fit:g} and engagement {engaged:.1f} ≥ {rules.min_engagement:g}")
        if sales is None and stage >= LEAD:
            if stage == OPPORTUNITY:
                sales = {"at": at, "event_id": event, "reason": f"opportunity: {history[-1]['reason']}"}
            elif fit >= rules.hot_fit and fields.get(LEAD_TIMELINE) in rules.hot_timelines:
                sales = {"at": at, "event_id": event, "reason": f"hot lead: fit {fit:g} and timeline {fields[LEAD_TIMELINE]!r}"}
    fit, parts = fit_score(fields, rules)
    last = facts[-1]["t"] if facts else None
    return {
        "rules": rules.digest,
        "stage": STAGES[stage],
        "history": history,
        "fit": {"score": fit, "parts": parts},
        "engagement": round(value_at(engagement_log, last, half_life), 4) if last is not None else 0.0,
        "sales_handover": sales,
    }
