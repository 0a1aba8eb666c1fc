"""Where the action server finds Redis and its data folder (environment, with local defaults)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"  # the private Redis of `make run`
DEFAULT_DATA_DIR = ".data"


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def data_dir() -> Path:
    return Path(os.environ.get("ENGAGE_DATA_DIR") or DEFAULT_DATA_DIR)


def spool_path() -> Path:
    return data_dir() / "spool" / "actions-events.jsonl"
