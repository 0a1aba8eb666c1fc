"""Charts that read what other projections keep (customer records, leaderboards, idea themes, the
handover queue) rather than the day counters: each an async function of the app's objects."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

from analytics.dashboards.charts import Chart, Window
from analytics.engagement.rules import DIMENSIONS
from analytics.engagement.score import EPOCH
from analytics.funnel.rules import STAGES
from analytics.records.store import CO_CREATORS, leaderboard_key, stage_key

SCORE_BUCKETS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)  # score edges; the last bucket is open
TOP = 10
SPARK_WEEKS = 8


async def stages_now(client: Any) -> Dict[str, int]:
    async with client.pipeline(transaction=False) as pipe:
        for stage in STAGES:
            pipe.zcard(stage_key(stage))
        counts = await pipe.execute()
    return dict(zip(STAGES, (int(c) for c in counts)))


async def _records(records: Any, ids: Sequence[str]) -> List[Optional[Dict[str, Any]]]:
    return [await records.record(customer) if records is not None else None for customer in ids]


async def opportunities(client: Any, records: Any) -> Chart:
    ids = [c for c, _ in await client.zrevrange(stage_key("opportunity"), 0, 19, withscores=True)]
    if len(ids) < 20:
        ids += [c for c, _ in await client.zrevrange(stage_key("lead"), 0, 19 - len(ids), withscores=True)]
    rows = []
    for customer, record in zip(ids, await _records(records, ids)):
        if not record or "funnel" not in record:
            continue
        funnel = record["funnel"]
        last = funnel["history"][-1] if funnel.get("history") else {}
        lead = record.get("lead") or {}
        rows.append([customer, funnel["stage"], day_of_time(last.get("at")), funnel["fit"]["score"], funnel["engagement"],
                     last.get("reason", ""), (lead.get("lead_company") or {}).get("value", ""), f"/dashboards/customers/{customer}"])
    return Chart("opportunities", "Latest opportunities and leads", "Newest first: fit and engagement scores and why the customer is in the stage.",
                 ["customer", "stage", "since", "fit", "engagement", "reason", "company", "link"], rows,
                 {"type": "bar", "x": "customer", "y": ["fit", "engagement"]}, channel_filter=False,
                 empty=None if rows else "No leads or opportunities yet: customers reach them by answering the sales form.")


async def distribution(client: Any, half_life: float, now: float) -> Chart:
    """How many customers score in each band, per dimension (counted on the leaderboards, O(log n) each)."""
    shift = (now - EPOCH) / half_life
    edges = [None if edge == 0 else math.log2(edge) + shift for edge in SCORE_BUCKETS]
    labels = [f"{a:g}–{b:g}" for a, b in zip(SCORE_BUCKETS, SCORE_BUCKETS[1:])] + [f"{SCORE_BUCKETS[-1]:g}+"]
    async with client.pipeline(transaction=False) as pipe:
        for dimension in DIMENSIONS:
            for index in range(len(SCORE_BUCKETS)):
                low = "-inf" if edges[index] is None else edges[index]
                high = f"({edges[index + 1]}" if index + 1 < len(edges) else "+inf"
                pipe.zcount(leaderboard_key(dimension), low, high)
        counts = await pipe.execute()
    rows = [[label, *[int(counts[d * len(SCORE_BUCKETS) + i]) for d in range(len(DIMENSIONS))]] for i, label in enumerate(labels)]
    has = any(any(row[1:]) for row in rows)
    return Chart("distribution", "Capability score distribution", "Customers per score band for each of the five capabilities (scores decay with a half-life; today's value).",
                 ["score band", *DIMENSIONS], rows, {"type": "bar", "x": "score band", "y": list(DIMENSIONS)}, channel_filter=False,
                 empty=None if has else "No customer has a capability score yet: scores come from ideas, feedback, questions and referrals.")


async def leaders(client: Any, half_life: float, now: float) -> Chart:
    shift = (now - EPOCH) / half_life
    rows = []
    for dimension in DIMENSIONS:
        for rank, (customer, log) in enumerate(await client.zrevrange(leaderboard_key(dimension), 0, TOP - 1, withscores=True), 1):
            rows.append([dimension, rank, customer, round(2.0 ** (float(log) - shift), 2), f"/dashboards/customers/{customer}"])
    return Chart("leaders", "Leaderboard per capability", f"The top {TOP} customers of each capability, with today's score.",
                 ["dimension", "rank", "customer", "score", "link"], rows, {"type": "hbar", "x": "customer", "y": ["score"], "group": "dimension"},
                 channel_filter=False, empty=None if rows else "No leaderboard yet: no customer has a capability score.")


async def co_creators(client: Any, records: Any, half_life: float, now: float) -> Chart:
    shift = (now - EPOCH) / half_life
    top = await client.zrevrange(leaderboard_key(CO_CREATORS), 0, TOP - 1, withscores=True)
    rows = []
    for (customer, log), record in zip(top, await _records(records, [c for c, _ in top])):
        counts = (record or {}).get("counts", {})
        latest = ((record or {}).get("ideas") or [{}])[-1].get("text", "")
        rows.append([customer, round(2.0 ** (float(log) - shift), 2), counts.get("ideas", 0), counts.get("feedback", 0), counts.get("problems", 0),
                     counts.get("referrals", 0), latest, f"/dashboards/customers/{customer}"])
    return Chart("co_creators", "Top co-creators", "Customers whose ideas, feedback and expert questions give most, with what they contributed.",
                 ["customer", "co-creation score", "ideas", "feedback", "problems", "referrals", "latest idea", "link"], rows,
                 {"type": "hbar", "x": "customer", "y": ["ideas", "feedback", "problems", "referrals"], "stacked": True}, channel_filter=False,
                 empty=None if rows else "No co-creators yet: they appear when customers share ideas, feedback or expert questions.")


def sparkline(items: Sequence[Dict[str, Any]], now: float, weeks: int = SPARK_WEEKS) -> List[int]:
    """Mentions per week, oldest first, the last `weeks` weeks up to `now`."""
    counts = [0] * weeks
    for item in items:
        age = int((now - float(item.get("at", 0))) // (7 * 86400))
        if 0 <= age < weeks:
            counts[weeks - 1 - age] += 1
    return counts


async def themes(store: Any, records: Any, window: Window, area: Optional[str], status: Optional[str], space: str = "needs") -> List[Dict[str, Any]]:
    """Theme summaries as idea mining reports them (analytics.ideas.report), with weekly sparklines."""
    from analytics.ideas.areas import AreaMatcher, load_catalogue
    from analytics.ideas.config import load_settings
    from analytics.ideas.labels import CtfidfLabeller
    from analytics.ideas.report import summaries

    since = dt.datetime.combine(window.start, dt.time(), dt.timezone.utc).timestamp()
    until = dt.datetime.combine(window.end + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp()
    rows = await summaries(store, records, load_settings().demand, CtfidfLabeller(), AreaMatcher(load_catalogue()), space=space,
                           since=since, area=area, now=min(time.time(), until))
    kept = []
    for row in rows:
        if status and row["status"] != status:
            continue
        if window.channel and window.channel not in row["demand"]["channels"]:
            continue
        theme = await store.theme(row["id"])
        row["sparkline"] = sparkline(await store.items((theme or {}).get("members", [])), min(time.time(), until))
        kept.append(row)
    return kept


def themes_chart(rows: List[Dict[str, Any]]) -> Chart:
    table = []
    for row in rows:
        d, quote = row["demand"], (row["quotes"][0] if row["quotes"] else {})
        table.append([row["id"], row["label"], row["status"], round(d["score"], 2), d["customers"], d["mentions"], row["trend"]["this_period"],
                      row["trend"]["last_period"], row["sparkline"], ", ".join(list(row["areas"])[:3]),
                      "; ".join(f"{k} {v}" for k, v in sorted(d["channels"].items())), quote.get("text", "")])
    return Chart("themes", "Idea themes by demand", "Themes of ideas, problems and unhappy feedback, weighted by who asked; weekly mentions over 8 weeks.",
                 ["theme", "label", "status", "demand", "customers", "mentions", "last 30 days", "30 days before", "weekly mentions",
                  "areas", "channels", "quote"], table, {"type": "hbar", "x": "label", "y": ["demand"], "spark": "weekly mentions"},
                 empty=None if table else "No idea themes match: customers' ideas, problems and unhappy feedback appear here as they come in. Widen the dates or clear the filters.")


def channel_mix(rows: List[Dict[str, Any]]) -> Chart:
    channels = sorted({ch for row in rows for ch in row["demand"]["channels"]})
    table = [[f"{row['id']} {row['label']}", *[row["demand"]["channels"].get(ch, 0) for ch in channels]] for row in rows[:TOP * 2]]
    return Chart("channels", "Channel mix per theme", "Where customers raised each theme.", ["theme", *channels], table,
                 {"type": "hbar", "x": "theme", "y": channels, "stacked": True},
                 empty=None if table else "No idea themes match the filters.")


def gaps_chart(rows: List[Dict[str, Any]]) -> Chart:
    from analytics.ideas.gaps import proposal

    table = []
    for row in rows:
        gap = proposal(row)
        if gap["status"] in ("shipped", "declined"):
            continue
        table.append([gap["id"], gap["proposed"]["question"], gap["asked_by"], gap["mentions"], "; ".join(gap["proposed"]["alternatives"]), gap["status"]])
    return Chart("gaps", "FAQ gaps", "Questions the FAQ could not answer, grouped; accept one to add it to the knowledge base.",
                 ["gap", "proposed question", "customers", "times asked", "also asked as", "status"], table,
                 {"type": "hbar", "x": "proposed question", "y": ["times asked"]}, channel_filter=False,
                 empty=None if table else "No FAQ gaps: every question in this period had an answer, or its gap was accepted already.")


async def queue(handovers: Any, now: float) -> Chart:
    waiting = await handovers.waiting()
    by_team: Dict[str, List[Any]] = {}
    for handover in waiting:
        by_team.setdefault(handover.team, []).append(handover)
    rows = []
    for team, items in sorted(by_team.items()):
        waits = sorted(h.waiting_seconds(now) for h in items)
        rows.append([team, len(items), sum(1 for h in items if h.ticket), round(waits[-1] / 60.0, 1), round(waits[len(waits) // 2] / 60.0, 1),
                     "; ".join(f"{k} {v}" for k, v in Counter(h.trigger for h in items).most_common())])
    return Chart("queue", "Waiting now", "Conversations waiting for a person right now, per team (not filtered by dates: it is the live queue).",
                 ["team", "waiting", "tickets", "longest wait (min)", "median wait (min)", "triggers"], rows,
                 {"type": "bar", "x": "team", "y": ["waiting", "tickets"]}, channel_filter=False,
                 empty=None if rows else "No one is waiting for a person right now.")


def day_of_time(at: Any) -> str:
    return dt.datetime.fromtimestamp(float(at), dt.timezone.utc).strftime("%Y-%m-%d") if at else ""

