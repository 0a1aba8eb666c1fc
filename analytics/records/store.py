"""Customer records in Redis, kept by the analytics consumer (one key prefix: `engage:analytics:`).

`engage:analytics:facts:<customer>` is a sorted set of the customer's facts (scored by time,
each fact carrying its event id, so adding one twice is a no-op); `engage:analytics:record:<customer>`
the canonical JSON of the fold over them; `engage:analytics:customers` every customer by last seen.
A fact and the record it changes are written in one MULTI/EXEC, under WATCH of the facts, so
two consumers working on one customer never lose each other's work. In the same step the
customer's place on the leaderboards (`leaderboard:<dimension>`) and in the funnel
(`funnel:<stage>`, scored by when they entered it) is updated, and a sales handover the
funnel asks for is put on the handover queue, once ever (`engage:funnel:sales-raised:<customer>`
lives outside the derived keys, so a replay does not queue it again).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from redis.exceptions import WatchError

from analytics.engagement.rules import DIMENSIONS, Rules, load_rules
from analytics.engagement.score import contributions, engagement
from analytics.funnel.rules import STAGES, FunnelRules, load_funnel_rules
from analytics.funnel.stages import funnel
from analytics.records.facts import Fact, fact_of
from analytics.records.fold import canonical, fold, ordered
from analytics.schema import HANDOVER_QUEUE, KEY_PREFIX, LogEvent, handover_request_key
from analytics.stream.consumer import BadEvent

PREFIX = KEY_PREFIX + "analytics:"
CUSTOMERS = PREFIX + "customers"
CO_CREATORS = "co_creators"
MAX_CUSTOMER_ID = 128
SALES_RAISED_PREFIX = KEY_PREFIX + "funnel:sales-raised:"
SALES_TEAM = "sales"

# KEYS: raised marker, handover queue, request hash. ARGV: customer, requested_at, reason, team.
# Raise once ever; a conversation already waiting keeps its place (ZADD NX) and gets the reason.
_RAISE_SALES_HANDOVER = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
  redis.call('HSETNX', KEYS[3], 'requested_at', ARGV[2])
  redis.call('HSET', KEYS[3], 'reason', ARGV[3], 'team', ARGV[4])
  return 1
end
return 0
"""


def facts_key(customer_id: str) -> str:
    return f"{PREFIX}facts:{customer_id}"


def record_key(customer_id: str) -> str:
    return f"{PREFIX}record:{customer_id}"


def leaderboard_key(board: str) -> str:
    """One sorted set per dimension (and `co_creators`), scored in log space (see analytics.engagement.score)."""
    return f"{PREFIX}leaderboard:{board}"


def stage_key(stage: str) -> str:
    return f"{PREFIX}funnel:{stage}"


def _place(pipe: Any, customer_id: str, stages: Dict[str, Any]) -> None:
    entered = stages["history"][-1]["at"] if stages["history"] else 0.0
    for stage in STAGES:
        if stage == stages["stage"]:
            pipe.zadd(stage_key(stage), {customer_id: entered})
        else:
            pipe.zrem(stage_key(stage), customer_id)
    sales = stages["sales_handover"]
    if sales is not None:
        pipe.eval(
            _RAISE_SALES_HANDOVER, 3, SALES_RAISED_PREFIX + customer_id, HANDOVER_QUEUE, handover_request_key(customer_id),
            customer_id, repr(sales["at"]), sales["reason"], SALES_TEAM,
        )


def _rank(pipe: Any, customer_id: str, scores: Dict[str, Any]) -> None:
    boards = {dimension: scores["dimensions"][dimension]["log_score"] for dimension in DIMENSIONS}
    boards[CO_CREATORS] = scores["co_creation"]
    for board, log in boards.items():
        if log is None:
            pipe.zrem(leaderboard_key(board), customer_id)
        else:
            pipe.zadd(leaderboard_key(board), {customer_id: log})


class RecordStore:
    """The customer-record projection. `client` must decode responses."""

    name = "records"

    def __init__(self, client: Any, rules: Optional[Rules] = None, funnel_rules: Optional[FunnelRules] = None) -> None:
        self.client = client
        self.rules = rules or load_rules()
        self.funnel_rules = funnel_rules or load_funnel_rules()

    def build(self, customer_id: str, facts: List[Fact]) -> Dict[str, Any]:
        """The customer's record: the fold over their facts, with their engagement scores and funnel stage."""
        in_order = ordered(facts)
        record = fold(customer_id, in_order)
        found = contributions(in_order, self.rules)
        record["engagement"] = engagement(found, self.rules, record["last_seen"])
        record["funnel"] = funnel(in_order, self.funnel_rules, found, self.rules.half_life_seconds)
        return record

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
                    folded = self.build(customer, [json.loads(m) for m in members])
                    pipe.multi()
                    pipe.zadd(facts, {member: fact["t"]}, nx=True)
                    pipe.set(record, canonical(folded))
                    pipe.zadd(CUSTOMERS, {customer: folded["last_seen"]})
                    _rank(pipe, customer, folded["engagement"])
                    _place(pipe, customer, folded["funnel"])
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # another consumer changed this customer's facts: fold again

    async def record(self, customer_id: str) -> Optional[Dict[str, Any]]:
        raw = await self.client.get(record_key(customer_id))
        return json.loads(raw) if raw else None

    async def leaders(self, board: str, limit: int = 10) -> List[Tuple[str, float]]:
        """The top customers of a dimension (or `co_creators`) with their log-space scores."""
        return [(name, float(score)) for name, score in await self.client.zrevrange(leaderboard_key(board), 0, limit - 1, withscores=True)]

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
