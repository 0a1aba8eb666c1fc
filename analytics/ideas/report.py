"""What product staff read: themes ranked by demand, with labels, areas, quotes and requesters."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from analytics.ideas.mining import Areas, Labeller
from analytics.ideas.themes import ThemeStore, _unpack, demand
from analytics.ideas.weights import DemandWeights

QUOTES = 3


async def requester(records: Any, customer: str) -> Tuple[str, float]:
    """(funnel stage, engagement) of a customer from the record store; a visitor with none if unknown."""
    record = await records.record(customer)
    while record is not None and "merged_into" in record:
        record = await records.record(record["merged_into"])
    if record is None:
        return "visitor", 0.0
    funnel = record.get("funnel") or {}
    return str(funnel.get("stage") or "visitor"), float(funnel.get("engagement") or 0.0)


async def summaries(themes: ThemeStore, records: Any, weights: DemandWeights, labeller: Labeller, areas: Optional[Areas]) -> List[Dict[str, Any]]:
    """Every theme, highest demand first."""
    kept = await themes.themes()
    rows: List[Dict[str, Any]] = []
    texts: List[List[str]] = []
    for theme in kept:
        items = await themes.items(theme["members"])
        vectors = np.stack([_unpack(item["vector"]) for item in items])
        centre = vectors.mean(axis=0)
        order = np.argsort(-(vectors @ centre), kind="stable")
        nearest = [items[i] for i in order]
        people = {item["customer"]: await requester(records, item["customer"]) for item in items}
        found: Counter = Counter()
        if areas is not None:
            for item in items:
                found.update(areas.area_of(item["text"], item.get("context"))[0])
        rows.append({
            "id": theme["id"], "status": theme["status"], "created_at": theme["created_at"],
            "areas": dict(found.most_common()),
            "quotes": [{"text": item["text"], "customer": item["customer"], "channel": item["channel"], "at": item["at"], "event_id": item["event_id"]} for item in nearest[:QUOTES]],
            "demand": demand(items, people, weights),
        })
        texts.append([item["text"] for item in nearest])
    for row, label in zip(rows, labeller.labels(texts, [t[0] for t in texts])):
        row["label"] = label
    return sorted(rows, key=lambda row: (-row["demand"]["score"], row["id"]))


def describe_themes(rows: List[Dict[str, Any]]) -> str:
    lines = [f"{'theme':>7}  {'demand':>7}  {'people':>6}  {'mentions':>8}  label   [areas]"]
    for row in rows:
        where = ", ".join(list(row["areas"])[:2])
        d = row["demand"]
        lines.append(f"{row['id']:>7}  {d['score']:7.2f}  {d['customers']:6}  {d['mentions']:8}  {row['label']}" + (f"   [{where}]" if where else ""))
    return "\n".join(lines)


def describe_theme(row: Dict[str, Any]) -> str:
    d = row["demand"]
    lines = [
        f"{row['id']}  {row['label']}  ({row['status']})",
        f"  demand {d['score']:.2f} from {d['customers']} customers, {d['mentions']} mentions ({d['votes']} as votes on a near duplicate)",
        "  channels  " + ", ".join(f"{name} {count}" for name, count in sorted(d["channels"].items())),
        "  areas     " + (", ".join(f"{name} ({count})" for name, count in row["areas"].items()) or "-"),
        "  why       " + "; ".join(f"{r['customer']} {r['stage']} (engagement {r['engagement']:g}) x{r['weight']:g}" for r in d["requesters"]),
        "  quotes",
    ]
    lines.extend(f"    \"{q['text'][:160]}\" ({q['customer']} on {q['channel']}, event {q['event_id']})" for q in row["quotes"])
    return "\n".join(lines)
