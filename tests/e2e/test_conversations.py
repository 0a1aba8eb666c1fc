"""Whole conversations through REST against the running stack, checked in the replies and the Redis log."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Callable, Dict, List

import redis
import requests
import yaml

from analytics.schema import HANDOVER_QUEUE, SCHEMA_VERSION, SOURCE_ACTION, SOURCE_RASA, LogEvent, handover_request_key
from scripts.stack import ROOT, Stack
from tests.e2e.conftest import Replies, log_events, texts, tracker

Chat = Callable[..., Replies]


def of_type(events: List[LogEvent], kind: str) -> List[LogEvent]:
    return [e for e in events if e.type == kind]


def faq_answers() -> Dict[str, str]:
    answers: Dict[str, str] = {}
    for path in sorted((ROOT / "knowledge_base" / "faqs").glob("*.yml")):
        for entry in yaml.safe_load(path.read_text()):
            answers[entry["id"]] = entry["answer"].strip()
    return answers


def test_rasa_3_6_server_is_served_by_a_rasa_sdk_3_21_action_server(stack: Stack, chat: Chat, sender: str) -> None:
    version = requests.get(f"{stack.rasa_url}/version", timeout=10).json()
    assert version["version"] == "3.6.21"
    assert importlib.metadata.version("rasa-sdk").startswith("3.21.")
    assert requests.get(f"{stack.actions_url}/health", timeout=10).json() == {"status": "ok"}
    # A custom action's reply proves the 3.21 webhook answer is accepted by the 3.6 server.
    replies = chat(sender, "Do you support single sign-on with SAML?")
    assert texts(replies).strip()
    # The SDK warns on every call from a different major.minor; we silence that one warning knowingly
    # (actions/server_hooks.py), having checked the wire format both ways.
    log = (stack.logs / "actions.log").read_text()
    assert "might not be compatible" not in log


def test_greeting_is_logged_with_intent_confidence_channel_and_schema(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    replies = chat(sender, "hello there")
    assert "Quillstack" in texts(replies)
    assert any(r.get("buttons") for r in replies)
    events = log_events(store, sender, want="bot")
    user = of_type(events, "user")
    assert len(user) == 1 and user[0].intent == "greet" and user[0].confidence and user[0].confidence > 0.5
    assert user[0].text == "hello there"
    assert {e.channel for e in events} == {"rest"}
    assert {e.schema_version for e in events} == {SCHEMA_VERSION}
    bot = of_type(events, "bot")
    assert bot and bot[0].data.get("buttons")


def test_every_tracker_event_is_in_the_log(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    for text in ("hi", "how do I connect Slack?", "thanks", "bye"):
        chat(sender, text)
    stored = tracker(stack, sender)["events"]
    logged = [e for e in log_events(store, sender) if e.source == SOURCE_RASA]
    assert [(e["event"], e["timestamp"]) for e in stored] == [(e.type, e.timestamp) for e in logged]


def test_faq_question_is_answered_from_the_knowledge_base(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    replies = chat(sender, "how can I set up SAML single sign-on for my team?")
    events = log_events(store, sender, want="faq_answered")
    answered = of_type(events, "faq_answered")
    assert len(answered) == 1, [e.type for e in events]
    record = answered[0]
    assert record.source == SOURCE_ACTION
    assert record.data["faq_id"] == "security-sso-saml-setup"
    assert record.data["score"] > 0.5
    assert faq_answers()["security-sso-saml-setup"][:60] in texts(replies)


def test_unknown_question_is_admitted_and_logged_as_a_gap(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    question = "Does Quillstack Forms support e-signatures with DocuSign?"  # not in the knowledge base
    replies = chat(sender, question)
    events = log_events(store, sender, want="faq_unanswered")
    assert "faq_answered" not in [e.type for e in events], texts(replies)
    gap = of_type(events, "faq_unanswered")
    assert len(gap) == 1 and gap[0].data["query"] == question
    assert gap[0].data["score"] < 0.5
    assert any(b["payload"] == "/request_human" for r in replies for b in r.get("buttons") or []), replies


def test_in_use_feedback_is_stored_with_sentiment_and_context(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    context = {"product": "insights", "feature": "dashboards", "page": "/insights/d/42", "app_version": "5.2.0"}
    replies = chat(sender, "the new dashboard filters in Insights are really great, love them", metadata=context)
    assert texts(replies).strip()
    feedback = of_type(log_events(store, sender, want="feedback"), "feedback")
    assert len(feedback) == 1
    assert feedback[0].data["sentiment"] == "positive"
    assert feedback[0].data["context"] == context

    chat(sender, "honestly the search in Docs is painfully slow and keeps frustrating me", metadata=context)
    feedback = of_type(log_events(store, sender, want=None), "feedback")
    assert [f.data["sentiment"] for f in feedback] == ["positive", "negative"]


def test_idea_form_collects_what_and_why(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    chat(sender, "I have an idea for you")
    chat(sender, "let us export Insights dashboards straight to PowerPoint slides")
    replies = chat(sender, "our managers present them weekly and rebuild every slide by hand")
    assert re.search(r"IDEA-[0-9A-F]{6}", texts(replies)), texts(replies)
    ideas = of_type(log_events(store, sender, want="idea"), "idea")
    assert len(ideas) == 1
    assert "PowerPoint" in ideas[0].data["summary"]
    assert "by hand" in ideas[0].data["benefit"]


def test_problem_form_with_a_question_in_the_middle(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    chat(sender, "something is broken")
    chat(sender, "exporting form responses to CSV fails with error 500")
    # An interruption: the FAQ answers it, then the form asks its question again.
    interrupted = chat(sender, "by the way, how do I connect Slack?")
    assert len(interrupted) >= 2, interrupted
    replies = chat(sender, "in Forms, on the results page, Chrome on Windows")
    assert re.search(r"PRB-[0-9A-F]{6}", texts(replies)), texts(replies)
    events = log_events(store, sender, want="problem")
    problems = of_type(events, "problem")
    assert len(problems) == 1
    assert "CSV" in problems[0].data["description"]
    assert "results page" in problems[0].data["location"]
    assert of_type(events, "faq_answered")


def test_sales_form_reasks_invalid_email_and_accepts_a_correction(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    chat(sender, "I'd like to book a demo")
    chat(sender, "Dana Whitfield")
    reask = chat(sender, "dana at northbeam")
    assert "@" in texts(reask)  # the re-ask shows what an address looks like
    chat(sender, "dana@northbeam.example")
    chat(sender, "Northbeam Logistics")
    chat(sender, "Head of Operations")
    chat(sender, "a shared knowledge base for 300 field staff")
    chat(sender, "this quarter")
    confirm = chat(sender, "about 40k a year")
    assert "dana@northbeam.example" in texts(confirm)
    chat(sender, "/deny")
    chat(sender, '/correct_field{"field": "lead_email"}')
    confirm = chat(sender, "dana.whitfield@northbeam.example")
    assert "dana.whitfield@northbeam.example" in texts(confirm)
    done = chat(sender, "/affirm")
    assert re.search(r"LEAD-[0-9A-F]{6}", texts(done)), texts(done)

    events = log_events(store, sender, want="lead_submitted")
    captured = {e.data["field"] for e in of_type(events, "lead_field_captured")}
    assert captured == {"lead_name", "lead_email", "lead_company", "lead_role", "lead_need", "lead_timeline", "lead_budget"}
    lead = of_type(events, "lead_submitted")[0].data["lead"]
    assert lead["email"] == "dana.whitfield@northbeam.example"
    assert lead["company"] == "Northbeam Logistics"


def test_request_for_a_person_is_queued_for_staff(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    replies = chat(sender, "I want to talk to a real person please")
    assert texts(replies).strip()
    assert of_type(log_events(store, sender, want="handover_requested"), "handover_requested")
    assert store.zscore(HANDOVER_QUEUE, sender) is not None
    assert store.hgetall(handover_request_key(sender))["channel"] == "rest"


def test_out_of_scope_gets_a_polite_boundary(stack: Stack, store: redis.Redis, chat: Chat, sender: str) -> None:
    replies = chat(sender, "what's the weather going to be like in Paris tomorrow?")
    assert texts(replies).strip()
    user = of_type(log_events(store, sender, want="bot"), "user")[0]
    assert user.intent in ("out_of_scope", "nlu_fallback")
