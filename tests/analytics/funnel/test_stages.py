"""The lead funnel: each stage for its reason, forward only, fit by answer, the sales hand-off once."""

from __future__ import annotations

from typing import Any, List

import pytest

from analytics.engagement.rules import load_rules
from analytics.engagement.score import EPOCH
from analytics.funnel.rules import DEFAULT_RULES, FunnelRulesError, load_funnel_rules, parse_funnel_rules
from analytics.funnel.stages import fit_score, funnel
from analytics.records.facts import Fact

ENGAGEMENT = load_rules()
RULES = load_funnel_rules()
T = EPOCH + 500 * 86400.0


def fact(n: int, kind: str, **fields: Any) -> Fact:
    return {"id": f"e{n}", "t": T + n, "k": kind, **fields}


def lead_field(n: int, field: str, value: str) -> Fact:
    return fact(n, "lead_field_captured", field=field, value=value)


def run(facts: List[Fact]) -> dict:
    return funnel(facts, RULES, ENGAGEMENT)


def test_an_anonymous_visitor_stays_a_visitor_even_when_asking_for_prices() -> None:
    result = run([fact(1, "user", ch="socketio"), fact(2, "user", ch="socketio", intent="ask_pricing")])
    assert result["stage"] == "visitor"
    assert result["history"] == [{"stage": "visitor", "at": T + 1, "reason": "first contact", "event_id": "e1"}]


def test_each_stage_is_reached_for_its_reason_with_the_event_that_caused_it() -> None:
    facts = [
        fact(1, "user", ch="socketio"),
        fact(2, "user", ch="whatsapp"),
        fact(3, "user", ch="whatsapp", intent="request_demo"),
        lead_field(4, "lead_need", "reporting for 40 clinics"),
        lead_field(5, "lead_role", "Head of Operations"),
        lead_field(6, "lead_timeline", "Within a year"),
        lead_field(7, "lead_budget", "$5k–$25k / year"),
    ]
    result = run(facts)
    assert [(h["stage"], h["event_id"]) for h in result["history"]] == [
        ("visitor", "e1"), ("suspect", "e2"), ("prospect", "e3"), ("lead", "e7")
    ]
    assert "whatsapp" in result["history"][1]["reason"] and "request_demo" in result["history"][2]["reason"]
    assert result["fit"] == {"score": 55.0, "parts": {"role": 30.0, "timeline": 10.0, "budget": 15.0}}
    assert result["stage"] == "lead" and result["sales_handover"] is None  # fit 55 < 60


def test_a_qualified_engaged_lead_becomes_an_opportunity_and_goes_to_sales_once() -> None:
    facts = [fact(1, "identity_linked", identity="email:dana@acme.example")]
    facts += [fact(2 + i, "idea", text=f"idea number {i} about the reporting module and its charts", context={"page": "/r"}) for i in range(2)]
    facts += [lead_field(10, "lead_need", "audits"), lead_field(11, "lead_role", "VP Engineering"), lead_field(12, "lead_company", "Acme"),
              lead_field(13, "lead_timeline", "Within a year"), lead_field(14, "lead_budget", "Over $100k / year")]
    facts.append(fact(15, "user", ch="portal"))
    result = run(facts)
    assert result["stage"] == "opportunity"
    opportunity = result["history"][-1]
    assert opportunity["event_id"] == "e14" and opportunity["reason"].startswith("qualified: fit 85 ≥ 60 and engagement")
    assert result["sales_handover"] == {"at": T + 14, "event_id": "e14", "reason": f"opportunity: {opportunity['reason']}"}


def test_a_hot_lead_goes_to_sales_before_it_is_engaged_enough() -> None:
    facts = [fact(1, "user", ch="telegram"), lead_field(2, "lead_need", "x"), lead_field(3, "lead_role", "CTO"),
             lead_field(4, "lead_company", "Acme"), lead_field(5, "lead_timeline", "Within a month"), lead_field(6, "lead_budget", "Under $5k / year")]
    result = run(facts)
    assert result["stage"] == "lead" and result["fit"]["score"] == 75
    assert result["sales_handover"]["reason"] == "hot lead: fit 75 and timeline 'Within a month'"


def test_stages_never_move_back_and_the_raw_answers_do_not_demote() -> None:
    facts = [fact(1, "user", ch="portal", intent="ask_pricing")]
    assert run(facts)["stage"] == "prospect"
    facts.append(lead_field(2, "lead_budget", "Not sure yet"))
    facts.append(fact(3, "user", ch="socketio"))
    assert run(facts)["stage"] == "prospect"


def test_fit_counts_each_answer_once_and_caps_at_100() -> None:
    assert fit_score({}, RULES) == (0.0, {})
    score, parts = fit_score({"lead_role": "founder", "lead_budget": "Over $100k / year", "lead_timeline": "Within a month", "lead_company": "Acme"}, RULES)
    assert score == 100 and parts == {"role": 30, "budget": 30, "timeline": 25, "company": 15}
    assert fit_score({"lead_role": "intern"}, RULES)[1] == {"role": 10}


def test_funnel_rule_mistakes_are_named_by_line() -> None:
    broken = DEFAULT_RULES.read_text().replace("min_fit: 60", "min_fit: -1").replace('"Within 3 months": 20', '"Within 3 months": lots').replace("company: 15", "company: 15\n  colour: red")
    broken = broken.replace('- {pattern: "\\\\b(director', '- {pattern: "(unclosed", points: 1}\n    - {pattern: "\\\\b(director')
    with pytest.raises(FunnelRulesError) as caught:
        parse_funnel_rules(broken, "funnel.yml")
    message = str(caught.value)
    assert "opportunity.min_fit must be a number" in message
    assert "fit.timeline['Within 3 months'] must be a number" in message
    assert "is not a regular expression" in message
    assert "unknown fit setting 'colour'" in message
    assert all(line.strip().startswith("funnel.yml:") for line in message.splitlines()[1:])


def test_staff_can_move_a_customer_back_and_the_rules_wait_for_new_evidence() -> None:
    facts = [fact(1, "user", ch="portal", intent="ask_pricing"), lead_field(2, "lead_need", "x"), lead_field(3, "lead_role", "CTO"),
             lead_field(4, "lead_timeline", "Within a year"), lead_field(5, "lead_budget", "Under $5k / year")]
    assert run(facts)["stage"] == "lead"
    facts.append(fact(6, "stage_set", stage="suspect", by="sam", reason="student project, no budget"))
    facts.append(fact(7, "user", ch="portal"))  # talking on is no new evidence
    result = run(facts)
    assert result["stage"] == "suspect"
    assert result["history"][-1] == {"stage": "suspect", "at": T + 6, "reason": "set by sam: student project, no budget", "event_id": "e6"}
    facts.append(lead_field(8, "lead_budget", "$5k–$25k / year"))  # new evidence: the rules move them on again
    assert run(facts)["stage"] == "lead"
