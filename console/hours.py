"""When a team answers: its business hours and holidays (console/config.yml), and who of it is online.

Pure functions of a Team and a time, plus `available` that asks presence; the action server uses
them to tell a customer when to expect a person.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from console.config import DAYS, Team
from console.presence import Presence
from console.users import UserStore


def is_open(team: Team, at: dt.datetime) -> bool:
    """True when `at` (aware) falls in the team's hours on a day that is not a holiday."""
    local = at.astimezone(team.zone)
    if local.date() in team.holidays:
        return False
    span = team.hours.get(DAYS[local.weekday()])
    return span is not None and span[0] <= local.time() < span[1]


def next_opening(team: Team, at: dt.datetime, days: int = 14) -> Optional[dt.datetime]:
    """The next time the team opens (in its time zone), within `days`; None if never."""
    local = at.astimezone(team.zone)
    for offset in range(days + 1):
        day = local.date() + dt.timedelta(days=offset)
        span = team.hours.get(DAYS[day.weekday()])
        if span is None or day in team.holidays:
            continue
        opening = dt.datetime.combine(day, span[0], tzinfo=team.zone)
        if opening > local:
            return opening
    return None


def describe_opening(opening: Optional[dt.datetime], now: dt.datetime) -> str:
    if opening is None:
        return "as soon as someone is back"
    local_now = now.astimezone(opening.tzinfo)
    day = "today" if opening.date() == local_now.date() else (
        "tomorrow" if opening.date() == local_now.date() + dt.timedelta(days=1) else opening.strftime("on %A"))
    return f"{day} at {opening.strftime('%H:%M')} ({opening.tzinfo})"


async def agents_online(client: Any, team: str, away_after: float) -> int:
    """How many signed-in agents of `team` have their console open and are not away."""
    users = UserStore(client)
    count = 0
    for login in await Presence(client, away_after).online():
        user = await users.get(login)
        if user is not None and user.handles_conversations and user.works(team):
            count += 1
    return count
