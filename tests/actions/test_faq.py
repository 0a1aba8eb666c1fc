"""action_answer_faq: the three policy branches, suggestion clicks, odd queries, a missing knowledge base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import faq
from actions.faq import ActionAnswerFaq, suggestion_payload
from analytics.schema import FAQ_ANSWERED, FAQ_SUGGESTED, FAQ_UNANSWERED, SOURCE_ACTION
from knowledge_base.service import KnowledgeBaseProvider
from tests.actions.conftest import EventLog, action_event, bot_event, entity, make_tracker, user_event
from tests.knowledge_base.helpers import BagOfWordsEncoder, write_sample_kb


@pytest.fixture
def provider(tmp_path: Path) -> KnowledgeBaseProvider:
    faq_dir, config = write_sample_kb(tmp_path)
    return KnowledgeBaseProvider(directory=faq_dir, config=config, encoder_factory=BagOfWordsEncoder)


async def ask(action: ActionAnswerFaq, tracker) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    assert events == []
    return dispatcher


async def test_a_confident_match_is_answered_with_its_link(provider, event_log: EventLog) -> None:
    action = ActionAnswerFaq(provider=provider, writer=event_log.writer)
    dispatcher = await ask(action, make_tracker("How do I reset my password?", sender_id="c-answer"))
    (message,) = dispatcher.messages
    assert message["text"] == (
        "Use 'Forgot password' on the sign-in page.\n\nMore: https://help.quillstack.example/account/password"
    )
    assert message["buttons"] == []
    (record,) = await event_log.records(FAQ_ANSWERED)
    assert (record.conversation_id, record.source, record.channel) == ("c-answer", SOURCE_ACTION, "rest")
    assert record.data["faq_id"] == "reset-password"
    assert record.data["via"] == "search"
    assert record.data["score"] == pytest.approx(1.0, abs=1e-3)
    assert record.data["query"] == "How do I reset my password?"
    assert record.data["matched"] == "How do I reset my password?"
    assert record.data["search_ms"] >= 0


async def test_an_uncertain_match_offers_did_you_mean_buttons(provider, event_log: EventLog) -> None:
    action = ActionAnswerFaq(provider=provider, writer=event_log.writer)
    # Bag-of-words cosine: 2 shared words with the CSV question (0.53), 1 with the PDF one (0.27).
    dispatcher = await ask(action, make_tracker("export responses"))
    (message,) = dispatcher.messages
    assert message["text"] == faq.DID_YOU_MEAN
    assert message["buttons"] == [
        {"title": "Can I export form responses to CSV?", "payload": '/ask_question{"faq_id":"export-csv"}'},
        {"title": "Can I export a page to PDF?", "payload": '/ask_question{"faq_id":"export-pdf"}'},
    ]
    (record,) = await event_log.records(FAQ_SUGGESTED)
    assert record.data["query"] == "export responses"
    assert record.data["faq_id"] == "export-csv"
    assert [s["faq_id"] for s in record.data["suggestions"]] == ["export-csv", "export-pdf"]
    assert record.data["score"] == pytest.approx(2 / (2**0.5 * 7**0.5), abs=1e-3)


async def test_no_match_is_admitted_offers_a_person_and_is_logged_with_its_score(provider, event_log: EventLog) -> None:
    action = ActionAnswerFaq(provider=provider, writer=event_log.writer)
    dispatcher = await ask(action, make_tracker("what is the weather tomorrow"))
    (message,) = dispatcher.messages
    assert message["text"] == faq.DONT_KNOW
    assert message["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    (record,) = await event_log.records(FAQ_UNANSWERED)
    assert record.data["reason"] == "low_score"
    assert record.data["query"] == "what is the weather tomorrow"
    assert isinstance(record.data["score"], float) and record.data["score"] < 0.25


async def test_clicking_a_suggestion_answers_it_and_logs_implicit_feedback(provider, event_log: EventLog) -> None:
    history = [action_event("action_listen"), user_event("export responses"), bot_event(faq.DID_YOU_MEAN)]
    payload = suggestion_payload("export-pdf")
    tracker = make_tracker(payload, entities=[entity("faq_id", "export-pdf")], history=history)
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), tracker)
    assert dispatcher.messages[0]["text"] == "Open the page menu and choose Export, then PDF."
    (record,) = await event_log.records(FAQ_ANSWERED)
    assert record.data == {"query": "export responses", "faq_id": "export-pdf", "score": None, "via": "suggestion"}


async def test_an_unknown_suggestion_id_is_handled(provider, event_log: EventLog) -> None:
    tracker = make_tracker('/ask_question{"faq_id":"gone"}', entities=[entity("faq_id", "gone")])
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), tracker)
    assert dispatcher.messages[0]["text"] == faq.UNKNOWN_SUGGESTION
    (record,) = await event_log.records(FAQ_UNANSWERED)
    assert record.data["reason"] == "unknown_faq_id" and record.data["chosen"] == "gone"


@pytest.mark.parametrize("text", ["", "   ", "🙂🙂🙂", "?!", "/ask_question"])
async def test_nothing_to_search_for_asks_for_the_question(provider, event_log: EventLog, text: str) -> None:
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), make_tracker(text))
    assert [m["text"] for m in dispatcher.messages] == [faq.ASK_FOR_QUESTION]
    assert await event_log.records() == []


async def test_a_10000_character_query_is_answered_and_logged_truncated(provider, event_log: EventLog) -> None:
    text = ("how do I reset my password " * 400)[:10_000]
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), make_tracker(text))
    assert len(dispatcher.messages) == 1
    (record,) = await event_log.records()
    assert record.type in (FAQ_ANSWERED, FAQ_SUGGESTED, FAQ_UNANSWERED)
    assert len(record.data["query"]) <= 1000 and record.data["query"].endswith("…")
    assert record.data["query_chars"] == 10_000


async def test_a_missing_knowledge_base_is_admitted_and_logged(tmp_path: Path, event_log: EventLog) -> None:
    provider = KnowledgeBaseProvider(directory=tmp_path / "no-faqs", encoder_factory=BagOfWordsEncoder)
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), make_tracker("How do I reset my password?"))
    (message,) = dispatcher.messages
    assert message["text"] == faq.UNAVAILABLE and message["buttons"] == [faq.HUMAN_BUTTON]
    (record,) = await event_log.records(FAQ_UNANSWERED)
    assert record.data["reason"] == "knowledge_base_missing"
    assert record.data["query"] == "How do I reset my password?"


async def test_an_empty_knowledge_base_is_admitted_and_logged(tmp_path: Path, event_log: EventLog) -> None:
    (tmp_path / "faqs").mkdir()
    provider = KnowledgeBaseProvider(directory=tmp_path / "faqs", encoder_factory=BagOfWordsEncoder)
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), make_tracker("anything?"))
    assert dispatcher.messages[0]["text"] == faq.UNAVAILABLE
    (record,) = await event_log.records(FAQ_UNANSWERED)
    assert record.data["reason"] == "knowledge_base_empty"


class BrokenEncoder(BagOfWordsEncoder):
    """Encodes the knowledge base, then fails on every query (as a crashed model would)."""

    def encode(self, texts: List[str]):
        if self.calls:
            raise RuntimeError("model crashed")
        return super().encode(texts)


async def test_a_failing_search_still_gets_a_useful_reply(tmp_path: Path, event_log: EventLog) -> None:
    faq_dir, config = write_sample_kb(tmp_path)
    provider = KnowledgeBaseProvider(directory=faq_dir, config=config, encoder_factory=BrokenEncoder)
    dispatcher = await ask(ActionAnswerFaq(provider=provider, writer=event_log.writer), make_tracker("reset password"))
    assert [m["text"] for m in dispatcher.messages] == [ActionAnswerFaq.failure_text]


def test_suggestion_payload_is_valid_json_after_the_intent() -> None:
    payload = suggestion_payload("billing-plans-overview")
    assert payload.startswith("/ask_question{")
    assert json.loads(payload[len("/ask_question") :]) == {"faq_id": "billing-plans-overview"}
