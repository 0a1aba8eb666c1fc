"""Staff accounts: login, name, role, teams and an argon2id password hash, kept in Redis.

Keys: `engage:console:user:<login>` (hash: name, role, teams, password, created_at),
`engage:console:users` (set of logins), `engage:console:sessions:<login>` (set of the ids of the
sessions that are signed in; a session cookie whose id is not here is refused, so a logout, a
"log out everywhere", a password change or a removed account end it even if the cookie is replayed).
Hashing and checking run in the default executor: argon2 is deliberately slow.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from console.errors import UserError

PREFIX = "engage:console:"
USERS = PREFIX + "users"
ROLES = ("agent", "sales", "product", "admin")
# Who may work which handover queue unless told otherwise (`--teams`).
DEFAULT_TEAMS = {"agent": ("support",), "sales": ("sales",), "product": (), "admin": ("*",)}
LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_hasher = PasswordHasher()  # argon2id with argon2-cffi's current defaults (RFC 9106 low-memory profile)
# Checked against when the login does not exist, so a wrong login costs what a wrong password does.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def user_key(login: str) -> str:
    return f"{PREFIX}user:{login}"


def sessions_key(login: str) -> str:
    return f"{PREFIX}sessions:{login}"


@dataclass(frozen=True)
class StaffUser:
    login: str
    name: str
    role: str
    teams: Tuple[str, ...]

    def works(self, team: str) -> bool:
        return "*" in self.teams or team in self.teams

    @property
    def handles_conversations(self) -> bool:
        return self.role in ("agent", "sales", "admin")


def check_login(login: str) -> str:
    if not isinstance(login, str) or not LOGIN.match(login):
        raise UserError("A login is 2-32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return login


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"A password needs at least {MIN_PASSWORD} characters (a few words make a good one).")
    return password


class UserStore:
    def __init__(self, client: Any) -> None:
        self.client = client  # redis.asyncio, decode_responses=True

    async def add(self, login: str, name: str, role: str, password: str, teams: Optional[Sequence[str]] = None) -> StaffUser:
        check_login(login)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"Unknown role '{role}': choose one of {', '.join(ROLES)}.")
        name = " ".join(str(name or login).split())[:80] or login
        chosen = tuple(teams) if teams else DEFAULT_TEAMS[role]
        for team in chosen:
            if team != "*" and not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", team):
                raise UserError(f"Team '{team}' is not a team id (lower-case letters, digits, _ or -).")
        hashed = await _run(_hasher.hash, password)
        created = await self.client.hsetnx(user_key(login), "password", hashed)
        if not created:
            raise UserError(f"There is already a user '{login}'. Use `passwd` to change their password or `remove` first.")
        await self.client.hset(user_key(login), mapping={"name": name, "role": role, "teams": ",".join(chosen), "created_at": repr(time.time())})
        await self.client.sadd(USERS, login)
        return StaffUser(login, name, role, chosen)

    async def get(self, login: str) -> Optional[StaffUser]:
        if not isinstance(login, str) or not LOGIN.match(login):
            return None
        raw = await self.client.hgetall(user_key(login))
        if not raw or "role" not in raw:
            return None
        teams = tuple(t for t in raw.get("teams", "").split(",") if t)
        return StaffUser(login, raw.get("name") or login, raw["role"], teams)

    async def list(self) -> List[StaffUser]:
        found = [await self.get(login) for login in sorted(await self.client.smembers(USERS))]
        return [user for user in found if user is not None]

    async def remove(self, login: str) -> bool:
        check_login(login)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(user_key(login), sessions_key(login))
            pipe.srem(USERS, login)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def set_password(self, login: str, password: str) -> None:
        check_password(password)
        if await self.get(login) is None:
            raise UserError(f"There is no user '{login}'. `python -m console users list` shows who there is.")
        hashed = await _run(_hasher.hash, password)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(user_key(login), "password", hashed)
            pipe.delete(sessions_key(login))  # a new password signs every session out
            await pipe.execute()

    async def authenticate(self, login: str, password: str) -> Optional[StaffUser]:
        """The user when the password is theirs; None otherwise (same cost whether or not the login exists)."""
        hashed = await self.client.hget(user_key(login), "password") if LOGIN.match(login or "") else None
        ok = await _run(_verify, hashed or _DUMMY_HASH, password if len(password) <= MAX_PASSWORD else "")
        if not ok or hashed is None:
            return None
        if _hasher.check_needs_rehash(hashed):
            await self.client.hset(user_key(login), "password", await _run(_hasher.hash, password))
        return await self.get(login)

    # -- sessions ------------------------------------------------------------------------------

    async def open_session(self, login: str, session_id: str, lifetime: float) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(sessions_key(login), session_id)
            pipe.expire(sessions_key(login), int(lifetime) + 60)
            await pipe.execute()

    async def session_open(self, login: str, session_id: str) -> bool:
        return bool(await self.client.sismember(sessions_key(login), session_id))

    async def close_session(self, login: str, session_id: str) -> None:
        await self.client.srem(sessions_key(login), session_id)

    async def close_all_sessions(self, login: str) -> None:
        await self.client.delete(sessions_key(login))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def _run(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)
