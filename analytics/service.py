"""The analytics service: consumes the interaction log and answers `GET /health` with its lag.

`python -m analytics serve` runs it (`make run` starts it with the other processes). Several
may run side by side with different `--consumer` names: they share the group's work.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, List, Optional

from aiohttp import web

from analytics.crm.clients import client_for
from analytics.crm.config import CrmConfig, load_crm_config
from analytics.crm.outbox import CrmSender
from analytics.dashboards.projection import DashboardStore
from analytics.engagement.rules import load_rules
from analytics.privacy import erase_due
from analytics.funnel.rules import load_funnel_rules
from analytics.ideas.notify import NotificationSender, idea_notifier
from analytics.ideas.recluster import run_schedule
from analytics.ideas.themes import ThemeStore, theme_store
from analytics.records.store import RecordStore
from analytics.redis_connect import connect, redis_url
from analytics.stream.consumer import ConsumerSettings, Projection, StreamConsumer
from analytics.stream.pause import replay_state

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5060
REDIS_TIMEOUT = 5.0
# The live consumer waits this long after the first entries of a turn for the rest of it (ConsumerSettings.linger_ms).
LINGER_MS = 400  # BENCHMARKS.md, "Analytics": against 100 ms, the median turn +1 % rather than +8 %; lag 0.4 s


def default_consumer_name() -> str:
    """Stable across restarts of one process slot, so a restarted consumer finishes its own pending entries."""
    return os.environ.get("ENGAGE_ANALYTICS_CONSUMER") or f"analytics-{socket.gethostname()}"


def crm_config() -> CrmConfig:
    """The CRM hand-off settings (ENGAGE_CRM_CONFIG for another file); mistakes or unset secrets raise here."""
    path = os.environ.get("ENGAGE_CRM_CONFIG")
    return load_crm_config(Path(path) if path else None)


def record_store(client: Any, crm: Optional[CrmConfig] = None) -> RecordStore:
    """Customer records, scores and stages under the configured rules (a file with mistakes raises here)."""
    rules_file = os.environ.get("ENGAGE_ENGAGEMENT_RULES")
    funnel_file = os.environ.get("ENGAGE_FUNNEL_RULES")
    return RecordStore(
        client,
        load_rules(Path(rules_file) if rules_file else None),
        load_funnel_rules(Path(funnel_file) if funnel_file else None),
        crm_stages=crm.push_stages if crm is not None and crm.enabled else (),
    )


def projections(client: Any, crm: Optional[CrmConfig] = None) -> List[Projection]:
    """Everything the service keeps, in the order each event is applied (dashboards after the records,
    whose stage histories they count)."""
    return [record_store(client, crm), theme_store(client), DashboardStore(client)]


@dataclass
class Service:
    consumer: StreamConsumer
    themes: Optional[ThemeStore] = None

    async def match_idea(self, request: web.Request) -> web.Response:
        """POST /ideas/match {"text", "customer"}: the needs theme this idea would join now, with a
        label, so the conversation can say "others have asked for ... too" (nothing is stored)."""
        token = os.environ.get("ENGAGE_ACTION_TOKEN")
        if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
            return web.json_response({"error": "a bearer token (ENGAGE_ACTION_TOKEN) is required"}, status=401)
        if self.themes is None:
            return web.json_response({"error": "idea themes are not kept by this service"}, status=404)
        try:
            body = await request.json()
            text, customer = body["text"], str(body.get("customer") or "")
            if not isinstance(text, str) or len(text) > 10_000:
                raise ValueError("text must be a string of at most 10,000 characters")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"expected {{\"text\": \"...\", \"customer\": \"C-...\"}} ({exc})"}, status=400)
        try:
            found = await self.themes.match(text, customer)
        except Exception as exc:  # noqa: BLE001 - the conversation goes on without the claim; the reason is logged and answered
            logger.exception("idea match failed")
            return web.json_response({"error": f"cannot match ideas now: {type(exc).__name__}: {str(exc)[:300]}"}, status=503)
        return web.json_response(found)

    async def health(self, _: web.Request) -> web.Response:
        try:
            lag = await self.consumer.lag()
            replaying = await replay_state(self.consumer.client)
        except Exception as exc:  # noqa: BLE001 - a health check says what is wrong, never 500s
            return web.json_response({"status": "redis unavailable", "error": str(exc)[:200]}, status=503)
        status = "ok"
        if replaying.running:
            status = "paused: a replay is rebuilding the state"
        elif replaying.incomplete:
            status = "paused: a replay did not finish; run `python -m analytics replay`"
        return web.json_response(
            {"status": status, "consumer": self.consumer.settings.consumer, "applied": self.consumer.applied, "lag": lag.as_dict(),
             "replay": replaying.as_dict()}
        )


async def erase_when_due(client: Any, stop: asyncio.Event, interval: float = 5.0) -> None:
    """Carry out the erasures customers asked for in the chat, once each is due."""
    while not stop.is_set():
        try:
            for summary in await erase_due(client, time.time()):
                logger.info("privacy: erased a customer at their request (%d keys, %d log entries)", summary["keys"], summary["log_entries"])
        except Exception:  # noqa: BLE001 - retried on the next round; the request stays queued
            logger.exception("privacy: an erasure failed; it will be tried again")
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


def create_app(consumer: StreamConsumer, sender: Optional[CrmSender] = None, notifier: Optional[NotificationSender] = None,
               themes: Optional[ThemeStore] = None) -> web.Application:
    app = web.Application()
    service = Service(consumer, themes)
    app.router.add_get("/health", service.health)
    app.router.add_post("/ideas/match", service.match_idea)

    async def consume(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(consumer.run(stop), name="analytics-consumer"),
            asyncio.create_task(erase_when_due(consumer.client, stop), name="privacy-erasures"),
        ]
        if sender is not None:
            tasks.append(asyncio.create_task(sender.run(stop), name="crm-sender"))
        if notifier is not None:
            tasks.append(asyncio.create_task(notifier.run(stop), name="idea-notifications"))
        if themes is not None:
            tasks.append(asyncio.create_task(run_schedule(consumer.client, themes.settings.recluster_every_hours, stop), name="idea-recluster-schedule"))
        yield
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)

    app.cleanup_ctx.append(consume)
    return app


async def serve(port: int, consumer_name: str, host: str = "127.0.0.1", linger: int = LINGER_MS) -> None:
    client = connect(redis_url(), REDIS_TIMEOUT, decode_responses=True)
    crm = crm_config()
    store = record_store(client, crm)
    # Idea themes load MiniLM on the first idea, in an executor: the service starts at once.
    themes = theme_store(client)
    consumer = StreamConsumer(client, [store, themes, DashboardStore(client)], ConsumerSettings(consumer=consumer_name, linger_ms=linger))
    crm_client = client_for(crm)
    sender = CrmSender(client, crm_client, crm, store.record) if crm_client is not None else None
    # MiniLM and spaCy load in the background, so the first idea in a conversation is matched in time.
    warm_up = asyncio.get_running_loop().run_in_executor(None, themes.warm_up)
    warm_up.add_done_callback(lambda done: done.exception() and logger.warning("idea themes: the encoder or the labeller did not load: %s", done.exception()))
    runner = web.AppRunner(create_app(consumer, sender, idea_notifier(client, store), themes))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logger.info("analytics service %s on http://%s:%d/health, consuming %s; CRM hand-off: %s", consumer_name, host, port,
                consumer.settings.stream, crm.provider)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()
        await client.aclose()
        logger.info("analytics service stopped (%d events applied)", consumer.applied)
