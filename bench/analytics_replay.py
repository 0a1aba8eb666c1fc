"""Analytics replay benchmark: rebuild every customer record from a large synthetic interaction log.

Generates N events (default 1,000,000) in a realistic mix — conversations of customers whose
activity follows a Zipf law, on four channels, with FAQ outcomes, feedback, ideas, problems,
sales-form answers, handovers and the odd merge — writes them to a private redis-server, then
runs `analytics.replay` and prints events/s, the replay process's peak RSS and Redis memory.
Baseline in the same run: a read-only pass over the same stream (XRANGE in the same batches
and LogEvent parsing, no fold, no writes), so the cost of the fold itself is visible.

Run: PYTHONPATH=. .venvs/actions/bin/python bench/analytics_replay.py [--events 1000000] [--cpus 0 | --cpus 0,1]
(`--cpus 0`: the replay and its redis-server share core 0; `--cpus 0,1`: the replay alone on core 0.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

import redis
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.redis_connect import connect  # noqa: E402
from analytics.replay import REPLAY_BATCH, replay  # noqa: E402
from analytics.schema import EVENTS_STREAM, SOURCE_ACTION, SOURCE_DIRECTORY, SOURCE_RASA, LogEvent  # noqa: E402
from analytics.service import projections  # noqa: E402
from analytics.stream.consumer import parse_entries, stream_batches  # noqa: E402
from bench.machine import Sampler, machine, machine_line, uptime  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

CHANNELS = ("socketio", "whatsapp", "telegram", "portal", "rest")
FEATURES = ("charts", "alerts", "exports", "sharing", "forms", "sso")
# (kind, weight) of what follows a customer's message.
FOLLOW_UPS = [("faq_answered", 30), ("faq_suggested", 8), ("faq_unanswered", 8), ("feedback", 10), ("idea", 4),
              ("problem", 3), ("lead_field_captured", 6), ("handover_requested", 1), ("none", 30)]
LEAD_FIELDS = [("lead_need", "audit trail for 40 clinics"), ("lead_role", "Head of Operations"), ("lead_company", "Northbeam"),
               ("lead_timeline", "Within 3 months"), ("lead_budget", "$25k–$100k / year"), ("lead_email", "dana@northbeam.example")]


def synthetic_log(events: int, customers: int, seed: int = 1) -> Iterator[LogEvent]:
    """`events` log records: turns of Zipf-distributed customers, each a user message, its follow-up, the bot reply."""
    rng = random.Random(seed)
    weights = [1.0 / (rank ** 1.1) for rank in range(1, customers + 1)]
    kinds, kind_weights = zip(*FOLLOW_UPS)
    clock = 1_767_225_600.0
    made = 0
    while made < events:
        number = rng.choices(range(customers), weights)[0]
        customer = f"C-{number:016x}"
        channel = CHANNELS[number % len(CHANNELS)]
        clock += rng.expovariate(1 / 2.0)
        context = {"product": "Insights", "feature": rng.choice(FEATURES), "page": "/reports"} if channel == "portal" else {}
        turn: List[LogEvent] = []
        if rng.random() < 0.1:
            turn.append(LogEvent("session_started", customer, SOURCE_RASA, channel, clock))
        turn.append(LogEvent("user", customer, SOURCE_RASA, channel, clock, text="how do I export a chart to CSV?",
                             intent=rng.choice(("ask_question", "ask_pricing", "give_feedback")), metadata=context))
        kind = rng.choices(kinds, kind_weights)[0]
        data = {
            "faq_answered": {"query": "export a chart to csv", "faq_id": "exports"},
            "faq_suggested": {"query": "export", "faq_id": "exports"},
            "faq_unanswered": {"query": "does the SCIM endpoint support PATCH for group membership"},
            "feedback": {"feedback": "the new export is great but slow on big reports", "sentiment": "mixed", "context": context},
            "idea": {"reference": f"IDEA-{made}", "summary": "a dark theme for the dashboards at night", "context": context},
            "problem": {"reference": f"PROB-{made}", "description": "CSV export drops the last column", "context": context},
            "lead_field_captured": dict(zip(("field", "value"), rng.choice(LEAD_FIELDS))),
            "handover_requested": {"reason": "talk to a person"},
        }.get(kind)
        if data is not None:
            turn.append(LogEvent(kind, customer, SOURCE_ACTION, channel, clock + 0.05, data=data))
        turn.append(LogEvent("bot", customer, SOURCE_RASA, channel, clock + 0.1, text="Here is how…"))
        turn.append(LogEvent("action", customer, SOURCE_RASA, channel, clock + 0.1, data={"name": "action_listen"}))
        if rng.random() < 0.0005 and number > 0:  # a customer proves an identity another one held
            turn.append(LogEvent("customers_merged", customer, SOURCE_DIRECTORY, "", clock + 0.2,
                                 data={"merged_from": [f"C-{rng.randrange(customers):016x}"]}))
        for event in turn:
            if made < events:
                made += 1
                yield event


def write_log(url: str, events: int, customers: int) -> None:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for n, event in enumerate(tqdm(synthetic_log(events, customers), total=events, unit="event", desc="writing the log"), 1):
        pipe.xadd(EVENTS_STREAM, event.to_fields())
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    client.close()


async def read_only_pass(url: str) -> float:
    """Seconds to read and parse the whole stream in replay-sized batches (the baseline)."""
    client = connect(url, 30.0, decode_responses=True)
    started = time.perf_counter()
    async for entries in stream_batches(client, EVENTS_STREAM, REPLAY_BATCH, pairs=True):
        parse_entries(entries)
    seconds = time.perf_counter() - started
    await client.aclose()
    return seconds


class RssTrace(Sampler):
    """This process's resident set, sampled every quarter second by a thread while the replay runs:
    whether memory grows with the events read shows as a rise from one sample to the next."""

    FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)

    def __init__(self) -> None:
        super().__init__()
        self.samples: List[float] = []

    def sample(self) -> None:
        with open("/proc/self/status", encoding="ascii") as status:
            self.samples.append(next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:")))

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        at = [self.samples[min(len(self.samples) - 1, int(f * len(self.samples)))] for f in self.FRACTIONS]
        return ", ".join(f"{f:.0%} {mib:.0f}" for f, mib in zip(self.FRACTIONS, at)) + f"; highest {max(self.samples):.0f}"


def redis_cpu(url: str) -> float:
    """CPU seconds the redis-server has used so far (its AOF rewrites included)."""
    info = redis.Redis.from_url(url).info("cpu")
    return sum(float(info[key]) for key in ("used_cpu_user", "used_cpu_sys", "used_cpu_user_children", "used_cpu_sys_children"))


async def full_replay(url: str, only: Optional[str] = None) -> float:
    """Seconds to replay every projection the service keeps (or only the one named `only`)."""
    client = connect(url, 30.0, decode_responses=True)
    kept = [p for p in projections(client) if only is None or p.name == only]
    started, cpu, server = time.perf_counter(), time.process_time(), redis_cpu(url)
    result = await replay(client, kept, progress=only is None)
    seconds = time.perf_counter() - started
    print(f"replayed {result.entries} entries ({only or 'every projection'}): {result.applied} applied, {result.dead_lettered} dead-lettered; "
          f"{seconds:.1f} s, of which CPU {time.process_time() - cpu:.1f} s in this process and {redis_cpu(url) - server:.1f} s in redis-server")
    await client.aclose()
    return seconds


def cpu_list(text: str) -> List[int]:
    cpus = [int(part) for part in text.split(",")]
    if not 1 <= len(cpus) <= 2 or any(cpu not in os.sched_getaffinity(0) for cpu in cpus):
        raise argparse.ArgumentTypeError(f"one or two of the CPUs this process may use: {sorted(os.sched_getaffinity(0))}")
    return cpus


def projection_names() -> List[str]:
    return [p.name for p in projections(redis.Redis())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--each", action="store_true", help="then replay each projection alone too, to see what each costs")
    parser.add_argument("--cpus", type=cpu_list, default=None, metavar="R[,S]",
                        help="pin the replay to CPU R and its redis-server to S (default: R as well, so both share one core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engage-replay-bench-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        if args.cpus:
            os.sched_setaffinity(0, {args.cpus[0]})
            assert server.process is not None
            os.sched_setaffinity(server.process.pid, {args.cpus[-1]})
            print(f"replay on CPU {args.cpus[0]}, redis-server on CPU {args.cpus[-1]}")
        try:
            write_log(server.url, args.events, args.customers)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            baseline = asyncio.run(read_only_pass(server.url))
            with RssTrace() as trace:
                seconds = asyncio.run(full_replay(server.url))
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            info = redis.Redis.from_url(server.url).info("memory")
            alone = {name: asyncio.run(full_replay(server.url, name)) for name in projection_names()} if args.each else {}
        finally:
            server.stop()
    print(f"\nMachine: {machine_line(machine(), uptime())}")
    print(f"{args.events} events, {args.customers} customers (Zipf)")
    print("| pass | seconds | events/s |\n|---|---:|---:|")
    print(f"| read and parse only (baseline) | {baseline:.1f} | {args.events / baseline:,.0f} |")
    print(f"| replay (every projection: records, scores, stages, idea themes, dashboards) | {seconds:.1f} | {args.events / seconds:,.0f} |")
    for name, alone_s in alone.items():
        print(f"| replay of {name} alone | {alone_s:.1f} | {args.events / alone_s:,.0f} |")
    print(f"peak RSS of this process: {rss_before:.0f} MiB after writing the log, {rss_after:.0f} MiB after the replay; "
          f"Redis used memory {info['used_memory'] / 2**20:.0f} MiB")
    print(f"resident set during the replay, MiB at each fraction of its time: {trace.summary()}")


if __name__ == "__main__":
    main()
