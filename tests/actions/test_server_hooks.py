"""The real action server with Engage's hooks: it starts, serves, stays quiet about versions, flushes on stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytest
import redis
from rasa_sdk import utils as sdk_utils

from actions.server_hooks import silence_version_warning
from analytics.schema import EVENTS_STREAM, FEEDBACK, LogEvent
from tests.actions.conftest import make_tracker
from tests.actions.test_registry import action_names
from tests.conftest import ROOT, free_port

PLUGIN_SHIM = '"""Test copy of the repository\'s rasa_sdk_plugins.py."""\nfrom actions.server_hooks import init_hooks\n'


def test_only_the_version_mismatch_warning_is_silenced() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_version_warning()
        sdk_utils.check_version_compatibility("3.6.21")
        assert caught == []
        sdk_utils.check_version_compatibility(None)  # a different warning from the same module
        warnings.warn("unrelated", UserWarning)
    assert [str(w.message).split(" ")[:4] for w in caught] == [["You", "are", "using", "an"], ["unrelated"]]


TOKEN = "test-action-token-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _get(url: str, headers: Optional[Dict[str, str]] = None) -> Any:
    request = urllib.request.Request(url, headers=AUTH if headers is None else headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, payload: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _status(call: Callable[[], Any]) -> int:
    try:
        call()
    except urllib.error.HTTPError as error:
        return error.code
    return 200


class Server:
    def __init__(self) -> None:
        self.url = ""
        self.log = ""
        self.port = 0


@contextlib.contextmanager
def action_server(tmp_path: Path, redis_url: str, **extra_env: str) -> Iterator[Server]:
    """`python -m rasa_sdk --actions actions` as the stack runs it; stopped with SIGINT on exit."""
    server = Server()
    port = free_port()
    paths = [str(ROOT)]
    if not (ROOT / "rasa_sdk_plugins.py").exists():
        (tmp_path / "plugin").mkdir()
        (tmp_path / "plugin" / "rasa_sdk_plugins.py").write_text(PLUGIN_SHIM)
        paths.insert(0, str(tmp_path / "plugin"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "REDIS_URL": redis_url,
        "ENGAGE_DATA_DIR": str(tmp_path / "data"),
        "ENGAGE_FAQ_DIR": str(tmp_path / "no-faqs"),
        "ENGAGE_ACTION_TOKEN": TOKEN,
        **extra_env,
    }
    env.pop("SANIC_HOST", None)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server.url = f"http://127.0.0.1:{port}"
    server.port = port
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{server.url}/health", headers={}) == {"status": "ok"}:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the action server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        # Sanic's worker answers before the main process has taken its ready-ack; a SIGINT in
        # that gap leaves the main process waiting out its ack threshold (a Sanic race, seen
        # with and without our hooks). A second is ample for the ack (polled every 0.1 s).
        time.sleep(1.0)
        yield server
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            # The whole session: killing only the main process would orphan the worker.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        server.log = log.read_text()


def test_the_server_serves_every_action_quietly_and_flushes_the_log_on_stop(tmp_path: Path, redis_url: str) -> None:
    tracker = make_tracker("the new dashboard is great", "give_feedback", sender_id="srv-1", metadata={"product": "Insights"})
    payload = {"next_action": "action_capture_feedback", "sender_id": "srv-1", "version": "3.6.21", "domain": {}, "tracker": tracker.current_state()}
    with action_server(tmp_path, redis_url) as server:
        assert {item["name"] for item in _get(f"{server.url}/actions")} == action_names()
        for _ in range(2):
            reply = _post(f"{server.url}/webhook", payload)
            assert reply["events"] == [] and reply["responses"][0]["text"].startswith("Thank you")
    assert "might not be compatible" not in server.log
    assert "event log: closed" in server.log, server.log[-2000:]
    client = redis.Redis.from_url(redis_url)
    try:
        records = [LogEvent.from_fields(fields) for _, fields in client.xrange(EVENTS_STREAM)]
    finally:
        client.close()
    assert [(r.type, r.conversation_id, r.data["context"]) for r in records] == [(FEEDBACK, "srv-1", {"product": "Insights"})] * 2


@pytest.mark.minilm
def test_a_corrupt_index_is_rebuilt_and_the_question_still_answered(tmp_path: Path, redis_url: str, private_index_dir: Path) -> None:
    private_index_dir.mkdir(parents=True)
    (private_index_dir / "manifest.json").write_text("{half a manifest")
    (private_index_dir / "index.faiss").write_bytes(b"\0" * 100)
    tracker = make_tracker("how do I connect Slack?", "ask_question", sender_id="srv-2")
    payload = {"next_action": "action_answer_faq", "sender_id": "srv-2", "version": "3.6.21", "domain": {}, "tracker": tracker.current_state()}
    with action_server(tmp_path, redis_url, ENGAGE_FAQ_DIR=str(ROOT / "knowledge_base" / "faqs")) as server:
        reply = _post(f"{server.url}/webhook", payload)
        assert "Slack" in reply["responses"][0]["text"]
        assert _post(f"{server.url}/webhook", payload)["responses"] == reply["responses"]  # served on
    assert "building the FAQ index in process" in server.log and "manifest.json cannot be read" in server.log
    assert json.loads((private_index_dir / "manifest.json").read_text())["entries"] > 60


def listening_addresses(port: int) -> set:
    """Local addresses (hex, as /proc/net/tcp writes them) with a socket listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.add(address)
    return found


def test_only_callers_with_the_shared_secret_are_served_and_only_on_loopback(tmp_path: Path, redis_url: str) -> None:
    tracker = make_tracker("x", sender_id="C-00000000000000ff", slots={"link_email": "attacker@evil.example", "link_code": "verified"})
    attack = {"next_action": "action_link_account", "sender_id": "C-00000000000000ff", "version": "3.6.21", "domain": {}, "tracker": tracker.current_state()}
    with action_server(tmp_path, redis_url) as server:
        assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1 only
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
            assert _status(lambda: _get(f"{server.url}/actions", headers=headers)) == 401
            assert _status(lambda: _post(f"{server.url}/webhook", attack, headers=headers)) == 401
        assert _get(f"{server.url}/health", headers={}) == {"status": "ok"}  # the probe needs no secret
        assert {item["name"] for item in _get(f"{server.url}/actions")} == action_names()
        # Even with the secret, a tracker that claims a checked code links nothing (no proof in Redis).
        assert "couldn't confirm" in _post(f"{server.url}/webhook", attack)["responses"][0]["text"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.get("engage:identity:email:attacker@evil.example") is None
        assert [LogEvent.from_fields(f).type for _, f in client.xrange(EVENTS_STREAM)] == []
    finally:
        client.close()
    assert "refused an unauthenticated GET /actions" in server.log


def test_the_server_refuses_to_start_without_a_shared_secret(tmp_path: Path, redis_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, "ENGAGE_DATA_DIR": str(tmp_path)}
    env.pop("ENGAGE_ACTION_TOKEN", None)
    for token in (None, "short"):
        if token is not None:
            env["ENGAGE_ACTION_TOKEN"] = token
        done = subprocess.run(
            [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(free_port())],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode != 0
        assert "ENGAGE_ACTION_TOKEN" in done.stdout + done.stderr


@pytest.mark.minilm
def test_health_says_ok_only_once_a_first_question_would_be_answered_at_full_speed(tmp_path: Path, redis_url: str) -> None:
    """`make run` says "running" when the action server's /health does: by then MiniLM and the index are loaded and warm."""
    with action_server(tmp_path, redis_url, ENGAGE_FAQ_DIR=str(ROOT / "knowledge_base" / "faqs")) as server:
        log = (tmp_path / "server.log").read_text()
        assert "knowledge base ready" in log and "warm-up done in" in log, log[-2000:]
