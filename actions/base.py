"""Base classes: injectable log writer, and a run() that turns any failure into a useful reply."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Mapping, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.clients.eventlog import EventSink, event_from_tracker, shared_writer
from analytics.schema import LogEvent

logger = logging.getLogger(__name__)

SUPPORT_EMAIL = "support@quillstack.example"


class LogsEvents:
    """Mixin: `log()` submits a semantic record; the writer is injected in tests, shared otherwise."""

    def __init__(self, writer: Optional[EventSink] = None) -> None:
        # Only plain attributes here: Sanic pickles the registered actions into its worker.
        self._writer = writer

    @property
    def writer(self) -> EventSink:
        return self._writer if self._writer is not None else shared_writer()

    def log(
        self,
        tracker: Tracker,
        event_type: str,
        data: Optional[Mapping[str, Any]] = None,
        *,
        text: Optional[str] = None,
    ) -> Optional[LogEvent]:
        """Submit a record; never raises (the log must not break the conversation)."""
        try:
            event = event_from_tracker(tracker, event_type, data, text=text)
            self.writer.submit(event)
            return event
        except Exception:  # noqa: BLE001 - logging is best effort by design
            logger.exception("could not log a %s event for conversation %s", event_type, tracker.sender_id)
            return None


class EngageAction(LogsEvents, Action, ABC):
    """An action whose failures reach the customer as an honest message, and the log with context."""

    failure_text = (
        "Sorry, something went wrong on my side. Please try again in a moment, "
        f"or write to {SUPPORT_EMAIL}."
    )

    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        try:
            return await self.handle(dispatcher, tracker, domain)
        except Exception:  # noqa: BLE001 - the customer gets a reply whatever broke
            logger.exception(
                "action %s failed for conversation %s (latest message %r)",
                self.name(),
                tracker.sender_id,
                (tracker.latest_message.get("text") or "")[:200],
            )
            dispatcher.utter_message(text=self.failure_text)
            return []


class EngageFormValidation(LogsEvents, FormValidationAction, ABC):
    """A form validator that, if it breaks, re-asks instead of letting unchecked answers through."""

    failure_text = "Sorry, I couldn't process that answer. Could you say it again?"

    @abstractmethod
    def name(self) -> str: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        try:
            return await super().run(dispatcher, tracker, domain)
        except Exception:  # noqa: BLE001
            logger.exception("validator %s failed for conversation %s", self.name(), tracker.sender_id)
            dispatcher.utter_message(text=self.failure_text)
            # Rasa keeps any extracted slot the validator does not mention, so reject them explicitly.
            pending: Dict[str, Any] = tracker.slots_to_validate()
            return [SlotSet(slot, None) for slot in pending if slot in self.domain_slots(domain)]
