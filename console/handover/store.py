"""Handover state in Redis: who waits for which team, who owns what, and every staff decision logged.

Keys: the waiting queue `engage:handover:queue` (sorted set, scored by first request time; shared
with the action server and the analytics funnel, which add to it) and one hash per conversation,
`engage:handover:request:<id>` (channel, reason, requested_at, team, trigger, ticket, contact;
owner and claimed_at once claimed); `engage:handover:owned:<login>` (set) holds what an agent owns,
`engage:handover:notes:<id>` (list) the internal notes. A conversation is either waiting (in the
queue, no owner) or owned (out of the queue, owner set); each change between the two is one Lua
script that also writes its log entry to `engage:events` (source `staff`, data.by), so the state
and the log never part and two agents can never both own one conversation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from analytics.schema import (
    EVENTS_STREAM,
    HANDOVER_CLAIMED,
    HANDOVER_QUEUE,
    HANDOVER_RELEASED,
    HANDOVER_RESOLVED,
    HANDOVER_TRANSFERRED,
    SOURCE_STAFF,
    STAFF_NOTE,
    LogEvent,
    handover_request_key,
)
from console.errors import Refused
from console.users import StaffUser

DEFAULT_TEAM = "support"
OWNED_PREFIX = "engage:handover:owned:"
NOTES_PREFIX = "engage:handover:notes:"
MAX_NOTES = 200
MAX_NOTE_CHARS = 4000

OUTCOMES = ("solved", "not_solved", "follow_up", "spam")


def owned_key(login: str) -> str:
    return OWNED_PREFIX + login


def notes_key(conversation_id: str) -> str:
    return NOTES_PREFIX + conversation_id


# KEYS: queue, request, owned set of the claimer, events. ARGV: id, login, now, limit, team seen, then event fields.
_CLAIM = """
local team = redis.call('HGET', KEYS[2], 'team')
if not team or team == '' then team = 'support' end
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner and owner ~= '' then return {'taken', owner} end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'gone', ''} end
if team ~= ARGV[5] then return {'moved', team} end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {'limit', ''} end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'claimed_at', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', unpack(ARGV, 6))
return {'ok', team}
"""

# Back to a team's queue (transfer to a team, or a claim undone). KEYS: queue, request, owned set of
# the owner, events. ARGV: id, owner expected ('' = any), team, requested_at to keep, then event fields.
_REQUEUE = """
local owner = redis.call('HGET', KEYS[2], 'owner')
if not owner or owner == '' then return {'not_owned', ''} end
if ARGV[2] ~= '' and owner ~= ARGV[2] then return {'not_owner', owner} end
redis.call('HDEL', KEYS[2], 'owner', 'claimed_at')
redis.call('HSET', KEYS[2], 'team', ARGV[3])
local at = redis.call('HGET', KEYS[2], 'requested_at') or ARGV[4]
redis.call('ZADD', KEYS[1], at, ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', unpack(ARGV, 5))
return {'ok', owner}
"""

# To another agent. KEYS: request, owned set of the owner, owned set of the new owner, events.
# ARGV: id, owner expected ('' = any), new owner, now, limit, then event fields.
_HAND_TO = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner or owner == '' then return {'not_owned', ''} end
if ARGV[2] ~= '' and owner ~= ARGV[2] then return {'not_owner', owner} end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {'limit', ''} end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'claimed_at', ARGV[4])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', unpack(ARGV, 6))
return {'ok', owner}
"""

# Resolve or hand back: the request is gone. KEYS: request, owned set of the owner, events, notes.
# ARGV: id, owner expected ('' = any), then event fields.
_FINISH = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner or owner == '' then return {'not_owned', ''} end
if ARGV[2] ~= '' and owner ~= ARGV[2] then return {'not_owner', owner} end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 3))
return {'ok', owner}
"""


@dataclass(frozen=True)
class Handover:
    conversation_id: str
    team: str
    channel: str
    reason: str
    trigger: str
    requested_at: float
    owner: str = ""
    claimed_at: Optional[float] = None
    ticket: bool = False
    contact: str = ""
    extra: Dict[str, str] = field(default_factory=dict)

    def waiting_seconds(self, now: float) -> float:
        return max(0.0, now - self.requested_at)

    def as_json(self, now: float) -> Dict[str, Any]:
        return {
            "conversation_id": self.conversation_id, "team": self.team, "channel": self.channel, "reason": self.reason,
            "trigger": self.trigger, "requested_at": self.requested_at, "waiting_seconds": round(self.waiting_seconds(now)),
            "owner": self.owner, "ticket": self.ticket, "contact": self.contact,
        }


def _handover(conversation_id: str, raw: Dict[str, str]) -> Handover:
    def number(key: str) -> Optional[float]:
        try:
            return float(raw[key]) if raw.get(key) else None
        except ValueError:
            return None

    return Handover(
        conversation_id=conversation_id,
        team=raw.get("team") or DEFAULT_TEAM,
        channel=raw.get("channel", ""),
        reason=raw.get("reason", ""),
        trigger=raw.get("trigger") or ("sales_ready" if raw.get("team") == "sales" else "asked_for_person"),
        requested_at=number("requested_at") or 0.0,
        owner=raw.get("owner", ""),
        claimed_at=number("claimed_at"),
        ticket=raw.get("ticket") == "1",
        contact=raw.get("contact", ""),
    )


class HandoverStore:
    def __init__(self, client: Any, clock: Any = time.time) -> None:
        self.client = client  # redis.asyncio, decode_responses=True
        self.clock = clock
        self._claim = client.register_script(_CLAIM)
        self._requeue = client.register_script(_REQUEUE)
        self._hand_to = client.register_script(_HAND_TO)
        self._finish = client.register_script(_FINISH)

    # -- reading -------------------------------------------------------------------------------

    async def get(self, conversation_id: str) -> Optional[Handover]:
        raw = await self.client.hgetall(handover_request_key(conversation_id))
        return _handover(conversation_id, raw) if raw else None

    async def waiting(self, teams: Sequence[str] = ("*",)) -> List[Handover]:
        """Waiting conversations of these teams: tickets (no one was available) first, then by waiting time."""
        ids = await self.client.zrange(HANDOVER_QUEUE, 0, -1)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hgetall(handover_request_key(conversation_id))
            raws = await pipe.execute()
        found = [_handover(cid, raw) for cid, raw in zip(ids, raws) if raw]
        wanted = [h for h in found if not h.owner and ("*" in teams or h.team in teams)]
        return sorted(wanted, key=lambda h: (not h.ticket, h.requested_at))

    async def owned(self, login: str) -> List[Handover]:
        found = [await self.get(cid) for cid in sorted(await self.client.smembers(owned_key(login)))]
        return [h for h in found if h is not None and h.owner == login]

    async def notes(self, conversation_id: str) -> List[Dict[str, Any]]:
        return [json.loads(item) for item in await self.client.lrange(notes_key(conversation_id), 0, -1)]

    # -- decisions -----------------------------------------------------------------------------

    async def claim(self, user: StaffUser, conversation_id: str, team: str, limit: int) -> Handover:
        if not user.works(team):
            raise Refused(403, "wrong_team", f"You do not work the {team} queue; ask an admin to add you to that team.")
        event = self._event(HANDOVER_CLAIMED, conversation_id, user, {"team": team})
        result, detail = await self._claim(keys=[HANDOVER_QUEUE, handover_request_key(conversation_id), owned_key(user.login), EVENTS_STREAM],
                                           args=[conversation_id, user.login, repr(self.clock()), limit, team, *event])
        if result == "taken":
            raise Refused(409, "taken", f"{detail} took this conversation first." if detail != user.login else "You already own this conversation.")
        if result == "gone":
            raise Refused(409, "gone", "This conversation is no longer waiting (handed back or resolved). The queue shows what is.")
        if result == "moved":
            raise Refused(409, "moved", f"This conversation was moved to the {detail} queue meanwhile.")
        if result == "limit":
            raise Refused(409, "limit", f"You already have {limit} conversations; resolve or hand one back before taking another.")
        handover = await self.get(conversation_id)
        assert handover is not None
        return handover

    async def unclaim(self, user: StaffUser, conversation_id: str, reason: str) -> None:
        """Undo a claim whose pause did not reach Rasa: back in the queue, where it was."""
        handover = await self.get(conversation_id)
        team = handover.team if handover else DEFAULT_TEAM
        event = self._event(HANDOVER_TRANSFERRED, conversation_id, user, {"to_team": team, "undone": True, "reason": reason[:300]})
        await self._requeue(keys=[HANDOVER_QUEUE, handover_request_key(conversation_id), owned_key(user.login), EVENTS_STREAM],
                            args=[conversation_id, user.login, team, repr(self.clock()), *event])

    async def transfer_to_team(self, user: StaffUser, conversation_id: str, team: str, owner: str) -> None:
        event = self._event(HANDOVER_TRANSFERRED, conversation_id, user, {"from": owner, "to_team": team})
        result, detail = await self._requeue(
            keys=[HANDOVER_QUEUE, handover_request_key(conversation_id), owned_key(owner), EVENTS_STREAM],
            args=[conversation_id, owner, team, repr(self.clock()), *event])
        self._check_owner(result, detail)

    async def transfer_to_agent(self, user: StaffUser, conversation_id: str, target: StaffUser, owner: str, limit: int) -> None:
        event = self._event(HANDOVER_TRANSFERRED, conversation_id, user, {"from": owner, "to": target.login})
        result, detail = await self._hand_to(
            keys=[handover_request_key(conversation_id), owned_key(owner), owned_key(target.login), EVENTS_STREAM],
            args=[conversation_id, owner, target.login, repr(self.clock()), limit, *event])
        if result == "limit":
            raise Refused(409, "limit", f"{target.name} already has {limit} conversations; choose someone else or their team's queue.")
        self._check_owner(result, detail)

    async def finish(self, user: StaffUser, conversation_id: str, owner: str, outcome: Optional[str]) -> None:
        """Resolve (with an outcome) or hand back to the bot (outcome None)."""
        if outcome is not None and outcome not in OUTCOMES:
            raise Refused(400, "bad_outcome", f"Choose an outcome: {', '.join(OUTCOMES)}.")
        kind = HANDOVER_RESOLVED if outcome else HANDOVER_RELEASED
        data: Dict[str, Any] = {"outcome": outcome} if outcome else {}
        handover = await self.get(conversation_id)
        if handover is not None and handover.claimed_at:
            data["handled_seconds"] = round(self.clock() - handover.claimed_at, 1)
        event = self._event(kind, conversation_id, user, data)
        result, detail = await self._finish(keys=[handover_request_key(conversation_id), owned_key(owner), EVENTS_STREAM],
                                            args=[conversation_id, owner, *event])
        self._check_owner(result, detail)

    async def add_note(self, user: StaffUser, conversation_id: str, text: str) -> Dict[str, Any]:
        text = text.strip()
        if not text:
            raise Refused(400, "empty_note", "Write something in the note first.")
        if len(text) > MAX_NOTE_CHARS:
            raise Refused(400, "note_too_long", f"A note holds at most {MAX_NOTE_CHARS} characters; split it in two.")
        note = {"at": self.clock(), "by": user.login, "name": user.name, "text": text}
        event = LogEvent(type=STAFF_NOTE, conversation_id=conversation_id, source=SOURCE_STAFF, text=text, data={"by": user.login})
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(notes_key(conversation_id), json.dumps(note))
            pipe.ltrim(notes_key(conversation_id), -MAX_NOTES, -1)
            pipe.xadd(EVENTS_STREAM, event.to_fields())
            await pipe.execute()
        return note

    def _event(self, kind: str, conversation_id: str, user: StaffUser, data: Dict[str, Any]) -> List[str]:
        fields = LogEvent(type=kind, conversation_id=conversation_id, source=SOURCE_STAFF, data={**data, "by": user.login}).to_fields()
        return [item for pair in fields.items() for item in pair]

    @staticmethod
    def _check_owner(result: str, detail: str) -> None:
        if result == "not_owned":
            raise Refused(409, "not_owned", "No one owns this conversation now (it was resolved or handed back).")
        if result == "not_owner":
            raise Refused(403, "not_owner", f"{detail} owns this conversation; only they (or an admin) can do that.")
