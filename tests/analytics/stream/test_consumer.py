"""The consumer group against a real redis-server: exactly-once effects, shared work, dead letters, take-over."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import redis.asyncio

from analytics.engagement.rules import DIMENSIONS
from analytics.records.store import CO_CREATORS, CUSTOMERS, RecordStore, leaderboard_key, state_key
from analytics.redis_connect import connect
from analytics.replay import replay
from analytics.schema import EVENTS_STREAM, SOURCE_RASA, LogEvent
from analytics.stream.consumer import DEAD_LETTER_STREAM, GROUP, ConsumerSettings, StreamConsumer, group_lag, stream_batches
from tests.analytics.support import conversation_events


async def write(client: redis.asyncio.Redis, events: List[LogEvent]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(EVENTS_STREAM, event.to_fields())
        await pipe.execute()


async def records(client: redis.asyncio.Redis) -> Dict[str, Any]:
    """Every customer's record as stored (the bytes, not a parse of them) and every leaderboard."""
    names = await client.zrange(CUSTOMERS, 0, -1)
    stored: Dict[str, Any] = {name: await client.get(state_key(name)) for name in names}
    for board in (*DIMENSIONS, CO_CREATORS):
        stored[f"board:{board}"] = await client.zrange(leaderboard_key(board), 0, -1, withscores=True)
    return stored


def consumer(client: redis.asyncio.Redis, name: str, **settings: int) -> StreamConsumer:
    return StreamConsumer(client, [RecordStore(client)], ConsumerSettings(consumer=name, batch=17, **settings))


async def test_two_consumers_share_the_work_and_match_a_replay_byte_for_byte(client: redis.asyncio.Redis) -> None:
    events = conversation_events(seed=3)
    # Every event published twice, as the at-least-once writer may do after a lost reply.
    await write(client, events + events[:40])
    first, second = consumer(client, "one"), consumer(client, "two")
    await first.ensure_group()
    await asyncio.gather(first.drain(), second.drain())
    assert first.applied > 0 and second.applied > 0  # both did some of it
    assert first.applied + second.applied == len(events) + 40
    incremental = await records(client)
    assert len([key for key in incremental if key.startswith("C-")]) == 12
    assert len(incremental["board:innovation"]) > 0 and incremental["board:recommendation"] == []
    lag = await group_lag(client)
    assert (lag.entries, lag.pending, lag.dead_letters) == (0, 0, 0)

    result = await replay(client, [RecordStore(client)], progress=False)
    assert result.entries == len(events) + 40 and result.dead_lettered == 0
    assert await records(client) == incremental


async def test_bad_entries_are_dead_lettered_with_a_reason_and_the_rest_goes_on(client: redis.asyncio.Redis) -> None:
    good = LogEvent("user", "C-00000000000000aa", SOURCE_RASA, "socketio", 100.0, text="hi")
    await client.xadd(EVENTS_STREAM, {"type": "user"})  # no schema_version
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "data": "{not json"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "schema_version": "99"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "conversation_id": "x" * 500, "event_id": "e-long"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "timestamp": "soon"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "data": "[1, 2]", "type": "feedback", "event_id": "e-list"})
    await client.xadd(EVENTS_STREAM, {**good.to_fields(), "metadata": "[" * 5_000 + "]" * 5_000, "event_id": "e-deep"})
    await client.xadd(EVENTS_STREAM, good.to_fields())
    worker = consumer(client, "one")
    await worker.ensure_group()
    await worker.drain()
    dead = await client.xrange(DEAD_LETTER_STREAM)
    reasons = [fields["reason"] for _, fields in dead]
    assert len(dead) == 6, reasons
    assert any("schema_version" in r for r in reasons) and any("not JSON" in r for r in reasons) and any("nested too deeply" in r for r in reasons)
    assert any("customer id" in r for r in reasons) and any("'timestamp' is not a number" in r for r in reasons)
    assert all(fields["entry_id"] and "entry.type" in fields for _, fields in dead)
    record = await RecordStore(client).record("C-00000000000000aa")
    # The good message, and the feedback whose data was a list (kept, with nothing to quote).
    assert record is not None and (record["counts"]["messages"], record["counts"]["feedback"]) == (1, 1)
    lag = await group_lag(client)
    assert (lag.entries, lag.pending, lag.dead_letters) == (0, 0, 6)


async def test_entries_a_crashed_consumer_left_pending_are_taken_over(client: redis.asyncio.Redis) -> None:
    events = conversation_events(seed=4, customers=3, per_customer=4)
    await write(client, events)
    crashed = consumer(client, "crashed")
    await crashed.ensure_group()
    # It read a batch and died before applying or acknowledging any of it.
    await client.xreadgroup(GROUP, "crashed", {EVENTS_STREAM: ">"}, count=10)
    assert (await group_lag(client)).pending == 10
    survivor = consumer(client, "survivor", claim_idle_ms=0)
    await survivor.drain()
    assert survivor.applied == len(events)
    assert (await group_lag(client)).entries == 0
    before = await records(client)
    await replay(client, [RecordStore(client)], progress=False)
    assert await records(client) == before


async def test_lag_counts_unread_and_pending_entries_and_their_age(client: redis.asyncio.Redis) -> None:
    await write(client, conversation_events(seed=5, customers=2, per_customer=3))
    total = await client.xlen(EVENTS_STREAM)
    lag = await group_lag(client)
    assert lag.entries == total and lag.seconds >= 0
    worker = consumer(client, "one")
    await worker.ensure_group()
    await client.xreadgroup(GROUP, "one", {EVENTS_STREAM: ">"}, count=5)
    lag = await group_lag(client)
    assert (lag.entries, lag.pending) == (total, 5)
    first_id = (await client.xrange(EVENTS_STREAM, count=1))[0][0]
    assert abs((await group_lag(client, now=int(first_id.split("-")[0]) / 1000 + 42)).seconds - 42) < 0.01
    await worker.drain()
    assert (await group_lag(client)).as_dict() == {"entries": 0, "seconds": 0.0, "pending": 0, "dead_letters": 0}


async def test_a_redis_outage_is_waited_out(redis_server, redis_url: str) -> None:
    client = connect(redis_url, 1.0, decode_responses=True)
    try:
        await write(client, conversation_events(seed=6, customers=2, per_customer=2))
        worker = StreamConsumer(client, [RecordStore(client)], ConsumerSettings(consumer="one", block_ms=100))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, backoff_cap=0.2))
        await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(None, redis_server.restart, 1.0)
        await write(client, [LogEvent("user", "C-00000000000000bb", SOURCE_RASA, "telegram", 5.0, text="after")])
        for _ in range(100):
            if await RecordStore(client).record("C-00000000000000bb"):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert await RecordStore(client).record("C-00000000000000bb") is not None
        assert not task.exception()
    finally:
        await client.aclose()


class _Batches:
    """A projection that notes the size of every batch of entries it is given."""

    name = "batches"

    def __init__(self) -> None:
        self.sizes: List[int] = []

    async def apply_batch(self, entries: Any) -> Dict[str, str]:
        if entries:
            self.sizes.append(len(entries))
        return {}

    async def reset(self) -> None:
        self.sizes = []


async def test_a_lingering_consumer_takes_the_rest_of_a_turn_in_the_same_batch(client: redis.asyncio.Redis) -> None:
    turn = conversation_events(seed=5)[:4]
    for linger_ms, expected in ((300, [4]), (0, [1, 3])):
        await client.flushdb()
        seen = _Batches()
        reader = StreamConsumer(client, [seen], ConsumerSettings(consumer="live", batch=50, block_ms=2000, linger_ms=linger_ms))
        await reader.ensure_group()
        step = asyncio.create_task(reader.step())  # blocks until the first entry comes
        await asyncio.sleep(0.1)
        await write(client, turn[:1])
        await asyncio.sleep(0.05)  # the rest of the turn, a moment later
        await write(client, turn[1:])
        await step
        if linger_ms == 0:
            await reader.step(block=False)
        assert seen.sizes == expected
        assert (await group_lag(client)).entries == 0


async def test_stream_batches_reads_ahead_yet_hands_over_every_entry_once_in_order(client: redis.asyncio.Redis) -> None:
    ids = [await client.xadd("engage:test-stream", {"n": str(n)}) for n in range(25)]
    for size in (1, 5, 7, 25, 100):  # 25 entries in batches that do and do not divide them
        seen = [entry_id async for entries in stream_batches(client, "engage:test-stream", size) for entry_id, _ in entries]
        assert seen == ids
    upto = [entry_id async for entries in stream_batches(client, "engage:test-stream", 4, last=ids[9]) for entry_id, _ in entries]
    assert upto == ids[:10]
    # A caller that stops early: the batch read ahead is dropped, and the client goes on serving.
    batches = stream_batches(client, "engage:test-stream", 5)
    assert len(await batches.__anext__()) == 5
    await batches.aclose()
    assert await client.xlen("engage:test-stream") == 25


async def test_more_left_pending_than_a_batch_is_all_taken_over_without_waiting(client: redis.asyncio.Redis) -> None:
    events = conversation_events(seed=5, customers=4, per_customer=10)
    await write(client, events)
    crashed = consumer(client, "crashed")
    await crashed.ensure_group()
    await client.xreadgroup(GROUP, "crashed", {EVENTS_STREAM: ">"}, count=len(events))  # read it all, then died
    await asyncio.sleep(0.3)  # idle past claim_idle_ms
    survivor = StreamConsumer(client, [RecordStore(client)], ConsumerSettings(consumer="survivor", batch=3, claim_idle_ms=200))
    await survivor.drain()
    assert survivor.applied == len(events)  # in batches of 3, each step takes the next ones at once
    assert (await group_lag(client)).entries == 0


async def test_a_consumer_looks_for_idle_entries_of_others_now_and_then_not_every_batch(client: redis.asyncio.Redis) -> None:
    await write(client, conversation_events(seed=6, customers=2, per_customer=3))
    live = StreamConsumer(client, [RecordStore(client)], ConsumerSettings(consumer="live", batch=100, claim_idle_ms=60_000))
    await live.ensure_group()
    await live.drain()
    await write(client, conversation_events(seed=7, customers=2, per_customer=3))
    await client.xreadgroup(GROUP, "crashed", {EVENTS_STREAM: ">"}, count=100)  # another consumer dies holding these
    await client.config_resetstat()
    assert await live.step(block=False) == 0  # the crashed one's entries are not idle for a minute yet
    stats = await client.info("commandstats")
    assert "cmdstat_xautoclaim" not in stats  # and it did not even look: it looked a moment ago
    assert stats["cmdstat_xreadgroup"]["calls"] == 1  # nor at its own pending entries: it has none
