"""Plumbing every webhook channel shares: reading a body with a size limit, the client's address,
and background work kept in order, in bounded queues."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Deque, Dict, Hashable, List, Optional, Tuple

from sanic import Sanic
from sanic.request import Request

from connectors.payload import body_too_large

if TYPE_CHECKING:
    from connectors.limits import Limiter

logger = logging.getLogger(__name__)

# SenderQueues.refusal's reasons (data.reason of a message_dropped record).
QUEUE_FULL = "queue_full"  # this sender already has max_pending messages waiting
ALL_QUEUES_FULL = "all_queues_full"  # all senders together have max_total waiting


def client_address(request: Request, limiter: "Limiter") -> str:
    """The address a request comes from, through trusted proxies only (connectors.limits)."""
    return limiter.client_address(request.ip or "", request.headers.get("x-forwarded-for"))


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) once it passes `limit` bytes.

    On a streaming route (`stream=True`) Sanic hands the body over unread, so an oversized
    one is refused after `limit` bytes instead of being buffered first.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    if request.stream is None:  # body already read (route not streaming)
        body = request.body or b""
        if len(body) > limit:
            raise body_too_large(limit)
        return body
    chunks: List[bytes] = []
    size = 0
    while True:
        chunk = await request.stream.read()
        if chunk is None:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)


def spawn(app: Sanic, work: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
    """Run `work` in the background (a webhook is acknowledged before its messages are handled).

    Through Sanic's add_task when the app runs under app.run (as in `rasa run`); an app served
    with create_server (tests, embedding) cannot schedule tasks once started (add_task defers
    them to a signal the finalised router refuses), so there the loop takes them directly.
    """
    if app.is_running or app.asgi:
        task = app.add_task(work)
        if task is not None:
            return task
    return asyncio.get_running_loop().create_task(work)


Job = Callable[[], Awaitable[None]]


class SenderQueues:
    """Background work kept in each sender's order: one worker per busy sender, senders side by side.

    A webhook is acknowledged at once and its messages are handled later; two messages from one
    customer must still reach Rasa in the order they arrived. `submit` never awaits, so jobs queue
    in call order; a failing job is logged and the sender's next job still runs. At most
    `max_pending` jobs wait per sender and `max_total` in all (None: no bound); the caller asks
    `refusal` first and says and records what it does with a job that does not fit.
    """

    def __init__(self, channel: str, max_pending: Optional[int] = None, max_total: Optional[int] = None) -> None:
        self.channel = channel
        self.max_pending = max_pending
        self.max_total = max_total
        self._queues: Dict[Hashable, Deque[Tuple[Job, str]]] = {}
        self._workers: Dict[Hashable, "asyncio.Task[None]"] = {}
        self._waiting = 0

    def refusal(self, sender: Hashable) -> Optional[str]:
        """Why a job of `sender`'s would not fit now (QUEUE_FULL, ALL_QUEUES_FULL), or None."""
        queue = self._queues.get(sender)
        if self.max_pending is not None and queue is not None and len(queue) >= self.max_pending:
            return QUEUE_FULL
        if self.max_total is not None and self._waiting >= self.max_total:
            return ALL_QUEUES_FULL
        return None

    def submit(self, app: Sanic, sender: Hashable, job: Job, label: str) -> bool:
        """Queue `job` behind the sender's earlier ones; False (and a warning) when it does not fit."""
        refused = self.refusal(sender)
        if refused is not None:
            logger.warning("%s: %s for %s; dropped %s", self.channel, refused, sender, label)
            return False
        queue = self._queues.setdefault(sender, deque())
        queue.append((job, label))
        self._waiting += 1
        if sender not in self._workers:
            self._workers[sender] = spawn(app, self._work_through(sender))
        return True

    async def _work_through(self, sender: Hashable) -> None:
        queue = self._queues[sender]
        try:
            while queue:
                job, label = queue.popleft()
                self._waiting -= 1
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:  # one job's failure must not stop the next ones
                    logger.exception("%s: handling %s failed", self.channel, label)
        finally:
            # Nothing awaited between the empty queue and here, so no job is left behind.
            self._workers.pop(sender, None)
            self._waiting -= len(self._queues.pop(sender, ()))  # jobs a cancelled worker leaves behind

    async def drain(self, timeout: float) -> None:
        """Let running work finish (a server stop), cancelling what still runs after `timeout`."""
        tasks = set(self._workers.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
