"""Start and stop the whole assistant: Redis, the analytics service, the action server and the Rasa server.

`make run` uses it from the command line; the end-to-end tests and the benchmark
use the `Stack` class on free ports. Standard library only, so any Python 3.10+
can run it before the environments exist.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venvs"
DEFAULT_MODEL = ROOT / "models" / "engage.tar.gz"


class StackError(RuntimeError):
    """A process of the stack did not start; the message says what to do."""


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was starting: start() stops what it started."""


def load_dotenv(path: Path = ROOT / ".env") -> None:
    """Read KEY=VALUE lines from .env into os.environ (the environment wins)."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip().strip("'\"")
        if value:
            os.environ.setdefault(key.strip(), value)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def enabled_channels(credentials: str, environ: Mapping[str, str]) -> Tuple[str, Dict[str, List[str]]]:
    """Drop each top-level channel of a credentials.yml whose ${VARIABLES} are unset or empty.

    Returns the remaining text and, for each channel left out, the variables it lacks.
    """
    blocks: List[List[str]] = [[]]
    for line in credentials.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "#", "\n") and line.rstrip().endswith(":"):
            blocks.append([])
        blocks[-1].append(line)
    kept: List[str] = []
    off: Dict[str, List[str]] = {}
    for block in blocks:
        text = "".join(block)
        header = next((line for line in block if line[:1] not in (" ", "\t", "#", "\n")), "")
        missing = sorted({name for name in _VARIABLE.findall(_without_comments(text)) if not environ.get(name)})
        if header and missing:
            off[header.strip().rstrip(":")] = missing
            continue
        kept.append(text)
    return "".join(kept), off


def _without_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def generate_secret() -> str:
    """A random URL-safe token (256 bits) that never starts with "-", so no command line mistakes it for an option."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> List[int]:
    """`count` different free ports: each socket stays bound until all are chosen (one port asked
    for twice in a row may come back twice, and then two servers of one stack fight over it)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_holder(port: int, proc: Path = Path("/proc")) -> str:
    """Who listens on a local TCP port, e.g. "pid 4242 (redis-server *:6390)", read from /proc.

    "" when no listening socket is found (not Linux, or the port is not held by a listener).
    """
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            rows = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the socket's inode.
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return ""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's process
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) not in inodes:
                    continue
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            return f"pid {entry.name} ({command[:200] or '?'})"
    return "a process this user cannot inspect (`sudo ss -ltnp` names it)"


def ensure_port_free(port: int, what: str, setting: str) -> None:
    """StackError naming the process that holds `port`, if one does."""
    if not port_in_use(port):
        return
    holder = port_holder(port)
    raise StackError(
        f"port {port} for {what} is taken" + (f" by {holder}" if holder else "") + f": stop it, or set {setting}"
    )


def redis_env(url: str) -> Dict[str, str]:
    """Split a redis:// URL into the variables endpoints.yml reads."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise StackError(f"REDIS_URL must start with redis:// or rediss://, got {url!r}")
    db = (parsed.path or "/0").lstrip("/") or "0"
    return {
        "REDIS_URL": url,
        "REDIS_HOST": parsed.hostname or "127.0.0.1",
        "REDIS_PORT": str(parsed.port or 6379),
        "REDIS_DB": db,
        "REDIS_PASSWORD": urllib.parse.unquote(parsed.password or ""),
    }


def wait_http(
    url: str,
    timeout: float,
    process: Optional[subprocess.Popen],
    what: str,
    log: Path,
    stop: Optional[threading.Event] = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise StopRequested(f"stop requested while waiting for {what}")
        if process is not None and process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise StackError(f"{what} did not answer {url} within {timeout:.0f}s; see {log}")


@dataclass
class Stack:
    """The running assistant. Ports of 0 pick free ones (for tests)."""

    rasa_port: int = 5005
    actions_port: int = 5055
    redis_port: int = 6390
    redis_url: Optional[str] = None  # external Redis; None starts a private one
    data_dir: Path = ROOT / ".data"
    model: Path = DEFAULT_MODEL
    auth_token: str = ""
    # Shared secret the Rasa server sends to the action server (actions/server_auth.py).
    action_token: str = ""
    # Shared secret of the Rasa server's proactive endpoint (connectors/proactive.py), which the console calls.
    proactive_token: str = ""
    actions_host: str = "127.0.0.1"
    with_actions: bool = True
    analytics_port: int = 5060
    with_analytics: bool = True  # the analytics service (python -m analytics serve) consuming the log
    console_port: int = 5070
    with_console: bool = True  # the staff console (python -m console serve)
    # Key of the console's encrypted session cookies (console/security.py); generated per run when unset.
    console_secret: str = ""
    # None runs Rasa without endpoints: in-memory tracker store, no broker, no actions.
    endpoints: Optional[Path] = ROOT / "endpoints.yml"
    credentials: Path = ROOT / "credentials.yml"
    rasa_args: List[str] = field(default_factory=list)
    quiet: bool = True
    processes: Dict[str, subprocess.Popen] = field(default_factory=dict)
    channels_off: Dict[str, List[str]] = field(default_factory=dict)  # channel -> unset variables
    # Supervision (supervise, check_and_restart): an owned process that exits is restarted
    # after restart_delay seconds, doubling up to restart_delay_max; one that needed
    # max_restarts restarts within restart_window seconds is given up on (StackError).
    restart_delay: float = 1.0
    restart_delay_max: float = 30.0
    max_restarts: int = 5
    restart_window: float = 300.0
    stop_timeout: float = 20.0  # per process, before its group is killed
    hurry_timeout: float = 2.0  # what is left of that after a second Ctrl-C or SIGTERM
    log: Callable[[str], None] = field(default=lambda message: print(f"==> {message}", flush=True), repr=False)

    def __post_init__(self) -> None:
        spare = iter(free_ports(5))
        self.rasa_port = self.rasa_port or next(spare)
        self.actions_port = self.actions_port or next(spare)
        self.redis_port = self.redis_port or next(spare)
        self.analytics_port = self.analytics_port or next(spare)
        self.console_port = self.console_port or next(spare)
        self.console_secret = self.console_secret or generate_secret()
        self.auth_token = self.auth_token or generate_secret()
        self.action_token = self.action_token or generate_secret()
        self.proactive_token = self.proactive_token or generate_secret()
        self.data_dir = Path(self.data_dir)
        self.logs = self.data_dir / "logs"
        self._stop_requested = threading.Event()
        self._hurried_at: Optional[float] = None
        self._restarts: Dict[str, List[float]] = {}  # name -> monotonic times of its recent restarts
        self._restart_at: Dict[str, float] = {}  # name -> when its pending restart is due

    # -- addresses -------------------------------------------------------------

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        host = "127.0.0.1" if self.actions_host in ("", "0.0.0.0", "::") else self.actions_host
        return f"http://{host}:{self.actions_port}"

    @property
    def analytics_url(self) -> str:
        return f"http://127.0.0.1:{self.analytics_port}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    @property
    def rest_webhook(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    @property
    def chat_page(self) -> str:
        return f"{self.rasa_url}/webhooks/socketio/chat"

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(redis_env(self.effective_redis_url))
        env.update(
            {
                "ACTION_ENDPOINT_URL": f"{self.actions_url}/webhook",
                # Secrets go to the children through the environment, never on a command line.
                "ENGAGE_ACTION_TOKEN": self.action_token,
                "ENGAGE_PROACTIVE_TOKEN": self.proactive_token,
                "ENGAGE_CONSOLE_SECRET": self.console_secret,
                "ENGAGE_RASA_URL": self.rasa_url,
                "SANIC_HOST": self.actions_host,
                "ENGAGE_DATA_DIR": str(self.data_dir),
                # The action server asks the analytics service which idea theme an idea joins.
                "ENGAGE_ANALYTICS_URL": self.analytics_url,
                "PYTHONPATH": str(ROOT),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "RASA_TELEMETRY_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    # -- processes -------------------------------------------------------------

    def _spawn(self, name: str, argv: List[str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        handle = log.open("ab")
        output = handle if self.quiet else None
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdout=output,
            stderr=subprocess.STDOUT if self.quiet else None,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        handle.close()
        self.processes[name] = process
        return process

    def start_redis(self) -> None:
        if self.redis_url:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed: run `make setup` (it installs it), or set REDIS_URL")
        ensure_port_free(self.redis_port, "Redis", "ENGAGE_REDIS_PORT (or REDIS_URL for an external Redis)")
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        process = self._spawn(
            "redis",
            [
                binary,
                "--port", str(self.redis_port),
                "--bind", "127.0.0.1",
                "--dir", str(redis_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--daemonize", "no",
            ],
        )
        deadline = time.monotonic() + 15
        while not port_in_use(self.redis_port):
            self._checkpoint("Redis")
            if process.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"redis-server did not start; see {self.logs / 'redis.log'}")
            time.sleep(0.05)

    def _start_in_action_runtime(self, name: str, what: str, port: int, setting: str, args: List[str], health: str, timeout: float) -> None:
        """Start a process of the Python 3.11 runtime (`python -m ...args`) and wait for its health check."""
        python = VENVS / "actions" / "bin" / "python"
        if not python.exists():
            raise StackError(f"the environment of {what} is missing: run `make setup`")
        ensure_port_free(port, what, setting)
        process = self._spawn(name, [str(python), "-m", *args])
        wait_http(health, timeout, process, what, self.logs / f"{name}.log", self._stop_requested)

    def start_actions(self) -> None:
        self._start_in_action_runtime(
            "actions", "the action server", self.actions_port, "ENGAGE_ACTIONS_PORT",
            ["rasa_sdk", "--actions", "actions", "--port", str(self.actions_port)], f"{self.actions_url}/health", 120,
        )

    def start_analytics(self) -> None:
        self._start_in_action_runtime(
            "analytics", "the analytics service", self.analytics_port, "ENGAGE_ANALYTICS_PORT",
            # One consumer name per stack: a restarted service finishes the entries it had read.
            ["analytics", "serve", "--port", str(self.analytics_port), "--consumer", "analytics-1"], f"{self.analytics_url}/health", 60,
        )

    def start_console(self) -> None:
        self._start_in_action_runtime(
            "console", "the staff console", self.console_port, "ENGAGE_CONSOLE_PORT",
            ["console", "serve", "--port", str(self.console_port)], f"{self.console_url}/health", 60,
        )

    def analytics_health(self) -> Optional[Dict[str, Any]]:
        """What the analytics service says of itself (status, lag...), or None when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.analytics_url}/health", timeout=2) as response:
                health = json.loads(response.read())
                return health if isinstance(health, dict) and isinstance(health.get("lag"), dict) else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def analytics_lag(self) -> Optional[Dict[str, Any]]:
        """The analytics service's lag (entries and seconds behind the log), or None when it does not answer."""
        health = self.analytics_health()
        return dict(health["lag"]) if health else None

    def _credentials_file(self) -> Path:
        """credentials.yml without the channels whose secrets are not set (Rasa would refuse to start)."""
        text, off = enabled_channels(self.credentials.read_text(encoding="utf-8"), self.env())
        self.channels_off = off
        path = self.data_dir / "credentials.yml"
        path.write_text(text, encoding="utf-8")
        return path

    def start_rasa(self) -> None:
        rasa = VENVS / "rasa" / "bin" / "rasa"
        if not rasa.exists():
            raise StackError("the Rasa environment is missing: run `make setup`")
        if not Path(self.model).exists():
            raise StackError(f"no trained model at {self.model}: run `make train`")
        ensure_port_free(self.rasa_port, "the Rasa server", "ENGAGE_RASA_PORT")
        process = self._spawn(
            "rasa",
            [
                str(rasa), "run",
                "--model", str(self.model),
                "--endpoints", str(self._endpoints_file()),
                "--credentials", str(self._credentials_file()),
                "--port", str(self.rasa_port),
                "--enable-api",
                # One argument with "=": a token that starts with "-" would otherwise read as an option.
                f"--auth-token={self.auth_token}",
                *self.rasa_args,
            ],
        )
        # The HTTP server answers before the model is loaded: wait for /status to name it.
        wait_http(f"{self.rasa_url}/", 300, process, "the Rasa server", self.logs / "rasa.log", self._stop_requested)
        deadline = time.monotonic() + 300
        status = f"{self.rasa_url}/status?token={urllib.parse.quote(self.auth_token)}"
        while time.monotonic() < deadline:
            self._checkpoint("the Rasa server")
            if process.poll() is not None:
                raise StackError(f"the Rasa server exited; see {self.logs / 'rasa.log'}")
            try:
                with urllib.request.urlopen(status, timeout=2) as response:
                    if b"model_file" in response.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise StackError(f"the Rasa server did not load its model; see {self.logs / 'rasa.log'}")

    def _endpoints_file(self) -> Path:
        if self.endpoints:
            return Path(self.endpoints)
        # `rasa run` reads ./endpoints.yml when not told otherwise: hand it an empty file.
        empty = self.data_dir / "endpoints-none.yml"
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.write_text("# bare Rasa: in-memory tracker and lock store, no event broker, no action server\n{}\n")
        return empty

    def start(self) -> "Stack":
        try:
            if self.endpoints:
                self.start_redis()
            if self.endpoints and self.with_analytics:
                self.start_analytics()
            if self.with_actions:
                self.start_actions()
            self.start_rasa()
            if self.endpoints and self.with_console:
                self.start_console()
        except BaseException:
            self.stop()
            raise
        return self

    # -- supervision -----------------------------------------------------------

    def _checkpoint(self, what: str) -> None:
        if self._stop_requested.is_set():
            raise StopRequested(f"stop requested while starting {what}")

    def request_stop(self) -> bool:
        """Ctrl-C or SIGTERM: the first stops supervise() (or start()); another one hurries the stop.

        Safe in a signal handler: it only sets flags, so a signal can never interrupt
        the stop half-way and leave a child running. Returns True for a repeated request.
        """
        if self._stop_requested.is_set():
            if self._hurried_at is None:
                self._hurried_at = time.monotonic()
            return True
        self._stop_requested.set()
        return False

    def supervise(self, interval: float = 0.5, until: Optional[threading.Event] = None) -> None:
        """Keep every owned process running until request_stop() (or `until` is set); StackError if one keeps exiting."""
        while not self._stop_requested.is_set() and not (until is not None and until.is_set()):
            self.check_and_restart()
            (until or self._stop_requested).wait(interval)

    def check_and_restart(self) -> None:
        """One supervision step: note what exited, restart what is due (with backoff, logged)."""
        for name in ("redis", "analytics", "actions", "rasa", "console"):
            due = self._restart_at.get(name)
            if due is not None:
                if time.monotonic() < due or self._stop_requested.is_set():
                    continue
                del self._restart_at[name]
                try:
                    starts = {"redis": self.start_redis, "analytics": self.start_analytics, "actions": self.start_actions, "rasa": self.start_rasa,
                              "console": self.start_console}
                    starts[name]()
                except StackError as exc:
                    self._schedule_restart(name, f"{name} did not restart ({exc})")
                else:
                    self.log(f"{name} restarted (pid {self.processes[name].pid})")
                continue
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                self._schedule_restart(name, f"{name} exited with code {process.returncode}")

    def _schedule_restart(self, name: str, what: str) -> None:
        self._kill_group(name)  # a worker its main process left behind would hold the port
        now = time.monotonic()
        recent = [at for at in self._restarts.get(name, []) if now - at < self.restart_window]
        log = self.logs / f"{name}.log"
        if len(recent) >= self.max_restarts:
            raise StackError(
                f"{what}; giving up after {len(recent)} restarts in {self.restart_window:.0f}s; see {log}"
            )
        recent.append(now)
        self._restarts[name] = recent
        delay = min(self.restart_delay * 2 ** (len(recent) - 1), self.restart_delay_max)
        self._restart_at[name] = now + delay
        self.log(f"{what}; restarting in {delay:g}s (attempt {len(recent)} of {self.max_restarts}); see {log}")

    def _kill_group(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    # -- stopping --------------------------------------------------------------

    def stop_process(self, name: str, timeout: Optional[float] = None) -> None:
        """Stop one process and everything it spawned (Sanic workers, for one).

        Each process leads its own session (start_new_session), so its group id is
        its pid: signalling the group reaches workers a plain kill would orphan.
        After request_stop() was called twice, waits at most hurry_timeout more.
        """
        self._restart_at.pop(name, None)
        process = self.processes.get(name)
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM if name == "redis" else signal.SIGINT)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
            while process.poll() is None:
                hurried = self._hurried_at
                if time.monotonic() > min(deadline, hurried + self.hurry_timeout if hurried else deadline):
                    break
                time.sleep(0.05)
        self._kill_group(name)  # stragglers, e.g. a worker the main process lost; SIGKILL if still running

    def stop(self, verbose: bool = False) -> None:
        self._stop_requested.set()  # a restart must not race the stop
        self._restart_at.clear()
        try:
            # Rasa first (it flushes its event broker into Redis), Redis last.
            for name in ("console", "rasa", "actions", "analytics", "redis"):
                if name not in self.processes:
                    continue
                started = time.monotonic()
                self.stop_process(name)
                if verbose:
                    print(f"    {name} stopped in {time.monotonic() - started:.1f}s", flush=True)
        finally:
            for name in list(self.processes):  # whatever interrupted the orderly stop, no child outlives us
                self._kill_group(name)
            self._stop_requested.clear()  # stopped: the Stack may be started again
            self._hurried_at = None

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    load_dotenv()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--no-actions", action="store_true", help="bare Rasa (benchmark baseline)")
    args = parser.parse_args()
    stack = Stack(
        rasa_port=int(os.environ.get("ENGAGE_RASA_PORT", 5005)),
        actions_port=int(os.environ.get("ENGAGE_ACTIONS_PORT", 5055)),
        redis_port=int(os.environ.get("ENGAGE_REDIS_PORT", 6390)),
        redis_url=os.environ.get("REDIS_URL") or None,
        data_dir=ROOT / os.environ.get("ENGAGE_DATA_DIR", ".data"),
        model=args.model,
        auth_token=os.environ.get("RASA_AUTH_TOKEN", ""),
        action_token=os.environ.get("ENGAGE_ACTION_TOKEN", ""),
        proactive_token=os.environ.get("ENGAGE_PROACTIVE_TOKEN", ""),
        console_secret=os.environ.get("ENGAGE_CONSOLE_SECRET", ""),
        console_port=int(os.environ.get("ENGAGE_CONSOLE_PORT", 5070)),
        actions_host=os.environ.get("ENGAGE_ACTIONS_HOST", "127.0.0.1"),
        analytics_port=int(os.environ.get("ENGAGE_ANALYTICS_PORT", 5060)),
        with_actions=not args.no_actions,
    )
    sys.exit(serve(stack, generated_token=not os.environ.get("RASA_AUTH_TOKEN")))


def _lag_line(health: Optional[Dict[str, Any]]) -> str:
    if health is None:
        return "not answering"
    lag = health["lag"]
    line = f"{lag['entries']} log entries behind, {lag['seconds']:.1f} s; {lag['dead_letters']} dead letters"
    return line if health.get("status", "ok") == "ok" else f"{line}; {health['status']}"


def serve(stack: Stack, generated_token: bool = False) -> int:
    """What `make run` does once configured: start, supervise until a signal, stop. Returns the exit code."""

    def on_signal(signum: int, _frame: object) -> None:
        # Only flags and a raw write: a handler that raised (or print()ed into a print it
        # interrupted) could abandon the stop half-way and orphan a child.
        name = signal.Signals(signum).name
        if stack.request_stop():
            note = f"\n==> {name} again: stopping faster (what is left is killed within {stack.hurry_timeout:g} s)\n"
        else:
            note = f"\n==> {name}: stopping… (each process gets up to {stack.stop_timeout:g} s; Ctrl-C again to hurry)\n"
        try:
            os.write(sys.stdout.fileno(), note.encode())
        except (OSError, ValueError):
            pass

    # Installed for SIGINT too: a shell starting us in the background (`make run &`, CI)
    # may hand us SIGINT ignored, and Ctrl-C and `kill -INT` must still stop the stack.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print("==> starting Redis, the analytics service, the action server and the Rasa server (logs in "
              f"{stack.logs})", flush=True)
        stack.start()
        print(
            "\nEngage is running.\n"
            f"  Chat in a browser:      {stack.chat_page}\n"
            f"  Chat in this terminal:  make shell\n"
            f"  REST channel:           POST {stack.rest_webhook}\n"
            f"                          curl -s {stack.rest_webhook} -H 'Content-Type: application/json' \\\n"
            f"                            -d '{{\"sender\": \"me\", \"message\": \"hi\"}}'\n"
            f"  Rasa HTTP API:          {stack.rasa_url}/status?token=<token>\n"
            f"  Action server:          {stack.actions_url}/health\n"
            + (f"  Analytics service:      {stack.analytics_url}/health ({_lag_line(stack.analytics_health())}); "
               "python -m analytics lag|customer|explain\n" if "analytics" in stack.processes else "")
            + (f"  Staff console:          {stack.console_url}/ (accounts: python -m console users add LOGIN --role agent)\n"
               if "console" in stack.processes else "")
            + f"  Redis:                  {stack.effective_redis_url} (interaction log: stream engage:events)\n"
            + (f"  API token (generated for this run; set RASA_AUTH_TOKEN to fix it): {stack.auth_token}\n"
               if generated_token else "  API token: RASA_AUTH_TOKEN from your environment\n")
            + "".join(
                f"  {channel.rsplit('.', 1)[-1]}: off (set {', '.join(names)} in .env to turn it on)\n"
                for channel, names in stack.channels_off.items()
            )
            + "Press Ctrl-C to stop.",
            flush=True,
        )
        stack.supervise()  # restarts what exits, until a signal asks us to stop
    except StopRequested:
        pass  # the signal arrived while starting; start() already stopped what it had started
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        stack.stop(verbose=True)
        return 1
    stack.stop(verbose=True)
    print("==> stopped.", flush=True)
    return 0


if __name__ == "__main__":
    main()
