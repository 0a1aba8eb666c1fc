"""Exports of leads and customers: the same field names in CSV and JSON."""

from __future__ import annotations

import csv
import io
import json

import redis.asyncio

from analytics.export import FIELDS, export
from analytics.records.store import RecordStore
from analytics.schema import SOURCE_RASA, LogEvent
from tests.analytics.support import LEAD_CUSTOMER, qualified_lead


async def test_leads_and_customers_export_with_the_same_fields_in_csv_and_json(client: redis.asyncio.Redis) -> None:
    store = RecordStore(client)
    events = qualified_lead() + [LogEvent("user", "C-00000000000000e2", SOURCE_RASA, "socketio", 1.0, text="hi")]
    await store.apply_batch([(f"{1000 + n}-0", e) for n, e in enumerate(events)])
    out = io.StringIO()
    assert await export(store, "leads", "csv", out) == 1
    (lead,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(lead) == FIELDS
    assert (lead["email"], lead["stage"], lead["budget"], lead["channels"]) == ("dana@northbeam.example", "lead", "$25k–$100k / year", "whatsapp")
    out = io.StringIO()
    assert await export(store, "customers", "json", out) == 2
    rows = json.loads(out.getvalue())
    assert all(sorted(r) == sorted(FIELDS) for r in rows) and {r["customer_id"] for r in rows} == {LEAD_CUSTOMER, "C-00000000000000e2"}
