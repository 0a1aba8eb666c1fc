"""A replay folds the customers in memory and writes them at the end: the same bytes as the consumers, batch by batch."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Dict, List, Set

import pytest
import redis.asyncio

from analytics.dashboards.projection import PREFIX as DASHBOARDS, DashboardStore
from analytics.records.replay import FINISH_CHUNK, RecordReplay
from analytics.records.store import PREFIX as RECORDS, RecordStore, stage_key
from analytics.replay import replay
from analytics.schema import CUSTOMERS_MERGED, EVENTS_STREAM, SOURCE_DIRECTORY, LogEvent
from analytics.stream.consumer import DEAD_LETTER_STREAM, ConsumerSettings, StreamConsumer
from tests.analytics.support import LEAD_CUSTOMER, conversation_events, qualified_lead
from tests.analytics.support import snapshot as all_keys

KEPT, GONE = "C-0000000000000000", "C-0000000000000001"
C2, C3 = "C-0000000000000002", "C-0000000000000003"


def log() -> List[LogEvent]:
    """Conversations; GONE merges into KEPT half-way, then KEPT answers the sales form (their stage moves
    after the merge); events still naming GONE come after; some events are published twice, far apart."""
    events = conversation_events(seed=31, customers=4, per_customer=15)
    half = len(events) // 2
    at = events[half].timestamp
    merge = LogEvent(CUSTOMERS_MERGED, KEPT, SOURCE_DIRECTORY, "", at, data={"merged_from": [GONE]})
    form = [dataclasses.replace(e, conversation_id=KEPT, event_id=uuid.uuid4().hex) for e in qualified_lead(at + 50)]
    return events[:half] + [merge] + events[half:half + 30] + form + events[half + 30:] + events[5:25] + events[:3]


async def snapshot(client: redis.asyncio.Redis) -> Dict[str, Any]:
    """Every key the records and the dashboards keep, with its content."""
    return await all_keys(client, RECORDS, DASHBOARDS)


async def test_a_replay_in_small_batches_writes_what_the_consumers_wrote(client: redis.asyncio.Redis) -> None:
    events = log()
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(EVENTS_STREAM, event.to_fields())
        await pipe.execute()
    projections = [RecordStore(client), DashboardStore(client)]
    assert await StreamConsumer(client, projections, ConsumerSettings(consumer="c1", batch=5)).drain() == len(events)
    incremental = await snapshot(client)
    kept = await RecordStore(client).record(KEPT)
    assert kept is not None and kept["funnel"]["stage"] == "opportunity"
    assert await RecordStore(client).record(GONE) == {"customer_id": GONE, "merged_into": KEPT}
    assert [m for m, _ in incremental[stage_key("opportunity")]] == [KEPT]
    assert LEAD_CUSTOMER not in str(incremental)  # the form was answered by KEPT only

    for batch in (7, 1000):  # merges and copies inside a batch and across batches
        result = await replay(client, projections, progress=False, batch=batch)
        assert (result.entries, result.applied, result.dead_lettered) == (len(events), len(events), 0)
        assert await snapshot(client) == incremental


@pytest.mark.parametrize("room", ["two customers", "6,000 bytes"])
async def test_customers_parked_in_redis_come_back_as_they_left(client: redis.asyncio.Redis, room: str) -> None:
    """A replay keeps only the most recently seen customers in memory: with room for two (or for
    states of 6,000 bytes in all, by their estimated size), the rest go to Redis and back batch after
    batch, and the records end the same."""
    events = log()
    store = RecordStore(client)
    entries = [(f"{1_000 + n}-0", event) for n, event in enumerate(events)]
    for start in range(0, len(entries), 5):
        await store.apply_batch(entries[start:start + 5])
    expected = await snapshot(client)
    await store.reset()
    # ... and the finish writes them a few at a time (a customer alone when over the budget)
    fold = RecordReplay(store, keep=2) if room == "two customers" else RecordReplay(store, keep_bytes=6_000, finish_bytes=3_000)
    waited: Set[str] = set()
    for start in range(0, len(entries), 5):
        assert await fold.apply_batch(entries[start:start + 5]) == {}
        assert fold.held == sum(fold.sizes.values()) and set(fold.sizes) == set(fold.states)
        assert len(fold.states) <= 2 if room == "two customers" else (fold.held <= 6_000 or len(fold.states) == 1)
        waited.update(fold.parked)
    assert waited  # some did wait in Redis
    await fold.finish()
    assert await snapshot(client) == expected


async def test_the_finish_writes_states_in_runs_that_fit_its_budget(client: redis.asyncio.Redis) -> None:
    """The busiest customers' states reach tens of KiB each: the finish writes them in runs of at most
    FINISH_CHUNK customers and `finish_bytes` of state (measured, as parked, or at the caps when a
    customer is folded again at the end), a customer alone when theirs is bigger."""
    fold = RecordReplay(RecordStore(client), finish_bytes=10_000)
    fold.sizes.update({"a": 4_000, "b": 4_000, "g": 2_000})
    fold.parked.update({"c": 3_000, "d": 20_000, "e": 1})
    fold.fold_at_end.add("f")
    assert list(fold._finish_chunks("abcdefg")) == [["a", "b"], ["c"], ["d"], ["e"], ["f"], ["g"]]
    small = [f"C-{n:04d}" for n in range(2 * FINISH_CHUNK + 1)]
    fold.parked.update(dict.fromkeys(small, 1))
    assert [len(chunk) for chunk in fold._finish_chunks(small)] == [FINISH_CHUNK, FINISH_CHUNK, 1]


def merges() -> List[LogEvent]:
    """Merges of every shape: two into one customer whose history interleaves with theirs, a new
    device's session (all after the kept customer's last fact) into another, then the first customer
    itself merged into that one, which goes on talking under its old id; copies come far apart."""
    events = conversation_events(seed=41, customers=4, per_customer=12)
    third, two = len(events) // 3, 2 * len(events) // 3
    new = "C-00000000000000aa"
    at = events[two].timestamp
    device = [LogEvent("user", new, "rasa", "portal", at + 1, text="hello from the app"),
              LogEvent("idea", new, "action", "portal", at + 2, data={"reference": "IDEA-NEW", "summary": "offline mode"}),
              LogEvent("bot", new, "rasa", "portal", at + 3, text="noted")]

    def merge(into: str, gone: str, when: float) -> LogEvent:
        return LogEvent(CUSTOMERS_MERGED, into, SOURCE_DIRECTORY, "", when, data={"merged_from": [gone]})

    return (events[:third] + [merge(KEPT, GONE, events[third].timestamp)] + events[third:two] + [merge(KEPT, C2, at)]
            + device + [merge(C3, new, at + 4)] + events[two:] + [merge(C3, KEPT, at + 9_000)] + events[-12:] + events[40:60])


async def test_merges_of_every_shape_replay_to_what_the_consumers_wrote(client: redis.asyncio.Redis) -> None:
    events = merges()
    entries = [(f"{1_000 + n}-0", event) for n, event in enumerate(events)]
    store = RecordStore(client)
    for start in range(0, len(entries), 5):
        await store.apply_batch(entries[start:start + 5])
    expected = await snapshot(client)
    assert (await store.record(KEPT) or {}).get("merged_into") == C3
    last_merge = max(n for n, event in enumerate(events) if event.type == CUSTOMERS_MERGED)
    for room in ({"keep": 2}, {"keep": 10}, {"keep_bytes": 6_000}):
        await store.reset()
        fold = RecordReplay(store, **room)
        deferred = set()
        for start in range(0, len(entries), 7):
            assert await fold.apply_batch(entries[start:start + 7]) == {}
            deferred |= fold.fold_at_end
            if start + 7 <= last_merge:  # the new device's merge into C3 was folded onto C3's state
                assert C3 not in fold.fold_at_end
        assert deferred == {KEPT, C3}  # interleaving merges: folded once, at the end
        await fold.finish()
        assert await snapshot(client) == expected


async def test_a_replay_dead_letters_what_it_cannot_use_and_applies_the_rest(client: redis.asyncio.Redis) -> None:
    good = LogEvent("user", KEPT, "rasa", "socketio", 100.0, text="hi")
    await client.xadd(EVENTS_STREAM, {"type": "user"})  # no schema_version
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "data": "{not json"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "conversation_id": "x" * 500, "event_id": "e-long"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "timestamp": "1e400"})
    await client.xadd(EVENTS_STREAM, good.to_fields())
    await client.xadd(EVENTS_STREAM, good.to_fields())  # the same event twice: counted once
    await StreamConsumer(client, [RecordStore(client), DashboardStore(client)], ConsumerSettings(consumer="c", batch=2)).drain()
    consumed = await snapshot(client)
    result = await replay(client, [RecordStore(client), DashboardStore(client)], progress=False)
    assert (result.entries, result.applied, result.dead_lettered) == (6, 2, 4)
    dead = await client.xrange(DEAD_LETTER_STREAM)
    assert [fields["consumer"] for _, fields in dead] == ["replay"] * 4
    reasons = " ".join(fields["reason"] for _, fields in dead)
    assert "schema_version" in reasons and "not JSON" in reasons and "customer id" in reasons and "finite" in reasons
    assert [fields.get("entry.data") for _, fields in dead][1] == "{not json"  # the entry's own fields are kept
    # ... and an event the records refused has its fields as its event writes them
    assert [fields for _, fields in dead if fields.get("entry.event_id") == "e-long"][0]["entry.conversation_id"] == "x" * 500
    record = await RecordStore(client).record(KEPT)
    assert record is not None and record["counts"]["messages"] == 1
    # What the records refused (the unusable customer id) the dashboards after them never counted,
    # as with the consumers, although the replay runs the dashboards a batch behind the records.
    replayed = await snapshot(client)
    assert "x" * 500 not in repr(replayed) and "e-long" not in repr(replayed)
    assert replayed == consumed
