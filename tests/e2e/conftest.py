"""The running stack for end-to-end tests: real Redis, action server and Rasa server, once per session."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import redis
import requests

from analytics.schema import EVENTS_STREAM, LogEvent
from scripts.stack import DEFAULT_MODEL, Stack

Replies = List[Dict[str, Any]]


# The portal channel is on only when its secrets are set (scripts/stack.py leaves it out
# otherwise): the stack under test gets test values, and the tests sign tokens with them.
PORTAL_ENV = {
    "PORTAL_JWT_SECRET": "e2e-portal-secret-0123456789abcdef0123456789",
    "PORTAL_JWT_AUDIENCE": "engage-chat",
    "PORTAL_JWT_ISSUER": "https://portal.quillstack.example",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for name, value in PORTAL_ENV.items():
        os.environ.setdefault(name, value)
    if not DEFAULT_MODEL.exists():
        pytest.fail(f"no trained model at {DEFAULT_MODEL}: run `make setup` first")
    running = Stack(rasa_port=0, actions_port=0, redis_port=0, data_dir=tmp_path_factory.mktemp("stack"))
    running.start()
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
