"""`python -m analytics export leads|customers --format csv|json`: customer records as rows, same field names in both formats."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, AsyncIterator, Dict, List

from analytics.crm.payloads import answers, email_of
from analytics.records.store import CUSTOMERS, RecordStore, stage_key

FIELDS = (
    "customer_id", "email", "name", "company", "role", "need", "timeline", "budget", "stage", "stage_reason",
    "fit", "engagement", "channels", "first_seen", "last_seen", "messages", "ideas", "problems", "feedback",
)
LEAD_STAGES = ("lead", "opportunity")


def row(record: Dict[str, Any]) -> Dict[str, Any]:
    lead, funnel = answers(record), record.get("funnel") or {}
    history = funnel.get("history") or []
    counts = record.get("counts") or {}
    return {
        "customer_id": record["customer_id"],
        "email": email_of(record) or "",
        **{key: lead.get(key, "") for key in ("name", "company", "role", "need", "timeline", "budget")},
        "stage": funnel.get("stage", ""),
        "stage_reason": history[-1]["reason"] if history else "",
        "fit": (funnel.get("fit") or {}).get("score", 0),
        "engagement": funnel.get("engagement", 0),
        "channels": " ".join(sorted(record.get("channels") or {})),
        "first_seen": record.get("first_seen"),
        "last_seen": record.get("last_seen"),
        **{key: counts.get(key, 0) for key in ("messages", "ideas", "problems", "feedback")},
    }


async def rows(store: RecordStore, kind: str, batch: int = 500) -> AsyncIterator[Dict[str, Any]]:
    """Every customer (most recently seen first), or only leads and opportunities."""
    keys = [stage_key(stage) for stage in LEAD_STAGES] if kind == "leads" else [CUSTOMERS]
    for key in keys:
        start = 0
        while True:
            names: List[str] = await store.client.zrevrange(key, start, start + batch - 1)
            if not names:
                break
            for name in names:
                record = await store.record(name)
                if record is not None and "merged_into" not in record:
                    yield row(record)
            start += batch


async def export(store: RecordStore, kind: str, fmt: str, out: io.TextIOBase) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        async for item in rows(store, kind):
            writer.writerow(item)
            count += 1
        return count
    out.write("[")
    async for item in rows(store, kind):
        out.write(("," if count else "") + "\n  " + json.dumps(item, ensure_ascii=False, sort_keys=True))
        count += 1
    out.write("\n]\n")
    return count
