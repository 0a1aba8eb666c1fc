"""Fail-closed tracker and lock stores against a real redis-server that goes away and comes back."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, TypeVar

import pytest
import redis
from rasa.core.agent import Agent
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore, TrackerStore
from rasa.core.utils import read_endpoints_from_path
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SessionStarted, UserUttered
from rasa.utils.endpoints import EndpointConfig

from analytics.schema import LogEvent
from bot.broker import RedisStreamEventBroker
from bot.stores import FailClosedLockStore, FailClosedTrackerStore, RedisUnavailable, call_redis
from scripts.stack import ROOT
from tests.bot.test_broker import make_broker, read_stream
from tests.conftest import RedisServer, free_port


T = TypeVar("T")


@pytest.fixture
def own_redis(tmp_path: Path) -> RedisServer:
    """A redis-server this test may stop and start (the session's one stays up)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def store_for(url_port: int, broker: RedisStreamEventBroker = None, outage_wait: float = 5.0) -> FailClosedTrackerStore:
    return FailClosedTrackerStore(
        Domain.empty(), host="127.0.0.1", port=url_port, db=0, event_broker=broker,
        key_prefix="engage", outage_wait=outage_wait, socket_timeout=0.5,
    )


def lock_store_for(port: int, outage_wait: float = 5.0) -> FailClosedLockStore:
    return FailClosedLockStore(
        EndpointConfig(url="127.0.0.1", port=str(port), db="0", key_prefix="engage", outage_wait=outage_wait, socket_timeout="0.5")
    )


def users(records: List[LogEvent]) -> List[str]:
    return [r.text for r in records if r.type == "user"]


def losing_the_first_reply(call: Callable[..., T], lost: List[object]) -> Callable[..., T]:
    """`call`, except that the first time Redis has done it the reply is lost (as when Redis stops
    with SIGTERM: the write is stored, the connection closed unanswered); `lost` gets its result."""

    def call_then_lose_the_reply(*args: Any, **kwargs: Any) -> T:
        result = call(*args, **kwargs)
        if not lost:
            lost.append(result)
            raise redis.ConnectionError("Connection closed by server.")
        return result

    return call_then_lose_the_reply


def start_later(server: RedisServer, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), server.start()))
    thread.start()
    return thread


async def test_each_event_is_published_once_and_after_the_tracker_is_stored(own_redis: RedisServer, tmp_path: Path) -> None:
    broker = make_broker(own_redis.url, tmp_path)
    broker.start()
    store = store_for(own_redis.port, broker)
    tracker = await store.get_or_create_tracker("c1", append_action_listen=False)
    tracker.update(SessionStarted())
    tracker.update(UserUttered("first"))
    await store.save(tracker)
    tracker = await store.retrieve("c1")
    tracker.update(BotUttered("hello"))
    tracker.update(UserUttered("second"))
    await store.save(tracker)
    await store.save(tracker)  # nothing new: nothing published
    assert await broker.flush(5)
    await broker.close()
    records = read_stream(own_redis.url)
    assert users(records) == ["first", "second"]
    assert [r.type for r in records] == ["session_started", "user", "bot", "user"]
    stored = await store.retrieve("c1")
    assert [e.text for e in stored.events if isinstance(e, UserUttered)] == ["first", "second"]


async def test_a_short_outage_delays_the_save_and_nothing_is_lost_or_doubled(own_redis: RedisServer, tmp_path: Path) -> None:
    broker = make_broker(own_redis.url, tmp_path, socket_timeout=0.5)
    broker.start()
    store = store_for(own_redis.port, broker)
    tracker = await store.get_or_create_tracker("c2", append_action_listen=False)
    tracker.update(UserUttered("before"))
    await store.save(tracker)

    own_redis.stop()
    back = start_later(own_redis, 1.0)
    tracker.update(UserUttered("during"))
    started = time.monotonic()
    await store.save(tracker)  # waits for Redis instead of falling back to memory
    back.join()
    assert time.monotonic() - started >= 0.5
    assert await broker.flush(10)
    await broker.close()
    assert users(read_stream(own_redis.url)) == ["before", "during"]
    stored = await store.retrieve("c2")
    assert [e.text for e in stored.events if isinstance(e, UserUttered)] == ["before", "during"]


async def test_the_log_entries_are_written_with_the_tracker_not_after_it(own_redis: RedisServer, tmp_path: Path) -> None:
    # In the same MULTI/EXEC: a Rasa server killed right after save() returned used to
    # take the entries still in the broker's buffer with it.
    broker = make_broker(own_redis.url, tmp_path)  # its writer never runs
    store = store_for(own_redis.port, broker)
    tracker = store.init_tracker("c8")
    tracker.update(UserUttered("hello", input_channel="rest"))
    tracker.update(BotUttered("hi there"))
    await store.save(tracker)
    records = read_stream(own_redis.url)
    assert [(r.type, r.text, r.channel) for r in records] == [("user", "hello", "rest"), ("bot", "hi there", "rest")]
    assert broker.writer.pending == 0 and broker.published == 0


async def test_a_transaction_whose_reply_was_lost_is_not_repeated(own_redis: RedisServer, tmp_path: Path) -> None:
    store = store_for(own_redis.port, make_broker(own_redis.url, tmp_path))
    pipeline = store.red.pipeline
    lost: List[object] = []

    def losing_pipeline(*args, **kwargs):  # type: ignore[no-untyped-def]
        pipe = pipeline(*args, **kwargs)
        pipe.execute = losing_the_first_reply(pipe.execute, lost)
        return pipe

    store.red.pipeline = losing_pipeline  # type: ignore[method-assign]
    tracker = store.init_tracker("c9")
    tracker.update(UserUttered("once"))
    await store.save(tracker)
    assert lost, "the first transaction did not run"
    assert users(read_stream(own_redis.url)) == ["once"]
    assert [e.text for e in (await store.retrieve("c9")).events if isinstance(e, UserUttered)] == ["once"]


async def test_a_long_outage_refuses_and_publishes_nothing(tmp_path: Path) -> None:
    broker = make_broker(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    store = store_for(free_port(), broker, outage_wait=0.3)
    with pytest.raises(RedisUnavailable, match="read the tracker of c3"):
        await store.get_or_create_tracker("c3")
    tracker = store.init_tracker("c3")
    tracker.update(UserUttered("lost?"))
    with pytest.raises(RedisUnavailable, match="save the tracker of c3"):
        await store.save(tracker)
    assert broker.published == 0


def test_agent_keeps_it_unwrapped_and_wraps_other_stores(redis_url: str) -> None:
    store = store_for(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    assert Agent(tracker_store=store).tracker_store is store
    assert isinstance(Agent(tracker_store=InMemoryTrackerStore(Domain.empty())).tracker_store, FailSafeTrackerStore)


async def test_lock_waits_for_redis_then_serves(own_redis: RedisServer) -> None:
    locks = lock_store_for(own_redis.port)
    own_redis.stop()
    back = start_later(own_redis, 1.0)
    async with locks.lock("c4") as lock:
        assert lock.conversation_id == "c4"
    back.join()
    assert locks.get_lock("c4") is None  # cleaned up


async def test_a_ticket_whose_reply_was_lost_is_not_issued_again(own_redis: RedisServer) -> None:
    # Redis stopping with SIGTERM stores a write and closes the connection before replying: the
    # retry issued a second ticket behind the first, and the message waited the first one's
    # lifetime (a minute) for a turn nobody held.
    locks = lock_store_for(own_redis.port)
    lost: List[object] = []
    locks.red.set = losing_the_first_reply(locks.red.set, lost)  # type: ignore[method-assign]

    async def take() -> List[int]:
        async with locks.lock("c8") as lock:
            return [ticket.number for ticket in lock.tickets]

    assert await asyncio.wait_for(take(), 20) == [0]  # one ticket, the first
    assert lost, "the first ticket was not stored"
    assert locks.get_lock("c8") is None  # cleaned up


async def test_lock_refuses_when_redis_stays_away() -> None:
    locks = lock_store_for(free_port(), outage_wait=0.3)
    with pytest.raises(RedisUnavailable, match="lock conversation c5"):
        async with locks.lock("c5"):
            pytest.fail("the body must not run without a lock")


async def test_a_waiting_message_gets_its_turn_soon_after_the_lock_is_released(redis_server: RedisServer, redis_url: str) -> None:
    # Rasa looks once a second: after an outage, conversations sending a message a second
    # kept a backlog (and the outage's latency) for good.
    locks = lock_store_for(redis_server.port)
    loop = asyncio.get_running_loop()
    released = served = 0.0

    async def first() -> None:
        nonlocal released
        async with locks.lock("c7"):
            await asyncio.sleep(0.3)
        released = loop.time()

    async def second() -> None:
        nonlocal served
        await asyncio.sleep(0.05)
        async with locks.lock("c7"):
            served = loop.time()

    await asyncio.gather(first(), second())
    assert 0 <= served - released < 0.25


async def test_call_redis_does_not_retry_other_errors() -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        await call_redis(broken, "read", 5.0)
    assert calls == 1


async def test_rasa_loads_both_from_the_projects_endpoints_yml(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "REDIS_DB": "0",
                        "REDIS_PASSWORD": "", "REDIS_URL": redis_url, "ACTION_ENDPOINT_URL": "http://127.0.0.1:1/webhook",
                        "ENGAGE_ACTION_TOKEN": "t"}.items():
        monkeypatch.setenv(name, value)
    endpoints = read_endpoints_from_path(str(ROOT / "endpoints.yml"))
    tracker_store = TrackerStore.create(endpoints.tracker_store)
    lock_store = LockStore.create(endpoints.lock_store)
    assert isinstance(tracker_store, FailClosedTrackerStore) and isinstance(lock_store, FailClosedLockStore)
    assert tracker_store.red.connection_pool.connection_kwargs["socket_timeout"] == 5.0
    async with lock_store.lock("c6"):
        await tracker_store.get_or_create_tracker("c6")
    assert await tracker_store.retrieve("c6") is not None
