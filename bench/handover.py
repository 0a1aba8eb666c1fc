"""Handover latency and console load on the full stack (issue 12).

Run in the action runtime from the repository root:

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venvs/actions/bin/python bench/handover.py [--requests 30] [--agents 20] [--waiting 200]

Starts the whole stack (private Redis, analytics service, action server, Rasa with the trained
model, staff console) on free ports, signs in `--agents` agents over HTTP, each holding the live
feed (`/api/live`, Server-Sent Events) open for the whole run, then measures:

1. request -> console: a web-chat customer (python-socketio over WebSocket, the widget's
   protocol) types "I want to talk to a person"; the time until the first agent's live feed
   carries a queue state with that conversation, and until all agents' feeds do;
2. agent reply -> customer: the agent claims it (POST /api/claim) and replies
   (POST /api/conversations/<id>/reply); the time until the customer's socket gets the text;
3. the queue page with `--waiting` waiting conversations (GET /queue, server-side rendering,
   and GET /api/queue), 20 loads each;
4. the console's resident memory and CPU time with the agents connected;
5. canned answers (GET /api/canned): the first search, which loads MiniLM (the ONNX export,
   knowledge_base.service.search_encoder) and the FAISS index into the console, then 20 more, and
   the memory after;
6. agent reply -> customer on WhatsApp and Telegram (`--messengers` customers each): the customer
   writes "I want to talk to a person" to the webhook (signed as the provider signs it), the agent
   claims and replies; the time from the reply's POST until the fake Graph API / fake Bot API
   (tests/fakes, on 127.0.0.1 in this process) accepted the message. The fakes add no network
   latency of their own: the providers' latency comes on top in production;
7. the canned answers' encoder cold (`--encoders`): a fresh process of the action runtime imports
   the console, then loads the FAQ index and searches once, with PyTorch (as before) and with the
   ONNX export: seconds to the first answer and resident memory before and after.

Results go to bench/results/handover-<stamp>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
import psutil
import redis
import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.schema import HANDOVER_QUEUE, handover_request_key  # noqa: E402
from bench.machine import machine, machine_line  # noqa: E402
from scripts.stack import Stack  # noqa: E402
from tests.e2e.conftest import CHANNEL_ENV, BackgroundLoop, credentials_for  # noqa: E402
from tests.fakes import telegram_api as tg  # noqa: E402
from tests.fakes import whatsapp_graph as wa  # noqa: E402

PASSWORD = "bench agent password"


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: List[float]) -> Dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 0.5) * 1000, 1), "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "mean_ms": round(statistics.fmean(values) * 1000, 1)}


def add_agents(stack: Stack, count: int) -> List[str]:
    import subprocess

    logins = [f"bench{n:02d}" for n in range(count)]
    for login in logins:
        result = subprocess.run([sys.executable, "-m", "console", "users", "add", login, "--role", "admin" if login == "bench00" else "agent",
                                 "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT,
                                env={**stack.env(), "REDIS_URL": stack.effective_redis_url}, timeout=60)
        assert result.returncode == 0, result.stderr
    return logins


class Agent:
    def __init__(self, base: str, login: str) -> None:
        self.base, self.login = base, login
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=120))
        self.csrf = ""
        self.seen: Dict[str, float] = {}  # conversation -> when its feed first showed it waiting
        self._feed: Optional[asyncio.Task] = None

    async def sign_in(self) -> None:
        async with self.http.get(f"{self.base}/login") as page:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await page.text()).group(1)
        async with self.http.post(f"{self.base}/login", data={"login": self.login, "password": PASSWORD, "csrf_token": token}) as answer:
            text = await answer.text()
            assert answer.status == 200 and str(answer.url).endswith("/queue"), text[:300]
        self.csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', text).group(1)

    def listen(self) -> None:
        self._feed = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async with self.http.get(f"{self.base}/api/live", timeout=aiohttp.ClientTimeout(total=None)) as stream:
            event = ""
            async for raw in stream.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "queue":
                    now = time.perf_counter()
                    for team in json.loads(line[5:])["teams"]:
                        for waiting in team["waiting"]:
                            self.seen.setdefault(waiting["conversation_id"], now)

    async def post(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        async with self.http.post(f"{self.base}{path}", json=body, headers={"X-CSRF-Token": self.csrf}) as answer:
            data = await answer.json()
            assert answer.status == 200, data
            return data

    async def close(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
        await self.http.close()


class Customer:
    def __init__(self, rasa_url: str) -> None:
        self.url = rasa_url
        self.client = socketio.AsyncClient(reconnection=False)
        self.replies: "asyncio.Queue[tuple[float, Dict[str, Any]]]" = asyncio.Queue()
        self.session: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
        self.client.on("bot_uttered", self._reply)
        self.client.on("session_confirm", lambda sid: self.session.done() or self.session.set_result(sid))

    async def _reply(self, data: Dict[str, Any]) -> None:
        await self.replies.put((time.perf_counter(), data))

    async def open(self) -> str:
        await self.client.connect(self.url, socketio_path="/socket.io", transports=["websocket"])
        await self.client.emit("session_request", {"session_id": uuid.uuid4().hex})
        return await asyncio.wait_for(self.session, 10)

    async def say(self, text: str, session_id: str) -> None:
        await self.client.emit("user_uttered", {"message": text, "session_id": session_id})

    async def wait_for(self, text: str, timeout: float = 60) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            at, data = await asyncio.wait_for(self.replies.get(), max(0.1, deadline - time.perf_counter()))
            if text in (data.get("text") or ""):
                return at


class Stamped(list):
    """A fake provider's list of accepted messages that also notes when each arrived."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.times: List[float] = [float("nan")] * len(self)

    def append(self, item: Any) -> None:
        self.times.append(time.perf_counter())
        super().append(item)


class Fakes:
    """The fake WhatsApp Graph API and Telegram Bot API, served from a background loop."""

    def __init__(self) -> None:
        self.background = BackgroundLoop()
        self.graph = self.background.run(wa.FakeGraph().__aenter__())
        self.telegram = self.background.run(tg.FakeTelegramApi().start())
        self.graph.sent = Stamped(self.graph.sent)
        self.telegram.calls = Stamped(self.telegram.calls)

    def close(self) -> None:
        self.background.run(self.graph.__aexit__(None, None, None))
        self.background.run(self.telegram.close())
        self.background.close()


def arrived(items: Stamped, matches: Any, since: int) -> Optional[float]:
    for at, item in zip(items.times[since:], items[since:]):
        if matches(item):
            return at
    return None


async def messenger_replies(stack: Stack, fakes: Fakes, admin: "Agent", store: redis.Redis, channel: str, count: int) -> List[float]:
    """Agent reply -> the provider API accepted it, for `count` customers of `channel`."""
    times = []
    async with aiohttp.ClientSession() as http:
        for n in range(count):
            if channel == "whatsapp":
                address = f"49151{random.randrange(10**7, 10**8)}"
                body, headers = wa.signed(wa.text_message(address, "I want to talk to a person"))
                sent = fakes.graph.sent
                def matches(m: Dict[str, Any], text: str = "") -> bool:
                    return m.get("to") == address and m.get("type") == "text" and m["text"]["body"] == text
            else:
                user_id = random.randrange(10**8, 10**9)
                address = str(user_id)
                body = tg.encode(tg.text_update(user_id, "I want to talk to a person"))
                headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"]}
                sent = fakes.telegram.calls
                def matches(c: Any, text: str = "") -> bool:
                    return c.method == "sendMessage" and c.status == 200 and c.payload.get("chat_id") == user_id and c.payload.get("text") == text
            async with http.post(f"{stack.rasa_url}/webhooks/{channel}/webhook", data=body, headers=headers) as answer:
                assert answer.status == 200, await answer.text()
            started = time.perf_counter()
            conversation = None
            while not (conversation and store.zscore(HANDOVER_QUEUE, conversation) is not None):
                if time.perf_counter() - started > 60:
                    raise AssertionError(f"the {channel} request of {address} never reached the queue")
                conversation = store.get(f"engage:identity:{channel}:{address}")
                await asyncio.sleep(0.01)
            await admin.post("/api/claim", {"conversation_id": conversation, "team": "support"})
            text = f"Reply number {n} on {channel}, from the console."
            before = len(sent)
            started = time.perf_counter()
            answer = await admin.post(f"/api/conversations/{conversation}/reply", {"text": text})
            assert answer["status"] == "delivered", answer
            at = None
            while at is None:
                at = arrived(sent, lambda m: matches(m, text), before)
                if at is None:
                    if time.perf_counter() - started > 60:
                        raise AssertionError(f"the reply never reached the fake {channel} API")
                    await asyncio.sleep(0.001)
            times.append(at - started)
            await admin.post(f"/api/conversations/{conversation}/handback", {})
            print(f"  {channel} {n + 1}/{count}: reply {times[-1] * 1000:.0f} ms", flush=True)
    return times


ENCODER_PROBE = """
import asyncio, json, sys, time
import psutil
import console.app  # the console's own imports first, as in the running console
from knowledge_base.encoder import MiniLMEncoder
from knowledge_base.service import KnowledgeBaseProvider, search_encoder
me = psutil.Process()
before = me.memory_info().rss
factory = MiniLMEncoder if sys.argv[1] == "torch" else search_encoder
started = time.perf_counter()
async def first():
    kb = await KnowledgeBaseProvider(encoder_factory=factory).get()
    return await asyncio.get_running_loop().run_in_executor(None, kb.search, "can we log in with Okta?", 5)
hits = asyncio.run(first())
seconds = time.perf_counter() - started
print(json.dumps({"encoder": sys.argv[1], "first_search_s": round(seconds, 2), "rss_before_mb": round(before / 2**20, 1),
                  "rss_after_mb": round(me.memory_info().rss / 2**20, 1), "top": hits[0].entry.id, "torch": "torch" in sys.modules}))
"""


def encoder_cold_starts(rounds: int) -> List[Dict[str, Any]]:
    """The canned answers' first search in a fresh process, PyTorch and ONNX alternately."""
    results = []
    for n in range(rounds):
        for encoder in ("torch", "onnx"):
            done = subprocess.run([sys.executable, "-c", ENCODER_PROBE, encoder], cwd=ROOT, capture_output=True, text=True, timeout=600,
                                  env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
            assert done.returncode == 0, done.stderr[-3000:]
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  encoder {encoder} {n + 1}/{rounds}: {results[-1]}", flush=True)
    return results


async def run(stack: Stack, args: argparse.Namespace, fakes: Optional[Fakes] = None) -> Dict[str, Any]:
    store = redis.Redis.from_url(stack.effective_redis_url, decode_responses=True)
    logins = add_agents(stack, args.agents)
    agents = [Agent(stack.console_url, login) for login in logins]
    for agent in agents:
        await agent.sign_in()
        agent.listen()
    await asyncio.sleep(2)
    first, everyone, replies = [], [], []
    admin = agents[0]
    for n in range(args.requests):
        customer = Customer(stack.rasa_url)
        session_id = await customer.open()
        started = time.perf_counter()
        await customer.say("I want to talk to a person", session_id)
        conversation = None
        while conversation is None and time.perf_counter() - started < 60:
            conversation = store.get(f"engage:identity:web:{session_id}")
            await asyncio.sleep(0.005)
        assert conversation, "the customer was never resolved"
        while not all(conversation in a.seen for a in agents):
            if time.perf_counter() - started > 60:
                raise AssertionError(f"the request of {conversation} did not reach every agent's feed")
            await asyncio.sleep(0.005)
        first.append(min(a.seen[conversation] for a in agents) - started)
        everyone.append(max(a.seen[conversation] for a in agents) - started)
        await admin.post("/api/claim", {"conversation_id": conversation, "team": "support"})
        await customer.wait_for("I'm here to help")
        text = f"Reply number {n}, from the console."
        sent = time.perf_counter()
        await admin.post(f"/api/conversations/{conversation}/reply", {"text": text})
        replies.append(await customer.wait_for(text) - sent)
        await admin.post(f"/api/conversations/{conversation}/handback", {})
        await customer.client.disconnect()
        print(f"  request {n + 1}/{args.requests}: console {first[-1] * 1000:.0f} ms (all agents {everyone[-1] * 1000:.0f} ms), "
              f"reply {replies[-1] * 1000:.0f} ms", flush=True)

    # The same on WhatsApp and Telegram, with the queue as short as for the web chat above (the
    # 200 waiting below make every agent's feed recompute a long queue on each log entry).
    messengers = {}
    if fakes is not None and args.messengers > 0:
        for channel in ("whatsapp", "telegram"):
            messengers[channel] = await messenger_replies(stack, fakes, admin, store, channel, args.messengers)

    # The queue page with many waiting conversations (written as the action server writes them).
    now = time.time()
    with store.pipeline(transaction=True) as pipe:
        for n in range(args.waiting):
            conversation = f"C-{n:016x}"
            pipe.zadd(HANDOVER_QUEUE, {conversation: now - n})
            pipe.hset(handover_request_key(conversation), mapping={"requested_at": repr(now - n), "channel": "socketio", "team": "support",
                                                                   "trigger": "asked_for_person", "reason": f"help with invoice {n} please"})
        pipe.execute()
    page_times, api_times = [], []
    for _ in range(20):
        started = time.perf_counter()
        async with admin.http.get(f"{stack.console_url}/queue") as answer:
            body = await answer.text()
        page_times.append(time.perf_counter() - started)
        assert answer.status == 200 and body.count('class="claim"') >= args.waiting
        started = time.perf_counter()
        async with admin.http.get(f"{stack.console_url}/api/queue") as answer:
            await answer.json()
        api_times.append(time.perf_counter() - started)
    await asyncio.sleep(6)  # every feed recomputes the 200-row queue once more
    console = psutil.Process(stack.processes["console"].pid)
    memory = console.memory_info().rss
    # Canned answers: the first search loads MiniLM and the FAISS index into the console process.
    canned = []
    for query in ["can we log in with Okta?"] + [f"how do I export invoice {n} as csv" for n in range(20)]:
        started = time.perf_counter()
        async with admin.http.get(f"{stack.console_url}/api/canned", params={"q": query}) as answer:
            assert answer.status == 200, await answer.text()
            await answer.json()
        canned.append(time.perf_counter() - started)
    memory_with_faq = console.memory_info().rss
    cpu = console.cpu_times()
    for agent in agents:
        await agent.close()
    store.close()
    return {
        "request_to_console_first_agent": summary(first),
        "request_to_console_all_agents": summary(everyone),
        "agent_reply_to_customer_webchat": summary(replies),
        f"queue_page_{args.waiting}_waiting": summary(page_times),
        f"queue_api_{args.waiting}_waiting": summary(api_times),
        **{f"agent_reply_to_customer_{channel}": summary(times) for channel, times in messengers.items()},
        "canned_answers_warm": summary(canned[1:]),
        "canned_answers_first_search_ms": round(canned[0] * 1000, 1),
        "agents_connected": args.agents,
        "console_rss_mb": round(memory / 2**20, 1),
        "console_rss_with_faq_mb": round(memory_with_faq / 2**20, 1),
        "console_cpu_seconds": round(cpu.user + cpu.system, 1),
    }


def report(results: Dict[str, Any], args: argparse.Namespace) -> str:
    rows = [f"| {name} | {v['n']} | {v['p50_ms']} | {v['p95_ms']} | {v['max_ms']} |" for name, v in results.items() if isinstance(v, dict)]
    info = machine()
    load = info["load_avg"][0] if info["load_avg"] else float("nan")
    return (f"Machine: {machine_line(info, f'load average {load:.1f} at the end')}\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.agents} agents with the live feed open "
            f"throughout; console RSS {results['console_rss_mb']} MB ({results['console_rss_with_faq_mb']} MB once canned answers "
            f"loaded the FAQ index, first search {results['canned_answers_first_search_ms']} ms), CPU {results['console_cpu_seconds']} s over the run\n\n"
            "| measurement | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n" + encoders(results))


def encoders(results: Dict[str, Any]) -> str:
    runs = results.get("encoder_cold_starts") or []
    if not runs:
        return ""
    lines = ["\nCanned answers' first search in a fresh process (console imported, then the FAQ index loaded and searched once):\n",
             "| encoder | first search s | RSS before MB | RSS after MB | PyTorch imported | top answer |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['encoder']} | {r['first_search_s']} | {r['rss_before_mb']} | {r['rss_after_mb']} | {r['torch']} | {r['top']} |" for r in runs]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--waiting", type=int, default=200)
    parser.add_argument("--messengers", type=int, default=30, help="WhatsApp and Telegram customers each (0: none)")
    parser.add_argument("--encoders", type=int, default=3, help="cold starts of the canned answers' encoder, each way (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    fakes = Fakes()
    try:
        with tempfile.TemporaryDirectory(prefix="engage-bench-handover-") as tmp:
            # WhatsApp and Telegram on, pointed at the fakes (the e2e tests' settings).
            os.environ.update(CHANNEL_ENV)
            credentials = credentials_for(fakes, Path(tmp) / "credentials-bench.yml")
            print("==> starting the stack", flush=True)
            with Stack(rasa_port=0, actions_port=0, redis_port=0, analytics_port=0, console_port=0, data_dir=Path(tmp),
                       credentials=credentials) as stack:
                results = asyncio.run(run(stack, args, fakes))
    finally:
        fakes.close()
    if args.encoders > 0:
        print("==> the canned answers' encoder, cold, in fresh processes", flush=True)
        results["encoder_cold_starts"] = encoder_cold_starts(args.encoders)
    text = report(results, args)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"handover-{stamp}.json").write_text(json.dumps(results, indent=2))
    (args.out / f"handover-{stamp}.md").write_text(text)
    print(f"results written to {args.out}/handover-{stamp}.{{json,md}}")


if __name__ == "__main__":
    main()
