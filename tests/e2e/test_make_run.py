"""`make run`'s supervisor: starts every process, prints where to chat, stops them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from scripts.stack import ROOT, free_port, port_in_use


def test_supervisor_starts_the_stack_and_stops_it_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    ports = {"ENGAGE_RASA_PORT": free_port(), "ENGAGE_ACTIONS_PORT": free_port(), "ENGAGE_REDIS_PORT": free_port(), "ENGAGE_CONSOLE_PORT": free_port()}
    env = dict(os.environ, ENGAGE_DATA_DIR=str(tmp_path), RASA_AUTH_TOKEN="", **{k: str(v) for k, v in ports.items()})
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "scripts/stack.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = []
    children: list = []
    try:
        deadline = time.monotonic() + 600
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
                break
        banner = "".join(output)
        assert "Engage is running." in banner, banner
        assert f"http://127.0.0.1:{ports['ENGAGE_RASA_PORT']}/webhooks/rest/webhook" in banner
        assert "API token (generated for this run" in banner
        assert f"Staff console:          http://127.0.0.1:{ports['ENGAGE_CONSOLE_PORT']}/" in banner
        assert requests.get(f"http://127.0.0.1:{ports['ENGAGE_CONSOLE_PORT']}/login", timeout=10).status_code == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3

        reply = requests.post(
            f"http://127.0.0.1:{ports['ENGAGE_RASA_PORT']}/webhooks/rest/webhook",
            json={"sender": "supervisor-test", "message": "hello"},
            timeout=60,
        )
        assert reply.status_code == 200 and reply.json()

        process.send_signal(signal.SIGINT)
        # Each process gets up to 20 s to stop gracefully before it is killed.
        rest, _ = process.communicate(timeout=90)
        assert process.returncode == 0, rest
        assert "stopped." in rest
        assert "rasa stopped in" in rest and "redis stopped in" in rest
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {[p.pid for p in alive]}"
        assert (tmp_path / "redis" / "appendonlydir").exists() or list((tmp_path / "redis").glob("*.aof"))
    finally:
        if process.poll() is None:
            process.kill()
        for child in children:  # a failed run must not leave servers behind
            if child.is_running():
                child.kill()


def test_sigterm_while_stopping_after_ctrl_c_hurries_the_stop_and_frees_every_port(tmp_path: Path) -> None:
    # Issue 9, item 13: the SIGTERM left the action server running on its own, port held.
    ports = {"ENGAGE_RASA_PORT": free_port(), "ENGAGE_ACTIONS_PORT": free_port(), "ENGAGE_REDIS_PORT": free_port(), "ENGAGE_CONSOLE_PORT": free_port()}
    env = dict(os.environ, ENGAGE_DATA_DIR=str(tmp_path), RASA_AUTH_TOKEN="", **{k: str(v) for k, v in ports.items()})
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "scripts/stack.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    children: list = []
    try:
        assert process.stdout is not None
        banner = ""
        for line in process.stdout:
            banner += line
            if "Press Ctrl-C to stop." in line:
                break
        assert "Engage is running." in banner, banner
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0, rest
        assert "SIGTERM again: stopping faster" in rest and "stopped." in rest, rest
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
        assert not [name for name, port in ports.items() if port_in_use(port)], "a port is still held"
    finally:
        if process.poll() is None:
            process.kill()
        for child in children:
            if child.is_running():
                child.kill()
