"""Reading the dashboard aggregates for a window of days: a few pipelined reads per day, never the log.

`scan_counts` computes the same `Counts` by reading the whole stream and folding it in memory:
the benchmark's baseline, and a check that the kept aggregates say what the log says.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Sequence, Set

from analytics.dashboards.charts import Counts, Window
from analytics.dashboards.fold import Open, fold
from analytics.dashboards.projection import CHANNELS, DAYS, METRICS, day_key, day_number, hll_key, set_key
from analytics.schema import EVENTS_STREAM, LogEvent, SchemaError
from analytics.stream.consumer import stream_batches


async def data_range(client: Any) -> Optional[tuple]:
    """The first and last day with data, or None."""
    first = await client.zrange(DAYS, 0, 0)
    last = await client.zrange(DAYS, -1, -1)
    return (first[0], last[0]) if first and last else None


async def load_counts(client: Any, window: Window, metrics: Sequence[str] = METRICS, sets: bool = True) -> Counts:
    """The window's counters of these metrics (one HGETALL per day and metric, pipelined) and, with
    `sets`, the sizes of its per-day sets."""
    days = window.days()
    active = "active:" + window.channel if window.channel else "active"
    handed = "handed:" + window.channel if window.channel else "handed"
    async with client.pipeline(transaction=False) as pipe:
        for day in days:
            for metric in metrics:
                pipe.hgetall(day_key(day, metric))
        pipe.smembers(CHANNELS)
        pipe.zrangebyscore(DAYS, day_number(window.start.isoformat()), day_number(window.end.isoformat()))
        answers = await pipe.execute()
    counters: Dict[str, Dict[str, int]] = {}
    position = 0
    for day in days:
        for metric in metrics:
            fields = answers[position]
            position += 1
            if fields:
                target = counters.setdefault(day, {})
                for name, value in fields.items():
                    target[f"{metric}|{name}"] = int(value)
    channels = sorted(answers[-2])
    with_data = answers[-1]  # sets exist only on days with data
    sizes: Dict[tuple, int] = {}
    handed_active: Dict[str, int] = {}
    distinct = 0
    if with_data and sets:
        names = [active] + ([] if window.channel else ["active:" + ch for ch in channels])
        async with client.pipeline(transaction=False) as pipe:
            for day in with_data:
                for name in names:
                    pipe.scard(set_key(name, day))
                pipe.sintercard(2, [set_key(active, day), set_key(handed, day)])
            pipe.pfcount(*[hll_key(active, day) for day in with_data])
            answers = await pipe.execute()
        position = 0
        for day in with_data:
            for name in names:
                sizes[(name, day)] = int(answers[position])
                position += 1
            handed_active[day] = int(answers[position])
            position += 1
        distinct = int(answers[position])
    return Counts(window, counters, sizes, handed_active, distinct, channels)


async def scan_counts(client: Any, window: Window, batch: int = 5000, stream: str = EVENTS_STREAM, skip: Set[str] = frozenset()) -> Counts:  # type: ignore[assignment]
    """The same `Counts`, computed by reading the whole stream (what no page does: the baseline).
    `skip`: entry ids the service did not apply (dead-lettered), to compare like with like."""
    first, last = day_number(window.start.isoformat()), day_number(window.end.isoformat())
    opened: Dict[str, Optional[Open]] = {}
    handled: Dict[str, str] = {}
    seen: Set[str] = set()
    counters: Dict[str, Dict[str, int]] = {}
    members: Dict[tuple, Set[str]] = {}
    ids: Set[str] = set()
    async for entries in stream_batches(client, stream, batch):
        events: List[LogEvent] = []
        for entry_id, fields in entries:
            if entry_id in skip:
                continue
            try:
                event = LogEvent.from_fields(fields)
            except SchemaError:
                continue
            if event.event_id not in ids:  # an event published twice counts once, as in the projection
                ids.add(event.event_id)
                events.append(event)
        effects = fold(events, opened, handled, seen)
        for conversation, state in effects.opened.items():
            opened[conversation] = state
        handled.update(effects.handled_by)
        seen |= effects.seen
        for day, fields in effects.counters.items():
            if first <= day_number(day) <= last:
                target = counters.setdefault(day, {})
                for name, value in fields.items():
                    target[name] = target.get(name, 0) + value
        for key, who in effects.members.items():
            members.setdefault(key, set()).update(who)
    channels = sorted({name.split(":", 1)[1] for name, _ in members if ":" in name})  # as the projection registers them
    active = "active:" + window.channel if window.channel else "active"
    handed = "handed:" + window.channel if window.channel else "handed"
    sizes = {(name, day): len(who) for (name, day), who in members.items() if first <= day_number(day) <= last}
    handed_active = {day: len(who & members.get((handed, day), set())) for (name, day), who in members.items()
                     if name == active and first <= day_number(day) <= last}
    everyone: Set[str] = set()
    for (name, day), who in members.items():
        if name == active and first <= day_number(day) <= last:
            everyone |= who
    return Counts(window, counters, sizes, handed_active, len(everyone), channels)


async def day_counters(client: Any, day: str) -> Dict[str, int]:
    """Every counter of one day, by its full name (tests and people debugging)."""
    return (await load_counts(client, Window(dt.date.fromisoformat(day), dt.date.fromisoformat(day)), sets=False)).counters.get(day, {})


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()

