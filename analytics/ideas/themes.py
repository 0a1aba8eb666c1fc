"""Idea themes kept by the analytics service: each `idea` event joins a theme as it arrives.

A new idea that is a near duplicate of one already kept (cosine >= duplicates.similarity)
is a vote on that idea's theme; otherwise it joins the theme its members are closest to on
average if that is within clustering.distance_threshold (the average-linkage rule of the
full clustering); otherwise it starts a theme. Theme ids (TH-1, TH-2,
...) never change. Every effect is written in one transaction with the event id in the
applied set, so redelivery changes nothing; the transaction WATCHes a version counter, so a
second consumer's write makes this one reload and decide again. A replay from empty gives
the same themes (the encoder is deterministic and events are applied in log order).

What is mined (`mined`): ideas, problem reports, and negative or mixed feedback form the
*needs* themes (TH-n); questions the FAQ could not answer form the *questions* themes (FQ-n,
the FAQ gaps). Each item keeps its kind, customer, channel, time and in-use context. Staff
decisions arrive through the log too: `theme_status_set` (new, under review, planned, shipped,
declined) is applied here, once per event id, with its history; marking a needs theme shipped
or declined queues one notification per opted-in requester (analytics/ideas/notify.py) in the
same transaction.

Keys (prefix `engage:ideas:`): `items` (hash event id -> JSON), `themes` (hash theme id ->
JSON), `applied` (set of event ids), `version` (counter), `next` and `next:questions` (theme
id counters), `consent` (hash customer -> JSON: whether they want to hear back).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from redis.exceptions import WatchError

from analytics.ideas.config import IdeasSettings
from analytics.ideas.weights import DemandWeights, requester_weight
from analytics.ideas.inputs import has_words
from analytics.ideas.memory import NEW, VOTE, _Memory, _pack, _unpack, blas_single_thread, decide, decide_now, nearest_member
from analytics.ideas.mining import Encoder
from analytics.schema import FAQ_UNANSWERED, FEEDBACK, IDEA, IDEA_UPDATES_CONSENT, IDEA_SEPARATED, PROBLEM, THEME_STATUS_SET, THEMES_RECLUSTERED, LogEvent

logger = logging.getLogger(__name__)

PREFIX = "engage:ideas:"
ITEMS = PREFIX + "items"
THEMES = PREFIX + "themes"
APPLIED = PREFIX + "applied"
VERSION = PREFIX + "version"
VECTORS = PREFIX + "vectors:"  # + the encoder's weights hash: text digest -> vector; kept across resets
NEXT = PREFIX + "next"
CONSENT = PREFIX + "consent"

NEEDS, QUESTIONS = "needs", "questions"
SPACES: Dict[str, Tuple[str, str]] = {NEEDS: ("TH-", NEXT), QUESTIONS: ("FQ-", NEXT + ":questions")}  # id prefix, counter
STATUSES = ("new", "under review", "planned", "shipped", "declined")
CLOSING = ("shipped", "declined")  # requesters who opted in hear of these


@dataclass(frozen=True)
class _Pending:
    """A mined item waiting to be applied: its log entry, event, what was mined and its vector."""

    entry_id: str
    event: LogEvent
    what: Mined
    vector: np.ndarray


@dataclass(frozen=True)
class Mined:
    space: str
    kind: str  # idea, problem, feedback, question
    text: str


class Refused(ValueError):
    """A staff decision the themes cannot apply (the reason goes to the dead-letter stream)."""


def mined(event: LogEvent) -> Optional[Mined]:
    """What of an event the mining reads, or None: ideas, problems, negative or mixed feedback
    (needs), and questions the FAQ had no answer for (questions). A question unanswered because
    the knowledge base was down is not a gap, nor is text without a letter or digit."""
    data = event.data or {}
    if event.type == IDEA:
        found = Mined(NEEDS, "idea", str(data.get("summary") or event.text or ""))
    elif event.type == PROBLEM:
        found = Mined(NEEDS, "problem", str(data.get("description") or event.text or ""))
    elif event.type == FEEDBACK and (data.get("sentiment") == "negative" or data.get("mixed")):
        found = Mined(NEEDS, "feedback", str(data.get("feedback") or event.text or ""))
    elif event.type == FAQ_UNANSWERED and data.get("reason") == "low_score":
        found = Mined(QUESTIONS, "question", str(data.get("query") or ""))
    else:
        return None
    text = found.text.strip()
    return Mined(found.space, found.kind, text) if has_words(text) else None


def _told_id(event: LogEvent) -> str:
    """The theme the conversation told the customer their idea joined, as the event names it ("" if none)."""
    return str((event.data or {}).get("theme") or "")


def status_name(text: str) -> Optional[str]:
    """A status as staff may type it ("under-review", "Under review") in its stored form, or None."""
    name = " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())
    return name if name in STATUSES else None


def theme_space(theme_id: str) -> Optional[str]:
    return next((space for space, (prefix, _) in SPACES.items() if theme_id.startswith(prefix)), None)


async def _opted_in(pipe: Any, items: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One requester per customer who said yes to hearing back: their own words (an idea over a
    problem or feedback, the latest of the kind) and its reference."""
    mine: Dict[str, Mapping[str, Any]] = {}
    for item in sorted(items, key=lambda item: (item.get("kind") == "idea", item["at"])):
        mine[item["customer"]] = item
    customers = sorted(mine)
    answers = dict(zip(customers, await pipe.hmget(CONSENT, customers))) if customers else {}
    return [{"customer": customer, "text": mine[customer]["text"], "reference": mine[customer].get("reference")}
            for customer in customers if answers.get(customer) and json.loads(answers[customer]).get("consent")]


def default_encoder() -> Encoder:
    """MiniLM through onnxruntime from the set-up's export (3-9 ms per idea, no PyTorch), or
    through PyTorch when the export is missing (12-25 ms on two busy cores): the same vectors to
    2e-7, cached apart (each has its own identity)."""
    from knowledge_base.onnx_encoder import OnnxMiniLMEncoder, export_present

    if export_present():
        return OnnxMiniLMEncoder()
    from knowledge_base.encoder import MiniLMEncoder

    logger.warning("idea themes: no ONNX export of MiniLM (run `make setup`); encoding with PyTorch, slower")
    return MiniLMEncoder()


def theme_store(client: Any, settings: Optional[IdeasSettings] = None, encoder: Optional[Encoder] = None) -> ThemeStore:
    """The projection with the shipped settings and MiniLM (loaded on the first idea, not here)."""
    from analytics.ideas.config import load_settings

    return ThemeStore(client, encoder or default_encoder(), settings or load_settings())


class ThemeStore:
    """The themes projection (apply_batch / reset, like every consumer of the log)."""

    name = "idea themes"

    def __init__(self, client: Any, encoder: Encoder, settings: IdeasSettings) -> None:
        self.client = client
        self.encoder = encoder
        self.settings = settings
        self._memory: Dict[str, _Memory] = {}
        self._version = -1
        # The consumer and /ideas/match (analytics/service.py) share the memory in one process.
        self._lock = asyncio.Lock()
        self._labeller: Any = None

    async def reset(self) -> None:
        # The notification outbox stays: what was sent stays sent, and a replay queues nothing twice.
        await self.client.delete(ITEMS, THEMES, APPLIED, VERSION, CONSENT, PREFIX + "reclusters", *(counter for _, counter in SPACES.values()))
        self._memory, self._version = {}, -1

    async def apply_batch(self, entries: Sequence[Tuple[str, LogEvent]]) -> Dict[str, str]:
        """Apply in log order; a status change for a theme that does not exist is refused (dead-lettered)."""
        found = {entry_id: what for entry_id, event in entries if (what := mined(event)) is not None}
        vectors = dict(zip(found, await self._vectors([what.text[: self.settings.max_chars] for what in found.values()]))) if found else {}
        refused: Dict[str, str] = {}
        async with self._lock:
            await self._apply_entries(entries, found, vectors, refused)
        return refused

    async def _apply_entries(self, entries: Sequence[Tuple[str, LogEvent]], found: Dict[str, Mined], vectors: Dict[str, Any], refused: Dict[str, str]) -> None:
        segment: List[_Pending] = []
        for entry_id, event in entries:
            if entry_id in found:
                what = found[entry_id]
                segment.append(_Pending(entry_id, event, Mined(what.space, what.kind, what.text[: self.settings.max_chars]), np.asarray(vectors[entry_id], dtype=np.float32)))
            elif event.type in (THEME_STATUS_SET, THEMES_RECLUSTERED, IDEA_SEPARATED, IDEA_UPDATES_CONSENT):
                await self._apply_items(segment)  # what came before a staff decision is applied before it
                segment = []
                apply = {THEME_STATUS_SET: self._apply_status, THEMES_RECLUSTERED: self._apply_recluster,
                         IDEA_SEPARATED: self._apply_separation, IDEA_UPDATES_CONSENT: self._apply_consent}[event.type]
                reason = await apply(event)
                if reason:
                    refused[entry_id] = reason
        await self._apply_items(segment)

    async def _vectors(self, texts: Sequence[str]) -> List[np.ndarray]:
        """MiniLM vectors, from the cache of this model's vectors where present (a replay
        encodes nothing it encoded before), else encoded off the event loop and cached."""
        identity = getattr(self.encoder, "identity", None)
        cache = VECTORS + identity().weights if identity is not None else None
        digests = [hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] for text in texts]
        cached = await self.client.hmget(cache, digests) if cache else [None] * len(texts)
        # Each text not cached yet is encoded once, however often the batch holds it.
        missing = list(dict.fromkeys(digest for digest, raw in zip(digests, cached) if not raw))
        text_of = dict(zip(digests, texts))
        fresh = await asyncio.get_running_loop().run_in_executor(None, self._encode_each, [text_of[digest] for digest in missing]) if missing else []
        if cache and missing:
            await self.client.hset(cache, mapping={digest: _pack(vector) for digest, vector in zip(missing, fresh)})
        by_digest = dict(zip(missing, fresh))
        return [by_digest[digest] if digest in by_digest else _unpack(raw) for digest, raw in zip(digests, cached)]

    def _encode_each(self, texts: Sequence[str]) -> List[np.ndarray]:
        # One text per call: in a padded batch MiniLM's floats differ in the last bits with the
        # batch's make-up, and a replay batches differently from live traffic; the stored
        # vectors (and so every decision) must not depend on it. Ideas are few; 12 ms each.
        return [self.encoder.encode([text])[0] for text in texts]

    def memory(self, space: str) -> _Memory:
        return self._memory.setdefault(space, _Memory())

    async def _once(self, event: LogEvent, step: Callable[[Any], Awaitable[bool]]) -> bool:
        """Apply one event's effect once: `step(pipe)` reads (WATCHing the version, with the kept
        vectors in step), calls `pipe.multi()` and queues its writes, or raises Refused; the event
        id joins the applied set and the version moves in the same transaction. False when the
        event was applied before; a write by another consumer in between makes it read and
        decide again."""
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(VERSION)
                    if await pipe.sismember(APPLIED, event.event_id):
                        return False
                    await self._sync(pipe)
                    await step(pipe)
                    pipe.sadd(APPLIED, event.event_id)
                    pipe.incr(VERSION)
                    await pipe.execute()
                    self._version += 1  # our own write
                    return True
                except WatchError:
                    continue

    async def _apply_items(self, pending: Sequence["_Pending"]) -> None:
        """Apply consecutive mined items in one transaction, exactly as one by one in log order:
        each decision sees the items before it (the kept vectors grow as it goes, new themes get
        the next ids), an event already applied (or twice in the batch) is skipped, and a write
        by another consumer in between makes the whole batch read and decide again."""
        while pending:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(VERSION)
                    ids = [item.event.event_id for item in pending]
                    applied = await pipe.smismember(APPLIED, ids)
                    first: Dict[str, _Pending] = {}
                    for item, done in zip(pending, applied):
                        if not done:
                            first.setdefault(item.event.event_id, item)
                    todo = list(first.values())
                    if not todo:
                        await pipe.reset()
                        return
                    await self._sync(pipe)
                    told = {item.event.event_id: await self._told_theme(pipe, item.event, item.what) for item in todo}
                    told_ids = {item.event.event_id: _told_id(item.event) for item in todo}
                    start = {space: int(await pipe.get(counter) or 0) for space, (_, counter) in SPACES.items()}
                    counters = dict(start)
                    decisions = await asyncio.get_running_loop().run_in_executor(None, self._decide_in_order, todo, told, told_ids, counters)
                    fresh = {theme for _, theme, _, created in decisions if created}
                    existing = sorted({theme for _, theme, _, _ in decisions} - fresh)
                    records = dict(zip(existing, (json.loads(raw) for raw in await pipe.hmget(THEMES, existing)))) if existing else {}
                    items: Dict[str, str] = {}
                    for item, (how, theme, duplicate_of, created) in zip(todo, decisions):
                        event = item.event
                        if created:
                            records[theme] = {"id": theme, "space": item.what.space, "created_at": event.timestamp, "status": "new", "history": [], "members": []}
                        records[theme]["members"].append(event.event_id)
                        data = event.data or {}
                        items[event.event_id] = json.dumps({
                            "event_id": event.event_id, "entry_id": item.entry_id, "customer": event.conversation_id, "channel": event.channel,
                            "at": event.timestamp, "text": item.what.text, "kind": item.what.kind, "space": item.what.space, "reference": data.get("reference"),
                            "context": data.get("context") or {}, "theme": theme, "how": how, "duplicate_of": duplicate_of, "vector": _pack(item.vector),
                        }, sort_keys=True)
                    pipe.multi()
                    for space, (_, counter) in SPACES.items():
                        if counters[space] != start[space]:
                            pipe.set(counter, counters[space])
                    pipe.hset(ITEMS, mapping=items)
                    pipe.hset(THEMES, mapping={theme: json.dumps(record, sort_keys=True) for theme, record in records.items()})
                    pipe.sadd(APPLIED, *items)
                    pipe.incr(VERSION)
                    await pipe.execute()
                    self._version += 1  # our own write; the kept vectors already hold the batch
                    return
                except WatchError:
                    self._version = -1  # the kept vectors took this batch's decisions: reload them
                    continue
                except BaseException:
                    self._version = -1  # nothing was stored: neither may the kept vectors keep it
                    raise

    def _decide_in_order(
        self, todo: Sequence["_Pending"], told: Mapping[str, Optional[str]], told_ids: Mapping[str, str], counters: Dict[str, int]
    ) -> List[Tuple[str, str, Optional[str], bool]]:
        """(how, theme, duplicate_of, created) per item, in order, adding each to the kept vectors
        before the next is decided; `counters` moves on with every theme created."""
        created_here: Dict[str, str] = {}  # theme created in this batch -> its space
        decisions: List[Tuple[str, str, Optional[str], bool]] = []
        with blas_single_thread():
            for item in todo:
                memory = self.memory(item.what.space)
                how, theme, duplicate_of = decide(item.vector, memory, self.settings)
                wanted = told[item.event.event_id]
                if wanted is None and created_here.get(told_ids[item.event.event_id]) == item.what.space:
                    wanted = told_ids[item.event.event_id]  # a theme an earlier item of this batch started
                if wanted is not None and wanted != theme:
                    # The assistant told the customer "I've added your vote" to this theme: so it is.
                    how, theme, duplicate_of = VOTE, wanted, nearest_member(item.vector, memory, wanted)
                created = theme is None
                if theme is None:
                    prefix, _ = SPACES[item.what.space]
                    counters[item.what.space] += 1
                    theme = f"{prefix}{counters[item.what.space]}"
                    created_here[theme] = item.what.space
                memory.add(item.event.event_id, item.vector, theme)
                decisions.append((how, theme, duplicate_of, created))
        return decisions

    async def _told_theme(self, pipe: Any, event: LogEvent, what: Mined) -> Optional[str]:
        """The theme the conversation told the customer their idea joined (followed through
        re-clusterings), when it still exists in the idea's space."""
        theme = _told_id(event)
        for _ in range(10):
            raw = await pipe.hget(THEMES, theme) if theme else None
            if raw is None:
                return None
            record = json.loads(raw)
            if not record.get("merged_into"):
                return theme if record.get("space", NEEDS) == what.space else None
            theme = record["merged_into"]
        return None

    async def _apply_separation(self, event: LogEvent) -> None:
        """The customer said their idea is something else: it leaves the theme for one of its own."""
        idea = str((event.data or {}).get("idea") or "")

        async def step(pipe: Any) -> None:
            raw = await pipe.hget(ITEMS, idea) if idea else None
            item = json.loads(raw) if raw else None
            if item is None or item["customer"] != event.conversation_id:
                pipe.multi()  # nothing of theirs to move (erased, or not theirs): only marked applied
                return
            prefix, counter = SPACES[item.get("space", NEEDS)]
            old = json.loads(await pipe.hget(THEMES, item["theme"]))
            fresh = f"{prefix}{int(await pipe.get(counter) or 0) + 1}"
            old["members"] = [m for m in old["members"] if m != idea]
            record = {"id": fresh, "space": item.get("space", NEEDS), "created_at": event.timestamp, "status": "new", "members": [idea],
                      "history": [{"status": "new", "note": f"the customer said it is not {item['theme']}", "by": "customer", "at": event.timestamp, "event_id": event.event_id}]}
            item.update(theme=fresh, how=NEW, duplicate_of=None, separated_from=old["id"])
            pipe.multi()
            pipe.incr(counter)
            pipe.hset(THEMES, old["id"], json.dumps(old, sort_keys=True))
            pipe.hset(THEMES, fresh, json.dumps(record, sort_keys=True))
            pipe.hset(ITEMS, idea, json.dumps(item, sort_keys=True))

        if await self._once(event, step):
            self._version = -1  # an item may have changed theme: reload the kept vectors before the next decision

    async def match(self, text: str, customer: str = "") -> Dict[str, Any]:
        """What would become of this idea now, without storing anything: {how, theme, others,
        members, label} (the label from the members nearest the theme's centre). For the
        conversation's "others have asked for ... too"."""
        text = text.strip()[: self.settings.max_chars]
        if not has_words(text):
            return {"how": None, "theme": None}
        vector = np.asarray((await self._vectors([text]))[0], dtype=np.float32)
        async with self._lock:
            await self._sync(self.client)
            memory = self.memory(NEEDS)
            how, theme, _ = await asyncio.get_running_loop().run_in_executor(None, decide_now, vector, memory, self.settings)
        if theme is None:
            return {"how": NEW, "theme": None}
        record = await self.theme(theme) or {"members": []}
        items = await self.items(record["members"])
        order = np.argsort(-np.stack([_unpack(item["vector"]) for item in items]) @ vector, kind="stable") if items else []
        texts = [items[i]["text"] for i in order][:30]
        label = (await asyncio.get_running_loop().run_in_executor(None, self.labeller.labels, [texts], [texts[0]]))[0] if texts else ""
        return {"how": how, "theme": theme, "members": len(items), "others": len({item["customer"] for item in items} - {customer}), "label": label}

    @property
    def labeller(self) -> Any:
        if self._labeller is None:
            from analytics.ideas.labels import CtfidfLabeller

            self._labeller = CtfidfLabeller()
        return self._labeller

    def warm_up(self) -> None:
        """Load the encoder and the English pipeline now (blocking: from an executor at start), so the
        first idea of a conversation is matched within the action's timeout."""
        self.encoder.encode(["warm up"])
        self.labeller.labels([["add a dark mode"]], ["add a dark mode"])

    async def _apply_status(self, event: LogEvent) -> Optional[str]:
        """Staff set a theme's status: kept with its history; closing a needs theme queues the
        opted-in requesters' notifications in the same transaction. None, or why it was refused."""
        from analytics.ideas.notify import queue_notifications

        data = event.data or {}
        theme, status = str(data.get("theme") or ""), status_name(str(data.get("status") or ""))
        if status is None:
            return f"unknown status {data.get('status')!r} (known: {', '.join(STATUSES)})"

        async def step(pipe: Any) -> None:
            raw = await pipe.hget(THEMES, theme)
            if raw is None:
                raise Refused(f"no theme {theme!r}")
            record = json.loads(raw)
            while record.get("merged_into"):  # re-clustered into another theme since the command
                record = json.loads(await pipe.hget(THEMES, record["merged_into"]))
            change = {"status": status, "note": str(data.get("note") or ""), "by": str(data.get("by") or ""), "at": event.timestamp, "event_id": event.event_id}
            record["status"] = status
            record.setdefault("history", []).append(change)
            jobs = []
            if status in CLOSING and record.get("space", NEEDS) == NEEDS:
                items = [json.loads(raw) for raw in await pipe.hmget(ITEMS, record["members"]) if raw] if record["members"] else []
                jobs = await _opted_in(pipe, items)
            pipe.multi()
            pipe.hset(THEMES, record["id"], json.dumps(record, sort_keys=True))
            await queue_notifications(pipe, record, change, jobs)

        try:
            await self._once(event, step)
        except Refused as refused:
            return str(refused)
        return None

    async def _apply_consent(self, event: LogEvent) -> None:
        """Whether the customer wants to hear back about their ideas (their latest answer counts)."""
        answer = {"consent": bool((event.data or {}).get("consent")), "at": event.timestamp, "channel": event.channel, "event_id": event.event_id}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(CONSENT, event.conversation_id, json.dumps(answer, sort_keys=True))
            pipe.sadd(APPLIED, event.event_id)
            await pipe.execute()

    async def _apply_recluster(self, event: LogEvent) -> Optional[str]:
        """A full re-clustering of one space, ids kept by matching members (analytics/ideas/recluster.py);
        theme records keep status and history, retired ones say where their members went."""
        from analytics.ideas.recluster import RECLUSTERS, match_ids, regroup

        space = str((event.data or {}).get("space") or NEEDS)
        if space not in SPACES:
            return f"unknown space {space!r} (known: {', '.join(SPACES)})"
        prefix, counter = SPACES[space]
        done: Dict[str, Any] = {}

        async def step(pipe: Any) -> None:
            started = time.perf_counter()
            memory = self.memory(space)
            ids, old_of = list(memory.ids), dict(zip(memory.ids, memory.theme_of))
            clusters = await asyncio.get_running_loop().run_in_executor(None, regroup, ids, memory.vectors, self.settings.cluster)
            next_number = int(await pipe.get(counter) or 0)
            issued: List[str] = []

            def fresh() -> str:
                issued.append(f"{prefix}{next_number + len(issued) + 1}")
                return issued[-1]

            matching = match_ids(old_of, clusters, fresh)
            old_ids = sorted(set(old_of.values()))
            records = {ident: json.loads(raw) for ident, raw in zip(old_ids, await pipe.hmget(THEMES, old_ids) if old_ids else []) if raw}
            theme_of = {member: ident for ident, members in zip(matching.ids, clusters) for member in members}
            moved = [member for member in ids if theme_of[member] != old_of[member]]
            moved_items = [json.loads(raw) for raw in await pipe.hmget(ITEMS, moved)] if moved else []
            pipe.multi()
            for ident, members in zip(matching.ids, clusters):
                record = records.get(ident) or {"id": ident, "space": space, "created_at": event.timestamp, "status": "new", "history": []}
                record["members"] = list(members)
                absorbed = sorted(old for old, into in matching.retired.items() if into == ident)
                if absorbed:
                    record.setdefault("history", []).append({"status": record["status"], "note": f"re-clustering merged {', '.join(absorbed)} into it",
                                                             "by": "re-clustering", "at": event.timestamp, "event_id": event.event_id})
                pipe.hset(THEMES, ident, json.dumps(record, sort_keys=True))
            for old, into in matching.retired.items():
                record = records[old]
                record.update(members=[], merged_into=into)
                record.setdefault("history", []).append({"status": record["status"], "note": f"re-clustering merged it into {into}" if into else "re-clustering: no members left",
                                                         "by": "re-clustering", "at": event.timestamp, "event_id": event.event_id})
                pipe.hset(THEMES, old, json.dumps(record, sort_keys=True))
            for item in moved_items:
                item["theme"] = theme_of[item["event_id"]]
                pipe.hset(ITEMS, item["event_id"], json.dumps(item, sort_keys=True))
            if issued:
                pipe.set(counter, next_number + len(issued))
            summary = {"space": space, "items": len(ids), "themes_before": len(old_ids), "themes_after": len(clusters), "kept": len(clusters) - len(matching.fresh),
                       "new": matching.fresh, "retired": matching.retired, "moved": len(moved), "seconds": round(time.perf_counter() - started, 3), "at": event.timestamp,
                       "by": (event.data or {}).get("by")}
            pipe.hset(RECLUSTERS, event.event_id, json.dumps(summary, sort_keys=True))
            done.update(ids=ids, theme_of=theme_of, summary=summary)

        if not await self._once(event, step):
            return None
        ids, theme_of, summary = done["ids"], done["theme_of"], done["summary"]
        memory = _Memory()
        for member, vector in zip(ids, self.memory(space).vectors):
            memory.add(member, vector, theme_of[member])
        self._memory[space] = memory
        logger.info("idea themes: re-clustered %d %s items into %d themes (%d ids kept, %d new, %d retired) in %.1f s", len(ids), space,
                    summary["themes_after"], summary["kept"], len(summary["new"]), len(summary["retired"]), summary["seconds"])
        return None

    async def _sync(self, pipe: Any) -> None:
        """Reload the kept vectors when another writer moved the version since we last looked."""
        version = int(await pipe.get(VERSION) or 0)
        if version == self._version:
            return
        memory: Dict[str, _Memory] = {}
        items = sorted((json.loads(raw) for raw in (await pipe.hgetall(ITEMS)).values()), key=lambda item: item["entry_id"])
        for item in items:
            memory.setdefault(item.get("space", NEEDS), _Memory()).add(item["event_id"], _unpack(item["vector"]), item["theme"])
        self._memory, self._version = memory, version

    async def themes(self, space: Optional[str] = None) -> List[Dict[str, Any]]:
        rows = [json.loads(raw) for raw in (await self.client.hgetall(THEMES)).values()]
        return [row for row in rows if not row.get("merged_into") and (space is None or row.get("space", NEEDS) == space)]

    async def theme(self, theme_id: str) -> Optional[Dict[str, Any]]:
        raw = await self.client.hget(THEMES, theme_id)
        return json.loads(raw) if raw else None

    async def items(self, event_ids: Sequence[str]) -> List[Dict[str, Any]]:
        raws = await self.client.hmget(ITEMS, list(event_ids)) if event_ids else []
        return [json.loads(raw) for raw in raws if raw]


def demand(items: Sequence[Mapping[str, Any]], requesters: Mapping[str, Tuple[str, float]], weights: DemandWeights) -> Dict[str, Any]:
    """Per theme: distinct customers, mentions, channel mix and the weighted score, explained per customer."""
    customers = sorted({item["customer"] for item in items})
    explained = []
    for customer in customers:
        stage, engagement = requesters.get(customer, ("visitor", 0.0))
        explained.append({"customer": customer, "stage": stage, "engagement": round(engagement, 2), "weight": round(requester_weight(stage, engagement, weights), 3)})
    channels: Dict[str, int] = {}
    for item in items:
        channels[item.get("channel") or "unknown"] = channels.get(item.get("channel") or "unknown", 0) + 1
    return {
        "customers": len(customers),
        "mentions": len(items),
        "votes": sum(1 for item in items if item.get("how") == VOTE),
        "channels": channels,
        "score": round(sum(row["weight"] for row in explained), 3),
        "requesters": explained,
    }
