"""Rebuild every derived structure from the interaction log, from the first entry.

The replay takes the replay lease (analytics.stream.pause): live consumers finish the batch they
are applying and then wait. It notes where the log ends, restarts the consumer group just after
that entry (the consumers go on from there when it is done), drops the projections' state and the
dead-letter stream (both are rebuilt), and reads the log up to that entry with XRANGE in big
batches, with a progress bar. A projection that offers a `replay_fold()` folds in memory and writes
once at the end (the customer records do); the others apply batch after batch as the consumers
would. If the replay dies, the consumers stay paused until a replay finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

from analytics.schema import LogEvent
from analytics.stream.consumer import (
    DEAD_LETTER_MAX,
    ConsumerSettings,
    Projection,
    ReplayFold,
    apply_in_turn,
    dead_letter,
    fields_of,
    log_refused,
    parse_entries,
    stream_batches,
)
from analytics.stream.pause import ReplayLease

REPLAY_BATCH = 20000
REPLAY_CONSUMER = "replay"


@dataclass(frozen=True)
class ReplayResult:
    entries: int
    applied: int
    dead_lettered: int


class _BatchByBatch:
    """A projection without a replay fold of its own: applied batch after batch, nothing to finish."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.name = projection.name

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
        return await self.projection.apply_batch(entries)

    async def finish(self) -> None:
        return None


def replay_fold(projection: Projection) -> ReplayFold:
    make = getattr(projection, "replay_fold", None)
    return make() if make is not None else _BatchByBatch(projection)


async def replay(
    client: Any, projections: Sequence[Projection], settings: ConsumerSettings = ConsumerSettings(), progress: Optional[bool] = None,
    batch: int = REPLAY_BATCH,
) -> ReplayResult:
    lease = ReplayLease(client)
    await lease.acquire()
    try:
        with _rare_collections():
            result = await _rebuild(client, projections, settings, lease, progress, batch)
    except BaseException:
        with contextlib.suppress(Exception):
            await lease.abandon()
        raise
    await lease.release()
    return result


async def _rebuild(
    client: Any, projections: Sequence[Projection], settings: ConsumerSettings, lease: ReplayLease, progress: Optional[bool], batch: int
) -> ReplayResult:
    last, added = await _log_end(client, settings.stream)
    # The consumers go on after the last entry this replay folds; what they had pending goes (the
    # replay folds it). One step, so a consumer never finds the group missing.
    async with client.pipeline(transaction=True) as pipe:
        if last is not None or await client.exists(settings.stream):
            pipe.xgroup_destroy(settings.stream, settings.group)
        pipe.xgroup_create(settings.stream, settings.group, id=last or "0", mkstream=True, entries_read=added)
        await pipe.execute()
    await client.unlink(settings.dead_letters)
    for projection in projections:
        await projection.reset()
    folds = [replay_fold(projection) for projection in projections]
    handled = applied = dead = 0
    if last:
        total = await client.xlen(settings.stream)
        # The first projection (the records) folds each batch while the others finish the one before:
        # what one waits on Redis for, the other computes. Each still gets every batch in order, less
        # what the ones before it refused, as the consumers do; none of the later ones reads what the
        # first writes before `finish` (the dashboards count the funnel there).
        rest: "Optional[asyncio.Future[Tuple[int, int]]]" = None
        try:
            with tqdm(total=total, unit="event", desc="replaying engage:events", disable=progress is False) as bar:
                async for entries in stream_batches(client, settings.stream, batch, last=last, pairs=True):
                    parsed, bad = parse_entries(entries)
                    unread = {entry_id: fields for entry_id, fields in entries if entry_id in bad} if bad else {}
                    handled += len(entries)
                    bar.update(len(entries))
                    # The entries as read go now, not when the batch is done: three batches are in
                    # flight (this one, the one before, the one read ahead), and the most the
                    # process ever held stays with it (Python's allocator keeps what it took).
                    del entries
                    good = await apply_in_turn(folds[:1], parsed, bad)
                    if rest is not None:
                        applied, dead = _add((applied, dead), await rest)
                    rest = asyncio.ensure_future(_finish_batch(client, settings, folds[1:], parsed, good, bad, unread))
                    await lease.refresh()
                if rest is not None:
                    applied, dead = _add((applied, dead), await rest)
                    rest = None
        finally:
            if rest is not None:
                rest.cancel()
    for fold in folds:
        await fold.finish()
        await lease.refresh()
    return ReplayResult(handled, applied, dead)


async def _finish_batch(
    client: Any, settings: ConsumerSettings, folds: Sequence[ReplayFold], parsed: List[Tuple[str, LogEvent]], good: List[Tuple[str, LogEvent]],
    bad: Dict[str, str], unread: Dict[str, List[str]],
) -> Tuple[int, int]:
    """The batch's turn with the projections after the first (`good`: what the first applied), then
    its dead letters: (applied, dead-lettered). `parsed`: the batch's events; `unread`: the fields of
    its entries that are none."""
    good = await apply_in_turn(folds, good, bad)
    log_refused(bad)
    if bad:
        await _dead_letters(client, settings, parsed, bad, unread)
    return len(good), len(bad)


def _add(counts: Tuple[int, int], more: Tuple[int, int]) -> Tuple[int, int]:
    return counts[0] + more[0], counts[1] + more[1]


async def _dead_letters(
    client: Any, settings: ConsumerSettings, parsed: List[Tuple[str, LogEvent]], bad: Dict[str, str], unread: Dict[str, List[str]]
) -> None:
    """`bad` to the dead-letter stream: an entry that is no event with its fields as read, an event
    a projection refused with its fields as the event writes them (as every entry Engage writes)."""
    events = {entry_id: event for entry_id, event in parsed if entry_id in bad}
    async with client.pipeline(transaction=False) as pipe:
        for entry_id, reason in bad.items():
            fields = fields_of(unread[entry_id]) if entry_id in unread else events[entry_id].to_fields()
            record = dead_letter(entry_id, fields, reason, REPLAY_CONSUMER)
            pipe.xadd(settings.dead_letters, record, maxlen=DEAD_LETTER_MAX, approximate=True)
        await pipe.execute()


@contextlib.contextmanager
def _rare_collections() -> Iterator[None]:
    """A replay makes millions of short-lived objects and keeps each batch alive while it is folded; the
    cyclic collector would walk that batch again and again (a third of the replay's time). Reference
    counting frees nearly everything, so collect rarely meanwhile, and leave what existed before alone."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _log_end(client: Any, stream: str) -> Tuple[Optional[str], int]:
    """The id of the log's last entry (None when empty) and how many entries were ever added, read together."""
    if not await client.exists(stream):
        return None, 0
    info = await client.xinfo_stream(stream)
    last = info.get("last-entry")
    return (last[0] if last else None), int(info.get("entries-added") or 0)
