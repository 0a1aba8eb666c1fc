"""Two customers merge: their records become one, nothing counted twice, in any order of arrival."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from typing import Dict, List

import redis.asyncio

from analytics.records.fold import canonical
from analytics.records.store import CUSTOMERS, RecordStore, facts_key, leaderboard_key, merged_key, state_key
from analytics.schema import CUSTOMERS_MERGED, SOURCE_DIRECTORY, LogEvent
from tests.analytics.support import conversation_events

KEPT, GONE, LATER = "C-0000000000000000", "C-0000000000000001", "C-0000000000000002"


def merge(into: str, merged: List[str], at: float) -> LogEvent:
    return LogEvent(CUSTOMERS_MERGED, into, SOURCE_DIRECTORY, "", at, data={"merged_from": merged})


def history() -> List[LogEvent]:
    events = conversation_events(seed=21, customers=3, per_customer=12)
    middle = events[len(events) // 2].timestamp
    # GONE merges into KEPT half-way; later KEPT merges into LATER. Events still naming GONE
    # after its merge (an in-flight message) belong to LATER in the end too.
    return events + [merge(KEPT, [GONE], middle), merge(LATER, [KEPT], middle + 100)]


async def state(client: redis.asyncio.Redis) -> Dict[str, object]:
    names = ("C-0000000000000000", "C-0000000000000001", "C-0000000000000002")
    found: Dict[str, object] = {name: (await client.get(state_key(name)), await client.get(merged_key(name))) for name in names}
    found["customers"] = await client.zrange(CUSTOMERS, 0, -1)
    found["board"] = await client.zrange(leaderboard_key("communication"), 0, -1)
    return found


async def test_merged_records_add_up_and_any_arrival_order_gives_the_same_bytes(client: redis.asyncio.Redis) -> None:
    events = history()
    place = {event.event_id: f"{1_000 + n}-0" for n, event in enumerate(events)}  # each event's entry in the log
    store = RecordStore(client)
    for event in events:
        await store.apply(place[event.event_id], event)
    expected = await state(client)
    kept = await store.record(LATER)
    users = sum(e.type == "user" for e in events)
    assert kept["counts"]["messages"] == users  # all three customers' messages, none twice
    assert await store.record(GONE) == {"customer_id": GONE, "merged_into": KEPT}
    assert await store.record(KEPT) == {"customer_id": KEPT, "merged_into": LATER}
    assert expected["customers"] == [LATER] and expected["board"] == [LATER]

    rng = random.Random(5)
    for _ in range(4):
        await client.flushdb()
        shuffled = events + rng.sample(events, 30)  # and some redeliveries
        rng.shuffle(shuffled)
        for event in shuffled:
            await store.apply(place[event.event_id], event)
        assert await state(client) == expected


class CountingStore(RecordStore):
    """Counts how often a customer is folded again from all their facts."""

    rebuilds = 0

    def rebuild(self, customer_id, facts, stored=None):  # type: ignore[no-untyped-def]
        self.rebuilds += 1
        return super().rebuild(customer_id, facts, stored)


async def test_a_merge_that_brings_only_later_facts_folds_them_onto_the_kept_state(client: redis.asyncio.Redis) -> None:
    """A new device's session (GONE, all after KEPT's last fact) proved to be KEPT: no fold from the
    start, and the same bytes as one. When the sessions interleave, KEPT is folded again."""
    older = [e for e in conversation_events(seed=23, customers=1, per_customer=20)]
    later = [dataclasses.replace(e, conversation_id=GONE, event_id=uuid.uuid4().hex, timestamp=e.timestamp + 10_000)
             for e in conversation_events(seed=24, customers=1, per_customer=8)]
    for events, expected_rebuilds in ((older + later, 0), (older[:30] + later + older[30:], 1)):
        await client.flushdb()
        store = CountingStore(client)
        log = events + [merge(KEPT, [GONE], events[-1].timestamp + 1)]
        entries = [(f"{1_000 + n}-0", event) for n, event in enumerate(log)]
        for start in range(0, len(entries) - 1, 7):
            await store.apply_batch([entry for entry in entries[start:start + 7] if entry[1].type != CUSTOMERS_MERGED])
        store.rebuilds = 0
        await store.apply_batch(entries[-1:])
        assert store.rebuilds == expected_rebuilds
        facts = [json.loads(raw) for raw in (await client.hgetall(facts_key(KEPT))).values()]
        assert len(facts) == len([e for e in log if e.type != "action"])
        assert await client.get(state_key(KEPT)) == canonical(store.rebuild(KEPT, facts).to_json())
