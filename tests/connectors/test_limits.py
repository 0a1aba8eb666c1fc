"""Rate limits and bounded queues (connectors.limits, connectors.requests.SenderQueues): a fake clock, no server."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import List

import pytest

from connectors.errors import ConnectorConfigError, RateLimited
from connectors.limits import NOTICE_INTERVAL, REQUEST_KEYS, REQUEST_LIMITS, WEBHOOK_KEYS, WEBHOOK_LIMITS, Limiter, Rate, RateLimits, TokenBuckets
from connectors.requests import ALL_QUEUES_FULL, QUEUE_FULL, SenderQueues
from tests.connectors.support import new_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(per_minute=60, burst=3), clock)
    assert [buckets.take("ada") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("ada") == pytest.approx(1.0)  # one token a second
    assert buckets.take("grace") == 0.0  # senders are apart
    clock.now += 0.5
    assert buckets.take("ada") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("ada") == 0.0
    clock.now += 3600
    assert [buckets.take("ada") for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


def test_idle_keys_are_forgotten_so_memory_stays_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(per_minute=60, burst=2), clock, max_keys=100)
    for sender in range(100):
        buckets.take(sender)
    clock.now += 10  # every bucket full again
    buckets.take("new")
    assert len(buckets) == 1
    for sender in range(1000):  # a flood of new keys, none idle: still bounded
        buckets.take(f"flood-{sender}")
    assert len(buckets) <= 100


def test_admit_caps_what_one_sender_has_waiting_and_paces_them() -> None:
    clock = Clock()
    limiter = Limiter(RateLimits(sender=Rate(60, 3), max_in_flight_per_sender=2), clock)
    with limiter.admit("ada"), limiter.admit("ada"):
        with pytest.raises(RateLimited) as busy:
            with limiter.admit("ada"):
                pass
        assert (busy.value.status, busy.value.headers()) == (429, {"Retry-After": "1"})
        with limiter.admit("grace"):
            pass
    with limiter.admit("ada"):  # places are given back; this is Ada's third token
        pass
    with pytest.raises(RateLimited) as fast:
        with limiter.admit("ada"):
            pass
    assert fast.value.body()["error"] == "rate_limited" and fast.value.retry_after == 1
    assert limiter._in_flight == {}


def test_addresses_are_limited_and_proxies_believed_only_when_trusted() -> None:
    clock = Clock()
    limiter = Limiter(RateLimits(ip=Rate(60, 2), trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),)), clock)
    limiter.check_address("203.0.113.9")
    limiter.check_address("203.0.113.9")
    with pytest.raises(RateLimited) as refused:
        limiter.check_address("203.0.113.9")
    assert refused.value.headers() == {"Retry-After": "1"}
    # Behind the proxy: the nearest untrusted hop; a client may prepend anything.
    assert limiter.client_address("10.1.2.3", "1.1.1.1, 198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert limiter.client_address("10.1.2.3", None) == "10.1.2.3"
    assert limiter.client_address("10.1.2.3", "not-an-address") == "not-an-address"
    # Not from the proxy: the header is the client's own claim.
    assert limiter.client_address("198.51.100.7", "10.1.2.3") == "198.51.100.7"
    assert Limiter(RateLimits()).client_address("10.1.2.3", "1.1.1.1") == "10.1.2.3"


def test_slow_down_notices_go_out_at_most_every_interval() -> None:
    clock = Clock()
    limiter = Limiter(RateLimits(), clock)
    assert [limiter.notice_due("ada"), limiter.notice_due("ada"), limiter.notice_due("grace")] == [True, False, True]
    clock.now += NOTICE_INTERVAL
    assert limiter.notice_due("ada")


def test_limits_are_read_from_credentials_over_the_defaults() -> None:
    read = RateLimits.read("rest", {"sender_per_minute": 10, "ip_burst": 0, "trusted_proxies": ["127.0.0.1"]}, REQUEST_LIMITS, REQUEST_KEYS)
    assert read.sender == Rate(10, REQUEST_LIMITS.sender.burst) and read.ip is None
    assert read.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"),)
    assert RateLimits.read("rest", None, REQUEST_LIMITS) == REQUEST_LIMITS
    assert RateLimits.read("rest", False, REQUEST_LIMITS) == RateLimits.off()
    assert RateLimits.read("tg", {"max_queued_per_sender": 0}, WEBHOOK_LIMITS, WEBHOOK_KEYS).max_queued_per_sender is None
    for raw, message in (
        ({"max_queued": 5}, "unknown key"),
        ({"sender_burst": 2.5}, "whole number"),
        ({"sender_per_minute": -1}, "0 or more"),
        ({"sender_per_minute": "fast"}, "a number"),
        ({"trusted_proxies": "10.0.0.0/8"}, "list"),
        ({"trusted_proxies": ["10.0.0.300"]}, "trusted_proxies"),
        ("lots", "mapping"),
    ):
        with pytest.raises(ConnectorConfigError, match=message):
            RateLimits.read("rest", raw, REQUEST_LIMITS, REQUEST_KEYS)


async def test_sender_queues_are_bounded_per_sender_and_in_all() -> None:
    app = new_app()
    release = asyncio.Event()
    done: List[str] = []

    def job(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            await release.wait()
            done.append(name)
        return run

    queues = SenderQueues("test", max_pending=2, max_total=3)
    assert queues.submit(app, "ada", job("a1"), "a1")  # running: no longer waiting
    await asyncio.sleep(0)
    assert queues.submit(app, "ada", job("a2"), "a2") and queues.submit(app, "ada", job("a3"), "a3")
    assert queues.refusal("ada") == QUEUE_FULL and not queues.submit(app, "ada", job("a4"), "a4")
    assert queues.submit(app, "grace", job("g1"), "g1")
    await asyncio.sleep(0)
    assert queues.submit(app, "grace", job("g2"), "g2")
    assert queues.refusal("bob") == ALL_QUEUES_FULL and not queues.submit(app, "bob", job("b1"), "b1")
    release.set()
    await queues.drain(timeout=5)
    assert sorted(done) == ["a1", "a2", "a3", "g1", "g2"]
    assert queues.refusal("bob") is None and queues._waiting == 0
