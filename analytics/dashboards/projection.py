"""The dashboard projection: per-day counters kept by the analytics consumer, once per event id.

Keys (prefix `engage:dashboards:`): `day:<YYYY-MM-DD>:<metric>` (hash of integer counters, see
fold.py: counter `metric|a|b` is field `a|b`; a chart reads only the metrics it draws),
`set:<name>:<day>` (who was active / handed over that day, per channel too) and `hll:<name>:<day>`
(the same as HyperLogLogs, for distinct customers over a range), `days` (sorted set of the days
with data), `channels` (set), `seen` (customers who have written), `open` and `handled` (hash
conversation -> JSON / team: handover state the service times are measured from), `funnel`
(hash customer -> the stage history counted so far), `applied:<day>` (ids of the events of that
day applied that can count anywhere, kept for the newest 31 days of log time, `applied-days` lists
them), `version`.

A batch is applied in one MULTI/EXEC under WATCH of `version`, after reading which of its events
were applied before, so a redelivered event (or one published twice) counts once and two
consumers never both count one; ids are forgotten a month of log time later, when no redelivery
can come.
Funnel counters follow the customer records (analytics.records, applied earlier in the same
batch): each touched customer's stage history is compared with what was counted for them, and
only the difference is added, so merges and rebuilt records correct the counts too.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from redis.exceptions import WatchError

from analytics.dashboards.fold import Effects, Open, Transition, counts, day_of, fold, funnel_delta, transitions
from analytics.records.fold import canonical
from analytics.records.store import CUSTOMERS, delete_prefix, state_key
from analytics.schema import CUSTOMERS_MERGED, LogEvent

PREFIX = "engage:dashboards:"
DAYS = PREFIX + "days"
CHANNELS = PREFIX + "channels"
SEEN = PREFIX + "seen"
OPEN = PREFIX + "open"
HANDLED = PREFIX + "handled"
FUNNEL = PREFIX + "funnel"
APPLIED_PREFIX = PREFIX + "applied:"  # + the event's UTC day: the ids of that day's events applied
APPLIED_DAYS = PREFIX + "applied-days"  # sorted set of the days that have such a set
KEEP_APPLIED_DAYS = 31  # of log time: a redelivery or a second publication comes within seconds, not a month
VERSION = PREFIX + "version"
EPOCH = dt.date(1970, 1, 1)


METRICS = ("msg", "msgs", "hour", "new", "faq", "fallback", "handover", "ticket", "rec", "csat", "csat_agent", "wait", "frt", "res",
           "resolved", "stage_in", "stage_time", "stage_move")


def applied_key(day: str) -> str:
    return APPLIED_PREFIX + day


def day_key(day: str, metric: str) -> str:
    return f"{PREFIX}day:{day}:{metric}"


def split_counter(counter: str) -> Tuple[str, str]:
    """`metric|rest` -> (metric, rest)."""
    metric, _, rest = counter.partition("|")
    return metric, rest


def set_key(set_name: str, day: str) -> str:
    return f"{PREFIX}set:{set_name}:{day}"


def hll_key(set_name: str, day: str) -> str:
    return f"{PREFIX}hll:{set_name}:{day}"


def day_number(day: str) -> int:
    return (dt.date.fromisoformat(day) - EPOCH).days


class DashboardStore:
    """The dashboards projection. `client` must decode responses."""

    name = "dashboards"

    def __init__(self, client: Any) -> None:
        self.client = client

    async def reset(self) -> None:
        await delete_prefix(self.client, PREFIX)

    def replay_fold(self) -> "DashboardReplay":
        return DashboardReplay(self)

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]], funnel: bool = True) -> Dict[str, str]:
        """Count the entries once each; `funnel` False leaves the funnel counts to the end of a replay."""
        timed: List[LogEvent] = []
        # Only what can count is checked against, and kept in, the applied ids: most events (actions,
        # the bot's own replies) count nowhere, and their ids were most of what the guard kept.
        events: List[LogEvent] = []
        by_day: Dict[str, List[LogEvent]] = {}
        ids: Set[str] = set()
        for _, event in entries:
            # The same event twice in one batch counts once; an event without a time counts nowhere.
            if event.event_id not in ids and event.timestamp and event.timestamp > 0:
                day = day_of(event.timestamp)  # a time no calendar holds is bad data, wherever it would count
                ids.add(event.event_id)
                timed.append(event)
                if counts(event):
                    events.append(event)
                    by_day.setdefault(day, []).append(event)
        customers = _customers(timed) if funnel else []
        if not events and not customers:
            return {}
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(VERSION)
                    async with self.client.pipeline(transaction=False) as reads:
                        for day, of_day in by_day.items():
                            reads.smismember(applied_key(day), [event.event_id for event in of_day])
                        reads.zrange(APPLIED_DAYS, 0, -1, withscores=True)
                        applied = await reads.execute()
                    done = {event.event_id for of_day, known in zip(by_day.values(), applied) for event, seen in zip(of_day, known) if seen}
                    new = [event for event in events if event.event_id not in done]
                    applied_days = {day: int(number) for day, number in applied[-1]}
                    talkers = sorted({e.conversation_id for e in new})
                    async with self.client.pipeline(transaction=False) as reads:
                        reads.hmget(OPEN, talkers or ["-"])
                        reads.hmget(HANDLED, talkers or ["-"])
                        reads.smismember(SEEN, talkers or ["-"])
                        reads.hmget(FUNNEL, customers or ["-"])
                        reads.mget([state_key(customer) for customer in customers] or ["-"])
                        answers = await reads.execute()
                    raw_open, raw_handled, raw_seen, raw_counted, raw_states = answers
                    opened = {c: (Open.from_json(json.loads(v)) if v else None) for c, v in zip(talkers, raw_open)}
                    handled = {c: v for c, v in zip(talkers, raw_handled) if v}
                    seen = {c for c, known in zip(talkers, raw_seen) if known}
                    effects = fold(new, opened, handled, seen)
                    funnel = _funnel_changes(customers, raw_counted, raw_states)
                    pipe.multi()
                    self._write(pipe, new, effects, funnel)
                    self._remember(pipe, new, applied_days)
                    await pipe.execute()
                    return {}
                except WatchError:
                    continue

    def _write(self, pipe: Any, new: Sequence[LogEvent], effects: Any, funnel: Dict[str, Tuple[Optional[str], Dict[str, Dict[str, int]]]]) -> None:
        days: Set[str] = set()
        counters: Dict[str, Dict[str, int]] = {day: dict(fields) for day, fields in effects.counters.items()}
        for counted, delta in funnel.values():
            for day, fields in delta.items():
                target = counters.setdefault(day, {})
                for counter, amount in fields.items():
                    target[counter] = target.get(counter, 0) + amount
        for day, fields in sorted(counters.items()):
            for counter, amount in sorted(fields.items()):
                if amount:
                    metric, rest = split_counter(counter)
                    pipe.hincrby(day_key(day, metric), rest, amount)
            days.add(day)
        channels: Set[str] = set()
        for (set_name, day), members in sorted(effects.members.items()):
            pipe.sadd(set_key(set_name, day), *sorted(members))
            pipe.pfadd(hll_key(set_name, day), *sorted(members))
            days.add(day)
            if ":" in set_name:  # active:<channel>, handed:<channel>
                channels.add(set_name.split(":", 1)[1])
        if days:
            pipe.zadd(DAYS, {day: day_number(day) for day in days})
        if channels:
            pipe.sadd(CHANNELS, *sorted(channels))
        if effects.seen:
            pipe.sadd(SEEN, *sorted(effects.seen))
        _hash_changes(pipe, OPEN, {conversation: None if state is None else canonical(state.to_json()) for conversation, state in effects.opened.items()})
        if effects.handled_by:
            pipe.hset(HANDLED, mapping=dict(sorted(effects.handled_by.items())))
        _hash_changes(pipe, FUNNEL, {customer: counted for customer, (counted, _) in funnel.items()})
        pipe.incr(VERSION)

    @staticmethod
    def _remember(pipe: Any, new: Sequence[LogEvent], applied_days: Dict[str, int]) -> None:
        """Note the new events as applied, under their day, and forget the ids of days more than
        KEEP_APPLIED_DAYS before the newest (so the guard does not grow with the log). What is kept
        depends only on the events, not on how they were batched: a replay keeps the same."""
        by_day: Dict[str, List[str]] = {}
        for event in new:
            by_day.setdefault(day_of(event.timestamp), []).append(event.event_id)
        for day, event_ids in sorted(by_day.items()):
            pipe.sadd(applied_key(day), *event_ids)
            applied_days[day] = day_number(day)
        if by_day:
            pipe.zadd(APPLIED_DAYS, {day: day_number(day) for day in by_day})
        newest = max(applied_days.values(), default=0)
        old = sorted(day for day, number in applied_days.items() if number <= newest - KEEP_APPLIED_DAYS)
        if old:
            pipe.unlink(*map(applied_key, old))
            pipe.zrem(APPLIED_DAYS, *old)


class DashboardReplay:
    """The dashboards in a replay: events are counted batch by batch as the consumers count them; the
    funnel counts come once at the end, from the stage histories the records replay has written
    (counting each customer's whole history once adds up to the same as counting its changes)."""

    name = DashboardStore.name

    def __init__(self, store: DashboardStore) -> None:
        self.store = store

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
        return await self.store.apply_batch(entries, funnel=False)

    async def finish(self, chunk: int = 500) -> None:
        client = self.store.client
        customers = await client.zrange(CUSTOMERS, 0, -1)
        for start in range(0, len(customers), chunk):
            some = customers[start:start + chunk]
            funnel = _funnel_changes(some, [None] * len(some), await client.mget([state_key(customer) for customer in some]))
            if funnel:
                async with client.pipeline(transaction=True) as pipe:
                    self.store._write(pipe, [], Effects(), funnel)
                    await pipe.execute()


async def forget(client: Any, customers: Sequence[str]) -> None:
    """Erasure (analytics.privacy): the customers' ids leave every set and hash kept here. The counters
    stay, being counts of no one in particular (HyperLogLogs hold hashed registers, not ids)."""
    if not customers:
        return
    days = await client.zrange(DAYS, 0, -1)
    channels = sorted(await client.smembers(CHANNELS))
    names = ["active", "handed", *(f"{kind}:{ch}" for kind in ("active", "handed") for ch in channels)]
    async with client.pipeline(transaction=False) as pipe:
        for day in days:
            for set_name in names:
                pipe.srem(set_key(set_name, day), *customers)
        pipe.srem(SEEN, *customers)
        for table in (OPEN, HANDLED, FUNNEL):
            pipe.hdel(table, *customers)
        await pipe.execute()


def _hash_changes(pipe: Any, key: str, values: Dict[str, Optional[str]]) -> None:
    """Set the fields with a value and delete those with None: one HSET and one HDEL at most."""
    kept = {field: value for field, value in sorted(values.items()) if value is not None}
    gone = sorted(field for field, value in values.items() if value is None)
    if kept:
        pipe.hset(key, mapping=kept)
    if gone:
        pipe.hdel(key, *gone)


def _customers(events: Sequence[LogEvent]) -> List[str]:
    """Whose stage history may have changed: everyone the batch names, and customers merged away."""
    found: Set[str] = set()
    for event in events:
        if event.conversation_id and len(event.conversation_id) <= 128:
            found.add(event.conversation_id)
        if event.type == CUSTOMERS_MERGED and isinstance(event.data, dict) and isinstance(event.data.get("merged_from"), list):
            found.update(str(c) for c in event.data["merged_from"] if str(c) and len(str(c)) <= 128)
    return sorted(found)


def _funnel_changes(customers: Sequence[str], counted: Sequence[Optional[str]], states: Sequence[Optional[str]]) -> Dict[str, Tuple[Optional[str], Dict[str, Dict[str, int]]]]:
    """Per customer whose history differs from what was counted: the history to store (None: none) and the counter delta."""
    changes: Dict[str, Tuple[Optional[str], Dict[str, Dict[str, int]]]] = {}
    for customer, before_raw, state_raw in zip(customers, counted, states):
        history: List[Transition] = []
        if state_raw:
            history = transitions(json.loads(state_raw).get("funnel", {}).get("history", []))
        now = canonical([[at, stage] for at, stage in history]) if history else None
        if now == before_raw:
            continue
        before: List[Transition] = [(float(at), str(stage)) for at, stage in json.loads(before_raw)] if before_raw else []
        changes[customer] = (now, funnel_delta(before, history))
    return changes

