"""action_record_csat: the customer's 1-5 answer to the satisfaction question a person's help ends with.

The console asks it with five buttons after an agent resolves a conversation (console/handover/
views.py); the answer is logged as `csat` with the score and the agent who resolved it (from the
tracker: the last bot message a staff member wrote).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import EngageAction
from actions.constants import ACTION_RECORD_CSAT, CSAT_SCORE
from actions.conversation import latest_text
from analytics.schema import CSAT

THANKS = {
    1: "Thank you for telling us, and sorry we let you down. I've passed your rating on to the team.",
    2: "Thank you for telling us; we'll look at how we can do better.",
    3: "Thanks for the rating!",
    4: "Thanks, glad we could help!",
    5: "Thanks, that's great to hear!",
}
NO_SCORE = "Sorry, I didn't catch a rating. Please choose a number from 1 (not at all happy) to 5 (very happy)."


def csat_score(value: Any) -> Optional[int]:
    match = re.search(r"\b([1-5])\b", str(value or ""))
    return int(match.group(1)) if match else None


def last_agent(tracker: Tracker) -> Optional[Dict[str, Any]]:
    for event in reversed(tracker.events):
        author = (event.get("metadata") or {}).get("author") if event.get("event") == "bot" else None
        if isinstance(author, dict) and author.get("role") == "agent":
            return {"id": author.get("id"), "name": author.get("name")}
    return None


class ActionRecordCsat(EngageAction):
    def name(self) -> str:
        return ACTION_RECORD_CSAT

    async def handle(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        entity = next(tracker.get_latest_entity_values(CSAT_SCORE), None)
        score = csat_score(entity) if entity is not None else csat_score(latest_text(tracker))
        if score is None:
            dispatcher.utter_message(text=NO_SCORE)
            return []
        self.log(tracker, CSAT, {"score": score, "agent": last_agent(tracker)})
        dispatcher.utter_message(text=THANKS[score])
        return []
