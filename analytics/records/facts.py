"""What one log event contributes to a customer's record: a small, self-contained fact.

Facts are pure functions of the event, keyed by its event id, so storing one twice is a
no-op and the record (a fold over a customer's facts in time order) comes out the same
whatever order or however often the events were consumed.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from analytics.schema import (
    CUSTOMERS_MERGED,
    FAQ_ANSWERED,
    FAQ_SUGGESTED,
    FAQ_UNANSWERED,
    FALLBACK,
    FEEDBACK,
    HANDOVER_REQUESTED,
    IDEA,
    IDENTITY_LINKED,
    IDENTITY_UNLINKED,
    LEAD_FIELD_CAPTURED,
    LEAD_SUBMITTED,
    PROBLEM,
    RECOMMENDATION,
    REFERRAL,
    STAGE_SET,
    LogEvent,
)

Fact = Dict[str, Any]

MAX_TEXT = 280  # quotes kept in the record; the log keeps the whole text
CONTEXT_KEYS = ("product", "feature", "page", "app_version")

# Rasa tracker events that say something about the customer (the rest: actions, slots... do not).
USER = "user"
BOT = "bot"
SESSION_STARTED = "session_started"


def order_key(entry_id: str) -> str:
    """A stream entry id (`<ms>-<seq>`) as text that sorts in the log's order."""
    ms, _, seq = entry_id.partition("-")
    if ms.isascii() and ms.isdigit() and len(ms) <= 16 and seq.isascii() and (seq.isdigit() or not seq) and len(seq) <= 10:
        return f"{ms.zfill(16)}-{seq.zfill(10)}"  # what Redis gives: the same text as below, without making numbers
    return f"{int(ms):016d}-{int(seq or 0):010d}"


def fact_of(event: LogEvent, entry_id: str = "0-0") -> Optional[Fact]:
    """The event's contribution to its customer's record, or None when it has none.

    `o` places it in the log's order (from the stream entry id): the one order every fold uses.
    """
    kind = event.type
    data = event.data if isinstance(event.data, dict) else {}
    fact: Fact = {"id": event.event_id, "o": order_key(entry_id), "t": round(float(event.timestamp or 0.0), 6), "k": kind}
    if event.channel:
        fact["ch"] = event.channel[:32]
    if kind == USER:
        context = _context(event.metadata)  # the portal sends what the customer is doing with each message
        if context:
            fact["context"] = context
        if event.intent:
            fact["intent"] = event.intent[:64]
        return fact
    if kind in (FAQ_ANSWERED, FAQ_SUGGESTED, FAQ_UNANSWERED):
        if data.get("query"):
            fact["text"] = _text(data.get("query"))
        return fact
    if kind in (BOT, SESSION_STARTED, FALLBACK):
        return fact
    if kind == FEEDBACK:
        fact.update(
            text=_text(data.get("feedback")),
            sentiment=str(data.get("sentiment") or ""),
            context=_context(data.get("context")),
        )
        return fact
    if kind == IDEA:
        fact.update(ref=_text(data.get("reference"), 40), text=_text(data.get("summary")), context=_context(data.get("context")))
        return fact
    if kind == PROBLEM:
        fact.update(ref=_text(data.get("reference"), 40), text=_text(data.get("description")), context=_context(data.get("context")))
        return fact
    if kind == LEAD_FIELD_CAPTURED:
        fact.update(field=_text(data.get("field"), 40), value=_text(data.get("value")))
        if data.get("raw"):
            fact["raw"] = _text(data.get("raw"))
        return fact
    if kind == LEAD_SUBMITTED:
        lead = data.get("lead") if isinstance(data.get("lead"), dict) else {}
        fact.update(ref=_text(data.get("reference"), 40), lead={str(k)[:40]: _text(v) for k, v in sorted(lead.items())})
        return fact
    if kind == HANDOVER_REQUESTED:
        fact["reason"] = _text(data.get("reason"))
        return fact
    if kind == RECOMMENDATION:
        score = data.get("score")
        fact["score"] = score if isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= 10 else None
        return fact
    if kind == REFERRAL:
        fact["domain"] = _text(data.get("domain"), 100)
        return fact
    if kind == STAGE_SET:
        fact.update(stage=_text(data.get("stage"), 20), by=_text(data.get("by"), 80), reason=_text(data.get("reason")))
        return fact
    if kind == CUSTOMERS_MERGED:
        merged = data.get("merged_from")
        fact["merged_from"] = sorted(str(c) for c in merged) if isinstance(merged, list) else []
        return fact
    if kind in (IDENTITY_LINKED, IDENTITY_UNLINKED):
        fact["identity"] = _text(data.get("identity"), 200)
        return fact
    return None


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _context(value: Any) -> Dict[str, str]:
    if not isinstance(value, dict):  # parsed JSON; typing.Mapping's check was 1.6 % of a profiled replay
        return {}
    return {key: _text(value[key], 100) for key in CONTEXT_KEYS if value.get(key) not in (None, "")}
