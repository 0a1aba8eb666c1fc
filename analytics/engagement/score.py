"""Engagement capability scores: a pure fold over a customer's facts (in time order) under the rules.

A score is kept in log space relative to a fixed epoch: `log2(sum(points * 2 ** ((t - EPOCH) / h)))`
with `h` the half-life. Every customer's score then decays by the same factor as time passes,
so one sorted set orders them correctly at any moment (O(log n) leaderboards), and the value
at time T is `2 ** (log_score - (T - EPOCH) / h)`. Nothing here reads a clock.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from analytics.engagement.rules import DIMENSIONS, PATHS, Rules
from analytics.records.facts import Fact

EPOCH = 1_700_000_000.0  # 2023-11-14: any fixed instant works; scores are comparable against it
KEEP_CONTRIBUTIONS = 50  # newest contributions kept per dimension to explain the score
# The dimensions whose results make a customer a co-creator for the product team.
CO_CREATION = ("innovation", "communication", "knowledge")

_WORD = re.compile(r"\w+", re.UNICODE)
_UNKNOWN = object()  # total_log() not computed since the last contribution


@dataclass(frozen=True)
class Contribution:
    rule: str
    dimension: str
    path: str
    points: float
    at: float
    event_id: str
    reason: str


class EngagementState:
    """What the rules need to remember between facts, and the scores so far; folded one fact at a time.

    Applying facts one by one in their order is the only way scores are computed (a full
    rebuild is the same loop from an empty state), so incremental and rebuilt scores are
    the same floats, not merely close.
    """

    def __init__(self, rules: Rules, data: Optional[Dict[str, Any]] = None) -> None:
        self.rules = rules
        self.half_life = rules.half_life_seconds
        self._technical = _technical_terms(tuple(rules.technical_terms))
        data = data or {}
        self.days: Set[int] = set(data.get("days", ()))
        self.features: Set[str] = set(data.get("features", ()))
        self.in_session: int = data.get("in_session", 0)
        self.logs: Dict[str, Dict[str, Optional[float]]] = data.get("logs") or {d: {p: None for p in PATHS} for d in DIMENSIONS}
        self.by_rule: Dict[str, Dict[str, Dict[str, Any]]] = data.get("by_rule") or {d: {} for d in DIMENSIONS}
        self.recent: Dict[str, List[Dict[str, Any]]] = data.get("recent") or {d: [] for d in DIMENSIONS}
        self._total: object = _UNKNOWN  # total_log(), kept until a contribution changes it

    def to_json(self) -> Dict[str, Any]:
        return {
            "days": sorted(self.days), "features": sorted(self.features), "in_session": self.in_session,
            "logs": self.logs, "by_rule": self.by_rule, "recent": self.recent,
        }

    def step(self, fact: Fact) -> List[Contribution]:
        """Apply one fact (the next in order); returns what it contributed."""
        kind, at = fact["k"], float(fact["t"])
        day = int(at // 86400)
        new_day = day not in self.days
        self.days.add(day)
        if kind == "session_started":
            self.in_session = 0
        if kind == "user":
            self.in_session += 1
        feature = _feature(fact)
        new_feature = bool(feature) and feature not in self.features
        if feature:
            self.features.add(feature)
        rules = self.rules.for_kind(kind)
        if not rules:
            return []
        text = str(fact.get("text") or "")  # none on a message: its words stay in the log
        observed = {
            "min_words": len(_WORD.findall(text)) if text else 0,
            "has_context": bool(fact.get("context")),
            "sentiment": str(fact.get("sentiment") or ""),
            "technical": bool(text and self._technical and self._technical.search(text.lower())),
            "new_day": new_day,
            "new_feature": new_feature,
            "nth_in_session": self.in_session if kind == "user" else 0,
            "min_score": fact.get("score"),
        }
        found: List[Contribution] = []
        for rule in rules:
            if all(_holds(name, wanted, observed[name]) for name, wanted in rule.when):
                found.append(Contribution(rule.id, rule.dimension, rule.path, rule.points, at, str(fact.get("id", "")), rule.reason))
        if found:
            self._total = _UNKNOWN
        for c in found:
            paths = self.logs[c.dimension]
            paths[c.path] = add_log(paths[c.path], log_points(c.points, c.at, self.half_life))
            entry = self.by_rule[c.dimension].setdefault(c.rule, {"count": 0, "points": 0.0, "reason": c.reason, "path": c.path})
            entry["count"] += 1
            entry["points"] += c.points
            recent = self.recent[c.dimension]
            recent.append({"rule": c.rule, "points": c.points, "at": c.at, "event_id": c.event_id})
            del recent[:-KEEP_CONTRIBUTIONS]
        return found

    def total_log(self) -> Optional[float]:
        """All dimensions together (the funnel's engagement score), in log space."""
        # A fixed order: a state read back from canonical JSON has its keys sorted, and float sums follow the order.
        if self._total is _UNKNOWN:
            self._total = combine(self.logs[d][p] for d in DIMENSIONS for p in PATHS)
        return self._total  # type: ignore[return-value]

    def log_scores(self) -> Dict[str, Optional[float]]:
        """Each dimension's total in log space (rounded as the view shows it): what leaderboards rank by."""
        return {dimension: _round(combine(self.logs[dimension][path] for path in PATHS)) for dimension in DIMENSIONS}

    def co_creation(self, log_scores: Dict[str, Optional[float]]) -> Optional[float]:
        return _round(combine(log_scores[d] for d in CO_CREATION))

    def view(self, as_of: Optional[float]) -> Dict[str, Any]:
        """Scores per dimension (total, result and process paths, log space and as of `as_of`), explained."""
        dimensions: Dict[str, Any] = {}
        for dimension in DIMENSIONS:
            paths = self.logs[dimension]
            total = combine(paths[path] for path in PATHS)
            dimensions[dimension] = {
                "log_score": _round(total),
                "paths": {path: _round(paths[path]) for path in PATHS},
                "score": round(value_at(total, as_of, self.half_life), 4) if as_of is not None else 0.0,
                "by_rule": self.by_rule[dimension],
                "recent": self.recent[dimension],
            }
        return {
            "rules": self.rules.digest,
            "half_life_days": self.rules.half_life_days,
            "as_of": as_of,
            "dimensions": dimensions,
            "co_creation": self.co_creation({d: dimensions[d]["log_score"] for d in DIMENSIONS}),
        }


def contributions(facts: Sequence[Fact], rules: Rules) -> List[Contribution]:
    """What each fact added, in fact order (`facts` already in order)."""
    state = EngagementState(rules)
    return [c for fact in facts for c in state.step(fact)]


def _holds(name: str, wanted: Any, actual: Any) -> bool:
    if name == "min_words":
        return int(actual) >= wanted
    if name == "min_score":
        return isinstance(actual, (int, float)) and actual >= wanted
    if name == "sentiment":
        return actual in wanted
    if name == "nth_in_session":
        return actual == wanted  # once per session
    return bool(actual) is bool(wanted)


def _feature(fact: Fact) -> str:
    context = fact.get("context") or {}
    feature = context.get("feature") if isinstance(context, dict) else None
    return f"{context.get('product', '')}/{feature}" if feature else ""


@functools.lru_cache(maxsize=8)
def _technical_terms(terms: Tuple[str, ...]) -> Optional["re.Pattern[str]"]:
    words = sorted({t for t in terms if t}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b") if words else None


def log_points(points: float, at: float, half_life: float) -> float:
    """One contribution in log space: log2(points * 2 ** ((at - EPOCH) / half_life))."""
    return math.log2(points) + (at - EPOCH) / half_life


def add_log(total: Optional[float], log: float) -> float:
    """log2(2**total + 2**log) without overflow."""
    if total is None:
        return log
    top, low = (total, log) if total >= log else (log, total)
    return top + math.log2(1.0 + 2.0 ** (low - top))


def log_score(items: Iterable[Contribution], half_life: float) -> Optional[float]:
    """log2 of the decayed sum of contributions relative to EPOCH, added in the given order."""
    total: Optional[float] = None
    for c in items:
        total = add_log(total, log_points(c.points, c.at, half_life))
    return total


def combine(log_scores: Iterable[Optional[float]]) -> Optional[float]:
    total: Optional[float] = None
    for log in log_scores:
        if log is not None:
            total = add_log(total, log)
    return total


def value_at(log: Optional[float], at: float, half_life: float) -> float:
    """The decayed score at time `at` (0 when there is none)."""
    return 0.0 if log is None else 2.0 ** (log - (at - EPOCH) / half_life)


def engagement(facts: Sequence[Fact], rules: Rules, as_of: Optional[float]) -> Dict[str, Any]:
    """The scores of a customer with these facts (in order), as of `as_of`."""
    state = EngagementState(rules)
    for fact in facts:
        state.step(fact)
    return state.view(as_of)


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 9)
