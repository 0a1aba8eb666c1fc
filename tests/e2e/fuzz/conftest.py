"""The fuzz suite runs on the end-to-end suite's stack (this folder sits under tests/e2e so that
pytest starts one stack per session: fixtures re-exported from another folder would start a second)."""

from __future__ import annotations

import pytest
import redis

from tests.e2e.fuzz.support import LogTail


@pytest.fixture(scope="session")
def log(store: redis.Redis) -> LogTail:
    return LogTail(store)
