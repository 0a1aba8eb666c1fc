"""A buffered, retrying writer for the interaction log (a Redis stream).

Used by the Rasa event broker and by the action server. `submit()` never blocks
and never raises: records wait in memory and a background task writes them in
batches. While Redis is unreachable the batch is retried with backoff; records
beyond the in-memory limit, and whatever is still unwritten at shutdown, go to a
spool file (JSON lines) that is replayed once Redis is back. A batch is written
once: after a failed write (its reply may have been lost after it landed) and
after a spool replay, the stream's recent entries are checked for the batch's
`event_id`s before it is written again.

Plain Python plus `redis` so that it imports in both runtimes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Union

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from analytics.schema import EVENTS_STREAM, LogEvent

logger = logging.getLogger(__name__)

Fields = Dict[str, str]

# How far back a retry looks for its batch: stream ids are Redis' clock in ms, so allow
# for the writer's clock being ahead, and bound the scan.
CLOCK_MARGIN = 60.0
CHECK_WINDOW = 10_000


class BufferedStreamWriter:
    """Write `LogEvent`s to a Redis stream without blocking or dropping them."""

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        stream: str = EVENTS_STREAM,
        *,
        client: Optional["aioredis.Redis"] = None,
        batch_size: int = 200,
        buffer_limit: int = 50_000,
        spool_path: Union[str, Path, None] = None,
        max_backoff: float = 2.0,
        socket_timeout: float = 2.0,
    ) -> None:
        self.stream = stream
        self._client = client or aioredis.Redis.from_url(
            redis_url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=10,
        )
        self._batch_size = batch_size
        self._buffer_limit = buffer_limit
        self._spool = Path(spool_path) if spool_path else None
        self._max_backoff = max_backoff
        self._buffer: Deque[Fields] = collections.deque()
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: Optional["asyncio.Task[None]"] = None
        self._closing = False
        self._closed = False  # after close() a record goes straight to the spool
        # Set while the head of the buffer may already be in the stream (a write failed,
        # or the spool was replayed): when, by our clock, the first such write began.
        self._unsure_since: Optional[float] = None
        self.written = 0  # records confirmed by Redis
        self.failures = 0  # failed write attempts (each retried)
        self.dropped = 0  # records that could never be written (logged)

    # -- producer side -------------------------------------------------------

    def submit(self, event: LogEvent) -> None:
        """Queue one record. Never blocks, never raises."""
        self.submit_fields(event.to_fields())

    def submit_fields(self, fields: Fields) -> None:
        fields = {key: encodable(value) for key, value in fields.items()}
        if self._closed:
            # A connector can still record a failed reply while the server shuts down.
            if self._spool is not None:
                self._append_spool([fields])
            else:
                self.dropped += 1
                logger.error("event log: closed and no spool file: a %s record is lost", fields.get("type"))
            return
        if len(self._buffer) >= self._buffer_limit and self._spool is not None:
            self._append_spool([fields])
            return
        self._buffer.append(fields)
        self._drained.clear()
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the background writer; call with a running event loop."""
        if self._task is None:
            self._load_spool()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="engage-eventlog")

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is written; False on timeout."""
        if not self._buffer:
            return True
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed, spool the rest, release the connection."""
        self._closing = True
        await self.flush(timeout)
        self._closed = True  # from here on submit() spools, so nothing lands in a buffer nobody drains
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._buffer:
            if self._spool is not None:
                self._append_spool(list(self._buffer))
                logger.warning("event log: %d records spooled to %s", len(self._buffer), self._spool)
            else:
                self.dropped += len(self._buffer)
                logger.error("event log: %d records could not be written and are lost", len(self._buffer))
            self._buffer.clear()
        try:
            await self._client.aclose() if hasattr(self._client, "aclose") else await self._client.close()
        except RedisError:
            pass

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    # -- writer task ---------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._buffer:
                self._load_spool()
            if not self._buffer:
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
            started = time.time()
            try:
                pending = batch if self._unsure_since is None else await self._not_yet_written(batch)
                try:
                    if pending:
                        await self._write(pending)
                except (RedisError, OSError):
                    raise
                except Exception:  # noqa: BLE001 - a bad record must not stop the writer task
                    logger.exception("event log: a batch failed for a reason other than Redis being away")
                    await self._write_one_by_one(pending)
            except (RedisError, OSError) as exc:
                if self._unsure_since is None:
                    self._unsure_since = started
                self.failures += 1
                if self.failures == 1 or backoff >= self._max_backoff:
                    logger.warning(
                        "event log: Redis write failed (%s); %d records buffered, retrying in %.2fs",
                        exc,
                        len(self._buffer),
                        backoff,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.05
            self._unsure_since = None
            for _ in batch:
                self._buffer.popleft()
            self.written += len(batch)

    async def _not_yet_written(self, batch: List[Fields]) -> List[Fields]:
        """The records of `batch` that are not in the stream yet (a lost reply may hide a landed write)."""
        assert self._unsure_since is not None
        low = max(0, int((self._unsure_since - CLOCK_MARGIN) * 1000))
        entries = await self._client.xrevrange(self.stream, max="+", min=str(low), count=CHECK_WINDOW)
        landed = {_text(fields.get(b"event_id", fields.get("event_id", b""))) for _, fields in entries}
        pending = [fields for fields in batch if fields.get("event_id") not in landed]
        if len(pending) < len(batch):
            logger.info("event log: %d records were written before a lost reply; not writing them again",
                        len(batch) - len(pending))
        return pending

    async def _write_one_by_one(self, batch: list) -> None:
        """Write the records of a failed batch singly; drop (and log) only those that cannot be written.

        Redis errors propagate: the whole batch is retried, and what landed is not written twice.
        """
        for fields in batch:
            try:
                await self._write([fields])
            except (RedisError, OSError):
                raise
            except Exception:  # noqa: BLE001
                self.dropped += 1
                logger.error("event log: dropping a record that cannot be written: %r", fields)

    async def _write(self, batch: list) -> None:
        # MULTI/EXEC: a batch lands whole or not at all, never half-written.
        async with self._client.pipeline(transaction=True) as pipe:
            for fields in batch:
                pipe.xadd(self.stream, fields)
            await pipe.execute()

    # -- spool ---------------------------------------------------------------

    def _append_spool(self, records: list) -> None:
        assert self._spool is not None
        self._spool.parent.mkdir(parents=True, exist_ok=True)
        with self._spool.open("a", encoding="utf-8") as handle:
            for fields in records:
                handle.write(json.dumps(fields) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _load_spool(self) -> None:
        """Move spooled records back into the buffer (oldest first)."""
        if self._spool is None or not self._spool.exists() or self._closing:
            return
        claimed = self._spool.with_suffix(self._spool.suffix + ".replay")
        os.replace(self._spool, claimed)
        loaded = 0
        with claimed.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record: Any = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("event log: skipping a corrupt spool line in %s", claimed)
                    continue
                if isinstance(record, dict):
                    self._buffer.append({str(k): str(v) for k, v in record.items()})
                    loaded += 1
        claimed.unlink()
        if loaded:
            self._drained.clear()
            # The spool's first records may be a batch whose write landed as the writer closed.
            self._unsure_since = 0.0 if self._unsure_since is None else self._unsure_since
            logger.info("event log: replaying %d spooled records", loaded)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def encodable(value: str) -> str:
    """Replace what UTF-8 cannot carry (lone surrogates), so one odd string cannot block the log."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
