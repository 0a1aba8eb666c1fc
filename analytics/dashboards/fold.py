"""What one log event adds to the dashboard counters: pure functions, no I/O.

Every number is an integer counter named `metric|dimension|...` per UTC day (stored as one
hash per day and metric), or a member of a per-day set (who was active, who was handed over).
Integers added in any order give the same bytes, so incremental consumption and a replay agree.
The one piece of state a count needs is what is open in handover (when it was asked for, by
which team it is worked, whether a person has answered yet): `Open`, kept per conversation.

A *conversation* is one customer's messages on one UTC day; it is *contained* when no handover
was asked for that customer that day.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from analytics.schema import (
    FALLBACK,
    FAQ_ANSWERED,
    FAQ_SUGGESTED,
    FAQ_UNANSWERED,
    HANDOVER_REQUESTED,
    RECOMMENDATION,
    LogEvent,
)

# Staff events console/handover/store.py writes (named here too: analytics does not import the console).
HANDOVER_CLAIMED = "handover_claimed"
HANDOVER_TRANSFERRED = "handover_transferred"
HANDOVER_RELEASED = "handover_released"
HANDOVER_RESOLVED = "handover_resolved"
CSAT = "csat"  # actions/csat.py: data.score 1-5, data.agent {id, name}
USER, BOT = "user", "bot"
FAQ_OUTCOMES = {FAQ_ANSWERED: "answered", FAQ_SUGGESTED: "suggested", FAQ_UNANSWERED: "unanswered"}
NO_CHANNEL = "unknown"
MAX_NAME = 40
SEP = "|"


def day_of(timestamp: float) -> str:
    """The UTC day of a time, as YYYY-MM-DD; a ValueError (bad data) for a time no calendar holds."""
    try:
        return _day(int(timestamp // 86_400))
    except OverflowError as exc:
        raise ValueError(f"time {timestamp!r} is out of the calendar's range") from exc


@functools.lru_cache(maxsize=4096)
def _day(number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=number)).isoformat()


def hour_of(timestamp: float) -> int:
    return int(timestamp % 86_400 // 3_600)


def name(value: Any, default: str = NO_CHANNEL) -> str:
    """A dimension value safe inside a field name (no separator, bounded, never empty)."""
    return _name(value if type(value) is str else str(value or "")) or default


@functools.lru_cache(maxsize=1024)  # channels, teams, agents: a few names, met on every event
def _name(text: str) -> str:
    return " ".join(text.split()).replace(SEP, "/")[:MAX_NAME]


def key(*parts: Any) -> str:
    return SEP.join(str(part) for part in parts)


@dataclass
class Open:
    """A conversation waiting for or with a person: what service times are measured from."""

    at: float
    team: str
    owner: str = ""
    claimed: bool = False
    replied: bool = False

    def to_json(self) -> Dict[str, Any]:
        return {"at": self.at, "team": self.team, "owner": self.owner, "claimed": self.claimed, "replied": self.replied}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Open":
        return cls(float(data["at"]), str(data["team"]), str(data.get("owner", "")), bool(data.get("claimed")), bool(data.get("replied")))


@dataclass
class Effects:
    """What a batch changes: counter increments per day, set members per (set, day), open handovers."""

    counters: Dict[str, Dict[str, int]] = field(default_factory=dict)  # day -> field -> increment
    members: Dict[Tuple[str, str], Set[str]] = field(default_factory=dict)  # (set name, day) -> customers
    opened: Dict[str, Optional[Open]] = field(default_factory=dict)  # conversation -> state (None: closed)
    handled_by: Dict[str, str] = field(default_factory=dict)  # conversation -> team that resolved it last
    seen: Set[str] = field(default_factory=set)  # customers whose first message is in this batch

    def add(self, day: str, counter: str, amount: int = 1) -> None:
        fields = self.counters.setdefault(day, {})
        fields[counter] = fields.get(counter, 0) + amount

    def member(self, name_: str, day: str, customer: str) -> None:
        self.members.setdefault((name_, day), set()).add(customer)


def seconds(value: float) -> int:
    """Durations are whole seconds (integers add the same in any order); clocks that disagree give 0, not a negative."""
    return max(0, int(round(value)))


def fold(events: Sequence[LogEvent], opened: Mapping[str, Optional[Open]], handled_by: Mapping[str, str], seen: Set[str] = frozenset()) -> Effects:  # type: ignore[assignment]
    """The counters these events (in log order, each new) add, given what was open before them and
    which customers had written before (`seen`)."""
    effects = Effects()
    state: Dict[str, Optional[Open]] = dict(opened)
    handled: Dict[str, str] = dict(handled_by)
    known = set(seen)
    for event in events:
        if event.type == USER and event.conversation_id not in known and event.timestamp and event.timestamp > 0:
            known.add(event.conversation_id)
            effects.seen.add(event.conversation_id)
            effects.add(day_of(event.timestamp), key("new", name(event.channel)))
        step(event, effects, state, handled)
    effects.opened = {conversation: state[conversation] for conversation in state if conversation not in opened or state[conversation] != opened[conversation]}
    effects.handled_by = {conversation: team for conversation, team in handled.items() if handled_by.get(conversation) != team}
    return effects


def counts(event: LogEvent) -> bool:
    """Whether the event can count anywhere here: most (actions, the bot's own replies) do not."""
    return event.type in _FOLDED and (event.type != BOT or bool(event.metadata))


def step(event: LogEvent, effects: Effects, opened: Dict[str, Optional[Open]], handled: Dict[str, str]) -> None:
    """Fold one event (in place)."""
    at = float(event.timestamp or 0.0)
    if at <= 0:
        return
    day, kind, who = day_of(at), event.type, event.conversation_id  # day_of first: a time no calendar holds is bad data
    if not counts(event):
        return
    data = event.data if isinstance(event.data, dict) else {}
    channel = name(event.channel)
    if kind == USER:
        effects.add(day, key("msg", channel, f"{hour_of(at):02d}"))
        effects.add(day, key("msgs", channel))  # the same, without the hour: most charts need only this
        effects.add(day, key("hour", f"{hour_of(at):02d}"))  # and without the channel: the heatmap unfiltered
        effects.member("active", day, who)
        effects.member("active:" + channel, day, who)
    elif kind in FAQ_OUTCOMES:
        effects.add(day, key("faq", FAQ_OUTCOMES[kind], channel))
    elif kind == FALLBACK:
        effects.add(day, key("fallback", channel))
    elif kind == HANDOVER_REQUESTED:
        if data.get("already_waiting") or data.get("queued") is False:
            return  # asked again while waiting, or never queued: no new request
        team = name(data.get("team"), "support")
        effects.add(day, key("handover", name(data.get("trigger"), "asked_for_person"), channel))
        effects.member("handed", day, who)
        effects.member("handed:" + channel, day, who)
        if data.get("ticket"):
            effects.add(day, key("ticket", team))
        current = opened.get(who)
        if current is None:
            requested = data.get("requested_at")
            start = float(requested) if isinstance(requested, (int, float)) and not isinstance(requested, bool) and 0 < requested <= at else at
            opened[who] = Open(start, team)
    elif kind == RECOMMENDATION:
        score = data.get("score")
        if isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= 10:
            effects.add(day, key("rec", score))
    elif kind == CSAT:
        score = data.get("score")
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
            agent = data.get("agent") if isinstance(data.get("agent"), dict) else {}
            effects.add(day, key("csat", score, name(handled.get(who), "unknown")))
            effects.add(day, key("csat_agent", name(agent.get("id"), "unknown"), "sum"), score)
            effects.add(day, key("csat_agent", name(agent.get("id"), "unknown"), "n"))
    elif kind == HANDOVER_CLAIMED:
        current = _open(opened, who, at, data)
        if not current.claimed:
            team = name(data.get("team"), current.team)
            effects.add(day, key("wait", team, "sum"), seconds(at - current.at))
            effects.add(day, key("wait", team, "n"))
            opened[who] = Open(current.at, team, name(data.get("by"), "unknown"), True, current.replied)
    elif kind == HANDOVER_TRANSFERRED:
        current = opened.get(who)
        if current is not None:
            if data.get("to_team"):  # back to a queue: waiting again until someone claims it
                opened[who] = Open(current.at, name(data.get("to_team")), "", False, current.replied)
            elif data.get("to"):
                opened[who] = Open(current.at, current.team, name(data.get("to")), True, current.replied)
    elif kind == BOT:
        author = (event.metadata or {}).get("author") if isinstance(event.metadata, dict) else None
        current = opened.get(who)
        if isinstance(author, dict) and author.get("role") == "agent" and current is not None and not current.replied:
            agent = name(author.get("id"), current.owner or "unknown")
            effects.add(day, key("frt", current.team, agent, "sum"), seconds(at - current.at))
            effects.add(day, key("frt", current.team, agent, "n"))
            opened[who] = Open(current.at, current.team, current.owner, current.claimed, True)
    elif kind == HANDOVER_RESOLVED:
        current = _open(opened, who, at, data)
        agent = name(data.get("by"), current.owner or "unknown")
        effects.add(day, key("res", current.team, agent, "sum"), seconds(at - current.at))
        effects.add(day, key("res", current.team, agent, "n"))
        effects.add(day, key("resolved", current.team, name(data.get("outcome"), "solved")))
        handled[who] = current.team
        opened[who] = None
    elif kind == HANDOVER_RELEASED:
        current = opened.get(who)
        if current is not None:
            handled[who] = current.team
        opened[who] = None


_FOLDED = frozenset({USER, *FAQ_OUTCOMES, FALLBACK, HANDOVER_REQUESTED, RECOMMENDATION, CSAT, HANDOVER_CLAIMED, HANDOVER_TRANSFERRED, BOT,
                     HANDOVER_RESOLVED, HANDOVER_RELEASED})


def _open(opened: Dict[str, Optional[Open]], who: str, at: float, data: Mapping[str, Any]) -> Open:
    """What is open for the conversation; one asked for outside the log (the funnel's sales handover)
    starts when staff first touch it, so its waiting time is unknown rather than made up."""
    current = opened.get(who)
    if current is None:
        current = Open(at, name(data.get("team"), "sales"))
        opened[who] = current
    return current


# -- the funnel: stage changes and time in stage, from the customer records' stage history ----------

Transition = Tuple[float, str]  # (when, stage entered)


def transitions(history: Sequence[Mapping[str, Any]]) -> List[Transition]:
    """A record's funnel history (analytics.funnel.stages) as (when, stage) pairs."""
    return [(float(item["at"]), str(item["stage"])) for item in history if isinstance(item, Mapping) and "at" in item and "stage" in item]


def funnel_counters(path: Sequence[Transition]) -> Dict[str, Dict[str, int]]:
    """What one customer's stage history adds: each stage entered (on its day) and, for each stage
    left, the seconds spent in it (on the day it was left)."""
    out: Dict[str, Dict[str, int]] = {}

    def add(day: str, counter: str, amount: int) -> None:
        out.setdefault(day, {})[counter] = out.get(day, {}).get(counter, 0) + amount

    for index, (at, stage) in enumerate(path):
        add(day_of(at), key("stage_in", stage), 1)
        if index > 0:
            before_at, before = path[index - 1]
            add(day_of(at), key("stage_time", before, "sum"), seconds(at - before_at))
            add(day_of(at), key("stage_time", before, "n"), 1)
            add(day_of(at), key("stage_move", before, stage), 1)
    return out


def funnel_delta(old: Sequence[Transition], new: Sequence[Transition]) -> Dict[str, Dict[str, int]]:
    """The counter changes that turn `old` history's contribution into `new`'s (zeros dropped)."""
    delta: Dict[str, Dict[str, int]] = {}
    for sign, path in ((-1, old), (1, new)):
        for day, fields in funnel_counters(path).items():
            for counter, amount in fields.items():
                delta.setdefault(day, {})[counter] = delta.get(day, {}).get(counter, 0) + sign * amount
    return {day: {c: a for c, a in fields.items() if a} for day, fields in delta.items() if any(fields.values())}
