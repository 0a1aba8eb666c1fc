"""Handover triggers the bot raises on its own, by the rules in console/config.yml (`triggers`):
misses in a row (a fallback, or an FAQ question answered "I don't know that yet") and repeated
negative feedback in one session. Counted from the tracker's raw events, so every Rasa and action
server process agrees without state of its own.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
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


def missed(turn: List[Dict[str, Any]], *dont_know: str) -> bool:
    return any((e.get("event") == "action" and e.get("name") == ACTION_FALLBACK) or (e.get("event") == "bot" and e.get("text") in dont_know)
               for e in turn)


def misses_in_a_row(tracker: Tracker, *dont_know: str) -> int:
    """Misses in a row, counting the current turn (which the caller is answering with a miss);
    `dont_know`: the FAQ's "I don't know" texts."""
    count = 1
    for turn in _turns(tracker.events)[1:]:  # [0] is the current turn: not answered yet
        if not missed(turn, *dont_know):
            break
        count += 1
    return count


def negative_in_session(tracker: Tracker, *sorry_texts: str) -> int:
    """Negative feedback answered in this session (any of `sorry_texts`), counting the current one."""
    return 1 + sum(1 for turn in _turns(tracker.events)[1:] for e in turn if e.get("event") == "bot" and e.get("text") in sorry_texts)


def threshold(name: str) -> int:
    """The rule's number from console/config.yml (0: off); the default when the settings cannot be read."""
    from console.config import ConsoleConfig, load

    try:
        return int(getattr(load(), name))
    except Exception as exc:  # noqa: BLE001 - a broken settings file must not silence the bot
        logger.error("handover triggers: console settings unreadable (%s); using the defaults", exc)
        return int(getattr(ConsoleConfig(), name))


def due(count: int, rule: int) -> bool:
    """Whether `count` reached the rule (rule 0: never). Callers ask first, to word their own reply."""
    return rule > 0 and count >= rule


async def hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, trigger: str, writer: Any = None,
    requester: Optional[Callable[..., Any]] = None,
) -> List[EventType]:
    """Queue the conversation for a person, as action_request_handover does, and return the events
    the calling action must return: when no one is available and no verified e-mail is known, the
    ticket asks how to reach the customer (handover_contact_form), as when they ask for a person."""
    from actions.handover import ActionRequestHandover

    action = requester() if requester is not None else ActionRequestHandover(writer=writer)
    return await action.hand_over(dispatcher, tracker, trigger)

