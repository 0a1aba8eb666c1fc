"""Customer records in Redis, kept by the analytics consumer (one key prefix: `engage:analytics:`).

Per customer: `facts:<id>` (hash: event id -> fact, so a redelivered event is seen as one)
and `state:<id>` (canonical JSON of everything the fold keeps: the record, scores, stage, the
last fact's place in the log; `record()` reads the customer's record from it). A merged
customer has `merged:<id>` instead, naming the customer the merge kept. Indexes:
`customers` (by last seen), `leaderboard:<dimension>` and `leaderboard:co_creators` (log-space
scores), `funnel:<stage>` (by when they entered it).

A batch of entries is applied per customer in one MULTI/EXEC under WATCH of the customers'
state, so two consumers never lose each other's work: a conflict re-reads and folds again.
A fact that comes after the customer's last one in the log is folded onto the stored state;
one that comes earlier (a take-over, a second consumer) rebuilds that customer from their
facts, so arrival order never changes the result. A sales handover the funnel asks for is
put on the handover queue once ever (`engage:funnel:sales-raised:<id>` lives outside the
derived keys, so a replay does not queue it again).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from redis.exceptions import WatchError

from analytics.crm.outbox import queue_handoff
from analytics.engagement.rules import DIMENSIONS, Rules, load_rules
from analytics.funnel.rules import STAGES, FunnelRules, load_funnel_rules
from analytics.records.facts import Fact, fact_of
from analytics.records.fold import CustomerState, canonical, ordered, parse
from analytics.schema import CUSTOMERS_MERGED, HANDOVER_QUEUE, KEY_PREFIX, LogEvent, handover_request_key
from analytics.stream.consumer import BadEvent

if TYPE_CHECKING:
    from analytics.records.replay import RecordReplay

PREFIX = KEY_PREFIX + "analytics:"
CUSTOMERS = PREFIX + "customers"
CO_CREATORS = "co_creators"
MAX_CUSTOMER_ID = 128
MAX_MERGE_CHAIN = 32
FOLD_CHUNK = 2_000  # stored facts read at a time by `rebuild_stored`
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


def state_key(customer_id: str) -> str:
    return f"{PREFIX}state:{customer_id}"


def refold_key(customer_id: str) -> str:
    """The customer's facts in log order, for the while `RecordStore.rebuild_stored` reads them."""
    return f"{PREFIX}refold:{customer_id}"


def merged_key(customer_id: str) -> str:
    """Where a merged customer went (the customer the merge kept), for events that still name it."""
    return f"{PREFIX}merged:{customer_id}"


def leaderboard_key(board: str) -> str:
    """One sorted set per dimension (and `co_creators`), scored in log space (see analytics.engagement.score)."""
    return f"{PREFIX}leaderboard:{board}"


def stage_key(stage: str) -> str:
    return f"{PREFIX}funnel:{stage}"


def _customer_id(value: str) -> str:
    if not value or len(value) > MAX_CUSTOMER_ID or not value.isprintable():
        raise BadEvent(f"conversation_id is not a usable customer id: {value[:40]!r}")
    return value


def _indexed(state: CustomerState) -> Dict[str, Any]:
    """What the indexes hold for a customer: leaderboard scores, funnel stage, whether sales was asked."""
    boards: Dict[str, Optional[float]] = dict(state.engagement.log_scores())
    boards[CO_CREATORS] = state.engagement.co_creation(boards)
    return {"boards": boards, "stage": STAGES[state.funnel.stage], "sales": state.funnel.sales is not None}


# What the indexes hold for a customer who has no state yet: nothing.
_NOT_INDEXED: Dict[str, Any] = {"boards": {board: None for board in (*DIMENSIONS, CO_CREATORS)}, "stage": None, "sales": False}


class _Writes:
    """The writes of one transaction, gathered by key, so a batch of many customers costs a handful
    of commands (one MSET of states, one ZADD per index) beside one HSET of facts per customer.
    Indexes change only where the value differs from `before`; `before` None (a merge) rewrites them all."""

    def __init__(self, crm_stages: frozenset) -> None:
        self.crm_stages = crm_stages
        self.facts: Dict[str, Dict[str, str]] = {}
        self.states: Dict[str, str] = {}
        self.last_seen: Dict[str, float] = {}
        self.added: Dict[str, Dict[str, float]] = defaultdict(dict)  # index key -> member -> score
        self.removed: Dict[str, List[str]] = defaultdict(list)  # index key -> members
        self.handoffs: List[Tuple[str, str, float]] = []
        self.sales: List[Tuple[str, Dict[str, Any]]] = []

    def __bool__(self) -> bool:
        return bool(self.states)

    def add(self, customer: str, state: CustomerState, new_facts: Dict[str, str], before: Optional[Dict[str, Any]]) -> None:
        if new_facts:
            self.facts[customer] = new_facts
        self.states[customer] = canonical(state.to_json())
        self.last_seen[customer] = state.record["last_seen"]
        after = _indexed(state)
        for board in (*DIMENSIONS, CO_CREATORS):
            log = after["boards"][board]
            if before is not None and before["boards"][board] == log:
                continue
            if log is None:
                self.removed[leaderboard_key(board)].append(customer)
            else:
                self.added[leaderboard_key(board)][customer] = log
        if before is None or before["stage"] != after["stage"]:
            entered = state.funnel.history[-1]["at"]
            if after["stage"] in self.crm_stages:
                self.handoffs.append((customer, after["stage"], entered))
            self.added[stage_key(after["stage"])][customer] = entered
            left = [stage for stage in STAGES if stage != after["stage"]] if before is None else [before["stage"]] if before["stage"] else []
            for stage in left:
                self.removed[stage_key(stage)].append(customer)
        if state.funnel.sales is not None and (before is None or not before["sales"]):
            self.sales.append((customer, state.funnel.sales))

    def flush(self, pipe: Any) -> None:
        for customer, new_facts in self.facts.items():
            pipe.hset(facts_key(customer), mapping=new_facts)
        pipe.mset({state_key(customer): state for customer, state in self.states.items()})
        pipe.zadd(CUSTOMERS, self.last_seen)
        for key, members in sorted(self.removed.items()):
            pipe.zrem(key, *members)
        for key, scores in sorted(self.added.items()):
            pipe.zadd(key, scores)
        for customer, stage, entered in self.handoffs:
            queue_handoff(pipe, customer, stage, entered)
        for customer, sales in self.sales:
            pipe.eval(
                _RAISE_SALES_HANDOVER, 3, SALES_RAISED_PREFIX + customer, HANDOVER_QUEUE, handover_request_key(customer),
                customer, repr(sales["at"]), sales["reason"], SALES_TEAM,
            )


@dataclass(slots=True)
class _Item:
    entry_id: str
    customer: str
    fact: Fact
    merged_from: List[str] = field(default_factory=list)


def segments(entries: Sequence[Tuple[str, LogEvent]], rejected: Dict[str, str]) -> Iterator[Tuple[List[_Item], Optional[_Item]]]:
    """The entries' facts in runs that end at each merge: (the run, the merge after it or None).
    Entries that cannot be used go to `rejected` with the reason; those with no fact are skipped."""
    segment: List[_Item] = []
    for entry_id, event in entries:
        try:
            fact = fact_of(event, entry_id)
            if fact is None:
                continue
            item = _Item(entry_id, _customer_id(event.conversation_id), fact)
            if event.type == CUSTOMERS_MERGED:
                item.merged_from = [_customer_id(c) for c in fact["merged_from"]]
        except (BadEvent, TypeError, ValueError) as exc:
            rejected[entry_id] = str(exc)
            continue
        if event.type == CUSTOMERS_MERGED:
            yield segment, item
            segment = []
        else:
            segment.append(item)
    yield segment, None


class RecordStore:
    """The customer-record projection. `client` must decode responses."""

    name = "records"

    def __init__(
        self, client: Any, rules: Optional[Rules] = None, funnel_rules: Optional[FunnelRules] = None, crm_stages: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.rules = rules or load_rules()
        self.funnel_rules = funnel_rules or load_funnel_rules()
        self.crm_stages = frozenset(crm_stages)  # entering one of these queues a CRM hand-off

    def new_state(self, customer_id: str, data: Optional[Dict[str, Any]] = None) -> CustomerState:
        return CustomerState(customer_id, self.rules, self.funnel_rules, data)

    def rebuild(self, customer_id: str, facts: Iterable[Fact], stored: Optional[Dict[str, str]] = None) -> CustomerState:
        """The customer folded again from the start: `facts`, and the `stored` ones (event id -> fact as
        the facts hash holds it) that `facts` does not replace. A stored fact is parsed to find its place
        and again to be folded, so they are never all held parsed at once: a long history is tens of
        thousands of facts, and a merge into it would otherwise hold them all twice over."""
        places: List[Tuple[str, str, Any]] = [(fact.get("o", ""), fact.get("id", ""), fact) for fact in facts]
        given = {fact_id for _, fact_id, _ in places}
        for fact_id, raw in (stored or {}).items():
            if fact_id not in given:
                places.append((parse(raw).get("o", ""), fact_id, raw))
        places.sort(key=lambda place: place[:2])  # `ordered`'s order
        state = self.new_state(customer_id)
        for _, _, fact in places:
            state.apply(parse(fact) if isinstance(fact, str) else fact)
        return state

    async def rebuild_stored(self, customer_id: str, chunk: int = FOLD_CHUNK) -> CustomerState:
        """`rebuild` from the stored facts alone, holding `chunk` of them at a time however long the
        history: each fact's place in the log goes into a sorted set in Redis (HSCAN a page, ZADD its
        places), then the facts are read in that order a page at a time (ZRANGE, HMGET). A replay's
        finish folds the busiest customers again so, and their histories run to hundreds of thousands."""
        key, places = facts_key(customer_id), refold_key(customer_id)
        await self.client.unlink(places)  # what a replay that died here left
        try:
            cursor = None
            while cursor != 0:
                cursor, page = await self.client.hscan(key, cursor or 0, count=chunk)
                if page:  # members sort as `ordered` does: by place in the log, then event id
                    await self.client.zadd(places, {f"{parse(raw).get('o', '')}\0{fact_id}": 0 for fact_id, raw in page.items()})
            state, start = self.new_state(customer_id), 0
            while members := await self.client.zrange(places, start, start + chunk - 1):
                for raw in await self.client.hmget(key, [member.partition("\0")[2] for member in members]):
                    state.apply(parse(raw))
                start += chunk
            return state
        finally:
            await self.client.unlink(places)

    async def apply(self, entry_id: str, event: LogEvent) -> None:
        rejected = await self.apply_batch([(entry_id, event)])
        if rejected:
            raise BadEvent(rejected[entry_id])

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
        """Apply entries (in log order); returns the ones refused as bad data, with the reason."""
        rejected: Dict[str, str] = {}
        for segment, merge in segments(entries, rejected):
            await self._apply_segment(segment)
            if merge is not None:
                await self._merge(merge)
        return rejected

    def replay_fold(self) -> "RecordReplay":
        from analytics.records.replay import RecordReplay  # it builds on this module

        return RecordReplay(self)

    async def _follow(self, customers: Iterable[str]) -> Dict[str, str]:
        """The customer each id now belongs to, through any chain of merges (one MGET per link)."""
        targets = {c: c for c in customers}
        pending = list(targets)
        for _ in range(MAX_MERGE_CHAIN):
            if not pending:
                return targets
            found = await self.client.mget([merged_key(targets[customer]) for customer in pending])
            still = []
            for customer, into in zip(pending, found):
                if into is not None:
                    targets[customer] = into
                    still.append(customer)
            pending = still
        raise BadEvent(f"a merge chain is longer than {MAX_MERGE_CHAIN}")

    async def _apply_segment(self, items: List[_Item]) -> None:
        if not items:
            return
        named = sorted({item.customer for item in items})
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    # Watched before anything is read: a change meanwhile makes EXEC fail and this retry.
                    await pipe.watch(*map(merged_key, named))
                    targets = await self._follow(named)
                    customers = sorted(set(targets.values()))
                    await pipe.watch(*map(state_key, customers))
                    by_customer: Dict[str, List[_Item]] = defaultdict(list)
                    for item in items:
                        by_customer[targets[item.customer]].append(item)
                    async with self.client.pipeline(transaction=False) as reads:
                        reads.mget([state_key(customer) for customer in customers])
                        for customer in customers:
                            reads.hmget(facts_key(customer), [item.fact["id"] for item in by_customer[customer]])
                        answers = await reads.execute()
                    writes = _Writes(self.crm_stages)
                    for customer, raw_state, known in zip(customers, answers[0], answers[1:]):
                        update = await self._fold_in(customer, raw_state, by_customer[customer], known)
                        if update is not None:
                            writes.add(customer, *update)
                    if not writes:
                        await pipe.reset()
                        return
                    pipe.multi()
                    writes.flush(pipe)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def _fold_in(
        self, customer: str, raw_state: Optional[str], items: List[_Item], known: List[Optional[str]]
    ) -> Optional[Tuple[CustomerState, Dict[str, str], Optional[Dict[str, Any]]]]:
        """The customer's state with these facts folded in, the facts to store and what was indexed
        before; None if nothing changes."""
        state = self.new_state(customer, parse(raw_state) if raw_state else None)
        before = _indexed(state) if raw_state else _NOT_INDEXED
        stored = {item.fact["id"]: parse(old) for item, old in zip(items, known) if old is not None}
        new_facts: Dict[str, str] = {}
        rebuild = False
        for item in items:
            fact = item.fact
            earlier = stored.get(fact["id"])
            if earlier is not None and earlier["o"] <= fact["o"]:
                continue  # a redelivery, or the same event published twice: it counts once, where it came first
            stored[fact["id"]] = fact
            new_facts[fact["id"]] = canonical(fact)
            if earlier is not None or fact["o"] <= state.last_order:
                rebuild = True  # out of the log's order: fold this customer again from the start
            elif not rebuild:
                state.apply(fact)
        if not new_facts:
            return None
        if rebuild:
            newer = [stored[fact_id] for fact_id in new_facts]
            state = self.rebuild(customer, newer, await self.client.hgetall(facts_key(customer)))
        return state, new_facts, before

    async def _merge(
        self, item: _Item, kept_state: Optional[CustomerState] = None, defer: bool = False
    ) -> Optional[Tuple[str, Optional[CustomerState], List[str]]]:
        """Fold the merged customers' facts into the one kept; each leaves a stub saying where it went.
        Returns the customer kept, their state and the customers merged away (None: applied before).
        `kept_state`: the kept customer's current state when the caller holds it (a replay), else it is read.

        When everything the merge brings comes after the kept customer's last fact (a new device's
        session proved to be an existing customer, the usual case), it is folded onto their state;
        otherwise the kept customer is folded again from all the facts. `defer` (a replay, which
        holds `kept_state` and folds such customers once at its end): instead of folding again,
        only the facts are stored and the state returned is None."""
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*map(merged_key, [item.customer, *item.merged_from]))
                    targets = await self._follow([item.customer, *item.merged_from])
                    target = targets[item.customer]
                    absorbed = [c for c in item.merged_from if targets[c] == c and c != target]
                    await pipe.watch(*map(state_key, [target, *absorbed]))
                    others = [await self.client.hgetall(facts_key(customer)) for customer in absorbed]
                    # Of the kept customer's facts, only their number and their copies of these events are
                    # read: their whole history (tens of thousands of facts) only when it is folded again.
                    asked = sorted({item.fact["id"]}.union(*others))
                    async with self.client.pipeline(transaction=False) as reads:
                        reads.hlen(facts_key(target))
                        reads.hmget(facts_key(target), asked)
                        owned, copies = await reads.execute()
                    own = {key: raw for key, raw in zip(asked, copies) if raw is not None}
                    if item.fact["id"] in own and not absorbed:
                        await pipe.reset()
                        return None  # applied before
                    brought: Dict[str, Fact] = {}  # what the merge adds or replaces: the others' facts, itself
                    for facts in others:
                        for key, value in facts.items():
                            fact = parse(value)
                            earlier = brought.get(key) or (parse(own[key]) if key in own else None)
                            if earlier is None or fact["o"] < earlier["o"]:  # the event's first copy in the log counts
                                brought[key] = fact
                    if item.fact["id"] not in own:
                        brought.setdefault(item.fact["id"], item.fact)
                    state = await self._merged_state(target, owned, any(key in own for key in brought), brought, kept_state, defer)
                    pipe.multi()
                    for customer in absorbed:
                        self._forget(pipe, customer, item.customer)
                    # The kept customer's own facts are stored already: only what the merge brings is written.
                    brought_json = {key: canonical(fact) for key, fact in brought.items()}
                    if state is None:
                        if brought_json:
                            pipe.hset(facts_key(target), mapping=brought_json)
                    else:
                        writes = _Writes(self.crm_stages)
                        writes.add(target, state, brought_json, None)
                        writes.flush(pipe)
                    await pipe.execute()
                    return target, state, absorbed
                except WatchError:
                    continue

    async def _merged_state(
        self, target: str, owned: int, replaces: bool, brought: Dict[str, Fact], kept: Optional[CustomerState], defer: bool
    ) -> Optional[CustomerState]:
        """The kept customer's state with what the merge brings (the others' facts and the merge itself).
        `owned`: how many facts they have; `replaces`: the merge brings an earlier copy of one of their
        own events. None when `defer` and they need folding again."""
        if owned and brought and not replaces and not (kept is None and defer):  # deferring without a state: folded at the end
            if kept is None:
                raw = await self.client.get(state_key(target))
                kept = self.new_state(target, parse(raw)) if raw else None
            else:
                kept = self.new_state(target, parse(canonical(kept.to_json())))  # a copy: a retried transaction starts again
            if kept is not None and min(fact["o"] for fact in brought.values()) > kept.last_order:
                for fact in ordered(brought.values()):
                    kept.apply(fact)
                return kept
        return None if defer else self.rebuild(target, brought.values(), await self.client.hgetall(facts_key(target)))

    @staticmethod
    def _forget(pipe: Any, customer: str, into: str) -> None:
        """A merged customer: its facts moved on; it leaves every index; its record says where it went."""
        pipe.delete(facts_key(customer), state_key(customer))
        pipe.set(merged_key(customer), into)
        pipe.zrem(CUSTOMERS, customer)
        for board in (*DIMENSIONS, CO_CREATORS):
            pipe.zrem(leaderboard_key(board), customer)
        for stage in STAGES:
            pipe.zrem(stage_key(stage), customer)

    async def record(self, customer_id: str) -> Optional[Dict[str, Any]]:
        """The customer's record (360 view, scores, stage), or where a merged customer went, or None."""
        raw = await self.client.get(state_key(customer_id))
        if raw:
            return self.new_state(customer_id, parse(raw)).view()
        into = await self.client.get(merged_key(customer_id))
        return {"customer_id": customer_id, "merged_into": into} if into else None

    async def leaders(self, board: str, limit: int = 10) -> List[Tuple[str, float]]:
        """The top customers of a dimension (or `co_creators`) with their log-space scores."""
        return [(name, float(score)) for name, score in await self.client.zrevrange(leaderboard_key(board), 0, limit - 1, withscores=True)]

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
