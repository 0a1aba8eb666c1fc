"""Handover triggers the bot raises on its own, by the rules in console/config.yml (`triggers`):
misses in a row (a fallback, or an FAQ question answered "I don't know that yet") and repeated
negative feedback in one session. Counted from the tracker's raw events, so every Rasa and action
server process agrees without state of its own.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.constants import ACTION_FALLBACK

logger = logging.getLogger(__name__)

MISSES = "misses"
NEGATIVE_FEEDBACK = "negative_feedback"
_BOUNDARIES = ("session_started", "restart")


def _turns(events: Iterable[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """The events after each user message, newest turn first (up to a session start)."""
    turns: List[List[Dict[str, Any]]] = []
    current: List[Dict[str, Any]] = []
    for event in reversed(list(events)):
        kind = event.get("event")
        if kind in _BOUNDARIES:
            break
        if kind == "user":
            turns.append(list(reversed(current)))
            current = []
        else:
            current.append(event)
    return turns


def missed(turn: List[Dict[str, Any]], dont_know: str) -> bool:
    return any((e.get("event") == "action" and e.get("name") == ACTION_FALLBACK) or (e.get("event") == "bot" and e.get("text") == dont_know)
               for e in turn)


def misses_in_a_row(tracker: Tracker, dont_know: str) -> int:
    """Misses in a row, counting the current turn (which the caller is answering with a miss)."""
    count = 1
    for turn in _turns(tracker.events)[1:]:  # [0] is the current turn: not answered yet
        if not missed(turn, dont_know):
            break
        count += 1
    return count


def negative_in_session(tracker: Tracker, sorry_text: str) -> int:
    """Negative feedback answered in this session, counting the current one."""
    return 1 + sum(1 for turn in _turns(tracker.events)[1:] for e in turn if e.get("event") == "bot" and e.get("text") == sorry_text)


def threshold(name: str) -> int:
    """The rule's number from console/config.yml (0: off); the default when the settings cannot be read."""
    from console.config import ConsoleConfig, load

    try:
        return int(getattr(load(), name))
    except Exception as exc:  # noqa: BLE001 - a broken settings file must not silence the bot
        logger.error("handover triggers: console settings unreadable (%s); using the defaults", exc)
        return int(getattr(ConsoleConfig(), name))


async def maybe_hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, trigger: str, count: int, rule: int, writer: Any = None,
    requester: Optional[Callable[..., Any]] = None,
) -> bool:
    """Queue the conversation for a person when `count` reached the rule (rule 0: never)."""
    if rule <= 0 or count < rule:
        return False
    from actions.handover import ActionRequestHandover

    action = requester() if requester is not None else ActionRequestHandover(writer=writer)
    await action.request_person(dispatcher, tracker, trigger)
    return True
