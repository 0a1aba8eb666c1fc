"""Reading the interaction log as a Redis consumer group: each entry's effect stored once, then acknowledged.

Several consumers (processes) share one group. Each reads new entries with XREADGROUP,
hands every entry to the projections (whose effects are idempotent per event id, so an
entry delivered twice changes nothing the second time), and acknowledges it only after the
effects are stored. Entries a crashed consumer left pending are taken over with XAUTOCLAIM
once idle for `claim_idle_ms`. An entry that does not follow the schema, or that a
projection refuses as bad data, goes to the dead-letter stream with the reason and is
acknowledged: bad data never stops the consumer. A Redis failure is not bad data: the entry
stays pending and is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import redis.asyncio
from redis.exceptions import RedisError, ResponseError

from analytics.schema import EVENTS_STREAM, KEY_PREFIX, LogEvent, SchemaError
from analytics.stream.pause import begin_applying, end_applying

logger = logging.getLogger(__name__)

GROUP = "analytics"
DEAD_LETTER_STREAM = KEY_PREFIX + "events:dead"
DEAD_LETTER_MAX = 100_000  # approximate cap (XADD MAXLEN ~)
MAX_REASON_CHARS = 500

Entry = Tuple[str, Mapping[str, str]]
PairsEntry = Tuple[str, List[str]]  # an entry's fields as Redis sends them: field, value, field, value...
# What a projection raises when well-formed entries carry data it cannot use (a number out of
# range, a field of the wrong type): the entry is dead-lettered, the consumer goes on.
BAD_DATA = (TypeError, ValueError, KeyError, AttributeError, ArithmeticError)


class _Paused(Exception):
    """A replay is rebuilding the state (or one did not finish): entries read stay pending."""


class BadEvent(ValueError):
    """An entry that follows the schema but cannot be used (a projection says why); it is dead-lettered."""


class Projection(Protocol):
    """State derived from the log. Effects are stored atomically and are idempotent per event id."""

    name: str

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
        """Apply entries in log order; return those refused as bad data, with the reason."""
        ...

    async def reset(self) -> None: ...


class ReplayFold(Protocol):
    """How a projection rebuilds itself in a replay, when it can do better than applying batch after batch:
    it is handed every entry in log order (no consumer writes meanwhile) and then told to finish."""

    name: str

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]: ...

    async def finish(self) -> None: ...


@dataclass(frozen=True)
class ConsumerSettings:
    group: str = GROUP
    consumer: str = "analytics-1"
    stream: str = EVENTS_STREAM
    dead_letters: str = DEAD_LETTER_STREAM
    batch: int = 200
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    # After a blocking read wakes on a few entries, wait this long for the rest of the turn (and
    # of the turns beside it) and apply them in the same batch: fewer transactions per turn, and
    # the lag stays far under a second. 0 applies every entry as soon as it is read.
    linger_ms: int = 0
    # While a replay rebuilds the state, look again this often (analytics.stream.pause).
    pause_poll_ms: int = 500


@dataclass(frozen=True)
class Lag:
    """How far the group is behind the log: entries not yet acknowledged, and the age of the oldest."""

    entries: int
    seconds: float
    pending: int
    dead_letters: int

    def as_dict(self) -> Dict[str, Any]:
        return {"entries": self.entries, "seconds": round(self.seconds, 3), "pending": self.pending, "dead_letters": self.dead_letters}


def entry_time(entry_id: str) -> float:
    """The time (seconds) Redis wrote an entry, from its id (`<ms>-<seq>`)."""
    return int(entry_id.split("-", 1)[0]) / 1000.0


class StreamConsumer:
    """One member of the consumer group. `client` must decode responses (str keys and values)."""

    def __init__(self, client: Any, projections: Sequence[Projection], settings: ConsumerSettings = ConsumerSettings()) -> None:
        self.client = client
        self.projections = list(projections)
        self.settings = settings
        self.applied = 0
        self.dead_lettered = 0
        self.paused_since: Optional[float] = None
        self._next_reclaim = 0.0  # monotonic time of the next look for entries other consumers left idle
        self._own_pending = True  # entries of ours may be pending (at start, after a pause or a failure)

    async def ensure_group(self) -> None:
        """Create the group at the start of the log (so a new deployment folds the whole history)."""
        try:
            await self.client.xgroup_create(self.settings.stream, self.settings.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event, backoff_cap: float = 5.0) -> None:
        """Consume until `stop` is set; a Redis outage is waited out with backoff (logged), never fatal."""
        delay = 0.1
        await self._until_ready(stop, backoff_cap)
        while not stop.is_set():
            try:
                await self.step()
                delay = 0.1
            except (RedisError, OSError) as exc:
                logger.warning("analytics consumer %s: Redis unavailable (%s); retrying in %.1fs", self.settings.consumer, exc, delay)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, backoff_cap)

    async def _until_ready(self, stop: asyncio.Event, backoff_cap: float) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                await self.ensure_group()
                return
            except (RedisError, OSError) as exc:
                logger.warning("analytics consumer: cannot create the group yet (%s); retrying in %.1fs", exc, delay)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, backoff_cap)

    async def step(self, block: bool = True) -> int:
        """Take over idle pending entries, then read new ones; returns how many entries were handled
        (0 while a replay holds the state: what was read stays pending and is handled afterwards)."""
        try:
            return await self._step(block)
        except _Paused:
            if self.paused_since is None:
                self.paused_since = time.time()
                logger.info("analytics consumer %s: paused while a replay rebuilds the state", self.settings.consumer)
            await asyncio.sleep(self.settings.pause_poll_ms / 1000 if block else 0)
            return 0

    async def _step(self, block: bool) -> int:
        try:
            return await self._take(block)
        except BaseException:  # a pause or a failure: what was read stays pending, ours to take first
            self._own_pending = True
            raise

    async def _take(self, block: bool) -> int:
        # Two looks a live batch rarely needs, so they are not two more round trips each time: for
        # entries a crashed consumer left (idle for claim_idle_ms: looked for twice as often), and for
        # our own pending ones (a restart under the same name, a pause, a failed batch).
        handled = 0
        if time.monotonic() >= self._next_reclaim:
            claimed, more = await self._reclaim()
            handled += await self._handle(claimed)
            self._next_reclaim = 0.0 if more else time.monotonic() + self.settings.claim_idle_ms / 2000
        own: List[Entry] = []
        if self._own_pending:
            own = await self._read("0", block=False)
            handled += await self._handle(own)
            self._own_pending = bool(own)  # a full batch may have more behind it
        if not own:
            fresh = await self._read(">", block=block)
            if block and fresh and len(fresh) < self.settings.batch and self.settings.linger_ms > 0:
                await asyncio.sleep(self.settings.linger_ms / 1000)
                fresh += await self._read(">", block=False)
            handled += await self._handle(fresh)
        return handled

    async def drain(self) -> int:
        """Handle everything the group has not yet handled (tests, replays); returns the count."""
        await self.ensure_group()
        total = 0
        while True:
            handled = await self.step(block=False)
            total += handled
            if not handled:
                return total

    async def _read(self, start: str, block: bool) -> List[Entry]:
        reply = await self.client.xreadgroup(
            self.settings.group,
            self.settings.consumer,
            {self.settings.stream: start},
            count=self.settings.batch,
            block=self.settings.block_ms if block and start == ">" else None,
        )
        entries: List[Entry] = []
        for _stream, items in reply or []:
            # A pending entry deleted from the stream comes back with no fields: nothing to apply.
            entries.extend((entry_id, fields or {}) for entry_id, fields in items)
        return entries

    async def _reclaim(self) -> Tuple[List[Entry], bool]:
        """Entries idle past claim_idle_ms, now ours; and whether the scan has more to look at."""
        reply = await self.client.xautoclaim(
            self.settings.stream,
            self.settings.group,
            self.settings.consumer,
            min_idle_time=self.settings.claim_idle_ms,
            start_id="0-0",
            count=self.settings.batch,
        )
        claimed = reply[1] if reply else []
        if claimed:
            logger.info("analytics consumer %s: took over %d entries left pending by another consumer", self.settings.consumer, len(claimed))
        cursor = reply[0] if reply else "0-0"
        more = (cursor.decode() if isinstance(cursor, bytes) else str(cursor)) != "0-0"
        return [(entry_id, fields or {}) for entry_id, fields in claimed], more

    async def _handle(self, entries: Sequence[Entry]) -> int:
        if not entries:
            return 0
        if not await begin_applying(self.client, self.settings.consumer):
            raise _Paused()
        if self.paused_since is not None:
            logger.info("analytics consumer %s: resumed after %.1f s", self.settings.consumer, time.time() - self.paused_since)
            self.paused_since = None
        try:
            return await self._apply(entries)
        finally:
            await end_applying(self.client, self.settings.consumer)

    async def _apply(self, entries: Sequence[Entry]) -> int:
        good, bad = await fold_entries(self.projections, entries)
        by_id = dict(entries)
        for entry_id, reason in bad.items():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xadd(self.settings.dead_letters, dead_letter(entry_id, by_id[entry_id], reason, self.settings.consumer),
                          maxlen=DEAD_LETTER_MAX, approximate=True)
                pipe.xack(self.settings.stream, self.settings.group, entry_id)
                await pipe.execute()
        self.dead_lettered += len(bad)
        done = [entry_id for entry_id, _ in entries if entry_id not in bad]
        if done:
            await self.client.xack(self.settings.stream, self.settings.group, *done)
        self.applied += len(good)
        return len(entries)

    async def lag(self, now: Optional[float] = None) -> Lag:
        return await group_lag(self.client, self.settings, now)


async def fold_entries(projections: Sequence[Projection], entries: Sequence[Entry]) -> Tuple[List[Tuple[str, LogEvent]], Dict[str, str]]:
    """Hand well-formed entries to each projection in turn: those applied, and those refused with the reason."""
    good, bad = parse_entries(entries)
    good = await apply_in_turn(projections, good, bad)
    log_refused(bad)
    return good, bad


def parse_entries(entries: Sequence[Union[Entry, PairsEntry]]) -> Tuple[List[Tuple[str, LogEvent]], Dict[str, str]]:
    """The entries (fields as a mapping, or as pairs from `stream_batches(pairs=True)`) as log events,
    and those that are not one with the reason."""
    good: List[Tuple[str, LogEvent]] = []
    bad: Dict[str, str] = {}
    for entry_id, fields in entries:
        if not fields:
            continue  # trimmed away while pending: nothing to apply, just acknowledge
        try:
            # Consumers' clients decode responses.
            good.append((entry_id, LogEvent.from_pairs(fields) if type(fields) is list else LogEvent.from_fields(fields, decoded=True)))
        except SchemaError as exc:
            bad[entry_id] = str(exc)
    return good, bad


async def apply_in_turn(projections: Sequence[Projection], good: List[Tuple[str, LogEvent]], bad: Dict[str, str]) -> List[Tuple[str, LogEvent]]:
    """Apply `good` to each projection in turn; what one refuses joins `bad` and the next ones do not get it."""
    for projection in projections:
        try:
            refused = await projection.apply_batch(good)
        except (RedisError, OSError):
            raise  # not the entries' fault: they stay pending and are tried again
        except BAD_DATA:
            # A projection could not use well-formed data: apply one by one to find the culprits.
            logger.exception("analytics: %s could not apply a batch; retrying entry by entry", projection.name)
            refused = {}
            for entry_id, event in good:
                try:
                    refused.update(await projection.apply_batch([(entry_id, event)]))
                except BAD_DATA as single:
                    refused[entry_id] = f"{type(single).__name__}: {single}"
        bad.update(refused)
        if refused:
            good = [(entry_id, event) for entry_id, event in good if entry_id not in refused]
    return good


def log_refused(bad: Mapping[str, str]) -> None:
    for entry_id, reason in bad.items():
        logger.warning("analytics: entry %s dead-lettered: %s", entry_id, reason[:200])


def dead_letter(entry_id: str, fields: Mapping[str, str], reason: str, consumer: str) -> Dict[str, str]:
    """The dead-letter stream's record of a refused entry: its fields, its id, why, and who refused it."""
    record = {f"entry.{key}": str(value)[:10_000] for key, value in fields.items()}
    record.update({"entry_id": entry_id, "reason": reason[:MAX_REASON_CHARS], "consumer": consumer})
    return record


def fields_of(fields: Union[Mapping[str, str], List[str]]) -> Mapping[str, str]:
    """An entry's fields as a mapping, whichever way they were read."""
    return dict(zip(fields[::2], fields[1::2])) if type(fields) is list else fields  # type: ignore[arg-type, return-value]


async def stream_batches(client: Any, stream: str, batch: int, last: str = "+", pairs: bool = False) -> AsyncIterator[List[Any]]:
    """The stream from its first entry to `last`, `batch` entries at a time (XRANGE, no group):
    `Entry`s, or with `pairs` `PairsEntry`s (no mapping made of each entry: a replay reads millions).

    The next batch is asked for before this one is handed over, so Redis reads it while the caller works."""
    if pairs:
        client = _as_sent(client)
    ahead: "Optional[asyncio.Future[List[Entry]]]" = asyncio.ensure_future(client.xrange(stream, min="-", max=last, count=batch))
    try:
        while ahead is not None:
            entries = await ahead
            ahead = None
            if not entries:
                return
            if len(entries) == batch:  # fewer: the range is done
                ahead = asyncio.ensure_future(client.xrange(stream, min=f"({entries[-1][0]}", max=last, count=batch))
                await asyncio.sleep(0)  # let it go out now
            yield entries
    finally:
        if ahead is not None:  # the caller stopped early
            ahead.add_done_callback(_retrieved)
            ahead.cancel()


def _as_sent(client: Any) -> Any:
    """A client on `client`'s connections whose XRANGE replies are as Redis sent them."""
    raw = redis.asyncio.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("XRANGE", lambda response, **options: response)
    return raw


def _retrieved(future: "asyncio.Future[Any]") -> None:
    """Read a dropped read-ahead's outcome, so a failure nobody waits for is not reported as lost."""
    if not future.cancelled():
        future.exception()


async def group_lag(client: Any, settings: ConsumerSettings = ConsumerSettings(), now: Optional[float] = None) -> Lag:
    """Entries the group has not acknowledged yet (unread plus pending) and how old the oldest one is."""
    now = time.time() if now is None else now
    groups = {g["name"]: g for g in await client.xinfo_groups(settings.stream)} if await client.exists(settings.stream) else {}
    group = groups.get(settings.group)
    dead = await client.xlen(settings.dead_letters)
    if group is None:
        total = await client.xlen(settings.stream)
        first = await client.xrange(settings.stream, count=1)
        return Lag(total, now - entry_time(first[0][0]) if first else 0.0, 0, dead)
    pending = int(group.get("pending") or 0)
    unread = group.get("lag")
    last = str(group.get("last-delivered-id") or "0-0")
    if unread is None:  # Redis could not tell (entries deleted): count from the last delivered id
        unread = len(await client.xrange(settings.stream, min=f"({last}", count=1_000_000))
    oldest: List[float] = []
    if pending:
        summary = await client.xpending(settings.stream, settings.group)
        if summary.get("min"):
            oldest.append(entry_time(str(summary["min"])))
    if unread:
        after = await client.xrange(settings.stream, min=f"({last}", count=1)
        if after:
            oldest.append(entry_time(after[0][0]))
    seconds = max(0.0, now - min(oldest)) if oldest else 0.0
    return Lag(int(unread) + pending, seconds, pending, dead)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
