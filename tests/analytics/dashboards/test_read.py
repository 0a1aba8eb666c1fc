"""Charts read from the kept aggregates say what the log says: the same tables as a scan of the whole stream."""

from __future__ import annotations

import datetime as dt
from typing import Any

from analytics.dashboards.charts import COUNTER_CHARTS, SET_CHARTS, Window, metrics_for
from analytics.dashboards.projection import DashboardStore
from analytics.dashboards.read import data_range, load_counts, scan_counts
from analytics.records.store import RecordStore
from analytics.schema import EVENTS_STREAM
from analytics.stream.consumer import ConsumerSettings, StreamConsumer
from tests.analytics.dashboards.test_projection import staff_events
from tests.analytics.support import conversation_events

FUNNEL = {"conversion", "time_in_stage", "stage_changes"}  # from the records' stage histories, not the log's events alone


async def test_every_counter_chart_matches_a_scan_of_the_stream(client: Any) -> None:
    events = conversation_events(seed=8, customers=30, per_customer=40) + staff_events(1_767_300_000.0)
    async with client.pipeline(transaction=False) as pipe:
        for event in events + events[:50]:  # the first 50 published twice: counted once either way
            pipe.xadd(EVENTS_STREAM, event.to_fields())
        await pipe.execute()
    await StreamConsumer(client, [RecordStore(client), DashboardStore(client)], ConsumerSettings(consumer="t", batch=50)).drain()
    first, last = await data_range(client)
    assert first == "2026-01-01"
    for channel in (None, "whatsapp", "nowhere"):
        window = Window(dt.date(2025, 12, 30), dt.date.fromisoformat(last) + dt.timedelta(days=1), channel)
        kept, scanned = await load_counts(client, window), await scan_counts(client, window, batch=97)
        for name, chart in COUNTER_CHARTS.items():
            if name in FUNNEL:
                continue
            # What the console reads for the chart (only its metrics) is enough to draw it.
            just = await load_counts(client, window, metrics_for(name, window), sets=name in SET_CHARTS)
            assert chart(just).as_json() == chart(kept).as_json() == chart(scanned).as_json(), (name, channel)
        assert kept.distinct_customers == scanned.distinct_customers == (0 if channel == "nowhere" else kept.distinct_customers)
    messages = COUNTER_CHARTS["messages"](await load_counts(client, Window(dt.date(2026, 1, 1), dt.date(2026, 1, 1))))
    assert sum(sum(row[1:]) for row in messages.rows) == sum(1 for e in events if e.type == "user" and e.timestamp < 1_767_312_000)
