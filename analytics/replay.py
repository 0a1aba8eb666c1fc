"""Rebuild every derived structure from the interaction log, from the first entry.

The consumer group is recreated at the start of the log (its pending entries and the
dead-letter stream go too: both are rebuilt), the projections drop their state, and this
process drains the group with a progress bar. A service that keeps running meanwhile simply
helps: effects are idempotent per event and folds do not depend on arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

from tqdm import tqdm

from analytics.stream.consumer import ConsumerSettings, Projection, StreamConsumer

REPLAY_BATCH = 20000


@dataclass(frozen=True)
class ReplayResult:
    entries: int
    applied: int
    dead_lettered: int


async def replay(
    client: Any, projections: Sequence[Projection], settings: ConsumerSettings = ConsumerSettings(), progress: Optional[bool] = None
) -> ReplayResult:
    total = await client.xlen(settings.stream)
    if await _has_group(client, settings):
        await client.xgroup_destroy(settings.stream, settings.group)
    await client.unlink(settings.dead_letters)
    for projection in projections:
        await projection.reset()
    # Big batches: each customer is read and written once per batch, so fewer batches mean less work.
    consumer = StreamConsumer(client, projections, replace(settings, consumer="replay", claim_idle_ms=0, batch=REPLAY_BATCH))
    await consumer.ensure_group()
    handled = 0
    with tqdm(total=total, unit="event", desc="replaying engage:events", disable=progress is False) as bar:
        while True:
            done = await consumer.step(block=False)
            if not done:
                break
            handled += done
            bar.update(done)
    return ReplayResult(handled, consumer.applied, consumer.dead_lettered)


async def _has_group(client: Any, settings: ConsumerSettings) -> bool:
    if not await client.exists(settings.stream):
        return False
    return any(group["name"] == settings.group for group in await client.xinfo_groups(settings.stream))
