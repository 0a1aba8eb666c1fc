"""The running stack for end-to-end tests: real Redis, action server and Rasa server, once per session."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, TypeVar

import pytest
import redis
import requests

from analytics.schema import EVENTS_STREAM, LogEvent
from scripts.stack import DEFAULT_MODEL, ROOT, Stack, generate_secret
from tests.fakes import chatwoot_api as cw
from tests.fakes import telegram_api as tg
from tests.fakes import whatsapp_graph as wa
from tests.fakes.chatwoot_api import FakeChatwoot
from tests.fakes.crm_api import HUBSPOT_TOKEN, FakeHubSpot
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.whatsapp_graph import FakeGraph

Replies = List[Dict[str, Any]]
T = TypeVar("T")

# Channels are on only when their secrets are set (scripts/stack.py leaves them out
# otherwise): the stack under test gets test values, the tests sign tokens and webhooks with
# them, and the fake providers expect them.
CHANNEL_ENV = {
    "PORTAL_JWT_SECRET": "e2e-portal-secret-0123456789abcdef0123456789",
    "PORTAL_JWT_AUDIENCE": "engage-chat",
    "PORTAL_JWT_ISSUER": "https://portal.quillstack.example",
    "WHATSAPP_ACCESS_TOKEN": wa.ACCESS_TOKEN,
    "WHATSAPP_APP_SECRET": wa.APP_SECRET,
    "WHATSAPP_VERIFY_TOKEN": wa.VERIFY_TOKEN,
    "WHATSAPP_PHONE_NUMBER_ID": wa.PHONE_NUMBER_ID,
    "TELEGRAM_BOT_TOKEN": tg.TOKEN,
    "TELEGRAM_WEBHOOK_SECRET": "e2e-telegram-webhook-secret",
    "CHATWOOT_BOT_TOKEN": cw.BOT_TOKEN,
    "CHATWOOT_WEBHOOK_TOKEN": cw.WEBHOOK_TOKEN,
}


class BackgroundLoop:
    """An event loop in a daemon thread: the fake providers serve from it while tests block."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-providers", daemon=True)
        self.thread.start()

    def run(self, work: Awaitable[T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Providers:
    """The fake WhatsApp Graph API and Telegram Bot API the stack's channels talk to, and the fake
    HubSpot the analytics service hands qualified leads to."""

    graph: FakeGraph
    telegram: FakeTelegramApi
    hubspot: FakeHubSpot
    chatwoot: FakeChatwoot


@pytest.fixture(scope="session")
def providers() -> Iterator[Providers]:
    background = BackgroundLoop()
    graph = background.run(FakeGraph().__aenter__())
    telegram = background.run(FakeTelegramApi().start())
    hubspot = background.run(FakeHubSpot().start())
    chatwoot = background.run(FakeChatwoot().start())
    try:
        yield Providers(graph, telegram, hubspot, chatwoot)
    finally:
        background.run(chatwoot.close())
        background.run(graph.__aexit__(None, None, None))
        background.run(telegram.close())
        background.run(hubspot.close())
        background.close()


def crm_config_for(providers: Providers, path: Path) -> Path:
    """The CRM settings with HubSpot on, pointed at the fake; the token comes from the environment."""
    text = (ROOT / "analytics" / "crm" / "config.yml").read_text(encoding="utf-8")
    assert "provider: none\n" in text and "base_url: https://api.hubapi.com\n" in text, "analytics/crm/config.yml changed shape"
    text = text.replace("provider: none\n", "provider: hubspot\n").replace("base_url: https://api.hubapi.com\n", f"base_url: {providers.hubspot.base_url}\n")
    text = text.replace("first_delay_seconds: 2", "first_delay_seconds: 0.2")
    path.write_text(text, encoding="utf-8")
    return path


def console_config_for(path: Path) -> Path:
    """The console settings with the support team never in business hours, so that every handover in
    these tests opens a ticket and asks how to reach the customer, whatever day the tests run."""
    text = (ROOT / "console" / "config.yml").read_text(encoding="utf-8")
    hours = '    hours: {mon: "08:00-18:00", tue: "08:00-18:00", wed: "08:00-18:00", thu: "08:00-18:00", fri: "08:00-18:00"}\n'
    assert text.count(hours) == 1, "console/config.yml changed shape"
    path.write_text(text.replace(hours, "    hours: {}\n"), encoding="utf-8")
    return path


def credentials_for(providers: Providers, path: Path) -> Path:
    """The project's credentials.yml with the messaging channels pointed at the fake providers."""
    text = (ROOT / "credentials.yml").read_text(encoding="utf-8")
    for header, url in (
        ("connectors.whatsapp.WhatsAppInput:\n", providers.graph.base_url),
        ("connectors.telegram.TelegramInput:\n", providers.telegram.base_url),
    ):
        assert header in text, f"credentials.yml no longer configures {header.strip()}"
        text = text.replace(header, f"{header}  api_base_url: {url}\n")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, providers: Providers) -> Iterator[Stack]:
    os.environ.update(CHANNEL_ENV)  # this test process's own environment, handed to the stack
    os.environ["CHATWOOT_BASE_URL"] = providers.chatwoot.base_url
    if not DEFAULT_MODEL.exists():
        pytest.fail(f"no trained model at {DEFAULT_MODEL}: run `make setup` first")
    data_dir = tmp_path_factory.mktemp("stack")
    credentials = credentials_for(providers, data_dir / "credentials-e2e.yml")
    os.environ["ENGAGE_CRM_CONFIG"] = str(crm_config_for(providers, data_dir / "crm-e2e.yml"))
    os.environ["HUBSPOT_ACCESS_TOKEN"] = HUBSPOT_TOKEN
    os.environ["ENGAGE_CONSOLE_CONFIG"] = str(console_config_for(data_dir / "console-e2e.yml"))
    # The analytics service sends WhatsApp templates (idea notifications outside the 24-hour window) itself.
    os.environ["WHATSAPP_API_BASE_URL"] = providers.graph.base_url
    # An API token that starts with "-" (1 in 64 generated ones did) must still reach `rasa run` as a value.
    running = Stack(
        rasa_port=0, actions_port=0, redis_port=0, analytics_port=0, console_port=0, data_dir=data_dir, credentials=credentials,
        auth_token="-" + generate_secret(),
    )
    running.start()
    assert not running.channels_off, f"channels left out of the stack under test: {running.channels_off}"
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def store(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.effective_redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def post(stack: Stack, payload: Any, raw: Optional[bytes] = None) -> requests.Response:
    if raw is not None:
        return requests.post(stack.rest_webhook, data=raw, headers={"Content-Type": "application/json"}, timeout=60)
    return requests.post(stack.rest_webhook, json=payload, timeout=60)


@pytest.fixture
def chat(stack: Stack) -> Callable[..., Replies]:
    def send(sender: str, text: str, metadata: Optional[Dict[str, Any]] = None) -> Replies:
        payload: Dict[str, Any] = {"sender": sender, "message": text}
        if metadata is not None:
            payload["metadata"] = metadata
        response = post(stack, payload)
        assert response.status_code == 200, response.text
        return response.json()

    return send


def eventually(check: Callable[[], Optional[T]], what: str, timeout: float = 60.0) -> T:
    """The first truthy value of `check()`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def texts(replies: Replies) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def log_events(store: redis.Redis, conversation_id: str, settle: float = 5.0, want: Optional[str] = None) -> List[LogEvent]:
    """The conversation's log records, de-duplicated on event_id (delivery is at-least-once).

    Records reach the stream a few milliseconds after the reply (the broker writes in
    the background): poll until `want` appears or the stream stops growing.
    """
    deadline = time.monotonic() + settle
    seen: Dict[str, LogEvent] = {}
    last = -1
    while True:
        for _, fields in store.xrange(EVENTS_STREAM):
            event = LogEvent.from_fields(fields)
            if event.conversation_id == conversation_id:
                seen.setdefault(event.event_id, event)
        done = (want is None and len(seen) == last) or (want is not None and any(e.type == want for e in seen.values()))
        if done or time.monotonic() > deadline:
            return sorted(seen.values(), key=lambda e: e.timestamp)
        last = len(seen)
        time.sleep(0.2)


def tracker(stack: Stack, conversation_id: str) -> Dict[str, Any]:
    response = requests.get(
        f"{stack.rasa_url}/conversations/{conversation_id}/tracker",
        params={"token": stack.auth_token},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
