"""Full re-clustering of a space of themes with the ids kept: each new cluster takes the id of the
old theme it shares the most members with, so a theme's status and history survive.

`match_ids` is pure. The themes projection applies a `themes_reclustered` event (written by
`ideas recluster`, or by the service on its schedule) through `recluster_space`, so a replay of
the log re-clusters at the same point and ends with the same ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

import numpy as np

from analytics.ideas.cluster import UNCLUSTERED, ClusterSettings, cluster_vectors

RECLUSTERS = "engage:ideas:reclusters"  # hash event id -> JSON summary of what the re-clustering did
SCHEDULED = RECLUSTERS + ":scheduled"  # hash space -> JSON {at, version}: the last scheduled request


@dataclass
class Matching:
    ids: List[str]  # the theme id of each new cluster
    fresh: List[str] = field(default_factory=list)  # ids given to clusters that match no old theme
    retired: Dict[str, Optional[str]] = field(default_factory=dict)  # old id -> the id that took most of its members


def match_ids(old_of: Mapping[str, str], clusters: Sequence[Sequence[str]], fresh: Callable[[], str]) -> Matching:
    """Give each new cluster (a list of member ids) a theme id.

    Pairs (new cluster, old theme) are taken by the number of members they share, most first
    (ties: the earlier cluster, then the older id), each side used once: a theme that split keeps
    its id on its larger part, two themes that merged leave the id of the one that brought more
    members. Clusters sharing no member with an unused old theme get fresh ids, in order.
    """
    overlap: Counter = Counter((index, old_of[member]) for index, members in enumerate(clusters) for member in members if member in old_of)
    ranked = sorted(overlap.items(), key=lambda pair: (-pair[1], pair[0][0], _id_order(pair[0][1])))
    ids: List[Optional[str]] = [None] * len(clusters)
    used = set()
    for (index, old), _ in ranked:
        if ids[index] is None and old not in used:
            ids[index] = old
            used.add(old)
    matching = Matching([])
    for index in range(len(clusters)):
        if ids[index] is None:
            ids[index] = fresh()
            matching.fresh.append(ids[index])  # type: ignore[arg-type]
    matching.ids = [ident for ident in ids if ident is not None]
    for old in sorted(set(old_of.values()) - used, key=_id_order):
        best = max(((count, -index) for (index, theme), count in overlap.items() if theme == old), default=None)
        matching.retired[old] = matching.ids[-best[1]] if best else None
    return matching


def _id_order(ident: str) -> Tuple[str, int]:
    prefix, _, number = ident.rpartition("-")
    return (prefix, int(number)) if number.isdigit() else (ident, 0)


def regroup(ids: Sequence[str], vectors: np.ndarray, settings: ClusterSettings) -> List[List[str]]:
    """New clusters of the items (every item in one: what the clustering leaves alone is a theme of one)."""
    if not len(ids):
        return []
    labels = cluster_vectors(vectors, replace(settings, min_theme_size=1))
    clusters: Dict[int, List[str]] = {}
    singles: List[List[str]] = []
    for ident, label in zip(ids, labels.tolist()):
        if label == UNCLUSTERED:
            singles.append([ident])
        else:
            clusters.setdefault(label, []).append(ident)
    return [clusters[label] for label in sorted(clusters)] + singles


def due(last: Optional[Mapping[str, Any]], now: float, every_hours: float, version: int) -> bool:
    """A scheduled re-clustering is due: the schedule is on, the period has passed since the last
    request, and the themes changed since (their version moved)."""
    if every_hours <= 0 or last is None:  # a service's first look starts the period
        return False
    return now - float(last["at"]) >= every_hours * 3600.0 and version != int(last["version"])


async def request_due(client: Any, now: float, every_hours: float, spaces: Sequence[str]) -> List[str]:
    """Log a `themes_reclustered` request for each space that is due; once across several
    services (the check and the request are one WATCHed transaction). The spaces requested."""
    from redis.exceptions import WatchError

    from analytics.ideas.themes import VERSION
    from analytics.schema import EVENTS_STREAM, SOURCE_ANALYTICS, THEMES_RECLUSTERED, LogEvent

    requested = []
    for space in spaces:
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(SCHEDULED, VERSION)
                raw = await pipe.hget(SCHEDULED, space)
                version = int(await pipe.get(VERSION) or 0)
                if raw is None and every_hours > 0:
                    pipe.multi()
                    pipe.hset(SCHEDULED, space, json.dumps({"at": now, "version": version}))
                    await pipe.execute()
                    continue
                if not due(json.loads(raw) if raw else None, now, every_hours, version):
                    continue
                event = LogEvent(THEMES_RECLUSTERED, f"themes:{space}", SOURCE_ANALYTICS, "", now, data={"space": space, "by": "schedule"})
                pipe.multi()
                pipe.xadd(EVENTS_STREAM, event.to_fields())
                pipe.hset(SCHEDULED, space, json.dumps({"at": now, "version": version}))
                await pipe.execute()
                requested.append(space)
            except WatchError:
                continue  # another service looked at the same time; the next round decides again
    return requested


async def run_schedule(client: Any, every_hours: float, stop: asyncio.Event, interval: float = 60.0) -> None:
    """The analytics service's loop: request the re-clusterings that are due (see `due`)."""
    import logging

    from analytics.ideas.themes import SPACES

    log = logging.getLogger(__name__)
    while not stop.is_set() and every_hours > 0:
        try:
            for space in await request_due(client, time.time(), every_hours, list(SPACES)):
                log.info("idea themes: a scheduled re-clustering of the %s themes was requested", space)
        except Exception:  # noqa: BLE001 - tried again next round
            log.exception("idea themes: the re-clustering schedule failed this round")
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def request(client: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`ideas recluster`: log the request; wait for the analytics service's summary."""
    from analytics.customers_cli import login_name
    from analytics.schema import EVENTS_STREAM, SOURCE_STAFF, THEMES_RECLUSTERED, LogEvent

    event = LogEvent(THEMES_RECLUSTERED, f"themes:{args.space}", SOURCE_STAFF, data={"space": args.space, "by": args.by or login_name()})
    await client.xadd(EVENTS_STREAM, event.to_fields())
    print(f"re-clustering of the {args.space} themes requested (event {event.event_id})", file=out)
    if args.wait <= 0:
        return 0
    from tqdm import tqdm

    deadline = time.monotonic() + args.wait
    with tqdm(total=int(args.wait), desc="waiting for the analytics service", unit="s", file=err, leave=False) as bar:
        while time.monotonic() < deadline:
            raw = await client.hget(RECLUSTERS, event.event_id)
            if raw:
                summary = json.loads(raw)
                bar.close()
                print(describe(summary), file=out)
                return 0
            await asyncio.sleep(1.0)
            bar.update(1)
    print(f"error: no result within {args.wait:g} s; is the analytics service running (`python -m analytics lag`)? "
          "The request stays in the log and is applied when it catches up.", file=err)
    return 2


def describe(summary: Mapping[str, Any]) -> str:
    lines = [f"re-clustered {summary['items']} items of the {summary['space']} themes in {summary['seconds']:.1f} s: "
             f"{summary['themes_before']} themes before, {summary['themes_after']} after; {summary['kept']} ids kept, "
             f"{len(summary['new'])} new, {len(summary['retired'])} retired; {summary['moved']} items changed theme"]
    for old, into in sorted(summary["retired"].items()):
        lines.append(f"  {old} -> {into or '(its members are gone)'}")
    return "\n".join(lines)
