"""Connector overhead per message, and 200 concurrent socket.io sessions, against Rasa's own channels.

Run in the Rasa runtime from the repository root:

    PYTHONPATH=. .venvs/rasa/bin/python bench/connectors.py [--quick]

1. Per-message overhead, in process, no Rasa model. Each channel's blueprint is served on a
   real Sanic app (tests.connectors.support) whose `on_new_message` answers at once with one
   text ("echo: <message>"), so the time is the connector's own: checks, identity resolution
   and dedup on a private redis-server, delivery. A client on 127.0.0.1 POSTs one request at a
   time: EngageRestInput against Rasa's RestInput, PortalInput (HS256 JWT signed by the client,
   a message_id, so dedup runs too), WhatsAppInput (webhooks signed with the app secret; the
   acknowledgement, and the time until the reply reaches the fake Graph API). Then the pure
   steps in loops: the webhook HMAC check of a 1 KB body, PortalInput.verify (JWT HS256 decode
   and claim checks), jwt.decode alone, and IdentityResolver.customer_for.
2. Concurrent socket.io sessions: the server runs in a child process (this script with
   --serve), so its memory and CPU are measured apart from the clients'. N python-socketio
   AsyncClients (long-polling: the runtime's aiohttp 3.9 is too old for python-socketio's
   WebSocket client) open a session each, then each sends a message every second, staggered,
   for the load period; reply latency, throughput, server RSS, CPU and errors are recorded.
   WebChatInput against Rasa's SocketIOInput with the same handler and load.

Both processes use uvloop, as `rasa run` (Sanic) does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `connectors` package it measures: drop the folder (the repository root is on PYTHONPATH).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import aiohttp  # noqa: E402
import jwt  # noqa: E402
import socketio  # noqa: E402
import uvloop  # noqa: E402
from rasa.core.channels.channel import UserMessage  # noqa: E402
from rasa.core.channels.rest import RestInput  # noqa: E402
from rasa.core.channels.socketio import SocketIOInput  # noqa: E402

from analytics.customers import WHATSAPP, Identity  # noqa: E402
from bench.machine import machine, machine_line, uptime  # noqa: E402
from connectors.dedup import Deduplicator  # noqa: E402
from connectors.identity import IdentityResolver  # noqa: E402
from connectors.limits import RateLimits  # noqa: E402
from connectors.portal import PortalInput  # noqa: E402
from connectors.rest import EngageRestInput  # noqa: E402
from connectors.webchat import WebChatInput  # noqa: E402
from connectors.whatsapp import WhatsAppInput  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.connectors.support import channel_app, serving  # noqa: E402
from tests.connectors.test_portal import AUDIENCE, ISSUER, SECRET, token  # noqa: E402
from tests.fakes import whatsapp_graph as wa  # noqa: E402
from tests.fakes.whatsapp_graph import FakeGraph  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
COMMAND = "cd /work/main && PYTHONPATH=. .venvs/rasa/bin/python bench/connectors.py"
USERS = 50  # distinct senders per channel, cycled: identity resolution finds known customers after warm-up
# The channels' rate limits are off: each of the 50 senders sends far faster than a customer may,
# and what is measured is the work per message, not the 429s (connectors.limits).
UNLIMITED = RateLimits.off()
WEBHOOK_BYTES = 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Profile:
    requests: int  # timed sequential requests per channel
    warm_up: int
    pure_samples: int  # samples per pure function
    pure_batch: int  # calls per sample for the synchronous ones
    sessions: int
    load_seconds: float
    interval: float  # seconds between one session's messages


FULL = Profile(requests=2000, warm_up=200, pure_samples=2000, pure_batch=50, sessions=200, load_seconds=30.0, interval=1.0)
QUICK = Profile(requests=200, warm_up=50, pure_samples=200, pure_batch=20, sessions=20, load_seconds=5.0, interval=1.0)


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def percentiles_ms(seconds: List[float]) -> Dict[str, Any]:
    """n, p50/p95/p99/max/mean in ms, and the sequential rate (1 / mean)."""
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000

    mean = statistics.fmean(ordered)
    return {"n": len(ordered), "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000,
            "mean_ms": mean * 1000, "per_s": 1 / mean if mean else None}


class Echo:
    """Rasa's `on_new_message` hook, answering at once with one text."""

    async def __call__(self, message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, f"echo: {message.text}")


# ---------------------------------------------------------------- 1. per-message overhead, in process

Request = Tuple[str, bytes, Dict[str, str]]  # path, body, headers


@dataclass
class Target:
    """A served channel: its base URL and how to build the i-th request."""

    base: str
    request: Callable[[int], Request]
    graph: Optional["TimedGraph"] = None


class TimedGraph(FakeGraph):
    """The fake Graph API, also noting when each accepted message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: List[float] = []
        self.arrived = asyncio.Event()

    async def _messages(self, request: Any) -> Any:
        answer = await super()._messages(request)
        if answer.status == 200:
            self.arrivals.append(time.perf_counter())
            self.arrived.set()
        return answer

    async def arrival(self, count: int, timeout: float = 10.0) -> float:
        while len(self.arrivals) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout)
        return self.arrivals[count - 1]


def json_request(path: str, payload: Any, headers: Optional[Dict[str, str]] = None) -> Request:
    return path, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}


def portal_tokens() -> List[str]:
    return [token(sub=f"u-{k}", email=f"user{k}@acme.example") for k in range(USERS)]


def numbers() -> List[str]:
    return [f"49151234{k:05d}" for k in range(USERS)]


@contextlib.asynccontextmanager
async def rest_target(redis_url: str, tmp: Path, engage: bool) -> AsyncIterator[Target]:
    async with channel_app(redis_url, tmp) as (app, _, _):
        channel = EngageRestInput(health_timeout=0.5, rate_limits=UNLIMITED) if engage else RestInput()
        app.blueprint(channel.blueprint(Echo()), url_prefix="/webhooks/rest")
        async with serving(app) as base:
            yield Target(base, lambda i: json_request("/webhooks/rest/webhook", {"sender": f"cust-{i % USERS}", "message": f"hello {i}"}))


@contextlib.asynccontextmanager
async def portal_target(redis_url: str, tmp: Path) -> AsyncIterator[Target]:
    tokens = portal_tokens()
    async with channel_app(redis_url, tmp) as (app, _, resolver):
        channel = PortalInput(key=SECRET, algorithm="HS256", audience=AUDIENCE, issuer=ISSUER, resolver=resolver,
                              deduplicator=Deduplicator(resolver), rate_limits=UNLIMITED)
        app.blueprint(channel.blueprint(Echo()), url_prefix="/webhooks/portal")
        async with serving(app) as base:
            yield Target(base, lambda i: json_request(
                "/webhooks/portal/webhook", {"message": f"hello {i}", "message_id": uuid.uuid4().hex},
                {"Authorization": f"Bearer {tokens[i % USERS]}"}))


@contextlib.asynccontextmanager
async def whatsapp_target(redis_url: str, tmp: Path) -> AsyncIterator[Target]:
    senders = numbers()

    def request(i: int) -> Request:
        body, headers = wa.signed(wa.text_message(senders[i % USERS], f"hello {i}"))
        return "/webhooks/whatsapp/webhook", body, headers

    async with channel_app(redis_url, tmp) as (app, _, resolver), TimedGraph() as graph:
        channel = WhatsAppInput(resolver=resolver, access_token=wa.ACCESS_TOKEN, app_secret=wa.APP_SECRET,
                                verify_token=wa.VERIFY_TOKEN, phone_number_id=wa.PHONE_NUMBER_ID,
                                api_base_url=graph.base_url, attempts=3, timeout=5.0, backoff=0.01, rate_limits=UNLIMITED)
        app.blueprint(channel.blueprint(Echo()), url_prefix="/webhooks/whatsapp")
        async with serving(app) as base:
            yield Target(base, request, graph)


async def drive(target: Target, profile: Profile) -> Dict[str, Any]:
    """Sequential POSTs; for WhatsApp also wait for each reply at the fake Graph API."""
    answers: List[float] = []
    replies: List[float] = []
    failures = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for i in range(profile.warm_up + profile.requests):
            path, body, headers = target.request(i)
            started = time.perf_counter()
            async with http.post(target.base + path, data=body, headers=headers) as answer:
                text = await answer.text()
            answered = time.perf_counter()
            ok = answer.status == 200 and (target.graph is not None or f"echo: hello {i}" in text)
            if target.graph is not None:
                replied = await target.graph.arrival(i + 1)
                ok = ok and target.graph.sent[i]["text"]["body"] == f"echo: hello {i}"
                if i >= profile.warm_up:
                    replies.append(replied - started)
            failures += not ok
            if i >= profile.warm_up:
                answers.append(answered - started)
    result = {"answer": percentiles_ms(answers), "failures": failures}
    if replies:
        result["reply_at_graph"] = percentiles_ms(replies)
    return result


async def overhead(redis_url: str, tmp: Path, profile: Profile) -> Dict[str, Any]:
    targets: List[Tuple[str, Callable[[], Any]]] = [
        ("rasa_rest", lambda: rest_target(redis_url, tmp / "rasa_rest", engage=False)),
        ("engage_rest", lambda: rest_target(redis_url, tmp / "engage_rest", engage=True)),
        ("portal", lambda: portal_target(redis_url, tmp / "portal")),
        ("whatsapp", lambda: whatsapp_target(redis_url, tmp / "whatsapp")),
    ]
    results: Dict[str, Any] = {}
    for name, make in targets:
        async with make() as target:
            results[name] = await drive(target, profile)
        row = results[name]
        extra = f", reply at Graph p50 {row['reply_at_graph']['p50_ms']:.2f} p95 {row['reply_at_graph']['p95_ms']:.2f}" if "reply_at_graph" in row else ""
        progress(f"  {name:<12} p50 {row['answer']['p50_ms']:.2f} ms p95 {row['answer']['p95_ms']:.2f} ms "
                 f"({row['answer']['per_s']:.0f} req/s){extra}, failures {row['failures']}")
    return results


def time_sync(fn: Callable[[], Any], samples: int, batch: int) -> Dict[str, Any]:
    """Per-call µs from `samples` samples of `batch` calls each (after one warm-up sample)."""
    per_call: List[float] = []
    for sample in range(samples + 1):
        started = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        if sample:
            per_call.append((time.perf_counter_ns() - started) / batch / 1000)
    return micro_stats(per_call, batch)


async def time_async(fn: Callable[[int], Awaitable[Any]], samples: int) -> Dict[str, Any]:
    per_call: List[float] = []
    for i in range(samples + USERS):
        started = time.perf_counter_ns()
        await fn(i)
        if i >= USERS:  # the first round creates the customers
            per_call.append((time.perf_counter_ns() - started) / 1000)
    return micro_stats(per_call, 1)


def micro_stats(per_call_us: List[float], batch: int) -> Dict[str, Any]:
    ordered = sorted(per_call_us)
    return {"samples": len(ordered), "calls_per_sample": batch, "p50_us": ordered[len(ordered) // 2],
            "p95_us": ordered[int(0.95 * (len(ordered) - 1))], "mean_us": statistics.fmean(ordered)}


def webhook_body() -> Tuple[bytes, str]:
    """A signed text-message webhook of about WEBHOOK_BYTES bytes."""
    size = len(wa.encode(wa.text_message(numbers()[0], "")))
    body = wa.encode(wa.text_message(numbers()[0], "x" * max(1, WEBHOOK_BYTES - size)))
    return body, wa.signature(body)


async def pure_functions(redis_url: str, profile: Profile) -> Dict[str, Any]:
    resolver = IdentityResolver(redis_url)
    whatsapp = WhatsAppInput(access_token=wa.ACCESS_TOKEN, app_secret=wa.APP_SECRET, verify_token=wa.VERIFY_TOKEN,
                             phone_number_id=wa.PHONE_NUMBER_ID, resolver=resolver)
    portal = PortalInput(key=SECRET, algorithm="HS256", audience=AUDIENCE, issuer=ISSUER, resolver=resolver)
    body, header = webhook_body()
    bearer = token()
    identities = [[Identity.of(WHATSAPP, number)] for number in numbers()]
    results: Dict[str, Any] = {}
    try:
        results["hmac_sha256_check"] = {**time_sync(lambda: whatsapp.signature_matches(body, header), profile.pure_samples, profile.pure_batch),
                                        "body_bytes": len(body)}
        results["portal_verify"] = time_sync(lambda: portal.verify(f"Bearer {bearer}"), profile.pure_samples, profile.pure_batch)
        results["jwt_decode_hs256"] = time_sync(lambda: jwt.decode(bearer, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER),
                                                profile.pure_samples, profile.pure_batch)
        results["customer_for"] = await time_async(lambda i: resolver.customer_for(identities[i % USERS]), profile.pure_samples)
    finally:
        await resolver.close()
    for name, row in results.items():
        progress(f"  {name:<18} p50 {row['p50_us']:.1f} µs p95 {row['p95_us']:.1f} µs")
    return results


# ---------------------------------------------------------------- 2. concurrent socket.io sessions


async def serve_socketio(kind: str, redis_url: str) -> None:
    """The child process: one socket.io channel on a Sanic app until SIGTERM; prints its base URL."""
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as tmp:
        async with channel_app(redis_url, Path(tmp)) as (app, _, resolver):
            channel: Any
            if kind == "engage":
                channel = WebChatInput(resolver=resolver)
            else:
                channel = SocketIOInput(session_persistence=kind == "rasa_persistent")
            app.blueprint(channel.blueprint(Echo()), url_prefix="/webhooks/socketio")
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            async with serving(app) as base:
                print(base, flush=True)
                await stop.wait()
                if isinstance(channel, WebChatInput):
                    await channel.disconnect_all()


class Server:
    """The child serving one socket.io channel; RSS and CPU time read from /proc."""

    def __init__(self, kind: str, redis_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--redis-url", redis_url],
            stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.process.stdout is not None
        self.base = self.process.stdout.readline().strip()
        if not self.base.startswith("http"):
            raise RuntimeError(f"the {kind} socket.io server did not start")

    def rss_mib(self) -> float:
        return proc_status_kib(self.process.pid, "VmRSS") / 1024

    def peak_mib(self) -> float:
        return proc_status_kib(self.process.pid, "VmHWM") / 1024

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    """What every session saw during the load."""

    sent: int = 0
    latencies: List[float] = field(default_factory=list)
    lags: List[float] = field(default_factory=list)  # how late the client sent, against its schedule
    send_errors: int = 0
    unexpected: int = 0
    disconnects: int = 0
    counting_disconnects: bool = False
    last_reply: float = 0.0


class Session:
    """One widget: a long-polling socket.io client with a session id; matches replies to what it sent."""

    def __init__(self, base: str, index: int, tally: Tally) -> None:
        self.base = base
        self.index = index
        self.tally = tally
        self.session_id = uuid.uuid4().hex
        self.pending: Dict[str, float] = {}
        self.confirmed = asyncio.get_running_loop().create_future()
        self.client = socketio.AsyncClient(reconnection=False)
        self.client.on("session_confirm", self._on_session)
        self.client.on("bot_uttered", self._on_reply)
        self.client.on("disconnect", self._on_disconnect)

    async def _on_session(self, session_id: str) -> None:
        if not self.confirmed.done():
            self.confirmed.set_result(session_id)

    async def _on_reply(self, data: Dict[str, Any]) -> None:
        now = time.perf_counter()
        text = data.get("text", "") if isinstance(data, dict) else ""
        started = self.pending.pop(text.removeprefix("echo: "), None)
        if started is None:
            self.tally.unexpected += 1
            return
        self.tally.latencies.append(now - started)
        self.tally.last_reply = now

    async def _on_disconnect(self, *_: Any) -> None:
        if self.tally.counting_disconnects:
            self.tally.disconnects += 1

    async def open(self) -> None:
        await self.client.connect(self.base, socketio_path="/socket.io", transports=["polling"])
        await self.client.emit("session_request", {"session_id": self.session_id})
        await asyncio.wait_for(self.confirmed, 30)

    async def talk(self, start: float, offset: float, count: int, interval: float) -> None:
        for k in range(count):
            scheduled = start + offset + k * interval
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            text = f"{self.index}-{k}"
            now = time.perf_counter()
            self.tally.lags.append(now - scheduled)
            self.pending[text] = now
            self.tally.sent += 1
            try:
                await self.client.emit("user_uttered", {"message": text, "session_id": self.session_id})
            except Exception:
                self.tally.send_errors += 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.eio.disconnect(abort=True), 5)
        http = getattr(self.client.eio, "http", None)
        if http is not None:
            with contextlib.suppress(Exception):
                await http.close()


async def open_sessions(base: str, count: int, tally: Tally) -> Tuple[List[Session], int, float]:
    """Open `count` sessions, 20 at a time; returns those that got a session_confirm, failures, seconds."""
    gate = asyncio.Semaphore(20)
    sessions = [Session(base, i, tally) for i in range(count)]

    async def open_one(session: Session) -> bool:
        async with gate:
            try:
                await session.open()
                return True
            except Exception:
                await session.close()
                return False

    started = time.perf_counter()
    opened = await asyncio.gather(*(open_one(s) for s in sessions))
    return [s for s, ok in zip(sessions, opened) if ok], opened.count(False), time.perf_counter() - started


async def probe_replies(kind: str, redis_url: str) -> bool:
    """Whether one session gets a reply at all from this server configuration."""
    server = Server(kind, redis_url)
    tally = Tally()
    sessions: List[Session] = []
    try:
        sessions, _, _ = await open_sessions(server.base, 1, tally)
        for session in sessions:
            await session.talk(time.perf_counter(), 0.0, 1, 1.0)
            deadline = time.perf_counter() + 3
            while session.pending and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
        got = bool(tally.latencies)
    finally:
        server.stop()
        for session in sessions:
            await session.close()
    return got


async def load(kind: str, redis_url: str, redis_pid: int, profile: Profile) -> Dict[str, Any]:
    server = Server(kind, redis_url)
    tally = Tally()
    sessions: List[Session] = []
    try:
        await asyncio.sleep(1.0)
        rss_idle = server.rss_mib()
        sessions, failed, connect_s = await open_sessions(server.base, profile.sessions, tally)
        await asyncio.sleep(2.0)
        rss_connected = server.rss_mib()
        progress(f"  {kind}: {len(sessions)} sessions open in {connect_s:.1f} s ({failed} failed); "
                 f"server RSS {rss_idle:.0f} -> {rss_connected:.0f} MiB; load for {profile.load_seconds:.0f} s")
        count = int(profile.load_seconds / profile.interval)
        cpu = (server.cpu_seconds(), own_cpu_seconds(), process_cpu_seconds(redis_pid))
        tally.counting_disconnects = True
        start = time.perf_counter() + 0.5
        await asyncio.gather(*(s.talk(start, profile.interval * i / len(sessions), count, profile.interval)
                               for i, s in enumerate(sessions)))
        deadline = time.perf_counter() + 10
        while any(s.pending for s in sessions) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - start
        cpu_used = (server.cpu_seconds() - cpu[0], own_cpu_seconds() - cpu[1], process_cpu_seconds(redis_pid) - cpu[2])
        rss_end, rss_peak = server.rss_mib(), server.peak_mib()
        tally.counting_disconnects = False
        lost = sum(len(s.pending) for s in sessions)
        window = (tally.last_reply - start) if tally.last_reply > start else wall
    finally:
        server.stop()
        await asyncio.gather(*(s.close() for s in sessions))
    result = {
        "server": kind, "sessions_requested": profile.sessions, "sessions_open": len(sessions), "open_failures": failed,
        "open_seconds": connect_s, "messages_sent": tally.sent, "replies": len(tally.latencies), "lost": lost,
        "send_errors": tally.send_errors, "unexpected_replies": tally.unexpected, "disconnects": tally.disconnects,
        "latency": percentiles_ms(tally.latencies), "send_lag": percentiles_ms(tally.lags),
        "replies_per_s": len(tally.latencies) / window if window > 0 else None, "load_wall_seconds": wall,
        "rss_mib": {"idle": rss_idle, "connected": rss_connected, "end": rss_end, "peak": rss_peak},
        "rss_kib_per_session": (rss_connected - rss_idle) * 1024 / len(sessions) if sessions else None,
        "cpu_cores": {"server": cpu_used[0] / wall, "client": cpu_used[1] / wall, "redis": cpu_used[2] / wall},
    }
    lat = result["latency"]
    progress(f"  {kind}: {result['replies']}/{result['messages_sent']} replies, p50 {lat.get('p50_ms', float('nan')):.1f} "
             f"p95 {lat.get('p95_ms', float('nan')):.1f} p99 {lat.get('p99_ms', float('nan')):.1f} ms, "
             f"{result['replies_per_s']:.0f} replies/s, lost {lost}, disconnects {tally.disconnects}, "
             f"RSS end {rss_end:.0f} MiB, CPU server {result['cpu_cores']['server']:.2f} client {result['cpu_cores']['client']:.2f} cores")
    return result


# ---------------------------------------------------------------- report


def f2(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


def overhead_table(rows: Dict[str, Any]) -> str:
    base = rows["rasa_rest"]["answer"]
    labels = {"rasa_rest": "Rasa `RestInput` (baseline)", "engage_rest": "`EngageRestInput`",
              "portal": "`PortalInput` (JWT + identity + dedup)", "whatsapp": "`WhatsAppInput` acknowledgement"}
    lines = ["| channel | requests | p50 ms | p95 ms | p99 ms | mean ms | req/s | p50 − Rasa p50 | p95 − Rasa p95 | failures |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def line(label: str, s: Dict[str, Any], failures: int) -> str:
        return (f"| {label} | {s['n']} | {f2(s['p50_ms'])} | {f2(s['p95_ms'])} | {f2(s['p99_ms'])} | {f2(s['mean_ms'])} | "
                f"{s['per_s']:.0f} | {s['p50_ms'] - base['p50_ms']:+.2f} | {s['p95_ms'] - base['p95_ms']:+.2f} | {failures} |")

    for name, label in labels.items():
        lines.append(line(label, rows[name]["answer"], rows[name]["failures"]))
    lines.append(line("`WhatsAppInput` webhook → reply at fake Graph", rows["whatsapp"]["reply_at_graph"], rows["whatsapp"]["failures"]))
    return "\n".join(lines)


def pure_table(rows: Dict[str, Any]) -> str:
    labels = {"hmac_sha256_check": f"`WhatsAppInput.signature_matches` (HMAC-SHA256, {rows['hmac_sha256_check']['body_bytes']} B body)",
              "portal_verify": "`PortalInput.verify` (jwt.decode HS256 + claim and identity checks)",
              "jwt_decode_hs256": "`jwt.decode` HS256 alone (aud, iss, exp)",
              "customer_for": "`IdentityResolver.customer_for` (one Redis Lua call, known customer)"}
    lines = ["| function | samples × calls | p50 µs | p95 µs | mean µs |", "|---|---:|---:|---:|---:|"]
    for name, label in labels.items():
        row = rows[name]
        lines.append(f"| {label} | {row['samples']} × {row['calls_per_sample']} | {row['p50_us']:.1f} | {row['p95_us']:.1f} | {row['mean_us']:.1f} |")
    return "\n".join(lines)


def load_table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| server | sessions open (failed) | open s | sent | replies | lost | errors | disconnects | p50 ms | p95 ms | p99 ms | max ms | replies/s | client send lag p95 ms | RSS idle / connected / end / peak MiB | KiB per session | CPU cores server / client / redis |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        lat, rss, cpu = r["latency"], r["rss_mib"], r["cpu_cores"]
        lines.append(
            f"| {r['server']} | {r['sessions_open']} ({r['open_failures']}) | {r['open_seconds']:.1f} | {r['messages_sent']} | {r['replies']} | "
            f"{r['lost']} | {r['send_errors']} | {r['disconnects']} | {f2(lat.get('p50_ms'))} | {f2(lat.get('p95_ms'))} | {f2(lat.get('p99_ms'))} | "
            f"{f2(lat.get('max_ms'))} | {r['replies_per_s']:.0f} | {f2(r['send_lag'].get('p95_ms'))} | "
            f"{rss['idle']:.0f} / {rss['connected']:.0f} / {rss['end']:.0f} / {rss['peak']:.0f} | {f2(r['rss_kib_per_session'])} | "
            f"{cpu['server']:.2f} / {cpu['client']:.2f} / {cpu['redis']:.2f} |")
    return "\n".join(lines)


def summary(results: Dict[str, Any]) -> str:
    o, p = results["overhead"], results["pure"]
    base = o["rasa_rest"]["answer"]

    def over(name: str, key: str = "answer") -> str:
        s = o[name][key]
        return f"p50 {s['p50_ms']:.2f} ms / p95 {s['p95_ms']:.2f} ms ({s['p50_ms'] - base['p50_ms']:+.2f} / {s['p95_ms'] - base['p95_ms']:+.2f} ms)"

    engage, rasa = results["load"]["engage"], results["load"]["rasa"]
    client_note = ("The client process used "
                   f"{engage['cpu_cores']['client']:.2f} and {rasa['cpu_cores']['client']:.2f} cores of the machine's {results['machine']['cores']} "
                   "during the two loads (client send lag p95 "
                   f"{f2(engage['send_lag'].get('p95_ms'))} and {f2(rasa['send_lag'].get('p95_ms'))} ms): ")
    saturated = max(engage["cpu_cores"]["client"], rasa["cpu_cores"]["client"]) >= 0.85
    client_note += ("the single-process polling clients are near one core, so part of the latency is the clients' own queueing, "
                    "and the figures are an upper bound for the server." if saturated
                    else "the clients were not CPU-bound and kept to their schedule.")
    return (
        f"Against Rasa's `RestInput` in the same run (p50 {base['p50_ms']:.2f} ms, p95 {base['p95_ms']:.2f} ms per request, "
        f"handler replying at once), `EngageRestInput` is {over('engage_rest')}; `PortalInput` (HS256 JWT, "
        f"identity resolution and dedup on Redis) is {over('portal')}; `WhatsAppInput` acknowledges a signed webhook in "
        f"{over('whatsapp')} and the reply reaches the (local) Graph API {over('whatsapp', 'reply_at_graph')} after the POST, "
        "which includes the outbound HTTP call. "
        f"In isolation the HMAC check of a {p['hmac_sha256_check']['body_bytes']} B body costs {p['hmac_sha256_check']['p50_us']:.1f} µs, "
        f"the portal's token check {p['portal_verify']['p50_us']:.0f} µs (jwt.decode alone {p['jwt_decode_hs256']['p50_us']:.0f} µs) "
        f"and `customer_for` {p['customer_for']['p50_us']:.0f} µs p50 / {p['customer_for']['p95_us']:.0f} µs p95: the cryptography is a small part of "
        "the added time; the rest is Redis round trips (customer directory, dedup) and the async work around them.\n\n"
        f"With {engage['sessions_open']} socket.io sessions each sending a message a second, `WebChatInput` answered "
        f"{engage['replies']}/{engage['messages_sent']} messages at p50 {f2(engage['latency'].get('p50_ms'))} / p95 {f2(engage['latency'].get('p95_ms'))} / "
        f"p99 {f2(engage['latency'].get('p99_ms'))} ms ({engage['replies_per_s']:.0f} replies/s, {engage['lost']} lost, {engage['disconnects']} disconnects) "
        f"against Rasa's `SocketIOInput` at p50 {f2(rasa['latency'].get('p50_ms'))} / p95 {f2(rasa['latency'].get('p95_ms'))} / "
        f"p99 {f2(rasa['latency'].get('p99_ms'))} ms ({rasa['replies']}/{rasa['messages_sent']}, {rasa['lost']} lost); server RSS went "
        f"{engage['rss_mib']['idle']:.0f} → {engage['rss_mib']['connected']:.0f} → {engage['rss_mib']['end']:.0f} MiB (Engage) and "
        f"{rasa['rss_mib']['idle']:.0f} → {rasa['rss_mib']['connected']:.0f} → {rasa['rss_mib']['end']:.0f} MiB (Rasa), idle → connected → end; "
        f"server CPU {engage['cpu_cores']['server']:.2f} vs {rasa['cpu_cores']['server']:.2f} cores. " + client_note
    )


def persistence_note(works: bool) -> str:
    if works:
        return "Rasa's `SocketIOInput` with `session_persistence: true` answered the probe, so it ran the load as configured."
    return ("Rasa's `SocketIOInput` with `session_persistence: true` got **no reply** to a probe message in this runtime: "
            "rasa 3.6 calls `sio.enter_room(...)` without `await`, and python-socketio 5.18's `AsyncServer.enter_room` is a "
            "coroutine, so the session never joins its room and replies addressed to the session id go nowhere. The baseline "
            "load therefore runs Rasa's channel with `session_persistence: false` (replies go to the socket's own room), the "
            "closest configuration that works; it does the same per-message work minus the session check.")


def write_report(results: Dict[str, Any]) -> None:
    info = results["machine"]
    md = f"""# Connector overhead and concurrent socket.io sessions

Generated by `bench/connectors.py`; numbers are measured, not edited.

- Date: {results['date']}
- Command: `{results['command']}`
- Machine: {machine_line(info)}; rasa {results['versions']['rasa']}, sanic {results['versions']['sanic']}, aiohttp {aiohttp.__version__}, python-socketio {results['versions']['python-socketio']}, uvloop event loop
- `uptime` at start: `{results['uptime_start']}`
- `uptime` at end: `{results['uptime_end']}`
- Run time: {results['run_seconds']:.0f} s
- Redis: a private `redis-server` (AOF on, as in tests) on 127.0.0.1, started and stopped by the script.

## 1. Per-message connector overhead (in process, no Rasa model)

Each channel's blueprint on a real Sanic app with an `on_new_message` that answers at once with one text, so the time is
the connector's own work. One client on 127.0.0.1, in the same process and event loop as the server, POSTs one request at a
time ({results['profile']['warm_up']} warm-up requests, then {results['profile']['requests']} timed); {USERS} distinct senders
cycled, so after warm-up identity resolution finds known customers. Portal requests carry a bearer token (HS256, signed by
the client beforehand) and a fresh `message_id` (dedup: one Redis SET NX). WhatsApp webhooks are signed with the app secret
and carry a fresh message id; the channel acknowledges before handling, so the acknowledgement and the time until the
reply (via the channel's `ProviderClient`) reaches the fake Graph API are both shown. Rasa's `RestInput` ran in the same
run with the same handler. Differences are Engage minus Rasa, in ms.

{overhead_table(results['overhead'])}

Pure steps, in loops (synchronous ones timed in batches, per-call time per sample; `customer_for` one await per sample
after a first round that created the {USERS} customers):

{pure_table(results['pure'])}

## 2. {results['profile']['sessions']} concurrent socket.io sessions

The server runs in its own process (this script with `--serve`), the {results['profile']['sessions']} clients in the main
process: python-socketio `AsyncClient`s, long-polling only, since the Rasa runtime's aiohttp 3.9 is too old for
python-socketio's WebSocket client (every message is a POST and every reply ends a long-poll GET, so this is heavier
per message than WebSockets). Sessions are opened 20 at a time (`session_request` → `session_confirm`), then each sends
`user_uttered {{message, session_id}}` every {results['profile']['interval']:.0f} s for {results['profile']['load_seconds']:.0f} s, staggered
evenly; latency is from just before the emit to the `bot_uttered` echo of that message. Lost: no reply within 10 s after
the last send. RSS: the server's VmRSS 1 s after start (idle), 2 s after the sessions opened, and after the load; peak is
VmHWM. CPU: CPU time during the load (from the first send to the last reply) over its wall time, for the server, the
client process and redis-server. Client send lag: how late the client emitted against its schedule.

{persistence_note(results['rasa_session_persistence_replies'])}

{load_table([results['load']['engage'], results['load']['rasa']])}

## What this says

{summary(results)}
"""
    (RESULTS_DIR / "connectors.md").write_text(md, encoding="utf-8")
    (RESULTS_DIR / "connectors.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("rasa", "sanic", "aiohttp", "python-socketio", "python-engineio", "PyJWT", "redis", "uvloop")}


async def run(profile: Profile, quick: bool) -> Dict[str, Any]:
    started = time.perf_counter()
    results: Dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                               "command": COMMAND + (" --quick" if quick else ""), "machine": machine(),
                               "uptime_start": uptime(), "versions": versions(), "profile": asdict(profile)}
    progress(f"start; {results['uptime_start']}")
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as tmp:
        redis_server = RedisServer(Path(tmp) / "redis")
        redis_server.start()
        try:
            assert redis_server.process is not None
            progress(f"1. per-message overhead, {profile.requests} sequential requests per channel")
            results["overhead"] = await overhead(redis_server.url, Path(tmp), profile)
            progress("   pure functions")
            results["pure"] = await pure_functions(redis_server.url, profile)
            progress(f"2. {profile.sessions} socket.io sessions, {profile.load_seconds:.0f} s of load each")
            results["rasa_session_persistence_replies"] = await probe_replies("rasa_persistent", redis_server.url)
            progress(f"  Rasa SocketIOInput with session_persistence true replies: {results['rasa_session_persistence_replies']}")
            rasa_kind = "rasa_persistent" if results["rasa_session_persistence_replies"] else "rasa"
            results["load"] = {"engage": await load("engage", redis_server.url, redis_server.process.pid, profile)}
            results["load"]["rasa"] = await load(rasa_kind, redis_server.url, redis_server.process.pid, profile)
        finally:
            redis_server.stop()
    results["uptime_end"] = uptime()
    results["load_avg_end"] = os.getloadavg()
    results["run_seconds"] = time.perf_counter() - started
    return results


def print_tables(results: Dict[str, Any]) -> None:
    print()
    print(overhead_table(results["overhead"]))
    print()
    print(pure_table(results["pure"]))
    print()
    print(load_table([results["load"]["engage"], results["load"]["rasa"]]))
    print()
    print(summary(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--serve", choices=("engage", "rasa", "rasa_persistent"), help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    uvloop.install()
    warnings.simplefilter("ignore")
    if args.serve:
        asyncio.run(serve_socketio(args.serve, args.redis_url))
        return
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)  # "packet queue is empty" as clients are aborted
    results = asyncio.run(run(QUICK if args.quick else FULL, args.quick))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    write_report(results)
    print_tables(results)
    progress(f"done in {results['run_seconds']:.0f} s; {results['uptime_end']}; wrote {RESULTS_DIR / 'connectors.md'} and .json")


if __name__ == "__main__":
    main()
