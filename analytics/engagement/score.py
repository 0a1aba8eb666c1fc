"""Engagement capability scores: a pure fold over a customer's facts (in time order) under the rules.

A score is kept in log space relative to a fixed epoch: `log2(sum(points * 2 ** ((t - EPOCH) / h)))`
with `h` the half-life. Every customer's score then decays by the same factor as time passes,
so one sorted set orders them correctly at any moment (O(log n) leaderboards), and the value
at time T is `2 ** (log_score - (T - EPOCH) / h)`. Nothing here reads a clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

from analytics.engagement.rules import DIMENSIONS, PATHS, Rule, Rules
from analytics.records.facts import Fact

EPOCH = 1_700_000_000.0  # 2023-11-14: any fixed instant works; scores are comparable against it
KEEP_CONTRIBUTIONS = 50  # newest contributions kept per dimension to explain the score
# The dimensions whose results make a customer a co-creator for the product team.
CO_CREATION = ("innovation", "communication", "knowledge")

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Contribution:
    rule: str
    dimension: str
    path: str
    points: float
    at: float
    event_id: str
    reason: str


def contributions(facts: Sequence[Fact], rules: Rules) -> List[Contribution]:
    """What each fact added, in fact order. `facts` must already be in time order."""
    technical = _terms(rules.technical_terms)
    days: Set[int] = set()
    features: Set[str] = set()
    in_session = 0
    found: List[Contribution] = []
    for fact in facts:
        kind, at = fact["k"], float(fact["t"])
        day = int(at // 86400)
        new_day = day not in days
        days.add(day)
        if kind == "session_started":
            in_session = 0
        if kind == "user":
            in_session += 1
        feature = _feature(fact)
        new_feature = bool(feature) and feature not in features
        if feature:
            features.add(feature)
        text = str(fact.get("text") or "")
        facts_of = {
            "min_words": len(_WORD.findall(text)),
            "has_context": bool(fact.get("context")),
            "sentiment": str(fact.get("sentiment") or ""),
            "technical": bool(technical and technical.search(text.lower())),
            "new_day": new_day,
            "new_feature": new_feature,
            "nth_in_session": in_session if kind == "user" else 0,
            "min_score": fact.get("score"),
        }
        for rule in rules.for_kind(kind):
            if all(_holds(name, wanted, facts_of[name]) for name, wanted in rule.when):
                found.append(Contribution(rule.id, rule.dimension, rule.path, rule.points, at, str(fact.get("id", "")), rule.reason))
    return found


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


def _terms(terms: Iterable[str]) -> Optional["re.Pattern[str]"]:
    words = sorted({t for t in terms if t}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b") if words else None


def log_score(items: Iterable[Contribution], half_life: float) -> Optional[float]:
    """log2 of the decayed sum relative to EPOCH (log-sum-exp, so no overflow for any half-life)."""
    exponents = [math.log2(c.points) + (c.at - EPOCH) / half_life for c in items]
    if not exponents:
        return None
    top = max(exponents)
    return top + math.log2(sum(2.0 ** (e - top) for e in exponents))


def combine(log_scores: Iterable[Optional[float]]) -> Optional[float]:
    present = [s for s in log_scores if s is not None]
    if not present:
        return None
    top = max(present)
    return top + math.log2(sum(2.0 ** (s - top) for s in present))


def value_at(log: Optional[float], at: float, half_life: float) -> float:
    """The decayed score at time `at` (0 when there is none)."""
    return 0.0 if log is None else 2.0 ** (log - (at - EPOCH) / half_life)


def engagement(found: Sequence[Contribution], rules: Rules, as_of: Optional[float]) -> Dict[str, Any]:
    """Scores per dimension from `contributions(...)` (total, result and process paths, in log space and
    as of `as_of`, the last fact), with their explanation."""
    half_life = rules.half_life_seconds
    dimensions: Dict[str, Any] = {}
    for dimension in DIMENSIONS:
        mine = [c for c in found if c.dimension == dimension]
        paths = {path: log_score([c for c in mine if c.path == path], half_life) for path in PATHS}
        total = combine(paths.values())
        by_rule: Dict[str, Dict[str, Any]] = {}
        for c in mine:
            entry = by_rule.setdefault(c.rule, {"count": 0, "points": 0.0, "reason": c.reason, "path": c.path})
            entry["count"] += 1
            entry["points"] += c.points
        dimensions[dimension] = {
            "log_score": _round(total),
            "paths": {path: _round(value) for path, value in paths.items()},
            "score": round(value_at(total, as_of, half_life), 4) if as_of is not None else 0.0,
            "by_rule": by_rule,
            "recent": [
                {"rule": c.rule, "points": c.points, "at": c.at, "event_id": c.event_id} for c in mine[-KEEP_CONTRIBUTIONS:]
            ],
        }
    co_creation = combine(dimensions[d]["log_score"] for d in CO_CREATION)
    return {
        "rules": rules.digest,
        "half_life_days": rules.half_life_days,
        "as_of": as_of,
        "dimensions": dimensions,
        "co_creation": _round(co_creation),
    }


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 9)
