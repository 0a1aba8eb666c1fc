"""A customer's rights in the chat: what is held about them, and erasing it after they confirm.

Only a verified customer (the conversation id is a customer id: a web-chat session, a portal
login, a WhatsApp number or a Telegram account) can ask; the record read and the erasure
queued are theirs alone. The erasure runs in the analytics service a couple of minutes after
the request (analytics.privacy.erase_due), when this conversation is no longer being written.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import SUPPORT_EMAIL, EngageAction
from actions.clients.eventlog import EventSink
from actions.clients.redis_client import shared_client
from actions.constants import ACTION_CONFIRM_ERASURE, ACTION_DESCRIBE_MY_DATA, ACTION_ERASE_MY_DATA, AFFIRM, DENY
from analytics.customers import CUSTOMER_ID, CustomerDirectory
from analytics.privacy import schedule_erasure
from analytics.records.store import RecordStore
from analytics.schema import PRIVACY_REQUESTED

NOT_HERE = (
    "I can only look up or delete data for a conversation I can tie to you (the web chat, the customer portal, "
    f"WhatsApp or Telegram). For anything else, please write to {SUPPORT_EMAIL}."
)
NOTHING_YET = "I don't hold anything about you beyond this conversation yet."
CONFIRM = (
    "I can delete everything I hold about you: our conversations on every channel, what you told me "
    "(feedback, ideas, answers), and the links between your channels. This can't be undone. Shall I go ahead?"
)
CONFIRM_BUTTONS = [{"title": "Yes, delete it", "payload": f"/{AFFIRM}"}, {"title": "No, keep it", "payload": f"/{DENY}"}]
ERASING = (
    "Done: everything I hold about you will be deleted within a few minutes, on every channel. "
    "If you write again, I'll start from scratch."
)


def describe(record: dict, identities: List[str]) -> str:
    counts = record.get("counts") or {}
    lines = ["Here is what I hold about you:"]
    if identities:
        lines.append("• how I recognise you: " + ", ".join(sorted(identities)))
    channels = sorted((record.get("channels") or {}).keys())
    if channels:
        lines.append(f"• our conversations on {', '.join(channels)}: {counts.get('messages', 0)} messages from you")
    for key, label in (("feedback", "feedback"), ("ideas", "ideas"), ("problems", "problem reports")):
        if counts.get(key):
            lines.append(f"• {counts[key]} {label}")
    lead = record.get("lead") or {}
    if lead:
        lines.append("• what you told our sales team: " + ", ".join(f"{name.replace('lead_', '')} “{item['said']}”" for name, item in sorted(lead.items())))
    lines.append("Say \"delete my data\" if you'd like me to erase it.")
    return "\n".join(lines)


class _PrivacyAction(EngageAction):
    def __init__(self, client: Any = None, writer: Optional[EventSink] = None) -> None:
        super().__init__(writer)
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else shared_client()

    @staticmethod
    def verified(tracker: Tracker) -> bool:
        return CUSTOMER_ID.match(tracker.sender_id or "") is not None


class ActionDescribeMyData(_PrivacyAction):
    def name(self) -> str:
        return ACTION_DESCRIBE_MY_DATA

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        if not self.verified(tracker):
            dispatcher.utter_message(text=NOT_HERE)
            return []
        self.log(tracker, PRIVACY_REQUESTED, {"kind": "access"})
        record = await RecordStore(self.client).record(tracker.sender_id)
        identities = [str(i.identity) for i in await CustomerDirectory(self.client).identities(tracker.sender_id)]
        dispatcher.utter_message(text=describe(record, identities) if record and "counts" in record else NOTHING_YET)
        return []


class ActionConfirmErasure(_PrivacyAction):
    def name(self) -> str:
        return ACTION_CONFIRM_ERASURE

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        if not self.verified(tracker):
            dispatcher.utter_message(text=NOT_HERE)
            return []
        dispatcher.utter_message(text=CONFIRM, buttons=CONFIRM_BUTTONS)
        return []


class ActionEraseMyData(_PrivacyAction):
    def name(self) -> str:
        return ACTION_ERASE_MY_DATA

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        if not self.verified(tracker):
            dispatcher.utter_message(text=NOT_HERE)
            return []
        await schedule_erasure(self.client, tracker.sender_id, time.time())
        self.log(tracker, PRIVACY_REQUESTED, {"kind": "erasure"})
        dispatcher.utter_message(text=ERASING)
        return []
