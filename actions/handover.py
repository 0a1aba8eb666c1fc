"""action_request_handover: put the conversation on the handover queue and tell the customer what happens."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import SUPPORT_EMAIL, EngageAction
from actions.clients import handover as handover_client
from actions.clients.redis_client import shared_client
from actions.clients.eventlog import EventSink
from actions.clients.handover import HandoverQueue, HandoverRequest
from actions.constants import ACTION_REQUEST_HANDOVER, HANDOVER_CONTACT_FORM
from actions.conversation import in_use_context, latest_words, truncate
from analytics.customers import EMAIL
from actions.errors import HandoverQueueError
from analytics.schema import HANDOVER_REQUESTED

logger = logging.getLogger(__name__)

QUEUED = (
    "I've asked a member of our support team to join this conversation. Someone will reply here "
    "as soon as they can."
)
# No one of the team is there (outside business hours, or no agent online): a ticket agents see first.
TICKET = (
    "Our support team isn't available right now; they're back {when}. Your request is at the top of "
    "their queue, and they'll reply right here{contact}."
)
CHATWOOT_PREFIX = "chatwoot:"  # conversation ids of the Chatwoot bridge
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
        availability: Optional[Callable[[str, float], Awaitable[Optional[str]]]] = None,
    ) -> None:
        super().__init__(writer)
        self._queue = queue
        self._clock = clock
        self._availability = availability

    def name(self) -> str:
        return ACTION_REQUEST_HANDOVER

    @property
    def queue(self) -> HandoverQueue:
        return self._queue if self._queue is not None else HandoverQueue(shared_client())

    async def away_until(self, team: str, now: float) -> Optional[str]:
        """None when someone of the team can answer now; else when they are back, in words."""
        if self._availability is not None:
            return await self._availability(team, now)
        return await team_away_until(self.queue.client, team, now)

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        return await self.hand_over(dispatcher, tracker, "asked_for_person")

    async def hand_over(self, dispatcher: CollectingDispatcher, tracker: Tracker, trigger: str) -> List[EventType]:
        """request_person, and the events the calling action returns: a ticket with no way to reach
        the customer but this chat asks for one (handover_contact_form), whatever raised it."""
        ask_contact = await self.request_person(dispatcher, tracker, trigger)
        return [ActiveLoop(HANDOVER_CONTACT_FORM)] if ask_contact else []

    async def request_person(self, dispatcher: CollectingDispatcher, tracker: Tracker, trigger: str) -> bool:
        """Queue the conversation for a person (why: `trigger`) and tell the customer what happens next.
        True when a ticket was opened and no verified e-mail of the customer is known (hand_over
        then starts the contact form)."""
        now = self._clock()
        try:
            # Chatwoot's people take Chatwoot conversations (connectors/chatwoot.py): Engage's hours and presence say nothing of them.
            back = None if str(tracker.sender_id).startswith(CHATWOOT_PREFIX) else await self.away_until("support", now)
        except Exception as exc:  # presence or settings unreadable: queue it as usual
            logger.warning("handover: could not tell whether support is available: %s", exc)
            back = None
        contact = await self._known_email(str(tracker.sender_id)) if back is not None else ""
        request = HandoverRequest(
            conversation_id=str(tracker.sender_id),
            channel=str(tracker.get_latest_input_channel() or ""),
            reason=truncate(latest_words(tracker), handover_client.MAX_REASON),
            requested_at=now,
            trigger=trigger,
            ticket=back is not None,
            contact=contact,
        )
        data = {"reason": request.reason, "requested_at": request.requested_at, "context": in_use_context(tracker),
                "team": request.team, "trigger": request.trigger}
        if back is not None:
            data["ticket"] = True
        try:
            newly_queued = await self.queue.enqueue(request)
        except (HandoverQueueError, ValueError) as exc:  # ValueError: a malformed REDIS_URL
            # The log record is buffered (and spooled) by the writer, so the request survives a Redis outage.
            logger.error("handover not queued: %s", exc)
            self.log(tracker, HANDOVER_REQUESTED, {**data, "queued": False, "error": str(exc)[:300]})
            dispatcher.utter_message(text=QUEUE_DOWN)
            return False
        self.log(tracker, HANDOVER_REQUESTED, {**data, "queued": True, "already_waiting": not newly_queued})
        if back is not None:
            where = f", or write to {contact}" if contact else f" (or write to {SUPPORT_EMAIL} if that suits you better)"
            dispatcher.utter_message(text=TICKET.format(when=back, contact=where))
            return not contact and newly_queued
        dispatcher.utter_message(text=QUEUED if newly_queued else ALREADY_QUEUED)
        return False

    async def _known_email(self, customer_id: str) -> str:
        """A verified e-mail of the customer (linked identity), to tell them where the answer may come."""
        try:
            from analytics.customers import CustomerDirectory

            linked = await CustomerDirectory(self.queue.client).identities(customer_id)
        except Exception:  # not a customer id, or Redis away: the chat is the way to reach them
            return ""
        emails = [item.identity.value for item in linked if item.identity.kind == EMAIL]
        return emails[-1] if emails else ""


async def team_away_until(client: object, team: str, now: float) -> Optional[str]:
    """console/config.yml's hours and holidays for `team`, and whether an agent of it is online."""
    import datetime as dt

    from console import hours
    from console.config import load

    config = load()
    settings = config.team(team)
    at = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    if hours.is_open(settings, at) and await hours.agents_online(client, team, config.away_after_seconds) > 0:
        return None
    if hours.is_open(settings, at):
        return "as soon as someone is free"
    return hours.describe_opening(hours.next_opening(settings, at), at)
