"""scripts/stack.py: helpers, supervision and signals, with stand-in processes (no Rasa, no Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import psutil
import pytest

from scripts.stack import ROOT


def test_channels_whose_secrets_are_unset_are_left_out_and_named() -> None:
    from scripts.stack import enabled_channels

    text = (
        "connectors.rest.EngageRestInput:\n  max_message_chars: 4096\n\n"
        "connectors.whatsapp.WhatsAppInput:\n  access_token: ${WHATSAPP_ACCESS_TOKEN}\n  app_secret: ${WHATSAPP_APP_SECRET}  # from Meta\n\n"
        "connectors.telegram.TelegramInput:\n  bot_token: ${TELEGRAM_BOT_TOKEN}\n  # webhook: ${NOT_A_SETTING}\n"
    )
    kept, off = enabled_channels(text, {"TELEGRAM_BOT_TOKEN": "123:abc", "WHATSAPP_APP_SECRET": ""})
    assert "EngageRestInput" in kept and "TelegramInput" in kept and "WhatsApp" not in kept
    assert off == {"connectors.whatsapp.WhatsAppInput": ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET"]}
    assert enabled_channels(text, {"TELEGRAM_BOT_TOKEN": "t", "WHATSAPP_ACCESS_TOKEN": "a", "WHATSAPP_APP_SECRET": "s"}) == (text, {})


def test_port_holder_names_the_process_listening_on_a_port(tmp_path: Path) -> None:
    from scripts.stack import StackError, ensure_port_free, free_port, port_holder

    port = free_port()
    assert port_holder(port) == ""
    ensure_port_free(port, "the Rasa server", "ENGAGE_RASA_PORT")  # free: no error
    listener = subprocess.Popen(
        [sys.executable, "-c", f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"]
    )
    try:
        deadline = time.monotonic() + 10
        while not port_holder(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert port_holder(port).startswith(f"pid {listener.pid} (")
        with pytest.raises(StackError, match=rf"port {port} for the Rasa server is taken by pid {listener.pid} \(.*python.*\): stop it, or set ENGAGE_RASA_PORT"):
            ensure_port_free(port, "the Rasa server", "ENGAGE_RASA_PORT")
    finally:
        listener.kill()
        listener.wait()


def test_supervisor_restarts_an_exited_process_with_backoff_and_gives_up_on_a_crash_loop(tmp_path: Path) -> None:
    from scripts.stack import Stack, StackError

    messages: List[str] = []
    stack = Stack(rasa_port=0, actions_port=0, redis_port=0, data_dir=tmp_path, restart_delay=0.2, max_restarts=3, log=messages.append)
    command = ["sleep", "60"]
    stack.start_redis = lambda: stack._spawn("redis", command)  # type: ignore[method-assign]
    try:
        stack.start_redis()
        first = stack.processes["redis"]
        first.kill()
        first.wait()
        stack.check_and_restart()
        assert messages == [
            f"redis exited with code -9; restarting in 0.2s (attempt 1 of 3); see {tmp_path / 'logs' / 'redis.log'}"
        ]
        assert "redis" not in stack.processes
        stack.check_and_restart()  # not due yet
        assert "redis" not in stack.processes
        time.sleep(0.25)
        stack.check_and_restart()
        assert stack.processes["redis"].pid != first.pid and stack.processes["redis"].poll() is None
        assert messages[-1] == f"redis restarted (pid {stack.processes['redis'].pid})"

        command[:] = ["sh", "-c", "exit 3"]  # from now on it dies at once
        stack.processes["redis"].kill()
        deadline = time.monotonic() + 10
        with pytest.raises(StackError, match=r"redis exited with code 3; giving up after 3 restarts in 300s"):
            while time.monotonic() < deadline:
                stack.check_and_restart()
                time.sleep(0.05)
        delays = [m.split("restarting in ")[1].split(" ")[0] for m in messages if "restarting in" in m]
        assert delays == ["0.2s", "0.4s", "0.8s"]
    finally:
        stack.stop()
    assert not stack.processes


def test_a_second_signal_hurries_the_stop_and_leaves_no_child_running(tmp_path: Path) -> None:
    # Issue 9, item 13: SIGTERM while stopping after SIGINT left the action server running alone.
    env = dict(os.environ, ENGAGE_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT), ENGAGE_RASA_PORT="0",
               ENGAGE_ACTIONS_PORT="0", ENGAGE_REDIS_PORT="0")
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "tests/scripts/stubborn_stack.py"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    children: List[psutil.Process] = []
    try:
        assert process.stdout is not None
        banner = ""
        for line in process.stdout:
            banner += line
            if "Press Ctrl-C to stop." in line:
                break
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3, banner

        process.send_signal(signal.SIGINT)
        time.sleep(1.0)  # stopping: Rasa's stand-in ignores SIGINT, so the supervisor waits for it
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        elapsed = time.monotonic() - started
        assert process.returncode == 0, rest
        assert "SIGTERM again: stopping faster" in rest and "stopped." in rest, rest
        assert elapsed < 8, f"the second signal did not hurry the stop ({elapsed:.1f}s)"
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
    finally:
        if process.poll() is None:
            process.kill()
        for child in children:
            if child.is_running():
                child.kill()


def test_a_start_that_finds_its_port_taken_names_the_holder(tmp_path: Path) -> None:
    from scripts.stack import Stack, StackError, free_port

    port = free_port()
    listener = subprocess.Popen(
        [sys.executable, "-c", f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
        stack = Stack(rasa_port=0, actions_port=0, redis_port=port, data_dir=tmp_path)
        with pytest.raises(StackError, match=rf"port {port} for Redis is taken by pid {listener.pid} "):
            stack.start_redis()
        assert not stack.processes
    finally:
        listener.kill()
        listener.wait()


def test_the_ports_of_one_stack_are_all_different() -> None:
    from scripts.stack import Stack, free_ports

    assert len(set(free_ports(50))) == 50
    stack = Stack(rasa_port=0, actions_port=0, redis_port=0, analytics_port=0, console_port=0)
    assert len({stack.rasa_port, stack.actions_port, stack.redis_port, stack.analytics_port, stack.console_port}) == 5
