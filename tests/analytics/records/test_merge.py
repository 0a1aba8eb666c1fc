"""Two customers merge: their records become one, nothing counted twice, in any order of arrival."""

from __future__ import annotations

import random
from typing import Dict, List

import redis.asyncio

from analytics.records.store import CUSTOMERS, RecordStore, leaderboard_key, merged_key, state_key
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
