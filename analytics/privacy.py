"""A customer's rights: everything held about them as one document, and erasing it from every store.

The customer record knows every place their data lives: the Rasa conversation (tracker) of
each id they had (merged customers included), their entries in the interaction log (under
those ids and under their channel identities, e.g. `whatsapp:<number>` for dropped messages),
the customer directory (profile, identities), the analytics record, facts, scores and stage
history, leaderboards and funnel sets, their ideas in the idea themes, the handover queue, the
CRM outbox and its dead letters, and pending one-time codes. `export` gathers all of it; `erase` removes all of it, then writes
`privacy_erased` to the log with counts and a salted hash of the id (never the data), and is
idempotent: a second erase finds nothing and says so.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, List, Set

from analytics.crm.outbox import DEAD as CRM_DEAD
from analytics.crm.outbox import JOB_PREFIX as CRM_JOB_PREFIX
from analytics.crm.outbox import OUTBOX as CRM_OUTBOX
from analytics.crm.outbox import QUEUED_PREFIX as CRM_QUEUED_PREFIX
from analytics.engagement.rules import DIMENSIONS
from analytics.funnel.rules import STAGES
from analytics.dashboards.projection import forget as forget_dashboards
from analytics.ideas.notify import forget_requester, requester_data
from analytics.ideas.themes import ITEMS as IDEA_ITEMS
from analytics.ideas.themes import THEMES as IDEA_THEMES
from analytics.ideas.themes import VECTORS as IDEA_VECTORS
from analytics.ideas.themes import VERSION as IDEA_VERSION
from analytics.records.store import (
    CO_CREATORS,
    CUSTOMERS,
    SALES_RAISED_PREFIX,
    facts_key,
    leaderboard_key,
    merged_key,
    refold_key,
    stage_key,
    state_key,
)
from analytics.schema import (
    EVENTS_STREAM,
    HANDOVER_QUEUE,
    KEY_PREFIX,
    SOURCE_STAFF,
    LogEvent,
    handover_request_key,
)
from analytics.stream.consumer import DEAD_LETTER_STREAM, stream_batches
from analytics.stream.pause import ReplayRunning, replay_state

TRACKER_PREFIX = KEY_PREFIX + "tracker:"  # Rasa's RedisTrackerStore with key_prefix "engage"
OTP_PREFIX = KEY_PREFIX + "otp:"
PRIVACY_ERASED = "privacy_erased"
SCAN_BATCH = 2000
# Erasures a customer asked for in the chat, due a little after their conversation (customer -> due time):
# erasing mid-turn would let Rasa store the conversation again when the turn ends.
ERASURES = KEY_PREFIX + "privacy:erasures"
ERASE_AFTER_SECONDS = 120


@dataclass
class Footprint:
    """Where a customer's data is: their ids, the identities they proved, the keys and log entries."""

    ids: Set[str] = field(default_factory=set)
    identities: List[str] = field(default_factory=list)
    keys: List[str] = field(default_factory=list)
    entries: Dict[str, List[str]] = field(default_factory=dict)  # stream -> entry ids
    ideas: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # event id -> their idea in the themes


async def footprint(client: Any, customer: str) -> Footprint:
    """Every id the customer had (merged ones too) and everything stored under them."""
    found = Footprint()
    pending = [customer]
    while pending:  # merged customers, and the customers merged into those
        current = pending.pop()
        if current in found.ids:
            continue
        found.ids.add(current)
        pending.extend(await client.smembers(f"{KEY_PREFIX}customer:{current}:merged"))
        into = await client.get(merged_key(current))
        if into and into not in found.ids:
            pending.append(into)
    for current in sorted(found.ids):
        found.identities.extend(await client.hkeys(f"{KEY_PREFIX}customer:{current}:identities"))
    channel_ids = {identity for identity in found.identities if identity.split(":", 1)[0] in ("whatsapp", "telegram")}
    names = found.ids | channel_ids
    for current in sorted(found.ids):
        candidates = [
            TRACKER_PREFIX + current, f"{KEY_PREFIX}customer:{current}", f"{KEY_PREFIX}customer:{current}:identities",
            f"{KEY_PREFIX}customer:{current}:merged", facts_key(current), state_key(current), merged_key(current), refold_key(current),
            handover_request_key(current), OTP_PREFIX + current, SALES_RAISED_PREFIX + current,
            *(CRM_JOB_PREFIX + f"{current}:{stage}" for stage in STAGES), *(CRM_QUEUED_PREFIX + f"{current}:{stage}" for stage in STAGES),
        ]
        for key in candidates:
            if await client.exists(key):
                found.keys.append(key)
        async for key in client.scan_iter(match=f"{OTP_PREFIX}proof:{current}:*", count=SCAN_BATCH):
            found.keys.append(key)
    found.keys.extend(f"{KEY_PREFIX}identity:{identity}" for identity in found.identities)
    for stream in (EVENTS_STREAM, DEAD_LETTER_STREAM):
        found.entries[stream] = [entry_id async for entry_id in _entries_of(client, stream, names)]
    async for event_id, raw in client.hscan_iter(IDEA_ITEMS, count=SCAN_BATCH):
        item = json.loads(raw)
        if item.get("customer") in found.ids:
            found.ideas[event_id] = item
    return found


async def _entries_of(client: Any, stream: str, names: Set[str]) -> Any:
    """Ids of the stream's entries about any of `names` (the whole stream is read: erasure is rare)."""
    async for batch in stream_batches(client, stream, SCAN_BATCH):
        for entry_id, fields in batch:
            if fields.get("conversation_id") in names or fields.get("entry.conversation_id") in names:
                yield entry_id


async def _forget_ideas(client: Any, ideas: Dict[str, Dict[str, Any]]) -> None:
    """Take the customer's ideas out of the themes (their words, their vectors' cache entries); the
    themes others asked for stay, with one requester fewer."""
    if not ideas:
        return
    themes = {item["theme"] for item in ideas.values()}
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(IDEA_THEMES)
        stored = {theme: await pipe.hget(IDEA_THEMES, theme) for theme in themes}
        pipe.multi()
        pipe.hdel(IDEA_ITEMS, *ideas)
        for theme, raw in stored.items():
            if raw:
                record = json.loads(raw)
                record["members"] = [m for m in record["members"] if m not in ideas]
                pipe.hset(IDEA_THEMES, theme, json.dumps(record, sort_keys=True))
        digests = [hashlib.sha256(str(item.get("text", "")).encode("utf-8")).hexdigest()[:32] for item in ideas.values()]
        async for cache in client.scan_iter(match=IDEA_VECTORS + "*", count=SCAN_BATCH):
            pipe.hdel(cache, *digests)
        pipe.incr(IDEA_VERSION)  # consumers reload what they keep in memory
        await pipe.execute()


async def export(client: Any, customer: str) -> Dict[str, Any]:
    """Everything held about the customer, as one JSON-able document."""
    found = await footprint(client, customer)
    document: Dict[str, Any] = {"customer_id": customer, "ids": sorted(found.ids), "identities": sorted(found.identities), "stores": {}}
    for key in found.keys:
        document["stores"][key] = await _read(client, key)
    document["handover_queue"] = {c: await client.zscore(HANDOVER_QUEUE, c) for c in sorted(found.ids) if await client.zscore(HANDOVER_QUEUE, c) is not None}
    document["ideas"] = [{k: v for k, v in item.items() if k != "vector"} for item in found.ideas.values()]
    document.update(await requester_data(client, sorted(found.ids)))
    document["crm_dead_letters"] = [json.loads(item) for item in await client.lrange(CRM_DEAD, 0, -1) if json.loads(item).get("job", "").split(":")[0] in found.ids]
    for stream, ids in found.entries.items():
        document[stream] = [dict(fields) for entry_id in ids for _, fields in await client.xrange(stream, min=entry_id, max=entry_id)]
    return document


async def _read(client: Any, key: str) -> Any:
    kind = await client.type(key)
    if kind == "string":
        value = await client.get(key)
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    if kind == "hash":
        return await client.hgetall(key)
    if kind == "set":
        return sorted(await client.smembers(key))
    if kind == "zset":
        return await client.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return await client.lrange(key, 0, -1)
    return None


async def erase(client: Any, customer: str, by: str, reason: str = "") -> Dict[str, Any]:
    """Remove the customer's data from every store; returns what was removed (counts only).
    Refused (ReplayRunning) while a replay runs: it would write back the records it holds."""
    if (await replay_state(client)).running:
        raise ReplayRunning("a replay is rebuilding the records and would write this customer's back; erase when it has finished")
    found = await footprint(client, customer)
    ids = sorted(found.ids)
    removed_entries = 0
    async with client.pipeline(transaction=True) as pipe:
        if found.keys:
            pipe.delete(*found.keys)
        for name in ids:
            pipe.zrem(CUSTOMERS, name)
            pipe.zrem(HANDOVER_QUEUE, name)
            pipe.zrem(CRM_OUTBOX, *(f"{name}:{stage}" for stage in STAGES))
            for board in (*DIMENSIONS, CO_CREATORS):
                pipe.zrem(leaderboard_key(board), name)
            for stage in STAGES:
                pipe.zrem(stage_key(stage), name)
        for stream, entry_ids in found.entries.items():
            if entry_ids:
                pipe.xdel(stream, *entry_ids)
                removed_entries += len(entry_ids)
        await pipe.execute()
    await _forget_ideas(client, found.ideas)
    await forget_dashboards(client, ids)
    requester_entries = await forget_requester(client, ids)
    dead = [item for item in await client.lrange(CRM_DEAD, 0, -1) if json.loads(item).get("job", "").split(":")[0] in found.ids]
    for item in dead:
        await client.lrem(CRM_DEAD, 0, item)
    salt = secrets.token_hex(8)
    summary = {
        "ideas": len(found.ideas),
        "idea_requester_entries": requester_entries,
        "customer_hash": hashlib.sha256(f"{salt}:{customer}".encode()).hexdigest()[:16],
        "ids": len(ids),
        "identities": len(found.identities),
        "keys": len(found.keys),
        "log_entries": removed_entries,
        "crm_dead_letters": len(dead),
        "by": by,
        "reason": reason,
    }
    # Not under the customer's id: a later erase of the same id must find nothing of them.
    await client.xadd(EVENTS_STREAM, LogEvent(PRIVACY_ERASED, "privacy", SOURCE_STAFF, data=summary).to_fields())
    return summary


async def schedule_erasure(client: Any, customer: str, now: float) -> bool:
    """Queue the customer's erasure (idempotent: a second request keeps the first due time)."""
    return bool(await client.zadd(ERASURES, {customer: now + ERASE_AFTER_SECONDS}, nx=True))


async def erase_due(client: Any, now: float) -> List[Dict[str, Any]]:
    """Carry out the erasures that are due. A request leaves the queue only once its erasure is
    done, so one that fails (Redis away) is tried again; erasing twice is harmless."""
    done: List[Dict[str, Any]] = []
    if (await replay_state(client)).running:
        return done  # after the replay
    for customer in await client.zrangebyscore(ERASURES, "-inf", now, start=0, num=20):
        done.append(await erase(client, customer, by="the customer, in the chat", reason="asked the assistant to delete their data"))
        await client.zrem(ERASURES, customer)
    return done

