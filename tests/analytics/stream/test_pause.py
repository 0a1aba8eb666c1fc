"""Consumers stand aside while a replay rebuilds the state, and a replay waits for a batch being applied."""

from __future__ import annotations

import asyncio
from typing import Dict, Sequence, Tuple

import pytest
import redis.asyncio

from analytics.records.store import RecordStore
from analytics.replay import replay
from analytics.schema import EVENTS_STREAM, SOURCE_RASA, LogEvent
from analytics.stream.consumer import GROUP, ConsumerSettings, StreamConsumer, group_lag
from analytics.stream.pause import LeaseLost, ReplayLease, ReplayRunning, begin_applying, end_applying, replay_state

WHO = "C-00000000000000c1"


async def say(client: redis.asyncio.Redis, text: str, at: float) -> None:
    await client.xadd(EVENTS_STREAM, LogEvent("user", WHO, SOURCE_RASA, "socketio", at, text=text).to_fields())


def consumer(client: redis.asyncio.Redis) -> StreamConsumer:
    return StreamConsumer(client, [RecordStore(client)], ConsumerSettings(consumer="live", pause_poll_ms=10))


async def messages(client: redis.asyncio.Redis) -> int:
    record = await RecordStore(client).record(WHO)
    return record["counts"]["messages"] if record else 0


async def test_a_consumer_waits_while_a_replay_holds_the_state_and_then_goes_on(client: redis.asyncio.Redis) -> None:
    live = consumer(client)
    await live.ensure_group()
    await say(client, "before", 100.0)
    lease = ReplayLease(client)
    await lease.acquire()
    assert (await replay_state(client)).running is not None
    assert await live.step(block=False) == 0  # read, not applied: it stays pending
    assert (await group_lag(client)).pending == 1 and await messages(client) == 0
    await lease.release()
    assert (await replay_state(client)).as_dict() == {"running": None, "incomplete": None}
    assert await live.drain() == 1 and await messages(client) == 1


async def test_a_replay_starts_only_when_no_batch_is_being_applied(client: redis.asyncio.Redis) -> None:
    assert await begin_applying(client, "busy")
    acquiring = asyncio.ensure_future(ReplayLease(client).acquire())
    await asyncio.sleep(0.3)
    assert not acquiring.done()
    assert not await begin_applying(client, "another")  # the replay has asked: no new batch starts
    await end_applying(client, "busy")
    await asyncio.wait_for(acquiring, 5)


async def test_one_replay_at_a_time(client: redis.asyncio.Redis) -> None:
    first = ReplayLease(client)
    await first.acquire()
    with pytest.raises(ReplayRunning, match="another replay is running .*pid"):
        await ReplayLease(client).acquire()
    await first.release()
    await ReplayLease(client).acquire()


async def test_a_replay_that_dies_leaves_the_consumers_paused_until_one_finishes(client: redis.asyncio.Redis) -> None:
    class Broken:
        name = "broken"

        async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
            return {}

        async def reset(self) -> None:
            raise ConnectionError("the disk went away")

    await say(client, "one", 100.0)
    with pytest.raises(ConnectionError):
        await replay(client, [RecordStore(client), Broken()], progress=False)
    state = await replay_state(client)
    assert state.running is None and state.incomplete is not None
    await say(client, "two", 101.0)
    live = consumer(client)
    assert await live.drain() == 0 and await messages(client) == 0
    result = await replay(client, [RecordStore(client)], progress=False)  # the lease was dropped: no minute's wait
    assert result.entries == 2 and await messages(client) == 2
    # The group goes on after what the replay folded: nothing is applied twice.
    assert await live.drain() == 0 and (await group_lag(client)).entries == 0
    await say(client, "three", 102.0)
    assert await live.drain() == 1 and await messages(client) == 3
    groups = await client.xinfo_groups(EVENTS_STREAM)
    assert [(g["name"], g["lag"]) for g in groups] == [(GROUP, 0)]


async def test_a_replay_that_stalls_past_its_lease_is_told_so(client: redis.asyncio.Redis) -> None:
    lease = ReplayLease(client, seconds=0.1)
    await lease.acquire()
    await asyncio.sleep(0.25)
    with pytest.raises(LeaseLost, match="run `python -m analytics replay` again"):
        await lease.refresh()


async def test_an_abandoned_replay_is_reported_as_incomplete(client: redis.asyncio.Redis) -> None:
    lease = ReplayLease(client)
    await lease.acquire()
    await lease.abandon()
    state = await replay_state(client)
    assert state.running is None and state.incomplete["pid"] > 0
