"""Chart tables from the dashboard counters: pure functions of a `Counts` (what the days in a
window hold), so the same code serves the console's JSON endpoints and the benchmark's
stream-scanning baseline.

Each chart is a `Chart`: a wide table (columns, rows) that people read and export, and how to
plot it (`plot`: which column is x, which columns are traces). Percentages are 0-100 with one
decimal; durations are minutes with one decimal; a rate whose denominator is 0 is None (no data),
never 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from analytics.dashboards.fold import SEP
from analytics.funnel.rules import STAGES

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FAQ_OUTCOMES = ("answered", "suggested", "unanswered")


@dataclass
class Window:
    start: dt.date
    end: dt.date  # inclusive
    channel: Optional[str] = None

    def days(self) -> List[str]:
        count = (self.end - self.start).days + 1
        return [(self.start + dt.timedelta(days=n)).isoformat() for n in range(count)]


@dataclass
class Counts:
    """What a window holds: counters per day, set sizes per (set, day), and the customers handed
    over who were active that day (per day, for the channel asked or all)."""

    window: Window
    counters: Dict[str, Dict[str, int]] = field(default_factory=dict)
    sizes: Dict[Tuple[str, str], int] = field(default_factory=dict)
    handed_active: Dict[str, int] = field(default_factory=dict)
    distinct_customers: int = 0
    channels: List[str] = field(default_factory=list)

    def day(self, day: str) -> Mapping[str, int]:
        return self.counters.get(day, {})

    def parts(self, day: str, prefix: str) -> List[Tuple[List[str], int]]:
        """The day's counters of one metric, their names split into parts (parsed once per day)."""
        index = self.__dict__.setdefault("_index", {})
        found = index.get(day)
        if found is None:
            found = index[day] = {}
            for name, value in self.day(day).items():
                split = name.split(SEP)
                found.setdefault(split[0], []).append((split, value))
        return found.get(prefix, [])

    def total(self, prefix: str, match: Optional[Callable[[List[str]], bool]] = None, days: Optional[Iterable[str]] = None) -> int:
        found = 0
        for day in days if days is not None else self.window.days():
            for split, value in self.parts(day, prefix):
                if match is None or match(split):
                    found += value
        return found


@dataclass
class Chart:
    name: str
    title: str
    description: str
    columns: List[str]
    rows: List[List[Any]]
    plot: Dict[str, Any]
    channel_filter: bool = True
    empty: Optional[str] = None  # why there is nothing to show, in words
    notes: List[str] = field(default_factory=list)

    def as_json(self) -> Dict[str, Any]:
        return {"chart": self.name, "title": self.title, "description": self.description, "columns": self.columns, "rows": self.rows,
                "plot": self.plot, "channel_filter": self.channel_filter, "empty": self.empty, "notes": self.notes}


def pct(part: float, whole: float) -> Optional[float]:
    return None if not whole else round(100.0 * part / whole, 1)


def mean(total: float, count: float, scale: float = 1.0) -> Optional[float]:
    return None if not count else round(total / count / scale, 2)


def _channel_ok(counts: Counts, channel: str) -> bool:
    return counts.window.channel is None or channel == counts.window.channel


def _channels(counts: Counts) -> List[str]:
    return [counts.window.channel] if counts.window.channel else counts.channels


def _empty_days(counts: Counts, what: str, has: bool) -> Optional[str]:
    if has:
        return None
    where = f" on the {counts.window.channel} channel" if counts.window.channel else ""
    clear = " or clear the channel filter" if counts.window.channel else ""
    return (f"No {what}{where} between {counts.window.start} and {counts.window.end}. "
            f"Widen the dates{clear}; new data appears as the analytics service reads the log.")


# -- Overview --------------------------------------------------------------------------------------

def conversations(counts: Counts) -> Chart:
    channels = _channels(counts)
    rows = [[day, *[counts.sizes.get(("active:" + ch, day), 0) for ch in channels]] for day in counts.window.days()]
    has = any(any(row[1:]) for row in rows)
    return Chart("conversations", "Conversations per day", "One conversation is one customer's messages on one UTC day, by channel.",
                 ["day", *channels], rows, {"type": "bar", "x": "day", "y": channels, "stacked": True},
                 empty=_empty_days(counts, "conversations", has))


def messages(counts: Counts) -> Chart:
    channels = _channels(counts)
    rows = [[day, *[counts.total("msgs", lambda p, ch=ch: p[1] == ch, [day]) for ch in channels]] for day in counts.window.days()]
    has = any(any(row[1:]) for row in rows)
    return Chart("messages", "Customer messages per day", "Messages customers sent, by channel.", ["day", *channels], rows,
                 {"type": "line", "x": "day", "y": channels}, empty=_empty_days(counts, "messages", has))


def customers(counts: Counts) -> Chart:
    active = "active:" + counts.window.channel if counts.window.channel else "active"
    rows = [[day, counts.sizes.get((active, day), 0),
             counts.total("new", lambda p: _channel_ok(counts, p[1]), [day])] for day in counts.window.days()]
    has = any(row[1] or row[2] for row in rows)
    chart = Chart("customers", "Customers per day", "Customers who wrote that day, and those who wrote for the first time.",
                  ["day", "active customers", "new customers"], rows, {"type": "line", "x": "day", "y": ["active customers", "new customers"]},
                  empty=_empty_days(counts, "customers", has))
    chart.notes.append(f"About {counts.distinct_customers} different customers wrote in the whole period (HyperLogLog estimate, within 1%).")
    return chart


def heatmap(counts: Counts) -> Chart:
    grid = [[0] * 24 for _ in WEEKDAYS]
    for day in counts.window.days():
        weekday = dt.date.fromisoformat(day).weekday()
        if counts.window.channel is None:
            for parts, value in counts.parts(day, "hour"):
                grid[weekday][int(parts[1])] += value
        else:
            for parts, value in counts.parts(day, "msg"):
                if parts[1] == counts.window.channel:
                    grid[weekday][int(parts[2])] += value
    hours = [f"{h:02d}" for h in range(24)]
    rows = [[WEEKDAYS[n], *grid[n]] for n in range(7)]
    has = any(any(row[1:]) for row in rows)
    return Chart("heatmap", "Messages by day of week and hour (UTC)", "When customers write: messages per weekday and hour.",
                 ["weekday", *hours], rows, {"type": "heatmap", "y": "weekday", "x": hours}, empty=_empty_days(counts, "messages", has))


def rates(counts: Counts) -> Chart:
    active = "active:" + counts.window.channel if counts.window.channel else "active"
    rows = []
    for day in counts.window.days():
        talks = counts.sizes.get((active, day), 0)
        handed = counts.handed_active.get(day, 0)
        sent = counts.total("msgs", lambda p: _channel_ok(counts, p[1]), [day])
        fallbacks = counts.total("fallback", lambda p: _channel_ok(counts, p[1]), [day])
        rows.append([day, talks, pct(talks - handed, talks), pct(handed, talks), pct(fallbacks, sent)])
    has = any(row[1] for row in rows)
    return Chart("rates", "Containment, handover and fallback rates",
                 "Contained: conversations the bot finished without a person. Handover: conversations that asked for one. "
                 "Fallback: messages the bot did not understand.",
                 ["day", "conversations", "contained %", "handover %", "fallback %"], rows,
                 {"type": "line", "x": "day", "y": ["contained %", "handover %", "fallback %"], "percent": True},
                 empty=_empty_days(counts, "conversations", has))


def faq(counts: Counts) -> Chart:
    rows = [[day, *[counts.total("faq", lambda p, o=o: p[1] == o and _channel_ok(counts, p[2]), [day]) for o in FAQ_OUTCOMES]]
            for day in counts.window.days()]
    has = any(any(row[1:]) for row in rows)
    return Chart("faq", "FAQ answers", "Questions answered from the knowledge base, answered with suggestions, or not answered.",
                 ["day", *FAQ_OUTCOMES], rows, {"type": "bar", "x": "day", "y": list(FAQ_OUTCOMES), "stacked": True},
                 empty=_empty_days(counts, "FAQ questions", has))


def csat(counts: Counts) -> Chart:
    rows = []
    for day in counts.window.days():
        n = total = 0
        for parts, value in counts.parts(day, "csat"):
            n += value
            total += int(parts[1]) * value
        rows.append([day, n, mean(total, n)])
    has = any(row[1] for row in rows)
    return Chart("csat", "Customer satisfaction (CSAT) after a person helped", "Average rating 1-5 per day and how many customers rated.",
                 ["day", "ratings", "average (1-5)"], rows, {"type": "line", "x": "day", "y": ["average (1-5)"], "range": [1, 5]},
                 channel_filter=False, empty=None if has else _empty_days(Counts(Window(counts.window.start, counts.window.end)), "CSAT ratings", False))


def recommendation(counts: Counts) -> Chart:
    rows = []
    for day in counts.window.days():
        scores = {int(name.split(SEP)[1]): value for name, value in counts.day(day).items() if name.startswith("rec" + SEP)}
        n = sum(scores.values())
        promoters = sum(v for s, v in scores.items() if s >= 9)
        detractors = sum(v for s, v in scores.items() if s <= 6)
        nps = None if not n else round(100.0 * (promoters - detractors) / n, 1)
        rows.append([day, n, mean(sum(s * v for s, v in scores.items()), n), nps])
    has = any(row[1] for row in rows)
    return Chart("recommendation", "Recommendation score", "How likely customers are to recommend us (0-10): average and NPS (promoters minus detractors, %).",
                 ["day", "answers", "average (0-10)", "NPS"], rows, {"type": "line", "x": "day", "y": ["average (0-10)", "NPS"]},
                 channel_filter=False, empty=None if has else _empty_days(Counts(Window(counts.window.start, counts.window.end)), "recommendation answers", False))


# -- Funnel ----------------------------------------------------------------------------------------

def _stage_total(counts: Counts, prefix: str, *rest: str) -> int:
    wanted = [prefix, *rest]
    return counts.total(prefix, lambda p: p[: len(wanted)] == wanted)


def stages(counts: Counts, now: Mapping[str, int]) -> Chart:
    rows = [[stage, now.get(stage, 0), _stage_total(counts, "stage_in", stage)] for stage in STAGES]
    has = any(row[1] or row[2] for row in rows)
    return Chart("stages", "Customers per funnel stage", "How many customers are in each stage now, and how many entered it in the period.",
                 ["stage", "now", "entered in period"], rows, {"type": "bar", "x": "stage", "y": ["now", "entered in period"]},
                 channel_filter=False, empty=None if has else "No customers in the funnel yet: stages come from conversations the analytics service has read.")


def conversion(counts: Counts) -> Chart:
    rows = []
    for before, after in zip(STAGES, STAGES[1:]):
        entered = _stage_total(counts, "stage_in", before)
        moved = _stage_total(counts, "stage_in", after)
        rows.append([f"{before} → {after}", entered, moved, pct(moved, entered)])
    has = any(row[1] for row in rows)
    return Chart("conversion", "Conversion between stages", "Of the customers who entered a stage in the period, how many entered the next.",
                 ["step", "entered first", "entered next", "conversion %"], rows, {"type": "bar", "x": "step", "y": ["conversion %"], "percent": True},
                 channel_filter=False, empty=None if has else "No one entered a funnel stage in this period: widen the dates.")


def time_in_stage(counts: Counts) -> Chart:
    rows = []
    for stage in STAGES[:-1]:
        n = _stage_total(counts, "stage_time", stage, "n")
        rows.append([stage, n, mean(_stage_total(counts, "stage_time", stage, "sum"), n, 86400.0)])
    has = any(row[1] for row in rows)
    return Chart("time_in_stage", "Time in stage", "Average days customers spent in a stage before moving on (counted when they left it).",
                 ["stage", "customers who moved on", "average days"], rows, {"type": "bar", "x": "stage", "y": ["average days"]},
                 channel_filter=False, empty=None if has else "No one moved on from a stage in this period: time in stage is counted when a customer leaves it.")


def stage_changes(counts: Counts) -> Chart:
    moving = list(STAGES[1:])
    rows = [[day, *[counts.day(day).get(f"stage_in{SEP}{stage}", 0) for stage in moving]] for day in counts.window.days()]
    has = any(any(row[1:]) for row in rows)
    return Chart("stage_changes", "Stage changes per day", "Customers entering each stage per day (first contact as visitor not shown).",
                 ["day", *moving], rows, {"type": "bar", "x": "day", "y": moving, "stacked": True}, channel_filter=False,
                 empty=None if has else "No stage changes in this period: widen the dates.")


# -- Service ---------------------------------------------------------------------------------------

def _by(counts: Counts, prefix: str) -> Dict[Tuple[str, ...], List[int]]:
    """Sums and counts of a timing (`prefix|team[|agent]|sum/n`) per team or (team, agent)."""
    found: Dict[Tuple[str, ...], List[int]] = {}
    for day in counts.window.days():
        for parts, value in counts.parts(day, prefix):
            slot = found.setdefault(tuple(parts[1:-1]), [0, 0])
            slot[0 if parts[-1] == "sum" else 1] += value
    return found


def _csat_by_team(counts: Counts) -> Dict[str, List[int]]:
    found: Dict[str, List[int]] = {}
    for day in counts.window.days():
        for parts, value in counts.parts(day, "csat"):
            slot = found.setdefault(parts[2], [0] * 6)
            slot[int(parts[1])] += value
    return found


def teams(counts: Counts) -> Chart:
    wait, frt, res = _by(counts, "wait"), _by(counts, "frt"), _by(counts, "res")
    team_frt: Dict[str, List[int]] = {}
    team_res: Dict[str, List[int]] = {}
    for source, target in ((frt, team_frt), (res, team_res)):
        for (team, _agent), (total, n) in source.items():
            slot = target.setdefault(team, [0, 0])
            slot[0] += total
            slot[1] += n
    rated = _csat_by_team(counts)
    names = sorted({t[0] for t in wait} | set(team_frt) | set(team_res) | set(rated))
    rows = []
    for team in names:
        w, f, r, c = wait.get((team,), [0, 0]), team_frt.get(team, [0, 0]), team_res.get(team, [0, 0]), rated.get(team, [0] * 6)
        rows.append([team, w[1], mean(w[0], w[1], 60.0), mean(f[0], f[1], 60.0), r[1], mean(r[0], r[1], 60.0), sum(c), mean(sum(s * c[s] for s in range(6)), sum(c))])
    return Chart("teams", "Service per team", "Average minutes from the request to a person claiming it (wait), to their first reply, and to the resolution.",
                 ["team", "claimed", "wait (min)", "first response (min)", "resolved", "resolution (min)", "CSAT ratings", "CSAT average"], rows,
                 {"type": "bar", "x": "team", "y": ["wait (min)", "first response (min)", "resolution (min)"]}, channel_filter=False,
                 empty=None if rows else "No handovers were claimed or resolved in this period.")


def agents(counts: Counts) -> Chart:
    frt, res = _by(counts, "frt"), _by(counts, "res")
    rated: Dict[str, List[int]] = {}
    for day in counts.window.days():
        for parts, value in counts.parts(day, "csat_agent"):
            slot = rated.setdefault(parts[1], [0, 0])
            slot[0 if parts[2] == "sum" else 1] += value
    keys = sorted(set(frt) | set(res))
    rows = []
    for team, agent in keys:
        f, r, c = frt.get((team, agent), [0, 0]), res.get((team, agent), [0, 0]), rated.get(agent, [0, 0])
        rows.append([f"{agent} ({team})", team, agent, f[1], mean(f[0], f[1], 60.0), r[1], mean(r[0], r[1], 60.0), c[1], mean(c[0], c[1])])
    return Chart("agents", "Service per agent", "First response and resolution time of each agent (minutes from the customer's request), and their CSAT.",
                 ["who", "team", "agent", "first responses", "first response (min)", "resolved", "resolution (min)", "CSAT ratings", "CSAT average"], rows,
                 {"type": "hbar", "x": "who", "y": ["first response (min)", "resolution (min)"]}, channel_filter=False,
                 empty=None if rows else "No agent answered or resolved a handover in this period.")


def handovers(counts: Counts) -> Chart:
    triggers = sorted({name.split(SEP)[1] for day in counts.window.days() for name in counts.day(day) if name.startswith("handover" + SEP)})
    rows = [[day, *[counts.total("handover", lambda p, t=t: p[1] == t and _channel_ok(counts, p[2]), [day]) for t in triggers]]
            for day in counts.window.days()]
    has = any(any(row[1:]) for row in rows)
    return Chart("handovers", "Handovers by trigger", "Requests for a person per day: asked for one, the bot missed repeatedly, unhappy feedback, sales-ready.",
                 ["day", *triggers], rows, {"type": "bar", "x": "day", "y": triggers, "stacked": True},
                 empty=_empty_days(counts, "handover requests", has))


def csat_by_team(counts: Counts) -> Chart:
    rated = _csat_by_team(counts)
    rows = [[team, sum(c[1:]), mean(sum(s * c[s] for s in range(6)), sum(c)), *c[1:]] for team, c in sorted(rated.items())]
    return Chart("csat_by_team", "CSAT by team", "Ratings 1-5 customers gave after a person of the team helped.",
                 ["team", "ratings", "average", "1", "2", "3", "4", "5"], rows, {"type": "bar", "x": "team", "y": ["1", "2", "3", "4", "5"], "stacked": True},
                 channel_filter=False, empty=None if rows else "No CSAT ratings in this period: customers rate after an agent resolves their conversation.")


def tickets(counts: Counts) -> Chart:
    names = sorted({name.split(SEP)[1] for day in counts.window.days() for name in counts.day(day) if name.startswith("ticket" + SEP)})
    rows = [[day, *[counts.day(day).get(f"ticket{SEP}{team}", 0) for team in names]] for day in counts.window.days()]
    has = any(any(row[1:]) for row in rows)
    return Chart("tickets", "Tickets opened out of hours", "Handovers asked for when no one of the team was working (outside hours or no agent online).",
                 ["day", *names], rows, {"type": "bar", "x": "day", "y": names, "stacked": True}, channel_filter=False,
                 empty=None if has else "No tickets out of hours in this period.")


COUNTER_CHARTS: Dict[str, Callable[[Counts], Chart]] = {
    "conversations": conversations, "messages": messages, "customers": customers, "heatmap": heatmap, "rates": rates, "faq": faq,
    "csat": csat, "recommendation": recommendation, "conversion": conversion, "time_in_stage": time_in_stage,
    "stage_changes": stage_changes, "teams": teams, "agents": agents, "handovers": handovers, "csat_by_team": csat_by_team, "tickets": tickets,
}
# Charts that need the per-day sets (who was active, who was handed over); the rest read counters only.
SET_CHARTS = frozenset({"conversations", "customers", "rates"})
# The counter metrics each chart reads (fold.py names them; the heatmap with a channel filter: metrics_for).
CHART_METRICS: Dict[str, Tuple[str, ...]] = {
    "conversations": (), "messages": ("msgs",), "customers": ("new",), "heatmap": ("hour",), "rates": ("msgs", "fallback"),
    "faq": ("faq",), "csat": ("csat",), "recommendation": ("rec",), "stages": ("stage_in",), "conversion": ("stage_in",),
    "time_in_stage": ("stage_time",), "stage_changes": ("stage_in",), "teams": ("wait", "frt", "res", "csat"),
    "agents": ("frt", "res", "csat_agent"), "handovers": ("handover",), "csat_by_team": ("csat",), "tickets": ("ticket",),
}


def metrics_for(chart: str, window: Window) -> Tuple[str, ...]:
    """The metrics a chart reads for this window (the heatmap reads per-channel hours only when filtered)."""
    if chart == "heatmap" and window.channel:
        return ("msg",)
    return CHART_METRICS[chart]
