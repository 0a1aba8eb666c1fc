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


def merged_key(customer_id: str) -> str:
    """Where a merged customer's record went (the customer kept), for events that still name it."""
    return f"{PREFIX}merged:{customer_id}"


def _customer_id(value: str) -> str:
    if not value or len(value) > MAX_CUSTOMER_ID or not value.isprintable():
        raise BadEvent(f"conversation_id is not a usable customer id: {value[:40]!r}")
    return value


async def _follow(pipe: Any, customer_id: str, limit: int = 32) -> str:
    """The customer an id now belongs to, through any chain of merges."""
    for _ in range(limit):
        into = await pipe.get(merged_key(customer_id))
        if into is None:
            return customer_id
        customer_id = into
    raise BadEvent(f"merge chain from {customer_id} is longer than {limit}")


def _forget(pipe: Any, customer_id: str, into: str) -> None:
    """A customer merged into another: its facts moved there; it leaves every index, its record says where it went."""
    pipe.delete(facts_key(customer_id))
    pipe.set(record_key(customer_id), canonical({"customer_id": customer_id, "merged_into": into}))
    pipe.set(merged_key(customer_id), into)
    pipe.zrem(CUSTOMERS, customer_id)
    for board in (*DIMENSIONS, CO_CREATORS):
        pipe.zrem(leaderboard_key(board), customer_id)
    for stage in STAGES:
        pipe.zrem(stage_key(stage), customer_id)


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
        customer = _customer_id(event.conversation_id)
        merged_from = [_customer_id(str(c)) for c in fact.get("merged_from", [])]
        member = canonical(fact)
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    # Watched before they are read: a merge that lands meanwhile makes this step retry.
                    await pipe.watch(merged_key(customer), *(merged_key(c) for c in merged_from))
                    target = await _follow(pipe, customer)
                    absorbed = [c for c in merged_from if c != target and await pipe.get(merged_key(c)) is None]
                    await pipe.watch(facts_key(target), *(facts_key(c) for c in absorbed))
                    stored = set(await pipe.zrange(facts_key(target), 0, -1))
                    for other in absorbed:
                        stored.update(await pipe.zrange(facts_key(other), 0, -1))
                    if member in stored and not absorbed and await pipe.exists(record_key(target)):
                        return  # applied before (a redelivery): nothing changes
                    stored.add(member)
                    folded = self.build(target, [json.loads(m) for m in stored])
                    pipe.multi()
                    if absorbed:
                        pipe.zunionstore(facts_key(target), [facts_key(target), *map(facts_key, absorbed)], aggregate="MIN")
                        for other in absorbed:
                            _forget(pipe, other, customer)  # the customer the merge named; facts go on to `target`
                    pipe.zadd(facts_key(target), {member: fact["t"]}, nx=True)
                    pipe.set(record_key(target), canonical(folded))
                    pipe.zadd(CUSTOMERS, {target: folded["last_seen"]})
                    _rank(pipe, target, folded["engagement"])
                    _place(pipe, target, folded["funnel"])
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # another consumer changed these customers meanwhile: fold again

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
