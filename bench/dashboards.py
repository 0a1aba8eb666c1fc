"""Dashboards benchmark: page and chart-endpoint latency with a year of synthetic traffic, against the
same chart computed by scanning the stream, in the same run.

For each size (default 10,000 and 100,000 customers, about 12 log events per customer spread over
365 days: messages on five channels, FAQ outcomes, fallbacks, recommendation scores, handovers that
staff claim, answer and resolve, CSAT ratings), the log is written to a private redis-server and the
dashboards projection is built by `analytics.replay` (its throughput is reported too). Then the real
console app (aiohttp, on a local port) is asked, as a signed-in admin, for the Overview page's HTML and
for every chart endpoint of Overview and Service over the whole year, `--repeat` times each, and the
page as a browser loads it (HTML, then all its chart endpoints at once). Baseline: the same charts from
`analytics.dashboards.read.scan_counts`, which reads and folds the whole stream.

Run: PYTHONPATH=. .venvs/actions/bin/python bench/dashboards.py [--customers 10000 100000] [--repeat 30]
Results: bench/results/dashboards.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, CookieJar, web  # noqa: E402

from analytics.dashboards.charts import COUNTER_CHARTS, Window  # noqa: E402
from analytics.dashboards.projection import DashboardStore  # noqa: E402
from analytics.dashboards.read import scan_counts  # noqa: E402
from analytics.redis_connect import connect  # noqa: E402
from analytics.replay import replay  # noqa: E402
from analytics.schema import EVENTS_STREAM, SOURCE_ACTION, SOURCE_RASA, SOURCE_STAFF, LogEvent  # noqa: E402
from bench.machine import machine, machine_line, uptime  # noqa: E402
from tests.conftest import RedisServer, free_port  # noqa: E402

CHANNELS = ("socketio", "whatsapp", "telegram", "portal", "rest")
START = 1_735_689_600.0  # 2025-01-01 00:00 UTC
YEAR = 365 * 86400.0
RESULTS = ROOT / "bench" / "results"
PASSWORD = "bench password 1234"
OVERVIEW = ("conversations", "messages", "customers", "heatmap", "rates", "faq", "csat", "recommendation")
SERVICE = ("teams", "agents", "handovers", "csat_by_team", "tickets")


def synthetic_year(customers: int, per_customer: int, seed: int = 13) -> Iterator[LogEvent]:
    """About `customers * per_customer` events over 2025, in time order."""
    rng = random.Random(seed)
    turns = customers * per_customer // 3
    step = YEAR / turns
    clock = START
    agents = ("ada", "bob", "cem", "dee")
    for _ in range(turns):
        clock += rng.uniform(0, 2 * step)
        number = int(rng.paretovariate(1.2)) % customers if rng.random() < 0.5 else rng.randrange(customers)
        who, channel = f"C-{number:016x}", CHANNELS[number % len(CHANNELS)]
        yield LogEvent("user", who, SOURCE_RASA, channel, clock, text="hello", intent="ask")
        roll = rng.random()
        if roll < 0.45:
            kind = rng.choices(("faq_answered", "faq_suggested", "faq_unanswered"), (6, 2, 2))[0]
            yield LogEvent(kind, who, SOURCE_ACTION, channel, clock + 0.5, data={"query": "q"})
        elif roll < 0.55:
            yield LogEvent("fallback", who, SOURCE_ACTION, channel, clock + 0.5)
        elif roll < 0.58:
            yield LogEvent("recommendation", who, SOURCE_ACTION, channel, clock + 0.5, data={"score": rng.randrange(11)})
        elif roll < 0.61:
            team = "sales" if rng.random() < 0.2 else "support"
            agent = rng.choice(agents)
            wait = rng.expovariate(1 / 240.0)
            yield LogEvent("handover_requested", who, SOURCE_ACTION, channel, clock + 0.5,
                           data={"team": team, "trigger": rng.choice(("asked_for_person", "misses", "negative_feedback")), "queued": True,
                                 "requested_at": clock + 0.5, "ticket": rng.random() < 0.2})
            yield LogEvent("handover_claimed", who, SOURCE_STAFF, "", clock + wait, data={"team": team, "by": agent})
            yield LogEvent("bot", who, SOURCE_RASA, channel, clock + wait + 60, text="hi", metadata={"author": {"role": "agent", "id": agent}})
            yield LogEvent("handover_resolved", who, SOURCE_STAFF, "", clock + wait + 600, data={"outcome": "solved", "by": agent})
            yield LogEvent("csat", who, SOURCE_ACTION, channel, clock + wait + 620, data={"score": rng.randint(1, 5), "agent": {"id": agent}})
            continue
        yield LogEvent("bot", who, SOURCE_RASA, channel, clock + 1, text="reply")


def write_log(url: str, customers: int, per_customer: int) -> int:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    count = 0
    for count, event in enumerate(synthetic_year(customers, per_customer), 1):
        pipe.xadd(EVENTS_STREAM, event.to_fields())
        if count % 5000 == 0:
            pipe.execute()
    pipe.execute()
    client.close()
    return count


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def timed(session: ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.get(url) as response:
        await response.read()
        assert response.status == 200, (url, response.status)
    return (time.perf_counter() - started) * 1000.0


async def measure(url: str, repeat: int, scans: int) -> Dict[str, Any]:
    from console.app import create_app
    from console.config import ConsoleConfig
    from console.users import UserStore

    client = connect(url, 30.0, decode_responses=True)
    await UserStore(client).add("bench", "Bench Admin", "admin", PASSWORD)

    class NoFaq:
        async def get(self) -> Any:
            raise RuntimeError("not used")

    app = create_app(ConsoleConfig(), secret="b" * 40, redis=url, rasa_url="http://127.0.0.1:9", proactive_token="p" * 40, faq=NoFaq())
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    query = "from=2025-01-01&to=2025-12-31"
    out: Dict[str, Any] = {"endpoints": {}}
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:  # cookies for 127.0.0.1
        async with session.get(f"{base}/login") as response:
            import re

            token = re.search(r'name="csrf_token" value="([^"]+)"', await response.text()).group(1)
        async with session.post(f"{base}/login", data={"login": "bench", "password": PASSWORD, "csrf_token": token}, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
        targets = {"page /dashboards/overview (HTML)": f"{base}/dashboards/overview?{query}"}
        targets.update({f"overview/{name}": f"{base}/api/dashboards/overview/{name}?{query}" for name in OVERVIEW})
        targets.update({f"service/{name}": f"{base}/api/dashboards/service/{name}?{query}" for name in SERVICE})
        for name, target in targets.items():
            await timed(session, target)  # warm
            samples = [await timed(session, target) for _ in range(repeat)]
            out["endpoints"][name] = {"p50_ms": round(pct(samples, 0.5), 1), "p95_ms": round(pct(samples, 0.95), 1), "n": repeat}
        loads = []
        for _ in range(repeat):
            started = time.perf_counter()
            await timed(session, targets["page /dashboards/overview (HTML)"])
            await asyncio.gather(*[timed(session, f"{base}/api/dashboards/overview/{name}?{query}") for name in OVERVIEW])
            loads.append((time.perf_counter() - started) * 1000.0)
        out["page_load"] = {"p50_ms": round(pct(loads, 0.5), 1), "p95_ms": round(pct(loads, 0.95), 1), "n": repeat,
                            "what": "Overview HTML, then its 8 chart endpoints at once, as the browser fetches them"}
    window = Window(dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    scan_ms = []
    for _ in range(scans):
        started = time.perf_counter()
        counts = await scan_counts(client, window)
        COUNTER_CHARTS["rates"](counts)
        scan_ms.append((time.perf_counter() - started) * 1000.0)
    out["scan"] = {"p50_ms": round(pct(scan_ms, 0.5), 1), "p95_ms": round(pct(scan_ms, 0.95), 1), "n": scans,
                   "what": "overview/rates computed by reading and folding the whole stream (scan_counts)"}
    await runner.cleanup()
    await client.aclose()
    return out


async def build(url: str) -> Dict[str, Any]:
    client = connect(url, 30.0, decode_responses=True)
    started = time.perf_counter()
    result = await replay(client, [DashboardStore(client)], progress=False)
    seconds = time.perf_counter() - started
    await client.aclose()
    return {"events": result.entries, "seconds": round(seconds, 1), "events_per_s": round(result.entries / seconds)}


def aggregates_memory(url: str) -> Dict[str, float]:
    """MiB the dashboards keys take (MEMORY USAGE), and of that the set of applied event ids."""
    client = redis.Redis.from_url(url, decode_responses=True)
    total = applied = 0
    for key in client.scan_iter(match="engage:dashboards:*", count=1000):
        used = client.memory_usage(key, samples=0) or 0
        total += used
        if key.startswith("engage:dashboards:applied"):
            applied += used
    stream = client.memory_usage(EVENTS_STREAM, samples=0) or 0
    client.close()
    return {"aggregates_mib": round(total / 2**20, 1), "applied_ids_mib": round(applied / 2**20, 1), "stream_mib": round(stream / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--per-customer", type=int, default=12, help="log events per customer over the year (about)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--scans", type=int, default=3, help="repetitions of the stream-scanning baseline")
    args = parser.parse_args()
    report: Dict[str, Any] = {"machine": machine(), "runs": []}
    for customers in args.customers:
        with tempfile.TemporaryDirectory(prefix="engage-dash-bench-") as tmp:
            server = RedisServer(Path(tmp))
            server.start()
            try:
                started = time.perf_counter()
                events = write_log(server.url, customers, args.per_customer)
                print(f"{customers} customers: wrote {events} events in {time.perf_counter() - started:.0f} s", flush=True)
                built = asyncio.run(build(server.url))
                print(f"  projection built by replay: {built}", flush=True)
                measured = asyncio.run(measure(server.url, args.repeat, args.scans))
                info = redis.Redis.from_url(server.url).info("memory")
                memory = aggregates_memory(server.url)
            finally:
                server.stop()
        run = {"customers": customers, "events": events, "build": built, **measured, "redis_used_mib": round(info["used_memory"] / 2**20), **memory}
        report["runs"].append(run)
        print(json.dumps(run, indent=1), flush=True)
    report["uptime"] = uptime()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboards.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"Machine: {machine_line(report['machine'], report['uptime'])}", "",
             "| customers | events | endpoint | p50 ms | p95 ms |", "|---:|---:|---|---:|---:|"]
    for run in report["runs"]:
        for name, stats in run["endpoints"].items():
            lines.append(f"| {run['customers']:,} | {run['events']:,} | {name} | {stats['p50_ms']} | {stats['p95_ms']} |")
        lines.append(f"| {run['customers']:,} | {run['events']:,} | **Overview page load** (HTML + 8 charts at once) | {run['page_load']['p50_ms']} | {run['page_load']['p95_ms']} |")
        lines.append(f"| {run['customers']:,} | {run['events']:,} | baseline: overview/rates by scanning the stream (n={run['scan']['n']}) | {run['scan']['p50_ms']} | {run['scan']['p95_ms']} |")
    lines.append("")
    for run in report["runs"]:
        lines.append(f"- {run['customers']:,} customers: projection built by replay at {run['build']['events_per_s']:,} events/s "
                     f"({run['build']['seconds']} s); Redis used {run['redis_used_mib']} MiB in all; the dashboards keys "
                     f"{run.get('aggregates_mib', '?')} MiB, of which the applied event ids {run.get('applied_ids_mib', '?')} MiB "
                     f"(the log itself {run.get('stream_mib', '?')} MiB)")
    (RESULTS / "dashboards.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
