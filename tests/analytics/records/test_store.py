"""The record store on a real redis-server: stage sets follow the customer, a sales hand-off is queued once ever."""

from __future__ import annotations

from typing import List

import redis.asyncio

from analytics.records.fold import canonical
from analytics.records.store import SALES_RAISED_PREFIX, RecordStore, facts_key, refold_key, stage_key, state_key
from analytics.replay import replay
from analytics.schema import EVENTS_STREAM, HANDOVER_QUEUE, LEAD_FIELD_CAPTURED, SOURCE_ACTION, SOURCE_RASA, LogEvent, handover_request_key
from analytics.stream.consumer import ConsumerSettings, StreamConsumer
from tests.analytics.support import conversation_events

CUSTOMER = "C-00000000000000c1"


def hot_lead() -> List[LogEvent]:
    at = 1_780_000_000.0
    events = [LogEvent("user", CUSTOMER, SOURCE_RASA, "whatsapp", at, text="we need a demo", intent="request_demo")]
    for n, (field, value) in enumerate([("lead_need", "audit trail"), ("lead_role", "CTO"), ("lead_company", "Acme"),
                                         ("lead_timeline", "Within a month"), ("lead_budget", "$5k–$25k / year")], 1):
        events.append(LogEvent(LEAD_FIELD_CAPTURED, CUSTOMER, SOURCE_ACTION, "whatsapp", at + n, data={"field": field, "value": value}))
    return events


async def test_a_sales_hand_off_is_queued_once_even_after_redelivery_and_replay(client: redis.asyncio.Redis) -> None:
    store = RecordStore(client)
    events = hot_lead()
    for event in events + events:  # every event delivered twice
        await client.xadd(EVENTS_STREAM, event.to_fields())
    await StreamConsumer(client, [store], ConsumerSettings(consumer="one")).drain()
    record = await store.record(CUSTOMER)
    assert record["funnel"]["stage"] == "lead" and record["funnel"]["sales_handover"]["reason"].startswith("hot lead")
    assert await client.zrange(stage_key("lead"), 0, -1) == [CUSTOMER]
    assert await client.zrange(stage_key("prospect"), 0, -1) == []
    assert await client.zrange(HANDOVER_QUEUE, 0, -1) == [CUSTOMER]
    request = await client.hgetall(handover_request_key(CUSTOMER))
    assert request["team"] == "sales" and request["reason"] == "hot lead: fit 85 and timeline 'Within a month'"  # CTO 30, month 25, $5k-25k 15, company 15

    await client.zrem(HANDOVER_QUEUE, CUSTOMER)  # sales took it
    await replay(client, [store], progress=False)
    assert await client.zrange(HANDOVER_QUEUE, 0, -1) == []  # not raised again
    assert await client.exists(SALES_RAISED_PREFIX + CUSTOMER) == 1
    assert (await store.record(CUSTOMER))["funnel"] == record["funnel"]


async def test_a_history_folded_again_in_pieces_is_the_state_folded_whole(client: redis.asyncio.Redis) -> None:
    """The replay's finish folds a customer again from their stored facts read a few at a time, in the
    log's order (the hash keeps no order): the same state as folding them all at once, and as stored."""
    store = RecordStore(client)
    events = conversation_events(seed=5, customers=1, per_customer=80)
    customer = events[0].conversation_id
    await store.apply_batch([(f"{1_000 + n}-0", event) for n, event in enumerate(events)])
    whole = store.rebuild(customer, [], await client.hgetall(facts_key(customer)))
    assert await client.hlen(facts_key(customer)) > 128  # past a listpack: HSCAN gives them in no order
    for chunk in (1, 7, 2_000):
        await client.zadd(refold_key(customer), {"0\0left by a replay that died": 0})  # ignored, then gone
        pieces = await store.rebuild_stored(customer, chunk=chunk)
        assert canonical(pieces.to_json()) == canonical(whole.to_json()) == await client.get(state_key(customer))
        assert await client.exists(refold_key(customer)) == 0
