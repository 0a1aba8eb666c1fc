"""Read what the actions need from a Rasa SDK Tracker: latest text, metadata, in-use context."""

from __future__ import annotations

from typing import Any, Dict, Optional

from rasa_sdk import Tracker

from actions.constants import CONTEXT_KEYS

MAX_CONTEXT_VALUE = 200


def is_payload(text: str) -> bool:
    """A button payload or typed intent (`/ask_question{...}`), not words from the customer."""
    return text.lstrip().startswith("/")


def latest_text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def latest_intent(tracker: Tracker) -> Dict[str, Any]:
    intent = tracker.latest_message.get("intent") or {}
    return intent if isinstance(intent, dict) else {}


def latest_metadata(tracker: Tracker) -> Dict[str, Any]:
    """Metadata of the latest user message (the connector puts in-use context there)."""
    metadata = tracker.latest_message.get("metadata")
    if isinstance(metadata, dict) and metadata:
        return metadata
    # Older trackers carry metadata only on the event itself.
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            found = event.get("metadata")
            return found if isinstance(found, dict) else {}
    return {}


def in_use_context(tracker: Tracker) -> Dict[str, Any]:
    """What the customer was doing (product, feature, page, app version), where the channel says."""
    metadata = latest_metadata(tracker)
    context: Dict[str, Any] = {}
    for key in CONTEXT_KEYS:
        value = metadata.get(key)
        if isinstance(value, str):
            value = value.strip()[:MAX_CONTEXT_VALUE]
            if value:
                context[key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            context[key] = value
    return context


def previous_user_text(tracker: Tracker) -> Optional[str]:
    """The customer's last words before the latest message, skipping button payloads."""
    seen_latest = False
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if not seen_latest:
            seen_latest = True
            continue
        text = str(event.get("text") or "")
        if text and not is_payload(text):
            return text
    return None


def latest_words(tracker: Tracker) -> str:
    """The latest message, or if it was a button payload, the last thing the customer typed."""
    text = latest_text(tracker)
    if text and not is_payload(text):
        return text
    return previous_user_text(tracker) or ""


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
