"""action_request_handover: put the conversation on the handover queue and tell the customer what happens."""

from __future__ import annotations

import logging
from typing import Callable, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import SUPPORT_EMAIL, EngageAction
from actions.clients import handover as handover_client
from actions.clients.redis_client import shared_client
from actions.clients.eventlog import EventSink
from actions.clients.handover import HandoverQueue, HandoverRequest
from actions.constants import ACTION_REQUEST_HANDOVER
from actions.conversation import in_use_context, latest_words, truncate
from actions.errors import HandoverQueueError
from analytics.schema import HANDOVER_REQUESTED

logger = logging.getLogger(__name__)

QUEUED = (
    "I've asked a member of our support team to join this conversation. Someone will reply here "
    "as soon as they can (chat support is staffed 24 hours a day, Monday to Friday)."
)
ALREADY_QUEUED = "You're already in the queue for a person; someone will reply here as soon as they can."
QUEUE_DOWN = (
    "I couldn't reach our support queue just now, but your request is recorded and someone will follow up. "
    f"If it's urgent, you can also write to {SUPPORT_EMAIL}."
)


class ActionRequestHandover(EngageAction):
    def __init__(
        self,
        queue: Optional[HandoverQueue] = None,
        writer: Optional[EventSink] = None,
        clock: Callable[[], float] = handover_client.now,
    ) -> None:
        super().__init__(writer)
        self._queue = queue
        self._clock = clock

    def name(self) -> str:
        return ACTION_REQUEST_HANDOVER

    @property
    def queue(self) -> HandoverQueue:
        return self._queue if self._queue is not None else HandoverQueue(shared_client())

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        request = HandoverRequest(
            conversation_id=str(tracker.sender_id),
            channel=str(tracker.get_latest_input_channel() or ""),
            reason=truncate(latest_words(tracker), handover_client.MAX_REASON),
            requested_at=self._clock(),
        )
        data = {"reason": request.reason, "requested_at": request.requested_at, "context": in_use_context(tracker)}
        try:
            newly_queued = await self.queue.enqueue(request)
        except (HandoverQueueError, ValueError) as exc:  # ValueError: a malformed REDIS_URL
            # The log record is buffered (and spooled) by the writer, so the request survives a Redis outage.
            logger.error("handover not queued: %s", exc)
            self.log(tracker, HANDOVER_REQUESTED, {**data, "queued": False, "error": str(exc)[:300]})
            dispatcher.utter_message(text=QUEUE_DOWN)
            return []
        self.log(tracker, HANDOVER_REQUESTED, {**data, "queued": True, "already_waiting": not newly_queued})
        dispatcher.utter_message(text=QUEUED if newly_queued else ALREADY_QUEUED)
        return []
