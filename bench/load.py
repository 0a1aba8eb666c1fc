"""Load benchmark: simulated customers in multi-turn conversations through REST.

Runs the same loads against (1) the full stack — Redis tracker/lock store, event
broker, action server, analytics service — (2) the same without the analytics service,
and (3) bare Rasa with the same model, in-memory tracker store, no broker and no action
server; prints turn latency p50/p95/p99, throughput, errors and peak memory per process,
the ratios full/bare and full/no-analytics, and how far the analytics service lagged
behind the log under each load (its /health sampled every 250 ms).

Loads: saturation (1, 5, 20 customers, no pause between turns) and realistic
(50 customers, one message every 5-10 s each). Run with `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import Sampler, machine  # noqa: E402
from scripts.stack import Stack  # noqa: E402

# Multi-turn scenarios a customer walks through, in a loop.
SCENARIOS: List[List[str]] = [
    ["hi there", "do you support single sign-on with Okta?", "thanks!", "bye"],
    ["hello", "how much does the business plan cost?", "no thanks", "goodbye"],
    ["hey", "the new dashboard in Insights is really nice", "thank you", "bye"],
    [
        "I have an idea",
        "let us export dashboards to PowerPoint",
        "our managers present them every week and rebuild the slides by hand",
        "thanks",
    ],
    [
        "something is broken",
        "exporting a form to CSV fails with an error",
        "in the Forms results page",
        "thanks",
    ],
    [
        "can I get a demo?",
        "Dana Whitfield",
        "dana@northbeam.example",
        "Northbeam Logistics",
        "Head of Operations",
        "a knowledge base for 300 field staff",
        "this quarter",
        "$25k–$100k / year",
        "yes",
    ],
]


@dataclass
class Result:
    target: str
    load: str
    customers: int
    seconds: float
    turns: int
    errors: int
    empty_replies: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    turns_per_s: float
    peak_rss_mb: Dict[str, float] = field(default_factory=dict)
    lag_p50_s: Optional[float] = None  # the analytics service's lag behind the log, sampled
    lag_p95_s: Optional[float] = None
    lag_max_s: Optional[float] = None


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class LagSampler(Sampler):
    """The analytics service's lag (seconds behind the log) every 250 ms, while a load runs."""

    def __init__(self, stack: Stack) -> None:
        super().__init__()
        self.stack = stack
        self.seconds: List[float] = []

    def wanted(self) -> bool:
        return "analytics" in self.stack.processes

    def sample(self) -> None:
        lag = self.stack.analytics_lag()
        if lag is not None:
            self.seconds.append(float(lag["seconds"]))


class MemorySampler(Sampler):
    """Peak resident memory of each stack process (with its children), sampled every 200 ms."""

    interval = 0.2

    def __init__(self, pids: Dict[str, int]) -> None:
        super().__init__()
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak: Dict[str, float] = {name: 0.0 for name in pids}

    def _rss(self, process: psutil.Process) -> float:
        try:
            total = process.memory_info().rss
            for child in process.children(recursive=True):
                total += child.memory_info().rss
            return total / 2**20
        except psutil.Error:
            return 0.0

    def sample(self) -> None:
        for name, process in self.processes.items():
            self.peak[name] = max(self.peak[name], self._rss(process))


async def customer(
    session: aiohttp.ClientSession,
    url: str,
    deadline: float,
    pause: Optional[tuple],
    latencies: List[float],
    counters: Dict[str, int],
    rng: random.Random,
) -> None:
    # Each scenario is one conversation of a new visitor: conversations stay as long as
    # real ones (4-9 turns) instead of one tracker growing for the whole run.
    sender = f"bench-{uuid.uuid4().hex[:10]}"
    scenario = rng.choice(SCENARIOS)
    turn = 0
    if pause:  # spread the realistic customers' first messages over one interval
        await asyncio.sleep(rng.uniform(0, pause[1]))
    while time.monotonic() < deadline:
        if turn == len(scenario):
            sender, scenario, turn = f"bench-{uuid.uuid4().hex[:10]}", rng.choice(SCENARIOS), 0
        text = scenario[turn]
        turn += 1
        started = time.perf_counter()
        try:
            async with session.post(url, json={"sender": sender, "message": text}) as response:
                body = await response.json(content_type=None)
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    counters["errors"] += 1
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError):
            counters["errors"] += 1
            continue
        latencies.append(elapsed)
        if not body:
            counters["empty"] += 1
        if pause:
            await asyncio.sleep(rng.uniform(*pause))


async def run_load(
    url: str, customers: int, seconds: float, pause: Optional[tuple], seed: int
) -> tuple:
    latencies: List[float] = []
    counters = {"errors": 0, "empty": 0}
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(customer(session, url, deadline, pause, latencies, counters, rng) for _ in range(customers))
        )
        elapsed = time.monotonic() - started
    return latencies, counters, elapsed


def measure(
    stack: Stack, target: str, load: str, customers: int, seconds: float, pause: Optional[tuple], samples: Optional[List[float]] = None
) -> Result:
    """One load on one stack; its latencies (ms) are added to `samples` too when given."""
    pids = {name: process.pid for name, process in stack.processes.items()}
    print(f"  {target:12} {load:10} {customers:3d} customers, {seconds:.0f}s …", end="", flush=True)
    with MemorySampler(pids) as memory, LagSampler(stack) as lag:
        latencies, counters, elapsed = asyncio.run(
            run_load(stack.rest_webhook, customers, seconds, pause, seed=customers)
        )
    ms = [x * 1000 for x in latencies]
    if samples is not None:
        samples.extend(ms)
    result = Result(
        target=target,
        load=load,
        customers=customers,
        seconds=round(elapsed, 1),
        turns=len(ms),
        errors=counters["errors"],
        empty_replies=counters["empty"],
        p50_ms=round(percentile(ms, 50), 1),
        p95_ms=round(percentile(ms, 95), 1),
        p99_ms=round(percentile(ms, 99), 1),
        mean_ms=round(statistics.fmean(ms), 1) if ms else float("nan"),
        turns_per_s=round(len(ms) / elapsed, 2),
        peak_rss_mb={k: round(v, 1) for k, v in memory.peak.items()},
        lag_p50_s=round(percentile(lag.seconds, 50), 2) if lag.seconds else None,
        lag_p95_s=round(percentile(lag.seconds, 95), 2) if lag.seconds else None,
        lag_max_s=round(max(lag.seconds), 2) if lag.seconds else None,
    )
    print(f" {result.turns} turns, p50 {result.p50_ms} ms, p95 {result.p95_ms} ms, "
          f"{result.turns_per_s} turns/s, {result.errors} errors, {result.empty_replies} empty", flush=True)
    return result


def warm_up(stack: Stack) -> None:
    # The first parse of each kind pays one-off costs (graph, TF functions, MiniLM load).
    asyncio.run(run_load(stack.rest_webhook, 2, 8, None, seed=0))


def machine_line() -> str:
    info = machine()
    cpu = info["cpu"] or "unknown CPU"
    mem = (info["ram_bytes"] or psutil.virtual_memory().total) / 2**30
    return f"{info['os']} {info['arch']}, {info['cores']} cores ({cpu}), {mem:.0f} GiB RAM"


def table(results: List[Result]) -> str:
    lines = [
        "| target | load | customers | turns | errors | empty replies | p50 ms | p95 ms | p99 ms | turns/s | analytics lag p50 / p95 / max s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items())
        lag = f"{r.lag_p50_s} / {r.lag_p95_s} / {r.lag_max_s}" if r.lag_p95_s is not None else "-"
        lines.append(
            f"| {r.target} | {r.load} | {r.customers} | {r.turns} | {r.errors} | {r.empty_replies} | {r.p50_ms} | "
            f"{r.p95_ms} | {r.p99_ms} | {r.turns_per_s} | {lag} | {rss} |"
        )
    return "\n".join(lines)


def ratios(results: List[Result], baseline: str) -> str:
    lines = [
        f"| load | customers | p50 full/{baseline} | p95 full/{baseline} | throughput full/{baseline} |",
        "|---|---:|---:|---:|---:|",
    ]
    base = {(r.load, r.customers): r for r in results if r.target == baseline}
    for r in results:
        b = base.get((r.load, r.customers))
        if r.target != "full" or b is None:
            continue
        lines.append(
            f"| {r.load} | {r.customers} | {r.p50_ms / b.p50_ms:.2f} | {r.p95_ms / b.p95_ms:.2f} | "
            f"{r.turns_per_s / b.turns_per_s:.2f} |"
        )
    return "\n".join(lines)


def private_stack(data_dir: Path, options: dict) -> Stack:
    """A stack on free ports with its own data directory (its own redis-server)."""
    return Stack(rasa_port=0, actions_port=0, redis_port=0, analytics_port=0, console_port=0, data_dir=data_dir, **options)


def paired(rounds: int, targets: Dict[str, dict], customers: int, seconds: float, tmp: Path, out: Path, restart_every: int = 0) -> None:
    """Both stacks up at once (the idle one waits on its sockets), the realistic load on each in
    turn, the order reversed every round so a drift of the machine falls on both alike.
    `restart_every` K: both stacks are started afresh every K rounds (which one starts first
    alternating), since one instance of a stack can be a few per cent faster than another for
    as long as it runs, which more rounds on the same two instances never average out."""
    pooled: Dict[str, List[float]] = {target: [] for target in targets}
    rounds_p50: Dict[str, List[float]] = {target: [] for target in targets}
    rounds_mean: Dict[str, List[float]] = {target: [] for target in targets}
    lag_max: List[float] = []  # the full stack's analytics lag, worst sample per round
    block = restart_every or rounds
    for first in range(0, rounds, block):
        with contextlib.ExitStack() as stacks:
            running = {}
            for target in list(targets) if first // block % 2 == 0 else list(reversed(targets)):
                print(f"==> starting the {target} stack for rounds {first + 1}-{min(first + block, rounds)}", flush=True)
                running[target] = stacks.enter_context(private_stack(tmp / f"paired-{target}-{first}", targets[target]))
                warm_up(running[target])
            for number in range(first, min(first + block, rounds)):
                for target in list(targets) if number % 2 == 0 else list(reversed(targets)):
                    result = measure(running[target], target, f"realistic, round {number + 1}", customers, seconds, (5.0, 10.0), pooled[target])
                    rounds_p50[target].append(result.p50_ms)
                    rounds_mean[target].append(result.mean_ms)
                    if result.lag_max_s is not None:
                        lag_max.append(result.lag_max_s)
    lines = [f"Machine: {machine_line()}; load average at the end {os.getloadavg()[0]:.1f}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"Realistic load, {customers} customers, {rounds} rounds of {seconds:.0f} s on each stack (ABBA), latencies pooled; "
             f"{-(-rounds // block)} instance(s) of each stack, {block} round(s) each", "",
             "| target | turns | p50 ms | p95 ms | p99 ms | mean ms | p50 per round (ms) |", "|---|---:|---:|---:|---:|---:|---|"]
    for target, ms in pooled.items():
        lines.append(f"| {target} | {len(ms)} | {percentile(ms, 50):.1f} | {percentile(ms, 95):.1f} | {percentile(ms, 99):.1f} | "
                     f"{statistics.fmean(ms):.1f} | {', '.join(f'{x:.0f}' for x in rounds_p50[target])} |")
    full, without = pooled["full"], pooled["no-analytics"]
    lines += ["", "| full / no-analytics | p50 | p95 | p99 | mean |", "|---|---:|---:|---:|---:|",
              f"| ratio | {percentile(full, 50) / percentile(without, 50):.3f} | {percentile(full, 95) / percentile(without, 95):.3f} | "
              f"{percentile(full, 99) / percentile(without, 99):.3f} | {statistics.fmean(full) / statistics.fmean(without):.3f} |"]
    lines += ["", "Each round's two runs are minutes apart, so a round's ratio leaves out the machine's drift; "
              "over the rounds, the mean ratio with a 95 % t-interval:", "",
              "| full / no-analytics, per round | mean | 95 % interval | rounds |", "|---|---:|---|---:|"]
    for name, per_round in (("p50", rounds_p50), ("mean", rounds_mean)):
        ratios = [f / w for f, w in zip(per_round["full"], per_round["no-analytics"])]
        low, high = t_interval(ratios)
        lines.append(f"| {name} | {statistics.fmean(ratios):.3f} | {low:.3f} – {high:.3f} | {len(ratios)} |")
    lines += ["", f"Analytics lag (full stack, worst sample of each round, s): {', '.join(f'{x:.2f}' for x in lag_max) or 'not sampled'}"]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"load-paired-{stamp}.md").write_text(report)
    (out / f"load-paired-{stamp}.json").write_text(json.dumps({"rounds_p50": rounds_p50, "rounds_mean": rounds_mean, "ms": pooled}))
    print(f"results written to {out}/load-paired-{stamp}.{{json,md}}")


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    """Student's t confidence interval of the mean (nan when there are fewer than two values)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    from scipy.stats import t  # scikit-learn's dependency, in the actions runtime

    half = float(t.ppf((1 + confidence) / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    mean = statistics.fmean(values)
    return mean - half, mean + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30, help="duration of each saturation level")
    parser.add_argument("--realistic-seconds", type=float, default=60)
    parser.add_argument("--levels", default="1,5,20")
    parser.add_argument("--realistic-customers", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--paired", type=int, default=0, metavar="ROUNDS",
                        help="instead: the full and no-analytics stacks up side by side, the realistic load on each in "
                             "turn (ABBA) for ROUNDS rounds, latencies pooled: the with/without comparison without drift")
    parser.add_argument("--restart-every", type=int, default=0, metavar="K",
                        help="with --paired: start both stacks afresh every K rounds (0: one instance each for the whole run)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    results: List[Result] = []
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as tmp:
        bare_credentials = Path(tmp) / "credentials-bare.yml"
        bare_credentials.write_text("rest:\n")
        # Saturation customers send without a pause, far faster than the REST channel's rate
        # limits let one sender: measure the stack, not its 429s.
        full_credentials = Path(tmp) / "credentials-full.yml"
        header = "connectors.rest.EngageRestInput:\n"
        project = (ROOT / "credentials.yml").read_text(encoding="utf-8")
        assert header in project, "credentials.yml no longer configures the REST channel"
        full_credentials.write_text(project.replace(header, f"{header}  rate_limits: false\n"), encoding="utf-8")
        targets = {
            "full": dict(with_actions=True, credentials=full_credentials),
            "no-analytics": dict(with_actions=True, with_analytics=False, credentials=full_credentials),
            "bare": dict(with_actions=False, endpoints=None, credentials=bare_credentials),
        }
        if args.paired:
            paired(args.paired, {t: targets[t] for t in ("full", "no-analytics")}, args.realistic_customers, args.realistic_seconds, Path(tmp), args.out,
                   args.restart_every)
            return
        for target, options in targets.items():
            print(f"==> starting the {target} stack", flush=True)
            with private_stack(Path(tmp) / target, options) as stack:
                warm_up(stack)
                for customers in levels:
                    results.append(measure(stack, target, "saturation", customers, args.seconds, None))
                results.append(
                    measure(stack, target, "realistic", args.realistic_customers, args.realistic_seconds, (5.0, 10.0))
                )

    report = (
        f"Machine: {machine_line()}; load average during the run {os.getloadavg()[0]:.1f}\nPython {platform.python_version()} (client), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        f"{table(results)}\n\n{ratios(results, 'bare')}\n\n{ratios(results, 'no-analytics')}\n"
    )
    print("\n" + report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"load-{stamp}.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    (args.out / f"load-{stamp}.md").write_text(report)
    print(f"results written to {args.out}/load-{stamp}.{{json,md}}")


if __name__ == "__main__":
    main()
