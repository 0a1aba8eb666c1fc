"""The customer records rebuilt by a replay: every customer folded in memory, written once at the end.

A replay reads the log in order while no consumer writes (analytics.stream.pause), so each fact
comes after everything stored before it and a customer's state can stay in this process between
batches. The `keep` most recently seen do; the others are parked in Redis and read back when
they speak again, so memory does not grow with the log, and with the customers only by a name
and a size each. Facts are still stored batch by batch, each only if its event id is new for the
customer (HSETNX in one script per customer and batch, so an event published twice counts once,
where it came first); a merge goes through the store as it does live. The states and indexes are
written at the end, in chunks of bounded size. The result is byte for byte what the consumers
build entry by entry.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from analytics.records.facts import Fact
from analytics.records.fold import CustomerState, canonical, parse
from analytics.records.store import _NOT_INDEXED, MAX_MERGE_CHAIN, RecordStore, _Item, _Writes, facts_key, segments, state_key
from analytics.schema import FEEDBACK, IDEA, PROBLEM, LogEvent
from analytics.stream.consumer import BadEvent

FINISH_CHUNK = 500  # customers written per pipeline at the end (5,000 held 140 MiB of states at once)...
# ... and the most their states may hold, in bytes of canonical JSON: the busiest customers' states
# reach their caps (tens of KiB each), and 500 of them took 60 MiB more than the fold before it.
FINISH_BYTES = 4 * 2**20
KEEP_IN_MEMORY = 10_000  # customers whose state stays in this process; the least recently seen wait in Redis
# ... and the most their states may hold, in bytes of their canonical JSON (Python holds about twice
# that): the states grow until their lists reach their caps, so a count alone let memory rise with
# the log for millions of events. A state's size is estimated as it grows, and measured when read.
KEEP_BYTES = 48 * 2**20
NEW_STATE_BYTES = 2_000  # a state with its first facts (1 KiB with none)
FACT_BYTES = 60  # what one more fact adds to a state: a contribution to explain a score, a day...
QUOTE_BYTES = 150  # ... and a quote (feedback, an idea, a problem) its text besides...
CAPPED_STATE_BYTES = 48 * 1024  # ... until every list is at its cap (32 KiB in the bench's busiest customer)
QUOTED = frozenset({FEEDBACK, IDEA, PROBLEM})

# KEYS: the customer's facts hash. ARGV: the event ids (a JSON array), their facts (canonical JSON,
# one per line: it never holds a raw line break). Stores the facts whose ids are new for the
# customer and returns the ids that were there already. Two arguments per customer, not two per
# fact: packing the command costs less than the facts it carries.
_ADD_NEW_FACTS = """
local ids = cjson.decode(ARGV[1])
local known = {}
local i = 0
for fact in string.gmatch(ARGV[2], '[^\\n]+') do
  i = i + 1
  if redis.call('HSETNX', KEYS[1], ids[i], fact) == 0 then known[#known + 1] = ids[i] end
end
return known
"""


class RecordReplay:
    """The records projection's replay fold (see RecordStore.replay_fold)."""

    name = RecordStore.name

    def __init__(
        self, store: RecordStore, keep: int = KEEP_IN_MEMORY, keep_bytes: int = KEEP_BYTES, finish_bytes: int = FINISH_BYTES
    ) -> None:
        self.store = store
        self.keep = keep
        self.keep_bytes = keep_bytes
        self.finish_bytes = finish_bytes
        self.states: "OrderedDict[str, CustomerState]" = OrderedDict()  # least recently folded first
        self.sizes: Dict[str, int] = {}  # customer in `states` -> their state's size (canonical JSON bytes), estimated
        self.held = 0  # the sum of `sizes`
        self.parked: Dict[str, int] = {}  # customers whose state left memory for Redis -> its size
        self.merged: Dict[str, str] = {}  # customer merged away -> the customer the merge named
        self.merge_targets: Set[str] = set()  # indexed by the merge already: their indexes are rewritten whole
        # Merge targets whose histories interleave with what the merge brought: their facts are stored as
        # they come and they are folded once, at the end, however many such merges they take (folding
        # again at each merge cost a busy customer's whole history each time).
        self.fold_at_end: Set[str] = set()
        self._add_new_facts = store.client.register_script(_ADD_NEW_FACTS)

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
        rejected: Dict[str, str] = {}
        for segment, merge in segments(entries, rejected):
            await self._fold(segment)
            if merge is not None:
                await self._merge(merge)
        return rejected

    def _follow(self, customer: str) -> str:
        for _ in range(MAX_MERGE_CHAIN):
            into = self.merged.get(customer)
            if into is None:
                return customer
            customer = into
        raise BadEvent(f"a merge chain is longer than {MAX_MERGE_CHAIN}")

    async def _fold(self, items: List[_Item]) -> None:
        by_customer: Dict[str, Dict[str, Fact]] = {}
        for item in items:
            # The first of an event id's copies in the log is the one that counts.
            by_customer.setdefault(self._follow(item.customer), {}).setdefault(item.fact["id"], item.fact)
        if not by_customer:
            return
        customers = list(by_customer)
        back = [customer for customer in customers if customer in self.parked]
        async with self.store.client.pipeline(transaction=False) as pipe:
            pipe.mget([state_key(customer) for customer in back] or ["-"])
            for customer in customers:
                facts = by_customer[customer]
                args = [canonical(list(facts)), "\n".join(map(canonical, facts.values()))]
                await self._add_new_facts(keys=[facts_key(customer)], args=args, client=pipe)
            parked_states, *known = await pipe.execute()
        for customer, raw in zip(back, parked_states):
            self._unpark(customer, raw)
        for customer, stored_before in zip(customers, known):
            if customer in self.fold_at_end:
                continue
            state = self.states.get(customer)
            if state is None:
                state = self._keep(customer, self.store.new_state(customer), NEW_STATE_BYTES)
            seen = set(stored_before)
            grown = 0
            for fact_id, fact in by_customer[customer].items():
                if fact_id not in seen:
                    state.apply(fact)
                    grown += FACT_BYTES + (QUOTE_BYTES + len(fact["text"]) if fact["k"] in QUOTED else 0)
            self._keep(customer, state, min(CAPPED_STATE_BYTES, self.sizes[customer] + grown))
        await self._park()

    def _keep(self, customer: str, state: CustomerState, size: int) -> CustomerState:
        """Hold `state` in memory as the most recently folded, `size` bytes (see KEEP_BYTES)."""
        self.states[customer] = state
        self.states.move_to_end(customer)
        self.held += size - self.sizes.get(customer, 0)
        self.sizes[customer] = size
        return state

    def _let_go(self, customer: str) -> Optional[CustomerState]:
        self.held -= self.sizes.pop(customer, 0)
        return self.states.pop(customer, None)

    def _unpark(self, customer: str, raw: str) -> None:
        """A parked customer's state (as `_park` wrote it) back in memory."""
        self._keep(customer, self.store.new_state(customer, parse(raw)), len(raw))
        self.parked.pop(customer, None)

    async def _park(self) -> None:
        """Write the least recently folded states beyond `keep` (or `keep_bytes`) to Redis and let them go
        (they come back when needed)."""
        leaving: Dict[str, str] = {}
        while len(self.states) > self.keep or (self.held > self.keep_bytes and len(self.states) > 1):
            customer = next(iter(self.states))
            state = self._let_go(customer)
            leaving[state_key(customer)] = raw = canonical(state.to_json())  # type: ignore[union-attr]
            self.parked[customer] = len(raw)
        if leaving:
            await self.store.client.mset(leaving)

    async def _merge(self, item: _Item) -> None:
        target = self._follow(item.customer)
        if target in self.parked:
            self._unpark(target, await self.store.client.get(state_key(target)))
        merged = await self.store._merge(item, self.states.get(target), defer=True)
        if merged is None:
            return
        target, state, absorbed = merged
        if state is None:
            self._let_go(target)
            self.fold_at_end.add(target)
        else:
            self._keep(target, state, len(canonical(state.to_json())))  # merges are rare: measured
        self.merge_targets.add(target)
        for customer in absorbed:
            self._let_go(customer)
            self.parked.pop(customer, None)
            for tracked in (self.merge_targets, self.fold_at_end):
                tracked.discard(customer)
            self.merged[customer] = item.customer
        await self._park()

    async def finish(self) -> None:
        """Write every customer's state and index entries (and queue what their stage asks for)."""
        for chunk in self._finish_chunks(sorted(self.parked.keys() | self.states.keys() | self.fold_at_end)):
            parked = [customer for customer in chunk if customer in self.parked]
            for customer, raw in zip(parked, await self.store.client.mget([state_key(customer) for customer in parked] or ["-"])):
                self.states[customer] = self.store.new_state(customer, parse(raw))
            for customer in chunk:
                if customer in self.fold_at_end:
                    self.states[customer] = await self.store.rebuild_stored(customer)
            writes = _Writes(self.store.crm_stages)
            for customer in chunk:
                before: Any = None if customer in self.merge_targets else _NOT_INDEXED
                writes.add(customer, self._let_go(customer), {}, before)  # type: ignore[arg-type]
            async with self.store.client.pipeline(transaction=True) as pipe:
                writes.flush(pipe)
                await pipe.execute()
        self.parked.clear()
        self.fold_at_end.clear()

    def _finish_chunks(self, customers: Iterable[str]) -> Iterator[List[str]]:
        """`customers` in runs of at most FINISH_CHUNK whose states come to at most `finish_bytes` (a
        customer folded again at the end counts as a state at its caps), or of one customer."""
        chunk: List[str] = []
        size = 0
        for customer in customers:
            more = self.sizes.get(customer) or self.parked.get(customer) or CAPPED_STATE_BYTES
            if chunk and (len(chunk) == FINISH_CHUNK or size + more > self.finish_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(customer)
            size += more
        if chunk:
            yield chunk
