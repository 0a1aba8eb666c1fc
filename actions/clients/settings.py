"""Where the action server finds Redis and its data folder (environment, with local defaults)."""

from __future__ import annotations

import os
from pathlib import Path

from analytics.redis_connect import redis_url

__all__ = ["redis_url", "data_dir", "spool_path"]

DEFAULT_DATA_DIR = ".data"


def data_dir() -> Path:
    return Path(os.environ.get("ENGAGE_DATA_DIR") or DEFAULT_DATA_DIR)


def spool_path() -> Path:
    return data_dir() / "spool" / "actions-events.jsonl"
