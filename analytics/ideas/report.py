"""What product staff read: themes ranked by demand, with labels, areas, quotes and requesters."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from analytics.ideas.areas import context_area
from analytics.ideas.mining import Areas, Labeller
from analytics.ideas.memory import _unpack
from analytics.ideas.themes import NEEDS, ThemeStore, demand
from analytics.ideas.weights import DemandWeights

QUOTES = 3
LABEL_TEXTS = 50  # members nearest the centre that name a theme: spaCy reads these, not all of a 10k-member theme


async def requester(records: Any, customer: str) -> Tuple[str, float]:
    """(funnel stage, engagement) of a customer from the record store; a visitor with none if unknown."""
    record = await records.record(customer)
    while record is not None and "merged_into" in record:
        record = await records.record(record["merged_into"])
    if record is None:
        return "visitor", 0.0
    funnel = record.get("funnel") or {}
    return str(funnel.get("stage") or "visitor"), float(funnel.get("engagement") or 0.0)


PERIOD_DAYS = 30.0
CONVERSATION_URL_ENV = "ENGAGE_CONVERSATION_URL"
# Rasa's HTTP API serves the conversation's tracker; the staff console can point this at its own page.
DEFAULT_CONVERSATION_URL = "http://127.0.0.1:5005/conversations/{customer}/tracker"


def areas_of(areas: Areas, items: Sequence[Mapping[str, Any]]) -> List[List[str]]:
    """Each item's product areas: its in-use context where present, else its text, the texts of a
    theme matched in one pass of the tokenizer (one call per item cost most of `ideas themes`)."""
    given = [context_area(item.get("context")) for item in items]
    missing = [row for row, area in enumerate(given) if not area]
    from_text = iter(areas.areas([items[row]["text"] for row in missing]) if missing else [])
    return [[area] if area else next(from_text) for area in given]


def conversation_link(customer: str, event_id: str) -> str:
    template = os.environ.get(CONVERSATION_URL_ENV) or DEFAULT_CONVERSATION_URL
    return template.replace("{customer}", customer).replace("{event_id}", event_id)


def trend(items: Sequence[Mapping[str, Any]], now: float, period: float) -> Dict[str, Any]:
    """Mentions in the last period against the one before ("+3 (2 -> 5)"), and the change in per cent."""
    this = sum(1 for item in items if now - period <= item["at"] < now + 1)
    last = sum(1 for item in items if now - 2 * period <= item["at"] < now - period)
    change = None if last == 0 else round(100.0 * (this - last) / last, 1)
    return {"this_period": this, "last_period": last, "change_pct": change, "period_days": round(period / 86400.0, 2)}


async def summaries(themes: ThemeStore, records: Any, weights: DemandWeights, labeller: Labeller, areas: Optional[Areas],
                    space: str = NEEDS, since: Optional[float] = None, area: Optional[str] = None,
                    now: Optional[float] = None, period_days: float = PERIOD_DAYS, quotes: int = QUOTES) -> List[Dict[str, Any]]:
    """Every theme of a space, highest demand first; `since` counts only what was said from then on
    (themes with nothing since are left out), `area` keeps themes with an area containing it."""
    now = time.time() if now is None else now
    kept = await themes.themes(space)
    rows: List[Dict[str, Any]] = []
    texts: List[List[str]] = []
    known: Dict[str, Tuple[str, float]] = {}
    for theme in kept:
        everything = await themes.items(theme["members"])
        items = [item for item in everything if since is None or item["at"] >= since]
        if not items:
            continue
        vectors = np.stack([_unpack(item["vector"]) for item in items])
        centre = vectors.mean(axis=0)
        order = np.argsort(-(vectors @ centre), kind="stable")
        nearest = [items[i] for i in order]
        for customer in sorted({item["customer"] for item in items} - set(known)):
            known[customer] = await requester(records, customer)  # once per customer, not per theme
        people = {item["customer"]: known[item["customer"]] for item in items}
        found: Counter = Counter(name for names in areas_of(areas, items) for name in names) if areas is not None else Counter()
        if area and not any(area.lower() in name.lower() for name in found):
            continue
        rows.append({
            "id": theme["id"], "status": theme["status"], "created_at": theme["created_at"], "space": theme.get("space", NEEDS),
            "history": theme.get("history", []), "areas": dict(found.most_common()),
            "kinds": dict(Counter(item.get("kind", "idea") for item in items).most_common()),
            "quotes": [{"text": item["text"], "customer": item["customer"], "channel": item["channel"], "at": item["at"], "event_id": item["event_id"],
                        "link": conversation_link(item["customer"], item["event_id"])} for item in nearest[:quotes]],
            "demand": demand(items, people, weights),
            "trend": trend(everything, now, period_days * 86400.0),
        })
        texts.append([item["text"] for item in nearest[:LABEL_TEXTS]])
    for row, label in zip(rows, labeller.labels(texts, [t[0] for t in texts])):
        row["label"] = label
    return sorted(rows, key=lambda row: (-row["demand"]["score"], row["id"]))


def describe_themes(rows: List[Dict[str, Any]]) -> str:
    lines = [f"{'theme':>7}  {'demand':>7}  {'people':>6}  {'mentions':>8}  {'trend':>9}  {'status':12}  label   [areas]"]
    for row in rows:
        where = ", ".join(list(row["areas"])[:2])
        d, t = row["demand"], row["trend"]
        moved = f"{t['last_period']}->{t['this_period']}"
        lines.append(f"{row['id']:>7}  {d['score']:7.2f}  {d['customers']:6}  {d['mentions']:8}  {moved:>9}  {row['status']:12}  {row['label']}" + (f"   [{where}]" if where else ""))
    return "\n".join(lines)


def describe_theme(row: Dict[str, Any]) -> str:
    d = row["demand"]
    lines = [
        f"{row['id']}  {row['label']}  ({row['status']})",
        f"  demand {d['score']:.2f} from {d['customers']} customers, {d['mentions']} mentions ({d['votes']} as votes on a near duplicate)",
        "  channels  " + ", ".join(f"{name} {count}" for name, count in sorted(d["channels"].items())),
        "  kinds     " + ", ".join(f"{name} {count}" for name, count in row["kinds"].items()),
        f"  trend     {row['trend']['this_period']} mentions in the last {row['trend']['period_days']:g} days, {row['trend']['last_period']} in the {row['trend']['period_days']:g} before",
        "  areas     " + (", ".join(f"{name} ({count})" for name, count in row["areas"].items()) or "-"),
        "  why       " + "; ".join(f"{r['customer']} {r['stage']} (engagement {r['engagement']:g}) x{r['weight']:g}" for r in d["requesters"]),
        "  quotes",
    ]
    lines.extend(f"    \"{q['text'][:160]}\" ({q['customer']} on {q['channel']}: {q['link']})" for q in row["quotes"])
    if row.get("history"):
        lines.append("  status history")
        lines.extend(f"    {_when(h['at'])}  {h['status']} by {h['by'] or '?'}" + (f": {h['note']}" if h.get("note") else "") for h in row["history"])
    return "\n".join(lines)


def _when(at: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
