"""`python -m analytics serve` as it runs in production: lag on /health, a kill -9 mid-stream, a replay that agrees."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import redis
import requests

from analytics.records.store import CUSTOMERS, state_key
from analytics.schema import EVENTS_STREAM
from analytics.stream.pause import REPLAY_INCOMPLETE
from tests.analytics.support import LEAD_CUSTOMER, conversation_events, qualified_lead
from tests.conftest import ROOT, free_port


@contextlib.contextmanager
def service(redis_url: str, log: Path, port: int) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, "ENGAGE_ANALYTICS_CONSUMER": "analytics-test"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "analytics", "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def health(port: int) -> Dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stored_records(client: redis.Redis) -> Dict[str, bytes]:
    return {name: client.get(state_key(name)) for name in client.zrange(CUSTOMERS, 0, -1)}


def test_a_consumer_killed_mid_stream_and_restarted_matches_a_full_replay(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    events = conversation_events(seed=11, customers=40, per_customer=60)
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(EVENTS_STREAM, event.to_fields())
    pipe.execute()
    total = client.xlen(EVENTS_STREAM)
    port = free_port()
    log = tmp_path / "analytics.log"

    with service(redis_url, log, port) as process:
        deadline = time.monotonic() + 60
        while health(port)["lag"]["entries"] == total and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-stream: some applied, maybe some read and not acknowledged
        process.wait(timeout=10)
    behind = client.xinfo_groups(EVENTS_STREAM)[0]
    assert 0 < behind["entries-read"] and (behind["lag"] > 0 or behind["pending"] > 0), behind

    with service(redis_url, log, port):
        deadline = time.monotonic() + 120
        while (state := health(port))["lag"]["entries"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state["status"] == "ok" and state["lag"] == {"entries": 0, "seconds": 0.0, "pending": 0, "dead_letters": 0}
    incremental = stored_records(client)
    assert len(incremental) == 40

    replayed = subprocess.run(
        [sys.executable, "-m", "analytics", "replay"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=300,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {total} entries: {total} applied, 0 dead-lettered" in replayed.stdout
    assert stored_records(client) == incremental  # byte-identical

    shown = subprocess.run(
        [sys.executable, "-m", "analytics", "customer", "C-0000000000000007"], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=60,
    )
    assert shown.returncode == 0 and "60 messages" in shown.stdout, shown.stdout + shown.stderr
    explained = run_cli("explain", "C-0000000000000007", redis_url=redis_url)
    assert explained.returncode == 0 and "raw points from" in explained.stdout
    assert re.search(r"recommendation +- +no signal yet", explained.stdout)
    top = run_cli("leaders", "innovation", "--limit", "3", redis_url=redis_url)
    assert top.returncode == 0 and len(top.stdout.splitlines()) == 3 and top.stdout.startswith("  1. C-")
    client.close()


def test_health_says_when_the_service_waits_for_a_replay(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    port = free_port()
    with service(redis_url, tmp_path / "analytics.log", port):
        assert health(port)["status"] == "ok"
        client.set(REPLAY_INCOMPLETE, '{"pid": 1, "started": 0}')
        state = health(port)
        assert state["status"] == "paused: a replay did not finish; run `python -m analytics replay`", state
        assert run_cli("replay", redis_url=redis_url).returncode == 0
        assert health(port)["status"] == "ok"
    client.close()


def run_cli(*args: str, redis_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analytics", *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url},
        capture_output=True, text=True, timeout=60,
    )


def test_the_commands_say_what_is_wrong(redis_url: str) -> None:
    missing = run_cli("customer", "C-00000000000000ff", redis_url=redis_url)
    assert missing.returncode == 1 and "no record for C-00000000000000ff" in missing.stderr
    down = run_cli("lag", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert down.returncode == 2 and "cannot reach Redis" in down.stderr and "make run" in down.stderr
    assert run_cli("lag", "--json", redis_url=redis_url).stdout.strip() == '{"entries": 0, "seconds": 0.0, "pending": 0, "dead_letters": 0}'


def test_the_service_refuses_to_start_with_rules_it_cannot_trust(redis_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("half_life_days: 30\nrules:\n  - {id: x, dimension: innovation, path: result, event: idea, points: -1, reason: r}\n")
    done = subprocess.run(
        [sys.executable, "-m", "analytics", "serve", "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, "ENGAGE_ENGAGEMENT_RULES": str(rules)},
    )
    assert done.returncode == 2 and f"{rules}:3: rule 'x': points must be a positive number" in done.stderr


def test_a_linger_out_of_range_is_refused_with_what_to_set(redis_url: str) -> None:
    for args, env in ((["--linger-ms", "1500"], {}), ([], {"ENGAGE_ANALYTICS_LINGER_MS": "soon"})):
        done = subprocess.run(
            [sys.executable, "-m", "analytics", "serve", "--port", str(free_port()), *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, **env},
        )
        assert done.returncode == 2 and "milliseconds from 0 to 900 (ENGAGE_ANALYTICS_LINGER_MS)" in done.stderr


def test_staff_move_a_customer_in_the_funnel_and_it_is_logged(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    for event in qualified_lead():
        client.xadd(EVENTS_STREAM, event.to_fields())
    assert run_cli("replay", redis_url=redis_url).returncode == 0
    assert run_cli("stage", "C-00000000000000ff", "lead", "--reason", "x", redis_url=redis_url).returncode == 1  # no such customer
    moved = run_cli("stage", LEAD_CUSTOMER, "suspect", "--reason", "student project", "--by", "sam", redis_url=redis_url)
    assert moved.returncode == 0 and "moved to suspect by sam" in moved.stdout
    assert run_cli("replay", redis_url=redis_url).returncode == 0
    shown = run_cli("customer", LEAD_CUSTOMER, redis_url=redis_url)
    assert "funnel      suspect since" in shown.stdout and "set by sam: student project" in shown.stdout
    client.close()
