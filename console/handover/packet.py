"""The handoff packet an agent reads before answering: what the customer wants, who they are, what
they were doing, what the bot already tried; and the conversation's transcript across channels.

Read-only: the stored Rasa tracker (`engage:tracker:<id>`), the analytics record
(`engage:analytics:state:<id>`, through analytics.records), and the FAQ records the action
server logged (`faq_answered`, `faq_suggested`, `faq_unanswered`, from the latest log entries).
The summary is extractive (the customer's own words, chosen by rules), so it never says
something the customer did not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from analytics.schema import EVENTS_STREAM, FAQ_ANSWERED, FAQ_SUGGESTED, FAQ_UNANSWERED, LogEvent, SchemaError

TRACKER_PREFIX = "engage:tracker:"
CONTEXT_KEYS = ("product", "feature", "page", "app_version")
SMALL_TALK = frozenset({"greet", "goodbye", "affirm", "deny", "thank", "thanks", "bot_challenge", "request_handover",
                        "request_human", "nlu_fallback", "inform", "stop"})
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
FILLER = frozenset("i me my we you a an the to of and or is are be it this that can could would please hi hello hey thanks thank "
                   "yes no ok okay want need person human agent someone talk speak real".split())
LOG_SCAN = 5000  # latest log entries searched for the conversation's FAQ records


@dataclass(frozen=True)
class Line:
    at: float
    who: str  # customer, bot, agent, system
    text: str
    channel: str = ""
    author: str = ""
    intent: str = ""
    buttons: Sequence[str] = ()

    def as_json(self) -> Dict[str, Any]:
        return {"at": self.at, "who": self.who, "text": self.text, "channel": self.channel, "author": self.author,
                "intent": self.intent, "buttons": list(self.buttons)}


@dataclass
class Packet:
    conversation_id: str
    wants: str
    points: List[str]
    topics: List[str]
    channels: List[str]
    context: Dict[str, Any]
    record: Optional[Dict[str, Any]]
    record_problem: str
    faq_tried: List[Dict[str, Any]]
    transcript: List[Line] = field(default_factory=list)


def transcript(events: Sequence[Dict[str, Any]]) -> List[Line]:
    """The spoken lines of a tracker's events (user and bot), with who said them."""
    lines: List[Line] = []
    channel = ""
    for event in events:
        kind = event.get("event")
        if kind == "user":
            channel = str(event.get("input_channel") or channel)
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name") or ""
            lines.append(Line(float(event.get("timestamp") or 0), "customer", str(event.get("text") or ""), channel, intent=str(intent)))
        elif kind == "bot":
            author = (event.get("metadata") or {}).get("author") or {}
            who = "agent" if author.get("role") == "agent" else ("system" if author else "bot")
            buttons = [str(b.get("title", "")) for b in ((event.get("data") or {}).get("buttons") or []) if isinstance(b, dict)]
            lines.append(Line(float(event.get("timestamp") or 0), who, str(event.get("text") or ""), channel,
                              author=str(author.get("name") or ""), buttons=buttons))
        elif kind in ("pause", "resume"):
            text = "A person took over; the bot is silent." if kind == "pause" else "Handed back to the bot."
            lines.append(Line(float(event.get("timestamp") or 0), "system", text, channel))
    return lines


def summarise(lines: Sequence[Line], reason: str, limit: int = 3) -> "tuple[str, List[str], List[str]]":
    """(what the customer wants, their most telling messages, the topics the bot recognised)."""
    said = [line for line in lines if line.who == "customer" and line.text.strip() and not line.text.startswith("/")]
    substantive = [line for line in said if line.intent not in SMALL_TALK and _content_words(line.text) >= 2]
    wants = reason.strip() if reason.strip() and _content_words(reason) >= 2 else ""
    if not wants and substantive:
        wants = max(substantive, key=lambda line: (_content_words(line.text), line.at)).text
    if not wants and said:
        wants = said[-1].text
    ranked = sorted(substantive, key=lambda line: -_content_words(line.text))[:limit]
    points = [line.text for line in sorted(ranked, key=lambda line: line.at) if line.text != wants]
    topics: List[str] = []
    for line in said:
        if line.intent and line.intent not in SMALL_TALK and line.intent not in topics:
            topics.append(line.intent)
    return wants or "(the customer has not said yet)", points, topics


def _content_words(text: str) -> int:
    return sum(1 for word in WORD.findall(text.lower()) if word not in FILLER)


async def tracker_events(client: Any, conversation_id: str) -> List[Dict[str, Any]]:
    raw = await client.get(TRACKER_PREFIX + conversation_id)
    if not raw:
        return []
    try:
        return list(json.loads(raw).get("events") or [])
    except (ValueError, AttributeError):
        return []


async def faq_tried(client: Any, conversation_id: str, scan: int = LOG_SCAN) -> List[Dict[str, Any]]:
    tried: List[Dict[str, Any]] = []
    for _, fields in await client.xrevrange(EVENTS_STREAM, count=scan):
        if fields.get("conversation_id") != conversation_id or fields.get("type") not in (FAQ_ANSWERED, FAQ_SUGGESTED, FAQ_UNANSWERED):
            continue
        try:
            event = LogEvent.from_fields(fields)
        except SchemaError:
            continue
        data = event.data
        offered = [{"faq_id": s.get("faq_id") or s.get("id"), "score": s.get("score"), "title": s.get("title") or s.get("question")}
                   for s in data.get("suggestions") or [] if isinstance(s, dict)]
        tried.append({"at": event.timestamp, "outcome": event.type.replace("faq_", ""), "query": data.get("query"),
                      "faq_id": data.get("faq_id"), "score": data.get("score"), "reason": data.get("reason"), "offered": offered})
    return sorted(tried, key=lambda item: item["at"])


async def build(client: Any, records: Any, conversation_id: str, reason: str) -> Packet:
    events = await tracker_events(client, conversation_id)
    lines = transcript(events)
    wants, points, topics = summarise(lines, reason)
    context: Dict[str, Any] = {}
    for event in reversed(events):
        metadata = event.get("metadata") or {} if event.get("event") == "user" else {}
        found = {key: metadata[key] for key in CONTEXT_KEYS if isinstance(metadata.get(key), (str, int, float)) and metadata.get(key) != ""}
        if found:
            context = found
            break
    record, problem = None, ""
    if records is not None and conversation_id.startswith("C-"):
        try:
            record = await records.record(conversation_id)
        except Exception as exc:  # the packet is still useful without it
            problem = f"The customer record could not be read ({type(exc).__name__}); the analytics service may be behind."
        if record is None and not problem:
            problem = "No customer record yet (the analytics service has not seen this customer, or is behind)."
    channels = sorted({line.channel for line in lines if line.channel})
    return Packet(conversation_id, wants, points, topics, channels, context, record, problem,
                  await faq_tried(client, conversation_id), lines)
