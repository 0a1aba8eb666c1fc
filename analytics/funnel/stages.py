"""The lead funnel as a pure fold over a customer's facts in time order.

Stages move forward only, each change recorded with its time, its reason and the event that
caused it. Fit (who they are) does not decay; engagement (what they do) is the customer's
engagement capability at that moment, so the same facts always give the same history.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from analytics.engagement.rules import Rules
from analytics.engagement.score import EngagementState, value_at
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


class FunnelState:
    """Where a customer stands, folded one fact at a time (a rebuild is the same loop from empty)."""

    def __init__(self, rules: FunnelRules, half_life: float, data: Optional[Dict[str, Any]] = None) -> None:
        self.rules = rules
        self.half_life = half_life
        data = data or {}
        self.stage: int = data.get("stage", VISITOR)
        self.history: List[Dict[str, Any]] = data.get("history", [])
        self.identified: Optional[str] = data.get("identified")
        self.interest: Optional[str] = data.get("interest")
        self.fields: Dict[str, str] = data.get("fields", {})
        self.sales: Optional[Dict[str, Any]] = data.get("sales")
        self.engagement_log: Optional[float] = data.get("engagement_log")
        self.last: Optional[float] = data.get("last")
        self.held: bool = data.get("held", False)  # staff set the stage: the rules wait for new evidence
        self._fit: Optional[float] = None  # fit_score of `fields`, kept until an answer changes them

    def to_json(self) -> Dict[str, Any]:
        return {
            "stage": self.stage, "history": self.history, "identified": self.identified, "interest": self.interest,
            "fields": self.fields, "sales": self.sales, "engagement_log": self.engagement_log, "last": self.last,
            "held": self.held,
        }

    def _move(self, to: int, at: float, event: str, reason: str) -> None:
        while self.stage < to:
            self.stage += 1
            self.history.append({"stage": STAGES[self.stage], "at": at, "reason": reason, "event_id": event})

    def step(self, fact: Fact, engagement_log: Optional[float]) -> None:
        """Apply the next fact; `engagement_log` is the customer's engagement (log space) once it is counted."""
        rules = self.rules
        at, kind, event = fact["t"], fact["k"], str(fact.get("id", ""))
        self.engagement_log = engagement_log
        self.last = at
        if not self.history:
            self.history.append({"stage": STAGES[VISITOR], "at": at, "reason": "first contact", "event_id": event})
        evidence = (self.identified, self.interest, dict(self.fields)) if self.held else None
        if kind == "user" and fact.get("ch") in rules.identified_channels and self.identified is None:
            self.identified = f"wrote on {fact['ch']}, which proves who they are"
        if kind == "user" and fact.get("intent") in rules.interest_intents and self.interest is None:
            self.interest = f"asked about an offering ({fact['intent']})"
        if kind == "identity_linked" and self.identified is None:
            self.identified = f"confirmed {str(fact.get('identity', '')).split(':', 1)[0] or 'an identity'}"
        if kind == "lead_field_captured" and fact.get("field"):
            self.fields[fact["field"]] = str(fact.get("value") or "")
            self._fit = None
            self.interest = self.interest or "started the sales form"
            if fact["field"] == LEAD_EMAIL and self.identified is None:
                self.identified = "gave an e-mail address in the sales form"
        if kind == "stage_set" and fact.get("stage") in STAGES:
            # Staff decide, forward or back; the rules move the customer on only on new evidence.
            self.stage = STAGES.index(fact["stage"])
            reason = f"set by {fact.get('by') or 'staff'}" + (f": {fact['reason']}" if fact.get("reason") else "")
            self.history.append({"stage": fact["stage"], "at": at, "reason": reason, "event_id": event})
            self.held = True
            return
        if self.held and evidence == (self.identified, self.interest, self.fields):
            return
        self.held = False
        if self.identified:
            self._move(SUSPECT, at, event, self.identified)
        if self.identified and self.interest:
            self._move(PROSPECT, at, event, self.interest)
        if self.stage == PROSPECT and all(self.fields.get(name) for name in rules.lead_fields):
            self._move(LEAD, at, event, "need, timeline, role and budget known")
        if self.stage < LEAD:
            return  # fit and engagement decide only from lead on
        if self._fit is None:
            self._fit = fit_score(self.fields, rules)[0]
        fit = self._fit
        engaged = value_at(engagement_log, at, self.half_life)
        if fit >= rules.min_fit and engaged >= rules.min_engagement:
            self._move(OPPORTUNITY, at, event, f"qualified: fit {fit:g} ≥ {rules.min_fit:g} and engagement {engaged:.1f} ≥ {rules.min_engagement:g}")
        if self.sales is None:
            if self.stage == OPPORTUNITY:
                self.sales = {"at": at, "event_id": event, "reason": f"opportunity: {self.history[-1]['reason']}"}
            elif fit >= rules.hot_fit and self.fields.get(LEAD_TIMELINE) in rules.hot_timelines:
                self.sales = {"at": at, "event_id": event, "reason": f"hot lead: fit {fit:g} and timeline {self.fields[LEAD_TIMELINE]!r}"}

    def view(self) -> Dict[str, Any]:
        fit, parts = fit_score(self.fields, self.rules)
        return {
            "rules": self.rules.digest,
            "stage": STAGES[self.stage],
            "history": self.history,
            "fit": {"score": fit, "parts": parts},
            "engagement": round(value_at(self.engagement_log, self.last, self.half_life), 4) if self.last is not None else 0.0,
            "sales_handover": self.sales,
        }


def funnel(facts: Sequence[Fact], rules: FunnelRules, engagement_rules: Rules) -> Dict[str, Any]:
    """The funnel of a customer with these facts (in order)."""
    engagement = EngagementState(engagement_rules)
    state = FunnelState(rules, engagement_rules.half_life_seconds)
    for fact in facts:
        engagement.step(fact)
        state.step(fact, engagement.total_log())
    return state.view()
