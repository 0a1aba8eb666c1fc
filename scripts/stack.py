"""Start and stop the whole assistant: Redis, the action server and the Rasa server.

`make run` uses it from the command line; the end-to-end tests and the benchmark
use the `Stack` class on free ports. Standard library only, so any Python 3.10+
can run it before the environments exist.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venvs"
DEFAULT_MODEL = ROOT / "models" / "engage.tar.gz"


class StackError(RuntimeError):
    """A process of the stack did not start; the message says what to do."""


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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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


def wait_http(url: str, timeout: float, process: Optional[subprocess.Popen], what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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
    actions_host: str = "127.0.0.1"
    with_actions: bool = True
    # None runs Rasa without endpoints: in-memory tracker store, no broker, no actions.
    endpoints: Optional[Path] = ROOT / "endpoints.yml"
    credentials: Path = ROOT / "credentials.yml"
    rasa_args: List[str] = field(default_factory=list)
    quiet: bool = True
    processes: Dict[str, subprocess.Popen] = field(default_factory=dict)
    channels_off: Dict[str, List[str]] = field(default_factory=dict)  # channel -> unset variables

    def __post_init__(self) -> None:
        self.rasa_port = self.rasa_port or free_port()
        self.actions_port = self.actions_port or free_port()
        self.redis_port = self.redis_port or free_port()
        self.auth_token = self.auth_token or generate_secret()
        self.action_token = self.action_token or generate_secret()
        self.data_dir = Path(self.data_dir)
        self.logs = self.data_dir / "logs"

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
                "SANIC_HOST": self.actions_host,
                "ENGAGE_DATA_DIR": str(self.data_dir),
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
        if port_in_use(self.redis_port):
            raise StackError(
                f"port {self.redis_port} is taken: stop what uses it, set ENGAGE_REDIS_PORT, or set REDIS_URL"
            )
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
            if process.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"redis-server did not start; see {self.logs / 'redis.log'}")
            time.sleep(0.05)

    def start_actions(self) -> None:
        python = VENVS / "actions" / "bin" / "python"
        if not python.exists():
            raise StackError("the action-server environment is missing: run `make setup`")
        process = self._spawn(
            "actions",
            [str(python), "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.actions_port)],
        )
        wait_http(f"{self.actions_url}/health", 120, process, "the action server", self.logs / "actions.log")

    def _credentials_file(self) -> Path:
        """credentials.yml without the channels whose secrets are not set (Rasa would refuse to start)."""
        text, off = enabled_channels(self.credentials.read_text(encoding="utf-8"), os.environ)
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
        wait_http(f"{self.rasa_url}/", 300, process, "the Rasa server", self.logs / "rasa.log")
        deadline = time.monotonic() + 300
        status = f"{self.rasa_url}/status?token={urllib.parse.quote(self.auth_token)}"
        while time.monotonic() < deadline:
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
            if self.with_actions:
                self.start_actions()
            self.start_rasa()
        except BaseException:
            self.stop()
            raise
        return self

    def stop_process(self, name: str, timeout: float = 20) -> None:
        """Stop one process and everything it spawned (Sanic workers, for one).

        Each process leads its own session (start_new_session), so its group id is
        its pid: signalling the group reaches workers a plain kill would orphan.
        """
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM if name == "redis" else signal.SIGINT)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)  # stragglers, e.g. a worker the main process lost
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.wait(timeout=5)

    def stop(self, verbose: bool = False) -> None:
        # Rasa first (it flushes its event broker into Redis), Redis last.
        for name in ("rasa", "actions", "redis"):
            if name not in self.processes:
                continue
            started = time.monotonic()
            self.stop_process(name)
            if verbose:
                print(f"    {name} stopped in {time.monotonic() - started:.1f}s", flush=True)

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
        actions_host=os.environ.get("ENGAGE_ACTIONS_HOST", "127.0.0.1"),
        with_actions=not args.no_actions,
    )
    generated_token = not os.environ.get("RASA_AUTH_TOKEN")
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # A shell starting us in the background (`make run &`, CI) may hand us SIGINT ignored;
    # Ctrl-C and `kill -INT` must still stop the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print("==> starting Redis, the action server and the Rasa server (logs in "
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
            f"  Redis:                  {stack.effective_redis_url} (interaction log: stream engage:events)\n"
            + (f"  API token (generated for this run; set RASA_AUTH_TOKEN to fix it): {stack.auth_token}\n"
               if generated_token else "  API token: RASA_AUTH_TOKEN from your environment\n")
            + "".join(
                f"  {channel.rsplit('.', 1)[-1]}: off (set {', '.join(names)} in .env to turn it on)\n"
                for channel, names in stack.channels_off.items()
            )
            + "Press Ctrl-C to stop.",
            flush=True,
        )
        while True:
            for name, process in list(stack.processes.items()):
                if process.poll() is not None:
                    raise StackError(f"{name} exited with code {process.returncode}; see {stack.logs / (name + '.log')}")
            time.sleep(1)
    except KeyboardInterrupt:
        # A second Ctrl-C must not abandon half-stopped children; each is killed after 20 s anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("\n==> stopping… (each process gets up to 20 s)", flush=True)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        stack.stop(verbose=True)
        sys.exit(1)
    stack.stop(verbose=True)
    print("==> stopped.", flush=True)


if __name__ == "__main__":
    main()
