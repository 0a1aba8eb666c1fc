"""One-time codes that prove a customer owns an e-mail address: 6 digits, short-lived, few tries.

Only a salted hash of the code is stored (`engage:otp:<conversation id>`, a hash with the
e-mail, salt, digest and attempts, expiring with the code). Checking counts attempts
atomically; after `max_attempts` wrong codes the code is gone and a new one must be asked for.

A right code leaves a **proof** behind (`engage:otp:proof:<conversation id>:<sha256 of the
e-mail>`, short-lived): the only thing `action_link_account` accepts as verification. A
tracker slot can be written by whoever talks to the bot, so it never stands for one; the
proof is taken once (`consume_proof`), so it links one address once.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Optional

from analytics.schema import KEY_PREFIX

PREFIX = KEY_PREFIX + "otp:"
PROOF_PREFIX = PREFIX + "proof:"
DIGITS = 6
PROOF_TTL_SECONDS = 300  # from the right code to the link: one turn of the form, with room to spare


class CodeCheck(str, enum.Enum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"  # no code pending (never sent, expired, or already used)
    LOCKED = "locked"  # too many wrong codes: the code is gone


@dataclass(frozen=True)
class CheckResult:
    outcome: CodeCheck
    email: Optional[str] = None
    tries_left: int = 0


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def proof_key(conversation_id: str, email: str) -> str:
    """Keyed by customer and address: a proof for one address never confirms another."""
    return f"{PROOF_PREFIX}{conversation_id}:{hashlib.sha256(email.strip().lower().encode()).hexdigest()}"


class OneTimeCodes:
    """Issue and check codes on a `redis.asyncio` client with decoded responses."""

    def __init__(
        self, client: Any, ttl_seconds: int = 600, max_attempts: int = 5, proof_ttl_seconds: int = PROOF_TTL_SECONDS
    ) -> None:
        self._client = client
        self.ttl_seconds = ttl_seconds
        self.max_attempts = max_attempts
        self.proof_ttl_seconds = proof_ttl_seconds

    async def issue(self, conversation_id: str, email: str) -> str:
        """A new code for `email` (replacing any pending one); returns the code to send."""
        code = f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"
        salt = secrets.token_hex(8)
        key = PREFIX + conversation_id
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"email": email, "salt": salt, "digest": _digest(salt, code), "attempts": 0})
            pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
        return code

    async def check(self, conversation_id: str, code: str) -> CheckResult:
        key = PREFIX + conversation_id
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.hincrby(key, "attempts", 1)
            stored, attempts = await pipe.execute()
        if not stored:
            await self._client.delete(key)  # HINCRBY made a stub of a missing key
            return CheckResult(CodeCheck.EXPIRED)
        if attempts > self.max_attempts:
            await self._client.delete(key)
            return CheckResult(CodeCheck.LOCKED)
        if hmac.compare_digest(_digest(stored["salt"], code), stored["digest"]):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)  # one use only
                pipe.set(proof_key(conversation_id, stored["email"]), "1", ex=self.proof_ttl_seconds)
                await pipe.execute()
            return CheckResult(CodeCheck.VERIFIED, email=stored["email"])
        if attempts >= self.max_attempts:
            await self._client.delete(key)
            return CheckResult(CodeCheck.LOCKED)
        return CheckResult(CodeCheck.WRONG, tries_left=self.max_attempts - attempts)

    async def consume_proof(self, conversation_id: str, email: str) -> bool:
        """True once, within the proof's lifetime, after a right code for `email` in this conversation."""
        return bool(await self._client.delete(proof_key(conversation_id, email)))
