"""The record store on a real redis-server: stage sets follow the customer, a sales hand-off is queued once ever."""

from __future__ import annotations

from typing import List

import redis.asyncio

from analytics.records.store import SALES_RAISED_PREFIX, RecordStore, stage_key
from analytics.replay import replay
from analytics.schema import EVENTS_STREAM, HANDOVER_QUEUE, LEAD_FIELD_CAPTURED, SOURCE_ACTION, SOURCE_RASA, LogEvent, handover_request_key
from analytics.stream.consumer import ConsumerSettings, StreamConsumer

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
