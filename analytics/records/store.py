"""Customer records in Redis, kept by the analytics consumer (one key prefix: `engage:analytics:`).

`engage:analytics:facts:<customer>` is a sorted set of the customer's facts (scored by time,
each fact carrying its event id, so adding one twice is a no-op); `engage:analytics:record:<customer>`
the canonical JSON of the fold over them; `engage:analytics:customers` every customer by last seen.
A fact and the record it changes are written in one MULTI/EXEC, under WATCH of the facts, so
two consumers working on one customer never lose each other's work.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from redis.exceptions import WatchError

from analytics.records.facts import fact_of
from analytics.records.fold import canonical, fold
from analytics.schema import KEY_PREFIX, LogEvent
from analytics.stream.consumer import BadEvent

PREFIX = KEY_PREFIX + "analytics:"
CUSTOMERS = PREFIX + "customers"
MAX_CUSTOMER_ID = 128


def facts_key(customer_id: str) -> str:
    return f"{PREFIX}facts:{customer_id}"


def record_key(customer_id: str) -> str:
    return f"{PREFIX}record:{customer_id}"


class RecordStore:
    """The customer-record projection. `client` must decode responses."""

    name = "records"

    def __init__(self, client: Any) -> None:
        self.client = client

    async def apply(self, entry_id: str, event: LogEvent) -> None:
        fact = fact_of(event)
        if fact is None:
            return
        customer = event.conversation_id
        if not customer or len(customer) > MAX_CUSTOMER_ID or not customer.isprintable():
            raise BadEvent(f"conversation_id is not a usable customer id: {customer[:40]!r}")
        member = canonical(fact)
        facts, record = facts_key(customer), record_key(customer)
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(facts)
                    stored = await pipe.zrange(facts, 0, -1)
                    if member in stored and await pipe.exists(record):
                        return  # applied before (a redelivery): nothing changes
                    members = stored if member in stored else [*stored, member]
                    folded = fold(customer, [json.loads(m) for m in members])
                    pipe.multi()
                    pipe.zadd(facts, {member: fact["t"]}, nx=True)
                    pipe.set(record, canonical(folded))
                    pipe.zadd(CUSTOMERS, {customer: folded["last_seen"]})
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # another consumer changed this customer's facts: fold again

    async def record(self, customer_id: str) -> Optional[Dict[str, Any]]:
        raw = await self.client.get(record_key(customer_id))
        return json.loads(raw) if raw else None

    async def customers(self, limit: int = 100) -> List[str]:
        """Most recently seen first."""
        return list(await self.client.zrevrange(CUSTOMERS, 0, limit - 1))

    async def reset(self) -> None:
        await delete_prefix(self.client, PREFIX)


async def delete_prefix(client: Any, prefix: str, batch: int = 1000) -> int:
    """Remove every key under `prefix` (SCAN + UNLINK, never KEYS); returns how many."""
    removed = 0
    keys: List[str] = []
    async for key in client.scan_iter(match=prefix + "*", count=batch):
        keys.append(key)
        if len(keys) >= batch:
            removed += await client.unlink(*keys)
            keys = []
    if keys:
        removed += await client.unlink(*keys)
    return removed
