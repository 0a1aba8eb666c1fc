"""Failures under traffic: Redis restarts, the action server goes away. Nothing is lost, nobody gets silence."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Dict, List

import redis
import requests

from analytics.schema import SOURCE_RASA
from connectors.messages import APOLOGY_TEXT
from scripts.stack import Stack
from tests.e2e.conftest import log_events, texts, tracker

TURNS = ["hi", "how do I connect Slack?", "the Insights charts are great", "thanks", "bye"]


def converse(stack: Stack, sender: str, stop: threading.Event, replies: List[str]) -> None:
    turn = 0
    while not stop.is_set():
        try:
            response = requests.post(
                stack.rest_webhook, json={"sender": sender, "message": TURNS[turn % len(TURNS)]}, timeout=60
            )
            replies.append(texts(response.json()) if response.status_code == 200 else f"HTTP {response.status_code}")
        except requests.RequestException as exc:
            replies.append(f"error {exc}")
        turn += 1


def test_redis_restart_under_traffic_loses_no_event(stack: Stack, store: redis.Redis) -> None:
    senders = [f"e2e-restart-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    replies: Dict[str, List[str]] = {s: [] for s in senders}
    stop = threading.Event()
    threads = [threading.Thread(target=converse, args=(stack, s, stop, replies[s])) for s in senders]
    for thread in threads:
        thread.start()
    time.sleep(4)
    stack.stop_process("redis")  # SIGTERM: Redis fsyncs its AOF and exits
    time.sleep(2)
    stack.start_redis()  # same data dir: the AOF brings trackers and the stream back
    time.sleep(6)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    store.connection_pool.disconnect()
    time.sleep(3)  # let the broker's retry loop drain its buffer
    total_turns = sum(len(r) for r in replies.values())
    assert total_turns > 8, replies
    for sender in senders:
        assert not [r for r in replies[sender] if not r.strip()], f"{sender} got silence: {replies[sender]}"
        stored = tracker(stack, sender)["events"]
        logged = [e for e in log_events(store, sender, settle=10) if e.source == SOURCE_RASA]
        logged_keys = {(e.type, e.timestamp) for e in logged}
        missing = [(e["event"], e["timestamp"]) for e in stored if (e["event"], e["timestamp"]) not in logged_keys]
        assert not missing, f"{sender}: {len(missing)} tracker events missing from the log"
        apologies = sum(APOLOGY_TEXT in r for r in replies[sender])
        failed = [e for e in log_events(store, sender, settle=0) if e.type == "reply_failed"]
        assert len(failed) == apologies, (sender, apologies, [e.data for e in failed])


def test_action_server_down_gets_an_apology_and_a_logged_failure(stack: Stack, store: redis.Redis) -> None:
    sender = f"e2e-actions-down-{uuid.uuid4().hex[:8]}"
    stack.stop_process("actions")
    try:
        response = requests.post(stack.rest_webhook, json={"sender": sender, "message": "how do I connect Slack?"}, timeout=60)
        assert response.status_code == 200
        assert APOLOGY_TEXT in texts(response.json())
        failed = [e for e in log_events(store, sender, want="reply_failed") if e.type == "reply_failed"]
        assert failed and failed[0].data["reason"] == "action_server_unreachable"
    finally:
        stack.start_actions()
    response = requests.post(stack.rest_webhook, json={"sender": sender, "message": "how do I connect Slack?"}, timeout=60)
    assert APOLOGY_TEXT not in texts(response.json())
