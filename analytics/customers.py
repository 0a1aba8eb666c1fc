"""One customer across channels: a profile in Redis that links channel identities on verified evidence.

An identity is a channel's proof of who is writing: a web-chat session, a portal user (from
the portal's signed JWT), a WhatsApp phone number, a Telegram user id, or an e-mail address
confirmed with a one-time code. Connectors resolve the identities of each message to a
customer id, which is the Rasa conversation id, so a customer who switches channel keeps one
conversation (slots, open forms, history).

Linking happens only when one piece of evidence carries several identities (a portal JWT
names the user and their e-mail) or when a customer proves a new one (the e-mail code).
When that evidence joins two customers, they merge into the one active most recently, so
the conversation in progress carries on; the other profile records where it went.

Keys (prefix `engage:`): `customer:<id>` (hash: created_at, last_seen, merged_into),
`customer:<id>:identities` (hash: identity -> JSON {evidence, linked_at}),
`customer:<id>:merged` (set of merged customer ids), `identity:<kind>:<value>` (-> id).
Every change is one Lua script, so concurrent messages never see half a merge.
Plain Python + redis.asyncio: imported by the Rasa runtime (3.10) and the action runtime (3.11).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from analytics.schema import EVENTS_STREAM, KEY_PREFIX, SCHEMA_VERSION

PREFIX = KEY_PREFIX
CUSTOMER_ID = re.compile(r"^C-[0-9a-f]{16}$")

WEB = "web"
PORTAL = "portal"
EMAIL = "email"
WHATSAPP = "whatsapp"
TELEGRAM = "telegram"

# How each kind of identity is proven; the evidence is stored with the link.
EVIDENCE = {
    WEB: "web_session",
    PORTAL: "portal_jwt",
    EMAIL: "email_code",
    WHATSAPP: "whatsapp_number",
    TELEGRAM: "telegram_user",
}

_PATTERNS = {
    WEB: re.compile(r"^[A-Za-z0-9_-]{8,64}$"),
    PORTAL: re.compile(r"^[A-Za-z0-9_.@-]{1,64}:[A-Za-z0-9_.@-]{1,64}$"),  # account:user
    EMAIL: re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$"),
    WHATSAPP: re.compile(r"^[1-9][0-9]{6,14}$"),  # E.164 digits without the +
    TELEGRAM: re.compile(r"^[1-9][0-9]{0,19}$"),
}


class IdentityError(ValueError):
    """An identity that is malformed or of an unknown kind."""


@dataclass(frozen=True)
class Identity:
    kind: str
    value: str

    @classmethod
    def of(cls, kind: str, value: str) -> "Identity":
        """A checked, normalised identity (e-mail lower-cased, phone numbers as digits only)."""
        if kind not in _PATTERNS:
            raise IdentityError(f"unknown identity kind {kind!r}; known: {', '.join(sorted(_PATTERNS))}")
        if not isinstance(value, str):
            raise IdentityError(f"a {kind} identity must be text")
        value = value.strip()
        if kind == EMAIL:
            value = value.lower()
        elif kind == WHATSAPP:
            value = re.sub(r"[\s()+.-]", "", value)
        if not _PATTERNS[kind].match(value):
            raise IdentityError(f"{value[:80]!r} is not a valid {kind} identity")
        return cls(kind, value)

    @classmethod
    def parse(cls, text: str) -> "Identity":
        kind, _, value = text.partition(":")
        return cls.of(kind, value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Resolution:
    customer_id: str
    created: bool  # a new customer
    attached: Tuple[str, ...]  # identities newly linked to it
    merged_from: Tuple[str, ...]  # customers merged into it by this evidence


@dataclass(frozen=True)
class LinkedIdentity:
    identity: Identity
    evidence: str
    linked_at: float


# KEYS: none (keys are derived inside; the directory lives on one Redis).
# ARGV: prefix, now, candidate id, pinned id ("" = none), n, then n pairs (identity, evidence),
# then the interaction-log stream and an event id for the customers_merged record.
# The winner is the pinned customer, else the most recently seen owner, else the candidate.
# A merge is written to the log in the same step, so a replay of the log knows it.
_RESOLVE = """
local prefix, now, candidate, pinned = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
local owners, order = {}, {}
for i = 1, n do
  local owner = redis.call('GET', prefix .. 'identity:' .. ARGV[4 + 2 * i])
  if owner and not owners[owner] then owners[owner] = true; table.insert(order, owner) end
end
local winner = pinned
if winner == '' then
  local best = -1
  for _, owner in ipairs(order) do
    local seen = tonumber(redis.call('HGET', prefix .. 'customer:' .. owner, 'last_seen') or '0')
    if seen > best then best = seen; winner = owner end
  end
end
local created = 0
if winner == '' then winner = candidate end
if redis.call('EXISTS', prefix .. 'customer:' .. winner) == 0 then
  redis.call('HSET', prefix .. 'customer:' .. winner, 'created_at', now)
  created = 1
end
redis.call('HSET', prefix .. 'customer:' .. winner, 'last_seen', now)
local merged = {}
for _, owner in ipairs(order) do
  if owner ~= winner then
    local linked = redis.call('HGETALL', prefix .. 'customer:' .. owner .. ':identities')
    for j = 1, #linked, 2 do
      redis.call('SET', prefix .. 'identity:' .. linked[j], winner)
      redis.call('HSET', prefix .. 'customer:' .. winner .. ':identities', linked[j], linked[j + 1])
    end
    redis.call('DEL', prefix .. 'customer:' .. owner .. ':identities')
    redis.call('HSET', prefix .. 'customer:' .. owner, 'merged_into', winner)
    redis.call('SADD', prefix .. 'customer:' .. winner .. ':merged', owner)
    table.insert(merged, owner)
  end
end
if #merged > 0 then
  redis.call('XADD', ARGV[6 + 2 * n], '*', 'type', 'customers_merged', 'conversation_id', winner,
    'source', 'directory', 'channel', '', 'timestamp', now, 'text', '', 'intent', '', 'confidence', '',
    'metadata', '{}', 'data', cjson.encode({merged_from = merged}), 'event_id', ARGV[7 + 2 * n],
    'schema_version', ARGV[8 + 2 * n])
end
local attached = {}
for i = 1, n do
  local identity, evidence = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if redis.call('HEXISTS', prefix .. 'customer:' .. winner .. ':identities', identity) == 0 then
    redis.call('SET', prefix .. 'identity:' .. identity, winner)
    redis.call('HSET', prefix .. 'customer:' .. winner .. ':identities', identity,
      cjson.encode({evidence = evidence, linked_at = tonumber(now)}))
    table.insert(attached, identity)
  end
end
return cjson.encode({customer_id = winner, created = created, merged = merged, attached = attached})
"""

# ARGV: prefix, customer id, identity, then optionally a stream and the record's field/value
# pairs, written in the same step. Returns 1 if it was linked to that customer.
_UNLINK = """
local prefix, customer, identity = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', prefix .. 'identity:' .. identity) ~= customer then return 0 end
redis.call('DEL', prefix .. 'identity:' .. identity)
redis.call('HDEL', prefix .. 'customer:' .. customer .. ':identities', identity)
if ARGV[4] then redis.call('XADD', ARGV[4], '*', unpack(ARGV, 5)) end
return 1
"""


def new_customer_id() -> str:
    return f"C-{uuid.uuid4().hex[:16]}"


class CustomerDirectory:
    """The profiles, on a `redis.asyncio.Redis` client (decode_responses off or on)."""

    def __init__(self, client: Any, prefix: str = PREFIX, stream: str = EVENTS_STREAM) -> None:
        self._client = client
        self._prefix = prefix
        self._stream = stream
        self._resolve = client.register_script(_RESOLVE)
        self._unlink = client.register_script(_UNLINK)

    async def resolve(self, evidence: Sequence[Tuple[Identity, str]]) -> Resolution:
        """The customer these verified identities belong to; links them all to it (creating it if new)."""
        if not evidence:
            raise IdentityError("at least one identity is needed")
        return await self._run(evidence, pinned="")

    async def link(self, customer_id: str, identity: Identity, evidence: str) -> Resolution:
        """Link a newly proven identity to `customer_id`; a customer that held it merges into this one."""
        _check_customer_id(customer_id)
        return await self._run([(identity, evidence)], pinned=customer_id)

    async def _run(self, evidence: Sequence[Tuple[Identity, str]], pinned: str) -> Resolution:
        args: List[Any] = [self._prefix, repr(time.time()), new_customer_id(), pinned, len(evidence)]
        for identity, how in evidence:
            args.extend([str(identity), how])
        args.extend([self._stream, uuid.uuid4().hex, SCHEMA_VERSION])
        raw = await self._resolve(args=args)
        result = json.loads(raw)
        return Resolution(
            customer_id=result["customer_id"],
            created=bool(result["created"]),
            attached=tuple(_list(result["attached"])),
            merged_from=tuple(_list(result["merged"])),
        )

    async def identities(self, customer_id: str) -> List[LinkedIdentity]:
        """The identities linked to a customer, oldest link first."""
        _check_customer_id(customer_id)
        raw = await self._client.hgetall(f"{self._prefix}customer:{customer_id}:identities")
        linked = []
        for key, value in raw.items():
            data = json.loads(_text(value))
            linked.append(LinkedIdentity(Identity.parse(_text(key)), str(data["evidence"]), float(data["linked_at"])))
        return sorted(linked, key=lambda item: (item.linked_at, str(item.identity)))

    async def unlink(self, customer_id: str, identity: Identity, record: Optional[Tuple[str, Mapping[str, str]]] = None) -> bool:
        """Remove one identity from a customer; its next message starts a new customer.

        `record` is (stream, fields): an entry added in the same atomic step, only if the identity was removed.
        """
        _check_customer_id(customer_id)
        args: List[Any] = [self._prefix, customer_id, str(identity)]
        if record is not None:
            stream, fields = record
            args.append(stream)
            for key, value in fields.items():
                args.extend([key, value])
        return bool(await self._unlink(args=args))

    async def owner(self, identity: Identity) -> Optional[str]:
        value = await self._client.get(f"{self._prefix}identity:{identity}")
        return _text(value) if value is not None else None

    async def profile(self, customer_id: str) -> Dict[str, Any]:
        """created_at, last_seen, merged_into (if merged) and merged_from."""
        _check_customer_id(customer_id)
        fields = {_text(k): _text(v) for k, v in (await self._client.hgetall(f"{self._prefix}customer:{customer_id}")).items()}
        merged = sorted(_text(m) for m in await self._client.smembers(f"{self._prefix}customer:{customer_id}:merged"))
        profile: Dict[str, Any] = {key: float(fields[key]) for key in ("created_at", "last_seen") if key in fields}
        if "merged_into" in fields:
            profile["merged_into"] = fields["merged_into"]
        profile["merged_from"] = merged
        return profile


async def close(client: Any) -> None:
    """Close a redis.asyncio client: aclose() on redis 5+, close() on the Rasa runtime's redis 4."""
    await (client.aclose() if hasattr(client, "aclose") else client.close())


def _check_customer_id(customer_id: str) -> None:
    if not isinstance(customer_id, str) or not CUSTOMER_ID.match(customer_id):
        raise IdentityError(f"{str(customer_id)[:40]!r} is not a customer id (C- and 16 hex digits)")


def _list(value: Any) -> List[str]:
    # cjson encodes an empty Lua table as {} (an object), not [].
    return [str(item) for item in value] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
