"""Rate limits and backpressure for the channels: a token bucket per sender and per client address,
and caps on what one sender may have waiting. In memory, per Rasa process (no Redis in the hot path):
with N processes behind a load balancer a sender may get up to N times the configured rate.

Configured per channel in credentials.yml under `rate_limits` (every key optional; 0 turns a rate off):

    rate_limits:
      sender_per_minute: 60      # messages a minute one sender may keep sending...
      sender_burst: 30           # ...after a burst of this many
      ip_per_minute: 3000        # requests a minute from one client address...
      ip_burst: 500              # ...after a burst of this many
      max_in_flight_per_sender: 4    # REST, portal: requests one sender may have waiting for Rasa
      max_queued_per_sender: 30      # WhatsApp, Telegram: messages waiting for one sender
      max_queued: 2000               # WhatsApp, Telegram: messages waiting for all senders
      trusted_proxies: ["10.0.0.0/8"]  # X-Forwarded-For is believed only from these peers

`rate_limits: false` turns every limit off (benchmarks).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Hashable, Iterator, Mapping, Optional, Sequence, Tuple, Union

from connectors.errors import ConnectorConfigError, RateLimited

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Clock = Callable[[], float]

SENDER_RATE = "sender_rate"  # data.reason of a message dropped because its sender sent too fast
NOTICE_INTERVAL = 30.0  # seconds between two "slow down" replies to one sender
MAX_TRACKED_KEYS = 100_000  # senders or addresses remembered per limiter before idle ones are forgotten


@dataclass(frozen=True)
class Rate:
    """`burst` at once, then `per_minute` a minute."""

    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True)
class RateLimits:
    """What one channel allows; None (or 0 in credentials.yml) leaves a limit off."""

    sender: Optional[Rate] = Rate(60, 30)
    # One address may carry many customers (a back-end calling REST, an office behind NAT, the
    # provider's webhook servers), so this guards against floods rather than pacing customers.
    ip: Optional[Rate] = Rate(3000, 500)
    max_in_flight_per_sender: Optional[int] = 4
    max_queued_per_sender: Optional[int] = 30
    max_queued: Optional[int] = 2000
    trusted_proxies: Tuple[Network, ...] = field(default=())

    KEYS = (
        "sender_per_minute", "sender_burst", "ip_per_minute", "ip_burst",
        "max_in_flight_per_sender", "max_queued_per_sender", "max_queued", "trusted_proxies",
    )

    @classmethod
    def off(cls) -> "RateLimits":
        return cls(sender=None, ip=None, max_in_flight_per_sender=None, max_queued_per_sender=None, max_queued=None)

    @classmethod
    def read(cls, owner: str, raw: Any, defaults: "RateLimits", accepted: Sequence[str] = KEYS) -> "RateLimits":
        """`rate_limits` from credentials.yml over `defaults`; ConnectorConfigError naming the problem."""
        owner = f"{owner}: rate_limits"
        if raw is None or raw is True:
            return defaults
        if raw is False:
            return cls.off()
        if not isinstance(raw, Mapping):
            raise ConnectorConfigError(f"{owner} must be a mapping (or false to turn every limit off)")
        unknown = sorted(set(raw) - set(accepted))
        if unknown:
            raise ConnectorConfigError(f"{owner}: unknown key(s) {', '.join(unknown)}; known: {', '.join(accepted)}")

        def number(key: str, integer: bool = False) -> Optional[float]:
            value = raw.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (integer and value != int(value)):
                kind = "a whole number" if integer else "a number"
                raise ConnectorConfigError(f"{owner}: '{key}' must be {kind} of 0 or more, got {value!r}")
            return value

        def rate(prefix: str, default: Optional[Rate]) -> Optional[Rate]:
            per_minute, burst = number(f"{prefix}_per_minute"), number(f"{prefix}_burst", integer=True)
            if per_minute == 0 or burst == 0:
                return None
            base = default or Rate(per_minute or 60, int(burst or 1))
            return Rate(base.per_minute if per_minute is None else per_minute, base.burst if burst is None else int(burst))

        def cap(key: str, default: Optional[int]) -> Optional[int]:
            value = number(key, integer=True)
            return default if value is None else (int(value) or None)

        proxies = raw.get("trusted_proxies", [])
        if not isinstance(proxies, list):
            raise ConnectorConfigError(f"{owner}: 'trusted_proxies' must be a list of addresses or networks")
        try:
            networks = tuple(ipaddress.ip_network(str(p), strict=False) for p in proxies)
        except ValueError as exc:
            raise ConnectorConfigError(f"{owner}: 'trusted_proxies': {exc}") from None
        return replace(
            defaults,
            sender=rate("sender", defaults.sender),
            ip=rate("ip", defaults.ip),
            max_in_flight_per_sender=cap("max_in_flight_per_sender", defaults.max_in_flight_per_sender),
            max_queued_per_sender=cap("max_queued_per_sender", defaults.max_queued_per_sender),
            max_queued=cap("max_queued", defaults.max_queued),
            trusted_proxies=networks or defaults.trusted_proxies,
        )


# Request-reply channels (REST, portal): a sender's messages wait on Rasa's lock, so few at a time.
REQUEST_LIMITS = RateLimits(max_queued_per_sender=None, max_queued=None)
REQUEST_KEYS = tuple(k for k in RateLimits.KEYS if k not in ("max_queued_per_sender", "max_queued"))
# Webhook channels (WhatsApp, Telegram): messages wait in per-sender queues instead.
# The web chat: a socket's messages are handled one after another, so only the rates apply.
CHAT_LIMITS = RateLimits(max_in_flight_per_sender=None, max_queued_per_sender=None, max_queued=None)
CHAT_KEYS = ("sender_per_minute", "sender_burst", "ip_per_minute", "ip_burst", "trusted_proxies")
WEBHOOK_LIMITS = RateLimits(max_in_flight_per_sender=None)
WEBHOOK_KEYS = tuple(k for k in RateLimits.KEYS if k != "max_in_flight_per_sender")


class TokenBuckets:
    """A token bucket per key. Keys whose bucket has filled up again are forgotten, so memory
    follows the senders active in the last `burst / rate` seconds (at most `max_keys`)."""

    def __init__(self, rate: Rate, clock: Clock = time.monotonic, max_keys: int = MAX_TRACKED_KEYS) -> None:
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: Dict[Hashable, Tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: Hashable) -> float:
        """0 when `key` may go ahead (a token is taken), else the seconds until it may."""
        now = self._clock()
        tokens, when = self._buckets.get(key, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + (now - when) * self.rate.per_second)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now)
            return 0.0
        self._remember(key, tokens, now)
        return (1.0 - tokens) / self.rate.per_second if self.rate.per_second > 0 else math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    def _remember(self, key: Hashable, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            self._forget_idle(now)
        self._buckets[key] = (tokens, now)

    def _forget_idle(self, now: float) -> None:
        full = float(self.rate.burst)
        for key, (tokens, when) in list(self._buckets.items()):
            if tokens + (now - when) * self.rate.per_second >= full:
                del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # all busy (a flood of new keys): drop the oldest half
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]


class Limiter:
    """A channel's limits at run time."""

    def __init__(self, limits: RateLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._senders = TokenBuckets(limits.sender, clock) if limits.sender else None
        self._addresses = TokenBuckets(limits.ip, clock) if limits.ip else None
        self._in_flight: Dict[Hashable, int] = {}
        self._noticed: Dict[Hashable, float] = {}

    def client_address(self, peer: str, forwarded_for: Optional[str]) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
        address in X-Forwarded-For that is not one (a client can put anything at the far end)."""
        if not self.limits.trusted_proxies or not self._trusted(peer):
            return peer
        for hop in reversed([part.strip() for part in (forwarded_for or "").split(",") if part.strip()]):
            if not self._trusted(hop):
                return hop
        return peer

    def check_address(self, address: str) -> None:
        """RateLimited when `address` sends faster than `ip_per_minute` allows."""
        wait = self._addresses.take(address) if self._addresses is not None else 0.0
        if wait:
            raise RateLimited(wait, f"Too many requests from your address; try again in {math.ceil(wait)} s.")

    def sender_wait(self, sender: Hashable) -> float:
        """0 when `sender` may send now (a token is taken), else the seconds to wait."""
        return self._senders.take(sender) if self._senders is not None else 0.0

    @contextlib.contextmanager
    def admit(self, sender: Hashable) -> Iterator[None]:
        """Hold one of the sender's in-flight places for the block; RateLimited when the sender
        already has `max_in_flight_per_sender` waiting or sends faster than `sender_per_minute`."""
        cap = self.limits.max_in_flight_per_sender
        busy = self._in_flight.get(sender, 0)
        if cap is not None and busy >= cap:
            raise RateLimited(1, f"You already have {busy} messages waiting for an answer; wait for them first.")
        wait = self.sender_wait(sender)
        if wait:
            raise RateLimited(wait, f"You are sending messages too fast; try again in {math.ceil(wait)} s.")
        self._in_flight[sender] = busy + 1
        try:
            yield
        finally:
            left = self._in_flight[sender] - 1
            if left:
                self._in_flight[sender] = left
            else:
                del self._in_flight[sender]

    def notice_due(self, sender: Hashable) -> bool:
        """True at most once per NOTICE_INTERVAL per sender: time to tell them to slow down."""
        now = self._clock()
        if now - self._noticed.get(sender, -math.inf) < NOTICE_INTERVAL:
            return False
        if len(self._noticed) >= MAX_TRACKED_KEYS:
            self._noticed = {k: t for k, t in self._noticed.items() if now - t < NOTICE_INTERVAL}
        self._noticed[sender] = now
        return True

    def _trusted(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.limits.trusted_proxies)
