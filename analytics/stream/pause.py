"""Live consumers stand aside while a replay rebuilds the derived state.

A replay folds the whole log in memory and writes each customer once at the end, so nothing else
may write derived state meanwhile. Three keys (`engage:analytics-replay:*`, outside what a replay
resets) make that safe:

- `lease` (the replay's token, expiring unless the replay refreshes it): one replay at a time;
- `incomplete`: set when a replay starts and removed, with the lease, only when it has
  written everything. A replay that dies leaves it, and the consumers stay paused (the health
  endpoint says so) until a replay finishes: half-rebuilt state is never built upon;
- `applying` (sorted set: consumer -> until when): who is applying a batch now. A consumer
  enters it only when neither replay key exists, in one script, and leaves it after the batch;
  a replay starts only once it is empty (an entry a crashed consumer left expires).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Optional

from analytics.schema import KEY_PREFIX

REPLAY_LEASE = KEY_PREFIX + "analytics-replay:lease"
REPLAY_INCOMPLETE = KEY_PREFIX + "analytics-replay:incomplete"
APPLYING = KEY_PREFIX + "analytics-replay:applying"
LEASE_SECONDS = 60.0
APPLYING_SECONDS = 60.0  # a batch that takes longer than this is taken for a crashed consumer's

# KEYS: lease, incomplete, applying. ARGV: consumer, until. 1: go ahead; 0: a replay holds the state.
_BEGIN = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# KEYS: lease. ARGV: token, milliseconds. 1 if this replay still holds the lease (and it is extended).
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: lease. ARGV: token. Drop the lease if this replay holds it.
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ReplayRunning(RuntimeError):
    """Another replay holds the lease."""


class LeaseLost(RuntimeError):
    """This replay's lease expired (the process stalled longer than LEASE_SECONDS): its work is not trusted."""


async def begin_applying(client: Any, consumer: str) -> bool:
    """Enter the set of consumers applying a batch, unless a replay is running or did not finish."""
    return bool(await client.eval(_BEGIN, 3, REPLAY_LEASE, REPLAY_INCOMPLETE, APPLYING, consumer, repr(time.time() + APPLYING_SECONDS)))


async def end_applying(client: Any, consumer: str) -> None:
    await client.zrem(APPLYING, consumer)


@dataclass(frozen=True)
class ReplayState:
    """What the health endpoint says about replays: one running (since when), or one that did not finish."""

    running: Optional[Dict[str, Any]]
    incomplete: Optional[Dict[str, Any]]

    def as_dict(self) -> Dict[str, Any]:
        return {"running": self.running, "incomplete": self.incomplete}


async def replay_state(client: Any) -> ReplayState:
    lease, incomplete = await client.mget([REPLAY_LEASE, REPLAY_INCOMPLETE])
    return ReplayState(_parsed(lease), _parsed(incomplete) if incomplete and not lease else None)


def _parsed(raw: Optional[str]) -> Optional[Dict[str, Any]]:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"token": raw}
    return value if isinstance(value, dict) else {"token": raw}


class ReplayLease:
    """Held by a replay from start to finish: `acquire`, `refresh` now and then, `release` when all is written."""

    def __init__(self, client: Any, seconds: float = LEASE_SECONDS) -> None:
        self.client = client
        self.seconds = seconds
        self.token = json.dumps({"pid": os.getpid(), "started": round(time.time(), 3), "id": uuid.uuid4().hex}, sort_keys=True)

    async def acquire(self, wait_for_consumers: float = APPLYING_SECONDS + 5) -> None:
        """Take the lease, mark the state incomplete, and wait until no consumer is mid-batch."""
        if not await self.client.set(REPLAY_LEASE, self.token, nx=True, px=int(self.seconds * 1000)):
            running = _parsed(await self.client.get(REPLAY_LEASE)) or {}
            raise ReplayRunning(
                f"another replay is running (pid {running.get('pid', '?')}, started {_when(running.get('started'))}); "
                "wait for it to finish, or, if that process is gone, for its lease to expire within a minute"
            )
        await self.client.set(REPLAY_INCOMPLETE, self.token)
        deadline = time.monotonic() + wait_for_consumers
        while True:
            await self.client.zremrangebyscore(APPLYING, "-inf", time.time())
            if not await self.client.zcard(APPLYING) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.05)
            await self.refresh()

    async def refresh(self) -> None:
        if not await self.client.eval(_REFRESH, 1, REPLAY_LEASE, self.token, int(self.seconds * 1000)):
            raise LeaseLost(
                f"this replay lost its lease (no progress for {self.seconds:.0f} s), so another may have started and "
                "what this one wrote is not trusted; run `python -m analytics replay` again"
            )

    async def abandon(self) -> None:
        """The replay failed: another may start at once, and the consumers stay paused until one finishes."""
        await self.client.eval(_DROP, 1, REPLAY_LEASE, self.token)

    async def release(self) -> None:
        """Everything is written: the consumers may go on (the incomplete mark goes in the same step)."""
        await self.refresh()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.unlink(REPLAY_INCOMPLETE, REPLAY_LEASE)
            await pipe.execute()


def _when(started: Any) -> str:
    if not isinstance(started, (int, float)):
        return "at an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
