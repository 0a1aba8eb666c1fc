"""Funnel rules from YAML (analytics/funnel/rules.yml), checked before any stage is decided."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from analytics.yaml_rules import read_text, read_yaml

DEFAULT_RULES = Path(__file__).with_name("rules.yml")
STAGES = ("visitor", "suspect", "prospect", "lead", "opportunity")
FIT_PARTS = ("role", "budget", "timeline", "company")
SETTINGS = ("identified_channels", "interest_intents", "lead_fields", "fit", "opportunity", "hot_lead")


class FunnelRulesError(ValueError):
    """A funnel rule file with mistakes; the message lists each one with its line."""


@dataclass(frozen=True)
class FunnelRules:
    identified_channels: Tuple[str, ...]
    interest_intents: Tuple[str, ...]
    lead_fields: Tuple[str, ...]
    role_points: Tuple[Tuple["re.Pattern[str]", float], ...]
    budget_points: Dict[str, float]
    timeline_points: Dict[str, float]
    company_points: float
    min_fit: float
    min_engagement: float
    hot_fit: float
    hot_timelines: Tuple[str, ...]
    digest: str = field(default="", compare=False)


def load_funnel_rules(path: Optional[Path] = None) -> FunnelRules:
    path = Path(path or DEFAULT_RULES)
    return parse_funnel_rules(read_text(path, "funnel rules", FunnelRulesError), str(path))


def parse_funnel_rules(text: str, source: str = "rules.yml") -> FunnelRules:
    doc = read_yaml(text, source, FunnelRulesError)
    data = doc.data
    if not isinstance(data, dict):
        raise FunnelRulesError(f"{doc.line()}: expected a mapping with {', '.join(SETTINGS)}")
    problems: List[str] = [f"{doc.key_line(key)}: unknown setting {key!r}" for key in data if key not in SETTINGS]
    problems += [f"{doc.line()}: {key} is missing" for key in SETTINGS if key not in data]

    def words(key: str) -> Tuple[str, ...]:
        value = data.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            problems.append(f"{doc.line(doc.node(key))}: {key} must be a non-empty list of names")
            return ()
        return tuple(value)

    def number(where: Any, value: Any, what: str) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            problems.append(f"{doc.line(where)}: {what} must be a number, 0 or more")
            return 0.0
        return float(value)

    def points_table(key: str) -> Dict[str, float]:
        table = fit.get(key)
        if not isinstance(table, dict) or not table:
            problems.append(f"{doc.line(doc.node('fit', key))}: fit.{key} must map each value to its points")
            return {}
        return {str(name): number(doc.node("fit", key, name), value, f"fit.{key}[{name!r}]") for name, value in table.items()}

    fit = data.get("fit") if isinstance(data.get("fit"), dict) else {}
    if "fit" in data and not isinstance(data.get("fit"), dict):
        problems.append(f"{doc.line(doc.node('fit'))}: fit must be a mapping (role, budget, timeline, company)")
    problems += [f"{doc.line(doc.node('fit', key) or doc.node('fit'))}: unknown fit setting {key!r}" for key in fit if key not in FIT_PARTS]
    roles: List[Tuple["re.Pattern[str]", float]] = []
    raw_roles = fit.get("role")
    if not isinstance(raw_roles, list) or not raw_roles:
        problems.append(f"{doc.line(doc.node('fit', 'role'))}: fit.role must be a list of {{pattern, points}}")
    else:
        for index, item in enumerate(raw_roles):
            where = doc.node("fit", "role", index)
            if not isinstance(item, dict) or set(item) != {"pattern", "points"}:
                problems.append(f"{doc.line(where)}: each fit.role entry needs exactly pattern and points")
                continue
            try:
                pattern = re.compile(str(item["pattern"]), re.IGNORECASE)
            except re.error as exc:
                problems.append(f"{doc.line(where)}: fit.role pattern {item['pattern']!r} is not a regular expression ({exc})")
                continue
            roles.append((pattern, number(where, item["points"], "fit.role points")))
    budget, timeline = points_table("budget"), points_table("timeline")
    company = number(doc.node("fit", "company"), fit.get("company", 0), "fit.company")
    opportunity = data.get("opportunity") if isinstance(data.get("opportunity"), dict) else {}
    hot = data.get("hot_lead") if isinstance(data.get("hot_lead"), dict) else {}
    min_fit = number(doc.node("opportunity", "min_fit") or doc.node("opportunity"), opportunity.get("min_fit"), "opportunity.min_fit")
    min_engagement = number(doc.node("opportunity", "min_engagement") or doc.node("opportunity"), opportunity.get("min_engagement"), "opportunity.min_engagement")
    hot_fit = number(doc.node("hot_lead", "min_fit") or doc.node("hot_lead"), hot.get("min_fit"), "hot_lead.min_fit")
    hot_timelines = hot.get("timelines")
    if not isinstance(hot_timelines, list) or not all(t in timeline for t in hot_timelines):
        problems.append(f"{doc.line(doc.node('hot_lead', 'timelines') or doc.node('hot_lead'))}: hot_lead.timelines must list timelines named in fit.timeline")
        hot_timelines = []
    rules = FunnelRules(
        identified_channels=words("identified_channels"),
        interest_intents=words("interest_intents"),
        lead_fields=words("lead_fields"),
        role_points=tuple(roles),
        budget_points=budget,
        timeline_points=timeline,
        company_points=company,
        min_fit=min_fit,
        min_engagement=min_engagement,
        hot_fit=hot_fit,
        hot_timelines=tuple(hot_timelines),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
    if problems:
        raise FunnelRulesError("the funnel rules have mistakes:\n  " + "\n  ".join(problems))
    return rules
