"""The dashboards projection on a real redis-server: once per event id, and a replay gives the same bytes."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

from analytics.dashboards.fold import counts
from analytics.dashboards.projection import PREFIX, DashboardStore
from analytics.dashboards.read import day_counters
from analytics.records.store import RecordStore
from analytics.replay import replay
from analytics.schema import EVENTS_STREAM, HANDOVER_REQUESTED, SOURCE_ACTION, SOURCE_STAFF, STAGE_SET, LogEvent
from analytics.stream.consumer import ConsumerSettings, StreamConsumer
from tests.analytics.support import conversation_events, qualified_lead
from tests.analytics.support import snapshot as all_keys


async def snapshot(client: Any) -> Dict[str, Any]:
    """Every dashboards key and its content."""
    return await all_keys(client, PREFIX)


def staff_events(at: float) -> List[LogEvent]:
    who = "C-00000000000000e1"
    return [
        LogEvent(HANDOVER_REQUESTED, who, SOURCE_ACTION, "socketio", at, data={"team": "support", "trigger": "asked_for_person", "queued": True, "requested_at": at}),
        LogEvent("handover_claimed", who, SOURCE_STAFF, "", at + 30, data={"team": "support", "by": "ada"}),
        LogEvent("bot", who, "rasa", "socketio", at + 45, text="Hello", metadata={"author": {"role": "agent", "id": "ada"}}),
        LogEvent("handover_resolved", who, SOURCE_STAFF, "", at + 120, data={"outcome": "solved", "by": "ada"}),
        LogEvent("csat", who, SOURCE_ACTION, "socketio", at + 130, data={"score": 5, "agent": {"id": "ada"}}),
    ]


async def write(client: Any, events: List[LogEvent]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(EVENTS_STREAM, event.to_fields())
        await pipe.execute()


async def test_redelivery_counts_once_and_a_replay_gives_the_same_bytes(client: Any) -> None:
    events = conversation_events(seed=5, customers=10, per_customer=20) + qualified_lead(1_767_300_000.0) + staff_events(1_767_400_000.0)
    await write(client, events)
    records, dashboards = RecordStore(client), DashboardStore(client)
    consumer = StreamConsumer(client, [records, dashboards], ConsumerSettings(consumer="c1", batch=7))
    assert await consumer.drain() == len(events)
    # The same entries again, shuffled, in batches of another size: nothing changes.
    entries: List[Tuple[str, LogEvent]] = [(entry_id, LogEvent.from_fields(fields)) for entry_id, fields in await client.xrange(EVENTS_STREAM)]
    before = await snapshot(client)
    shuffled = entries[:]
    random.Random(3).shuffle(shuffled)
    for start in range(0, len(shuffled), 13):
        await dashboards.apply_batch(shuffled[start:start + 13])
    assert await snapshot(client) == before

    day = await day_counters(client, "2026-01-01")
    messages = sum(v for k, v in day.items() if k.startswith("msg|"))
    assert messages == sum(v for k, v in day.items() if k.startswith("msgs|"))
    assert messages == sum(1 for e in events if e.type == "user" and e.timestamp < 1_767_312_000)
    service = await day_counters(client, "2026-01-03")
    assert (service["wait|support|sum"], service["frt|support|ada|sum"], service["res|support|ada|sum"]) == (30, 45, 120)
    assert service["csat|5|support"] == 1
    visitors = sum(int(v) for d in before if d.startswith(PREFIX + "day:") and d.endswith(":stage_in") for k, v in before[d] if k == "visitor")
    assert visitors == 12  # ten scripted customers, the qualified lead and the one handed over
    # The guard keeps the ids of what counts, not of the actions and the bot's own replies (most of the log).
    applied = {member for key, members in before.items() if key.startswith(PREFIX + "applied:") for member in members}
    assert applied == {e.event_id for e in events if counts(e)} and len(applied) < len(events) / 2

    result = await replay(client, [records, dashboards])
    assert result.applied == len(events)
    assert await snapshot(client) == before  # byte-identical to the incremental run


async def test_a_stage_set_by_staff_moves_the_funnel_counts(client: Any) -> None:
    who = "C-00000000000000f1"
    await write(client, [LogEvent("user", who, "rasa", "portal", 1_767_225_600.0, text="hi", intent="greet"),
                         LogEvent(STAGE_SET, who, SOURCE_STAFF, "", 1_767_312_000.0, data={"stage": "lead", "by": "sam", "reason": "met at a fair"})])
    consumer = StreamConsumer(client, [RecordStore(client), DashboardStore(client)], ConsumerSettings(consumer="c1", batch=1))
    await consumer.drain()
    second = await day_counters(client, "2026-01-02")
    # The portal proves who they are: a suspect from the first message, a lead a day later.
    assert second["stage_in|lead"] == 1 and second["stage_time|suspect|sum"] == 86400 and second["stage_move|suspect|lead"] == 1


async def test_an_erased_customer_leaves_every_set_and_hash(client: Any) -> None:
    from analytics.dashboards.projection import FUNNEL, HANDLED, SEEN, forget, set_key

    who = "C-00000000000000e1"
    await write(client, staff_events(1_767_400_000.0))
    await StreamConsumer(client, [RecordStore(client), DashboardStore(client)], ConsumerSettings(consumer="c1")).drain()
    assert await client.sismember(set_key("active:socketio", "2026-01-03"), who) or await client.sismember(set_key("handed", "2026-01-03"), who)
    assert await client.hexists(FUNNEL, who) and await client.hexists(HANDLED, who)
    await forget(client, [who])
    found = []
    async for key in client.scan_iter(match=PREFIX + "set:*"):
        if await client.sismember(key, who):
            found.append(key)
    assert not found and not await client.sismember(SEEN, who)
    assert not await client.hexists(FUNNEL, who) and not await client.hexists(HANDLED, who)
    assert (await day_counters(client, "2026-01-03"))["csat|5|support"] == 1  # counts of no one in particular stay


async def test_applied_ids_are_kept_for_a_month_of_log_time_then_forgotten(client: Any) -> None:
    from analytics.dashboards.projection import APPLIED_DAYS, KEEP_APPLIED_DAYS
    from analytics.dashboards.read import day_counters

    start = 1_767_225_600.0  # 2026-01-01
    events = [LogEvent("user", f"C-{n:016x}", "rasa", "socketio", start + n * 86400.0, text="hi") for n in range(45)]
    store = DashboardStore(client)
    for number, event in enumerate(events):
        await store.apply_batch([(f"{number + 1}-0", event)])
    days = await client.zrange(APPLIED_DAYS, 0, -1)
    assert len(days) == KEEP_APPLIED_DAYS and days[0] == "2026-01-15" and days[-1] == "2026-02-14"
    # Delivered again within the month: counted once. (A month later it would count again: no redelivery comes that late.)
    await store.apply_batch([("99-0", events[-2])])
    assert (await day_counters(client, "2026-02-13"))["msgs|socketio"] == 1
    by_one = await snapshot(client)
    await client.flushdb()
    await DashboardStore(client).apply_batch([(f"{n + 1}-0", e) for n, e in enumerate(events)])
    assert await snapshot(client) == by_one  # one batch or forty-five: the same ids kept


async def test_a_time_no_calendar_holds_is_dead_lettered_and_the_rest_is_counted(client: Any) -> None:
    good = conversation_events(seed=9)[:6]
    far = LogEvent("user", "C-00000000000000f1", "rasa", "socketio", 1e12, text="from the year 33658")
    async with client.pipeline(transaction=False) as pipe:
        for event in [*good[:3], far, *good[3:]]:
            pipe.xadd(EVENTS_STREAM, event.to_fields())
        await pipe.execute()
    consumer = StreamConsumer(client, [DashboardStore(client)], ConsumerSettings(consumer="dash"))
    await consumer.drain()
    (dead,) = await client.xrange("engage:events:dead")
    assert dead[1]["entry.event_id"] == far.event_id and "out of the calendar's range" in dead[1]["reason"]
    assert consumer.applied == len(good)
