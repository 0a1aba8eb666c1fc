"""Engagement scores, rule by rule and dimension by dimension, with decay and log-space ranking."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from analytics.engagement.rules import load_rules, parse_rules
from analytics.engagement.score import EPOCH, combine, contributions, engagement, log_score, value_at
from analytics.records.facts import Fact

RULES = load_rules()
DAY = 86400.0
T = EPOCH + 400 * DAY


def fact(kind: str, at: float, n: int = 0, **fields: Any) -> Fact:
    return {"id": f"e{n}-{kind}", "t": at, "k": kind, **fields}


def rules_fired(facts: List[Fact]) -> List[str]:
    return [c.rule for c in contributions(facts, RULES)]


def test_ideas_score_innovation_more_when_specific_and_in_use() -> None:
    vague = fact("idea", T, text="dark mode")
    specific = fact("idea", T, 1, text="a dark theme for the dashboard charts so night shifts can read them", context={"product": "Insights"})
    assert rules_fired([vague]) == ["idea_contributed"]
    assert rules_fired([specific]) == ["idea_contributed", "idea_specific", "idea_in_use"]


def test_communication_rewards_articulate_feedback_detailed_problems_and_depth() -> None:
    facts = [fact("session_started", T)] + [fact("user", T + i, i) for i in range(1, 7)]
    facts.append(fact("feedback", T + 10, text="the export to CSV drops the last column when the report has more than fifty rows", context={"page": "/reports"}))
    facts.append(fact("problem", T + 11, text="crash"))
    fired = rules_fired(facts)
    assert fired.count("conversation_depth") == 1  # once per session, at the 5th message
    assert {"feedback_given", "feedback_articulate", "feedback_in_use", "problem_reported"} <= set(fired)
    assert "problem_detailed" not in fired


def test_learning_counts_returns_on_new_days_self_service_and_new_features() -> None:
    facts = [
        fact("session_started", T, 1),
        fact("user", T + 1, 1, context={"product": "Insights", "feature": "charts"}),
        fact("faq_answered", T + 2, 1, text="how do I share a chart"),
        fact("session_started", T + 3600, 2),  # same day: not a return
        fact("user", T + 3601, 2, context={"product": "Insights", "feature": "charts"}),  # not new
        fact("session_started", T + 2 * DAY, 3),
        fact("user", T + 2 * DAY + 1, 3, context={"product": "Insights", "feature": "alerts"}),
    ]
    fired = rules_fired(facts)
    assert fired.count("returned") == 2  # the first day and the day after next
    assert fired.count("feature_adopted") == 2 and fired.count("answer_taken") == 1


def test_knowledge_needs_a_specific_technical_question_the_faq_cannot_answer() -> None:
    assert rules_fired([fact("faq_unanswered", T, text="does the SCIM endpoint support PATCH for group membership")]) == ["expert_question"]
    assert rules_fired([fact("faq_unanswered", T, text="what is the meaning of life and everything")]) == []
    assert rules_fired([fact("faq_unanswered", T, text="scim?")]) == []


def test_points_halve_every_half_life_and_rankings_hold_at_any_time() -> None:
    half_life = RULES.half_life_seconds
    old = [c for c in contributions([fact("idea", T - 60 * DAY, text="x")], RULES)]
    new = [c for c in contributions([fact("idea", T, text="x")], RULES)]
    assert value_at(log_score(new, half_life), T, half_life) == pytest.approx(10)
    assert value_at(log_score(old, half_life), T, half_life) == pytest.approx(5)
    # Ordering by log score is the ordering by decayed value, now and a year later.
    for when in (T, T + 365 * DAY):
        assert (value_at(log_score(new, half_life), when, half_life) > value_at(log_score(old, half_life), when, half_life))
    assert combine([log_score(new, half_life), log_score(old, half_life)]) == pytest.approx(log_score(new + old, half_life))
    assert combine([None, None]) is None and value_at(None, T, half_life) == 0.0


def test_a_tiny_half_life_over_decades_neither_overflows_nor_loses_the_order() -> None:
    rules = parse_rules("half_life_days: 0.01\nrules:\n  - {id: i, dimension: innovation, path: result, event: idea, points: 1, reason: r}\n")
    far = EPOCH + 30 * 365 * DAY
    scores = engagement([fact("idea", far, 1, text="x"), fact("idea", far + 1, 2, text="y")], rules, far + 1)
    assert scores["dimensions"]["innovation"]["log_score"] > 1e6  # way past 2**1024 as a plain number


def test_the_explanation_says_which_events_added_how_much() -> None:
    facts = [fact("idea", T, 1, text="dark mode"), fact("feedback", T + 5, 2, text="love it")]
    scores: Dict[str, Any] = engagement(facts, RULES, T + 5)
    innovation = scores["dimensions"]["innovation"]
    assert innovation["by_rule"] == {"idea_contributed": {"count": 1, "points": 10.0, "reason": "contributed an idea", "path": "result"}}
    assert innovation["recent"] == [{"rule": "idea_contributed", "points": 10.0, "at": T, "event_id": "e1-idea"}]
    assert innovation["paths"]["process"] is None and innovation["score"] == pytest.approx(10, rel=1e-4)
    assert scores["dimensions"]["recommendation"]["log_score"] is None  # no recommendation given, no score
    assert scores["co_creation"] is not None and scores["rules"] == RULES.digest


def test_recommendation_counts_promoters_and_referrals() -> None:
    facts = [fact("recommendation", T, 1, score=10), fact("recommendation", T + 1, 2, score=7), fact("referral", T + 2, 3, domain="x.example")]
    assert rules_fired(facts) == ["promoter", "answered_recommendation", "answered_recommendation", "referred_a_colleague"]
