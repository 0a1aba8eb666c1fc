"""One-time codes that prove a customer owns an e-mail address: 6 digits, short-lived, few tries.

Only a salted hash of the code is stored (`engage:otp:<conversation id>`, a hash with the
e-mail, salt, digest and attempts, expiring with the code). Checking counts attempts
atomically; after `max_attempts` wrong codes the code is gone and a new one must be asked for.
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
DIGITS = 6


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


class OneTimeCodes:
    """Issue and check codes on a `redis.asyncio` client with decoded responses."""

    def __init__(self, client: Any, ttl_seconds: int = 600, max_attempts: int = 5) -> None:
        self._client = client
        self.ttl_seconds = ttl_seconds
        self.max_attempts = max_attempts

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
            await self._client.delete(key)  # one use only
            return CheckResult(CodeCheck.VERIFIED, email=stored["email"])
        if attempts >= self.max_attempts:
            await self._client.delete(key)
            return CheckResult(CodeCheck.LOCKED)
        return CheckResult(CodeCheck.WRONG, tries_left=self.max_attempts - attempts)
