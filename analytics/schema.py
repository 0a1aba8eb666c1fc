"""The interaction-log schema: one record per event, written to a Redis stream.

Shared by the Rasa runtime (Python 3.10, the event broker and connectors) and the
action/analytics runtime (Python 3.11), so it imports nothing beyond the
standard library (orjson parses entries faster where it is installed: the analytics runtime,
the one that reads the log).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Sequence

try:
    from orjson import loads as _loads
except ImportError:  # the Rasa runtime writes the log and does not parse it
    _loads = json.loads

SCHEMA_VERSION = 1
KEY_PREFIX = "engage:"
EVENTS_STREAM = KEY_PREFIX + "events"
# Human handover: a sorted set of waiting conversations (scored by first request
# time) and one hash per conversation (channel, reason, requested_at).
HANDOVER_QUEUE = KEY_PREFIX + "handover:queue"
HANDOVER_REQUEST_PREFIX = KEY_PREFIX + "handover:request:"


def handover_request_key(conversation_id: str) -> str:
    return HANDOVER_REQUEST_PREFIX + conversation_id

# Where a record came from.
SOURCE_RASA = "rasa"  # a tracker event published by the event broker
SOURCE_ACTION = "action"  # a semantic event written by a custom action
SOURCE_CONNECTOR = "connector"  # written by a channel connector (rejections, failed replies)
SOURCE_STAFF = "staff"  # written by a staff command (an identity unlinked)
SOURCE_DIRECTORY = "directory"  # written by the customer directory in the same step as a merge

# Semantic event types written by actions and connectors (tracker events keep Rasa's names).
FAQ_ANSWERED = "faq_answered"
FAQ_SUGGESTED = "faq_suggested"
FAQ_UNANSWERED = "faq_unanswered"
FEEDBACK = "feedback"
IDEA = "idea"
PROBLEM = "problem"
LEAD_FIELD_CAPTURED = "lead_field_captured"
LEAD_SUBMITTED = "lead_submitted"
HANDOVER_REQUESTED = "handover_requested"
FALLBACK = "fallback"
MESSAGE_REFUSED = "message_refused"  # a channel refused a message politely (too long, bad metadata)
UNSUPPORTED_MESSAGE = "unsupported_message"  # an image, sticker, voice note...: "text only for now"
# A message a messaging channel acknowledged but did not hand to Rasa because its sender sent too
# fast or too much was waiting (data.reason: sender_rate, queue_full, all_queues_full); the
# customer is told to slow down. conversation_id is the channel identity (e.g. "whatsapp:4915..."):
# a dropped message is not worth a customer lookup.
MESSAGE_DROPPED = "message_dropped"
REPLY_FAILED = "reply_failed"
REPLY_UNDELIVERED = "reply_undelivered"  # the provider (WhatsApp, Telegram) refused a reply even after retries
RECOMMENDATION = "recommendation"  # how likely the customer is to recommend us (data.score 0-10, data.group)
REFERRAL = "referral"  # the customer referred a colleague (data.referee: their e-mail, data.domain)
IDENTITY_LINKED = "identity_linked"  # a customer proved a new identity (an e-mail code)
IDENTITY_UNLINKED = "identity_unlinked"  # staff removed an identity from a customer
# Verified evidence joined customers: conversation_id is the customer kept, data.merged_from the
# ones merged into it (the directory writes it in the same Lua step as the merge).
CUSTOMERS_MERGED = "customers_merged"
# The analytics service handed a qualified lead to the CRM, or gave up (data: stage, attempts,
# provider, reason); conversation_id is the customer.
CRM_PUSHED = "crm_pushed"
CRM_FAILED = "crm_failed"
SOURCE_ANALYTICS = "analytics"  # written by the analytics service (CRM hand-offs)
# A customer asked the assistant what is held about them, or to delete it (data.kind: access, erasure).
PRIVACY_REQUESTED = "privacy_requested"
# Staff moved a customer to a funnel stage by hand (data: stage, by, reason); the only way back.
STAGE_SET = "stage_set"
# Idea mining (issue 11). Staff set a theme's status (data: theme, status, note, by); staff or the
# service re-cluster a space of themes (data: space, by), ids kept by matching members; a customer
# says yes or no to hearing back about their ideas (data: consent); a requester was told of a
# shipped or declined theme, or could not be (data: theme, status, channel, reason).
THEME_STATUS_SET = "theme_status_set"
THEMES_RECLUSTERED = "themes_reclustered"
IDEA_UPDATES_CONSENT = "idea_updates_consent"
# The customer said the theme they were told their idea joined is not what they meant (data: idea, theme).
IDEA_SEPARATED = "idea_separated"
IDEA_NOTIFIED = "idea_notified"
IDEA_NOTIFY_FAILED = "idea_notify_failed"
# Human handover (issue 12). Staff decisions, source staff, data.by the login: a claim (data: team),
# a transfer (data: from, to or to_team), a hand-back to the bot, a resolution (data: outcome,
# handled_seconds), an internal note (text). The customer's 1-5 rating of a person's help
# (data: score, agent), written by the action server.
HANDOVER_CLAIMED = "handover_claimed"
HANDOVER_TRANSFERRED = "handover_transferred"
HANDOVER_RELEASED = "handover_released"
HANDOVER_RESOLVED = "handover_resolved"
STAFF_NOTE = "staff_note"
CSAT = "csat"
# No one was available and the customer left a way to reach them (data.kind: email or phone; the
# value is kept on the waiting request only).
HANDOVER_CONTACT = "handover_contact"

SEMANTIC_TYPES = frozenset(
    {
        FAQ_ANSWERED,
        FAQ_SUGGESTED,
        FAQ_UNANSWERED,
        FEEDBACK,
        IDEA,
        PROBLEM,
        LEAD_FIELD_CAPTURED,
        LEAD_SUBMITTED,
        HANDOVER_REQUESTED,
        FALLBACK,
        MESSAGE_REFUSED,
        UNSUPPORTED_MESSAGE,
        MESSAGE_DROPPED,
        REPLY_FAILED,
        REPLY_UNDELIVERED,
        RECOMMENDATION,
        REFERRAL,
        IDENTITY_LINKED,
        IDENTITY_UNLINKED,
        CUSTOMERS_MERGED,
        CRM_PUSHED,
        CRM_FAILED,
        STAGE_SET,
        PRIVACY_REQUESTED,
        THEME_STATUS_SET,
        THEMES_RECLUSTERED,
        IDEA_UPDATES_CONSENT,
        IDEA_SEPARATED,
        IDEA_NOTIFIED,
        IDEA_NOTIFY_FAILED,
        HANDOVER_CLAIMED,
        HANDOVER_TRANSFERRED,
        HANDOVER_RELEASED,
        HANDOVER_RESOLVED,
        STAFF_NOTE,
        CSAT,
        HANDOVER_CONTACT,
    }
)

_JSON_FIELDS = ("metadata", "data")


class SchemaError(ValueError):
    """A stream entry that does not follow the schema."""


@dataclass
class LogEvent:
    """One interaction-log record. Text fields are empty strings when absent."""

    type: str
    conversation_id: str
    source: str
    channel: str = ""
    timestamp: float = field(default_factory=time.time)
    text: str = ""
    intent: str = ""
    confidence: Optional[float] = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    data: Dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    schema_version: int = SCHEMA_VERSION

    def to_fields(self) -> Dict[str, str]:
        """Flatten to the string fields a Redis stream entry holds."""
        fields: Dict[str, str] = {}
        for key, value in asdict(self).items():
            if key in _JSON_FIELDS:
                fields[key] = json.dumps(value, separators=(",", ":"), default=str)
            elif value is None:
                fields[key] = ""
            else:
                fields[key] = str(value)
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any], decoded: bool = False) -> "LogEvent":
        """Parse a stream entry (bytes or str keys and values; `decoded`: str already, as from a
        client that decodes responses, so nothing is converted)."""
        raw = fields if decoded else {_text(k): _text(v) for k, v in fields.items()}
        get = raw.get
        return cls._parsed(
            raw, get("type"), get("conversation_id"), get("source"), get("channel", ""), get("timestamp", ""), get("text", ""),
            get("intent", ""), get("confidence", ""), get("metadata"), get("data"), get("event_id"), get("schema_version", ""),
        )

    @classmethod
    def from_pairs(cls, pairs: Sequence[str]) -> "LogEvent":
        """Parse a decoded stream entry as Redis sends it (field, value, field, value...): the replay's
        hot path. One that `to_fields` wrote has the fields in this class's order and is read without
        making a mapping of it; any other is read as a mapping."""
        if pairs[::2] == FIELD_ORDER:
            try:
                return cls._parsed(None, *pairs[1::2])
            except SchemaError:
                pass  # said below, with the entry in the message
        return cls.from_fields(dict(zip(pairs[::2], pairs[1::2])), decoded=True)

    @classmethod
    def _parsed(
        cls, raw: Any, type_: Optional[str], conversation_id: Optional[str], source: Optional[str], channel: str, timestamp: str, text: str,
        intent: str, confidence: str, metadata: Optional[str], data: Optional[str], event_id: Optional[str], schema_version: str,
    ) -> "LogEvent":
        try:
            version = int(schema_version)
        except ValueError as exc:
            raise SchemaError(f"entry has no valid schema_version: {raw!r}") from exc
        if version > SCHEMA_VERSION:
            raise SchemaError(f"entry schema_version {version} is newer than {SCHEMA_VERSION}")
        if not (type_ and conversation_id and source and event_id):
            missing = next(name for name, value in (("type", type_), ("conversation_id", conversation_id), ("source", source), ("event_id", event_id)) if not value)
            raise SchemaError(f"entry lacks '{missing}': {raw!r}")
        metadata, data = metadata or "{}", data or "{}"
        return cls(
            type_, conversation_id, source, channel, _number("timestamp", timestamp) or 0.0, text, intent, _number("confidence", confidence),
            {} if metadata == "{}" else _json_field("metadata", metadata),  # most entries have no metadata
            {} if data == "{}" else _json_field("data", data),
            event_id, version,
        )


FIELD_ORDER = [item.name for item in fields(LogEvent)]  # as `to_fields` writes them


def _number(key: str, value: str) -> Optional[float]:
    """A float field of an entry (None when empty), or SchemaError."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise SchemaError(f"entry field '{key}' is not a number: {value[:40]!r}") from exc
    if not math.isfinite(number):
        raise SchemaError(f"entry field '{key}' is not a finite number: {value[:40]!r}")
    return number


def loads(text: str) -> Any:
    """JSON text as Python values, as the standard library reads it: orjson reads it faster where it
    is installed, and where orjson is stricter (a lone surrogate, NaN) the standard library decides.
    An integer past 64 bits comes back a float from orjson."""
    try:
        return _loads(text)
    except json.JSONDecodeError:  # orjson's error is one
        return json.loads(text)


def _json_field(key: str, value: str) -> Any:
    try:
        return loads(value)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"entry field '{key}' is not JSON") from exc
    except RecursionError as exc:  # orjson stops at 1,024 levels; the standard library then runs out of stack
        raise SchemaError(f"entry field '{key}' is JSON nested too deeply") from exc
    except ValueError as exc:  # an integer of over 4,300 digits, which orjson reads as infinity
        raise SchemaError(f"entry field '{key}' holds JSON Python does not read: {str(exc)[:80]}") from exc


def from_tracker_event(event: Mapping[str, Any], channel: str = "") -> LogEvent:
    """Map a Rasa tracker event (as the event broker receives it) to a log record.

    `channel` is the conversation's last known input channel: Rasa puts
    `input_channel` on user events only, so the broker remembers it for the rest.
    """
    parse = event.get("parse_data") or {}
    intent = parse.get("intent") or {}
    confidence = intent.get("confidence")
    metadata = dict(event.get("metadata") or {})
    data: Dict[str, Any] = {}
    for key in ("name", "policy", "value", "message_id"):
        if event.get(key) not in (None, ""):
            data[key] = event[key]
    if event.get("event") == "slot" and "name" in event:
        data["value"] = event.get("value")
    if event.get("event") == "action" and event.get("confidence") is not None:
        data["confidence"] = event["confidence"]
    bot_data = event.get("data") or {}
    if isinstance(bot_data, dict) and bot_data.get("buttons"):
        data["buttons"] = bot_data["buttons"]
    return LogEvent(
        type=str(event.get("event") or "unknown"),
        conversation_id=str(event.get("sender_id") or ""),
        source=SOURCE_RASA,
        channel=str(event.get("input_channel") or channel or ""),
        timestamp=float(event.get("timestamp") or time.time()),
        text=str(event.get("text") or ""),
        intent=str(intent.get("name") or ""),
        confidence=float(confidence) if confidence is not None else None,
        metadata=metadata,
        data=data,
    )


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
