"""action_answer_faq: answer from the knowledge base, suggest when unsure, admit when it does not know."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation
from actions.base import EngageAction
from actions.clients.eventlog import EventSink
from actions.constants import ACTION_ANSWER_FAQ, ASK_QUESTION, FAQ_ID, REQUEST_HUMAN
from actions.conversation import is_payload, latest_text, previous_user_text, truncate
from analytics.schema import FAQ_ANSWERED, FAQ_SUGGESTED, FAQ_UNANSWERED
from knowledge_base.errors import KnowledgeBaseUnavailable
from knowledge_base.loader import FaqEntry
from knowledge_base.policy import Decision, FaqHit, Outcome, decide
from knowledge_base.service import KnowledgeBase, KnowledgeBaseProvider, default_provider

logger = logging.getLogger(__name__)

MAX_LOGGED_QUERY = 1000
HUMAN_BUTTON = {"title": "Talk to a person", "payload": f"/{REQUEST_HUMAN}"}
HELP_CENTRE = "help.quillstack.example"

ASK_FOR_QUESTION = "Sure. What would you like to know? Ask me anything about Quillstack Docs, Forms, Insights, plans or billing."
DID_YOU_MEAN = "I'm not completely sure what you mean. Is it one of these? If not, try asking in other words."
DONT_KNOW_NOTED = "I don't know that one yet. I've noted your question so our team can add an answer."
DONT_KNOW = f"{DONT_KNOW_NOTED} Would you like to talk to a person?"
UNAVAILABLE = (
    f"I can't look up answers right now. Our help centre at {HELP_CENTRE} may have it, "
    "or I can connect you with a person."
)
UNKNOWN_SUGGESTION = "Sorry, I can't find that answer any more. Could you ask your question again?"

# A query must contain at least one letter or digit to be worth searching (not only emoji or punctuation).
_HAS_WORD = re.compile(r"\w", re.UNICODE)


def suggestion_payload(faq_id: str) -> str:
    return f"/{ASK_QUESTION}" + json.dumps({FAQ_ID: faq_id}, separators=(",", ":"))


class ActionAnswerFaq(EngageAction):
    """Search the FAQ; thresholds in knowledge_base/config.yml decide answer / suggest / don't know."""

    def __init__(self, provider: Optional[KnowledgeBaseProvider] = None, writer: Optional[EventSink] = None, requester: Any = None) -> None:
        super().__init__(writer)
        self._provider = provider
        self._requester = requester  # tests inject an ActionRequestHandover factory

    def name(self) -> str:
        return ACTION_ANSWER_FAQ

    @property
    def provider(self) -> KnowledgeBaseProvider:
        return self._provider if self._provider is not None else default_provider()

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        faq_id = next(tracker.get_latest_entity_values(FAQ_ID), None)
        text = latest_text(tracker)
        if not faq_id and (is_payload(text) or not _HAS_WORD.search(text)):
            # "Ask a question" button, an empty message, or only emoji: nothing to search for.
            dispatcher.utter_message(text=ASK_FOR_QUESTION)
            return []
        query = previous_user_text(tracker) if faq_id else text
        try:
            knowledge_base = await self.provider.get()
        except KnowledgeBaseUnavailable as exc:
            logger.error("cannot answer for conversation %s: %s", tracker.sender_id, exc.reason)
            dispatcher.utter_message(text=UNAVAILABLE, buttons=[HUMAN_BUTTON])
            self.log(tracker, FAQ_UNANSWERED, self._data(query, None, None, reason=exc.reason))
            return []

        if faq_id:
            return self._answer_chosen(dispatcher, tracker, knowledge_base, str(faq_id), query)

        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        hits = await loop.run_in_executor(None, knowledge_base.search, text)
        search_ms = round((time.perf_counter() - started) * 1000, 1)
        decision = decide(hits, knowledge_base.settings)
        # Misses in a row (abstains and fallbacks; console/config.yml triggers) queue a person.
        missed = decision.outcome not in (Outcome.ANSWER, Outcome.SUGGEST)
        hand_over = missed and escalation.due(escalation.misses_in_a_row(tracker, DONT_KNOW, DONT_KNOW_NOTED), escalation.threshold("misses_in_a_row"))
        # Bringing in a person: no "talk to a person?" offer (its button would answer the contact question).
        self._reply(dispatcher, decision, offer_person=not hand_over)
        self._log_decision(tracker, text, decision, search_ms)
        if hand_over:
            return await escalation.hand_over(dispatcher, tracker, escalation.MISSES, writer=self._writer, requester=self._requester)
        return []

    def _answer_chosen(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        knowledge_base: KnowledgeBase,
        faq_id: str,
        query: Optional[str],
    ) -> List[EventType]:
        entry = knowledge_base.get(faq_id)
        if entry is None:
            # A button from an older knowledge base, or a hand-typed payload.
            logger.warning("conversation %s chose unknown FAQ id %r", tracker.sender_id, faq_id[:100])
            dispatcher.utter_message(text=UNKNOWN_SUGGESTION)
            self.log(tracker, FAQ_UNANSWERED, self._data(query, None, None, reason="unknown_faq_id", chosen=faq_id[:100]))
            return []
        dispatcher.utter_message(text=answer_text(entry))
        # Choosing a suggestion is implicit feedback: this query means this entry.
        self.log(tracker, FAQ_ANSWERED, self._data(query, entry.id, None, via="suggestion"))
        return []

    @staticmethod
    def _reply(dispatcher: CollectingDispatcher, decision: Decision, offer_person: bool = True) -> None:
        if decision.outcome is Outcome.ANSWER:
            dispatcher.utter_message(text=answer_text(decision.hits[0].entry))
        elif decision.outcome is Outcome.SUGGEST:
            buttons = [{"title": hit.entry.question, "payload": suggestion_payload(hit.entry.id)} for hit in decision.hits]
            dispatcher.utter_message(text=DID_YOU_MEAN, buttons=buttons)
        else:
            if offer_person:
                dispatcher.utter_message(text=DONT_KNOW, buttons=[HUMAN_BUTTON])
            else:
                dispatcher.utter_message(text=DONT_KNOW_NOTED)

    def _log_decision(self, tracker: Tracker, query: str, decision: Decision, search_ms: float) -> None:
        best = decision.best
        best_id = best.entry.id if best else None
        if decision.outcome is Outcome.ANSWER:
            data = self._data(query, best_id, decision.score, via="search", matched=best.matched if best else None, search_ms=search_ms)
            self.log(tracker, FAQ_ANSWERED, data)
        elif decision.outcome is Outcome.SUGGEST:
            suggestions = [_hit_summary(h) for h in decision.hits]
            self.log(tracker, FAQ_SUGGESTED, self._data(query, best_id, decision.score, suggestions=suggestions, search_ms=search_ms))
        else:
            # faq_id here is only the nearest entry, kept to help whoever writes the missing answer.
            data = self._data(query, best_id, decision.score, reason="low_score", search_ms=search_ms)
            self.log(tracker, FAQ_UNANSWERED, data)

    @staticmethod
    def _data(query: Optional[str], faq_id: Optional[str], score: Optional[float], **extra: Any) -> Dict[str, Any]:
        text = query or ""
        data: Dict[str, Any] = {
            "query": truncate(text, MAX_LOGGED_QUERY),
            "faq_id": faq_id,
            "score": round(score, 4) if score is not None else None,
        }
        if len(text) > MAX_LOGGED_QUERY:
            data["query_chars"] = len(text)
        data.update({key: value for key, value in extra.items() if value is not None})
        return data


def answer_text(entry: FaqEntry) -> str:
    return f"{entry.answer}\n\nMore: {entry.url}" if entry.url else entry.answer


def _hit_summary(hit: FaqHit) -> Dict[str, Any]:
    return {"faq_id": hit.entry.id, "score": round(hit.score, 4)}
