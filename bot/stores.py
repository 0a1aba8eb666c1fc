"""Redis tracker and lock stores that wait out a short Redis outage and otherwise fail closed.

Rasa 3.6 wraps every tracker store in `FailSafeTrackerStore`, which, when Redis is
away, answers from an empty in-memory tracker and re-publishes that tracker's whole
history to the event broker: the interaction log got duplicates, and messages handled
during the outage reached the log but never the stored tracker. These stores instead
retry each Redis call for `outage_wait` seconds (Redis restarted by the supervisor is
back well within that, so the message just waits), then raise `RedisUnavailable`,
which the connector turns into an apology and a `reply_failed` record. A tracker's
new events are published only after the tracker itself is stored, so the log and the
tracker store agree and no event is published twice. With the project's broker on the
same Redis, a tracker's new log entries are written in the transaction that stores it,
so not even a crash of the Rasa server between the two can part them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Awaitable, Callable, Dict, Iterable, List, Optional, Text, TypeVar, Union

import redis
from rasa.core.agent import Agent
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    TrackerEventDiffEngine,
    get_trackers_for_conversation_sessions,
)
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import EndpointConfig

from bot.broker import RedisStreamEventBroker

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OUTAGE_WAIT = 10.0  # seconds a message waits for Redis before it is refused
DEFAULT_SOCKET_TIMEOUT = 5.0  # a hung Redis must not block Rasa's event loop for longer
MAX_RETRY_DELAY = 1.0
# Rasa's lock store looks again every second for a conversation's turn: after an outage
# a backlog of one message a second per conversation then never drained (latency stayed
# at the outage's length). A waiting message is now woken as soon as this server releases
# the conversation; the poll remains for a lock held by another Rasa server. (Polling
# faster instead made each waiter cost Redis round trips on the event loop, and under
# load the backlog grew.)
DEFAULT_LOCK_POLL = 1.0

# What a restarting or unreachable Redis raises (BusyLoadingError, while it reads its
# AOF, is a ConnectionError); anything else is a real error and is not retried.
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)


class RedisUnavailable(RasaException):
    """Redis stayed unreachable for longer than `outage_wait`: the message is refused, not processed."""

    def __init__(self, what: str, waited: float, cause: BaseException) -> None:
        super().__init__(f"could not {what}: Redis unreachable for {waited:.1f}s ({type(cause).__name__}: {cause})")
        self.what = what
        self.waited = waited


async def call_redis(
    call: Callable[[], Union[T, Awaitable[T]]], what: str, outage_wait: float, *, max_delay: float = MAX_RETRY_DELAY
) -> T:
    """Run `call` (sync or async), retrying with backoff while Redis is away, for at most `outage_wait` seconds.

    The waits are `asyncio.sleep`s, so other conversations carry on meanwhile.
    """
    started = time.monotonic()
    delay = 0.05
    attempt = 0
    while True:
        attempt += 1
        try:
            result = call()
            if inspect.isawaitable(result):
                result = await result
            if attempt > 1:
                logger.info("Redis is back: %s succeeded after %.1fs", what, time.monotonic() - started)
            return result  # type: ignore[return-value]
        except REDIS_AWAY as exc:
            waited = time.monotonic() - started
            if waited + delay > outage_wait:
                logger.error("giving up: could not %s, Redis unreachable for %.1fs: %s", what, waited, exc)
                raise RedisUnavailable(what, waited, exc) from exc
            if attempt == 1:
                logger.warning("Redis unreachable (%s); %s waits up to %.0fs for it", exc, what, outage_wait)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def _positive(value: Any, name: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise RasaException(f"{name} must be a number of seconds, got {value!r}") from exc
    if number <= 0:
        raise RasaException(f"{name} must be positive, got {value!r}")
    return number


def _set_socket_timeout(client: "redis.Redis", seconds: float) -> None:
    """Rasa builds its Redis clients without a timeout; give them one (before any connection exists)."""
    client.connection_pool.connection_kwargs.update(socket_timeout=seconds, socket_connect_timeout=seconds)


def _last_session(tracker: Optional[DialogueStateTracker]) -> Optional[DialogueStateTracker]:
    """What `RedisTrackerStore.retrieve` returns for a stored tracker: its latest session."""
    if tracker is None:
        return None
    sessions = get_trackers_for_conversation_sessions(tracker)
    return tracker if len(sessions) <= 1 else sessions[-1]


class FailClosedTrackerStore(RedisTrackerStore):
    """`RedisTrackerStore` that waits for Redis, then raises instead of falling back to memory.

    endpoints.yml: `type: bot.stores.FailClosedTrackerStore` with the options of Rasa's
    `redis` tracker store plus `outage_wait` and `socket_timeout` (seconds).
    """

    # Read by `_agent_keeps_fail_closed_stores_unwrapped`: Agent must not wrap this store
    # in FailSafeTrackerStore.
    fail_closed = True

    def __init__(
        self,
        domain: Optional[Domain] = None,
        host: Text = "localhost",
        port: Union[int, str] = 6379,
        db: Union[int, str] = 0,
        *,
        outage_wait: Union[float, str, None] = None,
        socket_timeout: Union[float, str, None] = None,
        **kwargs: Any,
    ) -> None:
        _agent_keeps_fail_closed_stores_unwrapped()
        super().__init__(domain or Domain.empty(), host=host or "localhost", port=int(port), db=int(db or 0), **kwargs)
        self.outage_wait = _positive(outage_wait, "tracker_store outage_wait", DEFAULT_OUTAGE_WAIT)
        _set_socket_timeout(self.red, _positive(socket_timeout, "tracker_store socket_timeout", DEFAULT_SOCKET_TIMEOUT))

    async def _call(self, call: Callable[[], Any], what: str) -> Any:
        return await call_redis(call, what, self.outage_wait)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        return await self._call(
            functools.partial(RedisTrackerStore._retrieve, self, sender_id, False), f"read the tracker of {sender_id}"
        )

    async def retrieve_full_tracker(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        return await self._call(
            functools.partial(RedisTrackerStore._retrieve, self, sender_id, True), f"read the tracker of {sender_id}"
        )

    async def keys(self) -> Iterable[Text]:
        return await self._call(functools.partial(RedisTrackerStore.keys, self), "list the trackers")

    async def save(self, tracker: DialogueStateTracker, timeout: Optional[float] = None) -> None:
        """Store the tracker and log the events the stored one lacked, each exactly once.

        Rasa's `save` publishes first and stores second, so a failure in between put
        events in the log that the tracker never got, and published them again on the
        next save. Here the log entries go into the same MULTI/EXEC as the tracker when
        the broker's stream lives in this Redis (otherwise they are published after the
        tracker is stored). The new events are worked out once, from the first read; a
        retry whose tracker is already what the previous attempt wrote knows that
        attempt landed (only its reply was lost) and writes nothing again.
        """
        key = self.key_prefix + tracker.sender_id
        expiry = timeout or self.record_exp
        new_events: Optional[List[Event]] = None
        entries: Optional[List[Dict[str, str]]] = None  # log entries written with the tracker
        attempted: Optional[str] = None

        def write() -> None:
            nonlocal new_events, entries, attempted
            stored = self.red.get(key)
            if attempted is not None and stored == attempted:
                return
            prior = self.deserialise_tracker(tracker.sender_id, stored) if stored is not None else None
            if new_events is None:
                new_events = TrackerEventDiffEngine.event_difference(_last_session(prior), tracker)
                entries = self._log_entries(tracker.sender_id, new_events)
            merged = self._merge_trackers(prior, tracker) if prior is not None else tracker
            attempted = self.serialise_tracker(merged)
            with self.red.pipeline(transaction=True) as pipe:
                pipe.set(key, attempted, ex=expiry)
                for fields in entries or ():
                    pipe.xadd(self._log_stream, fields)
                pipe.execute()

        await self._call(write, f"save the tracker of {tracker.sender_id}")
        if entries is None and self.event_broker is not None and new_events:
            await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)

    @property
    def _log_stream(self) -> str:
        assert isinstance(self.event_broker, RedisStreamEventBroker)
        return self.event_broker.writer.stream

    def _log_entries(self, sender_id: Text, events: List[Event]) -> Optional[List[Dict[str, str]]]:
        """The stream entries of `events` when the broker logs to this Redis; None otherwise."""
        broker = self.event_broker
        if not isinstance(broker, RedisStreamEventBroker) or broker.redis_address is None:
            return None
        kwargs = self.red.connection_pool.connection_kwargs
        here = (str(kwargs.get("host")), int(kwargs.get("port") or 6379), int(kwargs.get("db") or 0))
        if broker.redis_address != here:
            return None
        return [broker.fields_for({"sender_id": sender_id, **event.as_dict()}) for event in events]

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """Publishing happens in `save`, after the tracker is stored; nothing else may publish."""
        raise NotImplementedError("FailClosedTrackerStore publishes its events in save()")


class FailClosedLockStore(RedisLockStore):
    """`RedisLockStore` whose `lock()` waits for Redis (`outage_wait`) instead of failing at once.

    endpoints.yml: `type: bot.stores.FailClosedLockStore` with the options of Rasa's
    `redis` lock store plus `outage_wait` and `poll_interval` (seconds). Rasa builds
    custom lock stores from the endpoint config alone.
    """

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        options = dict(endpoint_config.kwargs)
        self.outage_wait = _positive(options.pop("outage_wait", None), "lock_store outage_wait", DEFAULT_OUTAGE_WAIT)
        socket_timeout = _positive(options.pop("socket_timeout", None), "lock_store socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        self.poll_interval = _positive(options.pop("poll_interval", None), "lock_store poll_interval", DEFAULT_LOCK_POLL)
        for name in ("port", "db"):
            if options.get(name) not in (None, ""):
                options[name] = int(options[name])
        super().__init__(host=endpoint_config.url or "localhost", socket_timeout=socket_timeout, **options)
        _set_socket_timeout(self.red, socket_timeout)
        self._released: Dict[str, asyncio.Event] = {}  # conversation -> set when this server releases it

    def _issue(self, conversation_id: Text, lock_lifetime: float, issued: List[Ticket]) -> int:
        """Issue a ticket (LockStore.issue_ticket turns every error into a LockError; Redis' own stay retryable).

        A retry first looks for the ticket of the attempt before it (`issued`): when Redis stored
        it and only the reply was lost (a restart closes connections before replying), issuing
        another would leave that one to block the conversation until it expires (a minute).
        """
        lock = self.get_or_create_lock(conversation_id)
        if issued:
            earlier = issued[-1]
            if any(t.number == earlier.number and t.expires == earlier.expires for t in lock.tickets):
                return earlier.number
        number = lock.issue_ticket(lock_lifetime)
        issued.append(lock.tickets[-1])
        self.save_lock(lock)
        return number

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: Text,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: Optional[float] = None,
    ) -> AsyncGenerator[TicketLock, None]:
        wait = self.outage_wait
        poll = self.poll_interval if wait_time_in_seconds is None else wait_time_in_seconds
        ticket = await call_redis(
            functools.partial(self._issue, conversation_id, lock_lifetime, []), f"lock conversation {conversation_id}", wait
        )
        try:
            yield await call_redis(
                functools.partial(self._acquire_lock, conversation_id, ticket, poll),
                f"lock conversation {conversation_id}",
                wait,
            )
        finally:
            try:
                await call_redis(
                    functools.partial(self.cleanup, conversation_id, ticket), f"unlock conversation {conversation_id}", wait
                )
            finally:
                released = self._released.pop(conversation_id, None)
                if released is not None:
                    released.set()

    async def _acquire_lock(self, conversation_id: Text, ticket: int, wait_time_in_seconds: float) -> TicketLock:
        """Rasa's loop, but a waiter sleeps until this server releases the conversation (or the poll)."""
        while True:
            # Taken before looking, so a release between the look and the wait is not missed.
            released = self._released.setdefault(conversation_id, asyncio.Event())
            lock = self.get_lock(conversation_id)
            if not lock:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            if not lock.is_locked(ticket):
                return lock
            try:
                await asyncio.wait_for(released.wait(), wait_time_in_seconds)
            except asyncio.TimeoutError:
                pass
            self.update_lock(conversation_id)


_original_create_tracker_store = Agent._create_tracker_store


def _create_tracker_store(store: Optional[TrackerStore], domain: Domain) -> TrackerStore:
    if getattr(store, "fail_closed", False):
        assert store is not None
        store.domain = domain
        return store
    return _original_create_tracker_store(store, domain)


def _agent_keeps_fail_closed_stores_unwrapped() -> None:
    """Make Rasa's Agent leave a fail-closed tracker store as it is.

    Agent._create_tracker_store wraps every store in FailSafeTrackerStore, whose
    fallback is the very in-memory store these classes exist to avoid, and Rasa 3.6
    has no setting to turn it off. Done when such a store is built (the agent is
    created right after), not at import time; stores without `fail_closed` keep Rasa's
    behaviour.
    """
    if Agent.__dict__["_create_tracker_store"].__func__ is not _create_tracker_store:
        Agent._create_tracker_store = staticmethod(_create_tracker_store)  # type: ignore[assignment]
