"""Engagement rules from YAML (analytics/engagement/rules.yml), checked before anything is scored.

Every mistake is reported with its line, all at once; the service refuses to start with a
rule file it cannot trust rather than scoring wrongly.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from analytics.yaml_rules import read_text, read_yaml

DEFAULT_RULES = Path(__file__).with_name("rules.yml")

DIMENSIONS = ("innovation", "communication", "recommendation", "learning", "knowledge")
PATHS = ("result", "process")
KINDS = (
    "user", "session_started", "faq_answered", "faq_suggested", "faq_unanswered", "feedback", "idea", "problem",
    "lead_field_captured", "lead_submitted", "handover_requested", "recommendation", "referral",
)
CONDITIONS: Dict[str, type] = {
    "min_words": int,
    "has_context": bool,
    "sentiment": list,
    "technical": bool,
    "new_day": bool,
    "new_feature": bool,
    "nth_in_session": int,
    "min_score": int,
}


class RulesError(ValueError):
    """A rule file with mistakes; the message lists each one with its line."""


@dataclass(frozen=True)
class Rule:
    id: str
    dimension: str
    path: str
    event: str  # the fact kind it scores ("on" would read as a YAML boolean)
    points: float
    reason: str
    when: Tuple[Tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Rules:
    half_life_days: float
    rules: Tuple[Rule, ...]
    technical_terms: Tuple[str, ...] = ()
    digest: str = field(default="", compare=False)

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_days * 86400.0

    def for_kind(self, kind: str) -> List[Rule]:
        return self._by_kind.get(kind, [])

    @functools.cached_property
    def _by_kind(self) -> Dict[str, List[Rule]]:
        by_kind: Dict[str, List[Rule]] = {}
        for rule in self.rules:
            by_kind.setdefault(rule.event, []).append(rule)
        return by_kind


def load_rules(path: Optional[Path] = None) -> Rules:
    path = Path(path or DEFAULT_RULES)
    return parse_rules(read_text(path, "engagement rules", RulesError), str(path))


def parse_rules(text: str, source: str = "rules.yml") -> Rules:
    doc = read_yaml(text, source, RulesError)
    data = doc.data
    if not isinstance(data, dict):
        raise RulesError(f"{doc.line()}: expected a mapping with half_life_days, technical_terms and rules")
    problems: List[str] = [f"{doc.key_line(key)}: unknown setting {key!r}" for key in data if key not in ("half_life_days", "technical_terms", "rules")]
    half_life = data.get("half_life_days")
    if not isinstance(half_life, (int, float)) or isinstance(half_life, bool) or half_life <= 0:
        problems.append(f"{doc.line(doc.node('half_life_days'))}: half_life_days must be a positive number of days")
    terms = data.get("technical_terms") or []
    if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms):
        problems.append(f"{doc.line(doc.node('technical_terms'))}: technical_terms must be a list of words")
        terms = []
    raw_rules = data.get("rules")
    rules: List[Rule] = []
    if not isinstance(raw_rules, list):
        problems.append(f"{doc.line(doc.node('rules'))}: rules must be a list")
    else:
        seen: Dict[str, str] = {}
        for index, raw in enumerate(raw_rules):
            where = doc.line(doc.node("rules", index))
            rule, errors = _rule(raw, where)
            problems.extend(errors)
            if rule is not None:
                if rule.id in seen:
                    problems.append(f"{where}: rule id {rule.id!r} is used twice (first at {seen[rule.id]})")
                seen[rule.id] = where
                rules.append(rule)
    if problems:
        raise RulesError("the engagement rules have mistakes:\n  " + "\n  ".join(problems))
    return Rules(
        float(half_life),
        tuple(rules),
        tuple(t.strip().lower() for t in terms),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def _rule(raw: Any, where: str) -> Tuple[Optional[Rule], List[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where}: a rule must be a mapping (id, dimension, path, event, points, reason, when)"]
    problems: List[str] = []
    unknown = sorted(map(str, set(raw) - {"id", "dimension", "path", "event", "points", "reason", "when"}))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    rule_id = raw.get("id")
    name = f"rule {rule_id!r}" if rule_id else "a rule"
    if not isinstance(rule_id, str) or not rule_id:
        problems.append(f"{where}: {name} needs an id")
    for key, allowed in (("dimension", DIMENSIONS), ("path", PATHS), ("event", KINDS)):
        if raw.get(key) not in allowed:
            problems.append(f"{where}: {name}: {key} must be one of {', '.join(allowed)} (got {raw.get(key)!r})")
    points = raw.get("points")
    if not isinstance(points, (int, float)) or isinstance(points, bool) or points <= 0:
        problems.append(f"{where}: {name}: points must be a positive number")
    if not isinstance(raw.get("reason"), str) or not raw.get("reason"):
        problems.append(f"{where}: {name}: reason must say why the points are given")
    when = raw.get("when") or {}
    if not isinstance(when, dict):
        problems.append(f"{where}: {name}: when must be a mapping of conditions")
        when = {}
    for key, value in when.items():
        expected = CONDITIONS.get(key)
        if expected is None:
            problems.append(f"{where}: {name}: unknown condition {key!r} (known: {', '.join(CONDITIONS)})")
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{where}: {name}: condition {key} must be {expected.__name__}")
    if problems:
        return None, problems
    conditions = tuple(sorted((key, tuple(value) if isinstance(value, list) else value) for key, value in when.items()))
    return Rule(rule_id, raw["dimension"], raw["path"], raw["event"], float(points), raw["reason"], conditions), []
