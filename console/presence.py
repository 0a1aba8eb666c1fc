"""Who is at their console: an agent is online while their open console sends heartbeats and they
have not set themselves away. Read by the console (transfer choices) and the action server (is
anyone of a team there to take a handover?).

Keys: `engage:console:presence` (sorted set: login -> last heartbeat time),
`engage:console:away` (set of logins who chose "away").
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List

HEARTBEATS = "engage:console:presence"
AWAY = "engage:console:away"


class Presence:
    def __init__(self, client: Any, away_after: float, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.away_after = away_after
        self.clock = clock

    async def heartbeat(self, login: str) -> None:
        await self.client.zadd(HEARTBEATS, {login: self.clock()})

    async def set_away(self, login: str, away: bool) -> None:
        if away:
            await self.client.sadd(AWAY, login)
        else:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.srem(AWAY, login)
                pipe.zadd(HEARTBEATS, {login: self.clock()})
                await pipe.execute()

    async def gone(self, login: str) -> None:
        await self.client.zrem(HEARTBEATS, login)

    async def online(self) -> List[str]:
        recent = await self.client.zrangebyscore(HEARTBEATS, self.clock() - self.away_after, "+inf")
        away = await self.client.smembers(AWAY)
        return sorted(login for login in recent if login not in away)

    async def status(self, logins: List[str]) -> Dict[str, str]:
        online = set(await self.online())
        return {login: ("online" if login in online else "away") for login in logins}
