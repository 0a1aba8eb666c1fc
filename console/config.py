"""The console's settings (console/config.yml): port, sessions, login limits, agents, teams and their hours.

Every key is optional; a mistake is refused with its file and line, and the console does not start.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics.yaml_rules import YamlDocument, read_text, read_yaml
from console.errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parent / "config.yml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TEAM_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    time_zone: str = "UTC"
    hours: Mapping[str, Tuple[dt.time, dt.time]] = field(default_factory=dict)  # day -> (open, close)
    holidays: Tuple[dt.date, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class ConsoleConfig:
    port: int = 5070
    host: str = "127.0.0.1"
    secure_cookies: bool = False
    session_hours: float = 12.0
    login_max_failures: int = 5
    login_window_minutes: float = 15.0
    max_concurrent: int = 3
    away_after_seconds: float = 90.0
    misses_in_a_row: int = 2  # handover trigger: fallbacks or "I don't know yet" answers in a row (0: off)
    negative_feedback: int = 2  # handover trigger: negative feedback messages in one session (0: off)
    teams: Mapping[str, Team] = field(default_factory=dict)

    def team(self, team_id: str) -> Team:
        return self.teams.get(team_id) or Team(team_id, team_id.capitalize())


def load(path: Optional[Path] = None, environ: Mapping[str, str] = os.environ) -> ConsoleConfig:
    path = Path(path or environ.get("ENGAGE_CONSOLE_CONFIG") or DEFAULT_PATH)
    doc = read_yaml(read_text(path, "console settings", ConfigError), str(path), ConfigError)
    config = parse(doc)
    port = environ.get("ENGAGE_CONSOLE_PORT")
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"ENGAGE_CONSOLE_PORT={port!r} is not a port number (1-65535)")
        config = ConsoleConfig(**{**config.__dict__, "port": int(port)})
    return config


def parse(doc: YamlDocument) -> ConsoleConfig:
    data = doc.data if doc.data is not None else {}
    errors: List[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"{doc.line()}: the console settings must be a mapping")
    known = {"port", "host", "secure_cookies", "session_hours", "login", "agents", "triggers", "teams"}
    for key in data:
        if key not in known:
            errors.append(f"{doc.key_line(key)}: unknown setting '{key}' (known: {', '.join(sorted(known))})")
    values: Dict[str, Any] = {}

    def number(value: Any, where: Tuple[Any, ...], name: str, kind: type = float, low: float = 0) -> Optional[float]:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= low or (kind is int and not isinstance(value, int)):
            floor = "0 or more (0 turns it off)" if low < 0 else f"above {low:g}"
            errors.append(f"{doc.line(doc.node(*where))}: '{name}' must be a {'whole ' if kind is int else ''}number {floor}")
            return None
        return kind(value)

    for key, kind in (("port", int), ("session_hours", float)):
        got = number(data.get(key), (key,), key, kind)
        if got is not None:
            values[key] = got
    if "port" in values and values["port"] > 65535:
        errors.append(f"{doc.line(doc.node('port'))}: 'port' must be at most 65535")
    if "host" in data:
        if not isinstance(data["host"], str) or not data["host"]:
            errors.append(f"{doc.line(doc.node('host'))}: 'host' must be an address such as 127.0.0.1")
        else:
            values["host"] = data["host"]
    if "secure_cookies" in data:
        if not isinstance(data["secure_cookies"], bool):
            errors.append(f"{doc.line(doc.node('secure_cookies'))}: 'secure_cookies' must be true or false")
        else:
            values["secure_cookies"] = data["secure_cookies"]
    for section, mapping in (("login", {"max_failures": ("login_max_failures", int), "window_minutes": ("login_window_minutes", float)}),
                             ("agents", {"max_concurrent": ("max_concurrent", int), "away_after_seconds": ("away_after_seconds", float)}),
                             ("triggers", {"misses_in_a_row": ("misses_in_a_row", int), "negative_feedback": ("negative_feedback", int)})):
        block = data.get(section) or {}
        if not isinstance(block, dict):
            errors.append(f"{doc.line(doc.node(section))}: '{section}' must be a mapping")
            continue
        for key in block:
            if key not in mapping:
                errors.append(f"{doc.line(doc.node(section, key))}: unknown setting '{section}.{key}' (known: {', '.join(mapping)})")
        for key, (attr, kind) in mapping.items():
            low = -1 if section == "triggers" else 0  # 0 turns a trigger off
            got = number(block.get(key), (section, key), f"{section}.{key}", kind, low)
            if got is not None:
                values[attr] = got
    teams: Dict[str, Team] = {}
    raw_teams = data.get("teams") or {}
    if not isinstance(raw_teams, dict):
        errors.append(f"{doc.line(doc.node('teams'))}: 'teams' must be a mapping of team id to settings")
        raw_teams = {}
    for team_id, raw in raw_teams.items():
        team = _team(doc, str(team_id), raw, errors)
        if team is not None:
            teams[team.id] = team
    for default in ("support", "sales"):
        teams.setdefault(default, Team(default, default.capitalize()))
    if errors:
        raise ConfigError("console settings have mistakes:\n  " + "\n  ".join(errors))
    return ConsoleConfig(**values, teams=teams)


def _team(doc: YamlDocument, team_id: str, raw: Any, errors: List[str]) -> Optional[Team]:
    where = doc.line(doc.node("teams", team_id))
    if not TEAM_ID.match(team_id):
        errors.append(f"{where}: team id '{team_id}' must be lower-case letters, digits, _ or - (it is stored with each request)")
        return None
    if not isinstance(raw, dict):
        errors.append(f"{where}: team '{team_id}' must be a mapping (name, time_zone, hours, holidays)")
        return None
    for key in raw:
        if key not in ("name", "time_zone", "hours", "holidays"):
            errors.append(f"{doc.line(doc.node('teams', team_id, key))}: unknown setting '{key}' in team '{team_id}'")
    zone = str(raw.get("time_zone") or "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{doc.line(doc.node('teams', team_id, 'time_zone'))}: unknown time zone '{zone}' (an IANA name such as Europe/Berlin)")
        return None
    hours: Dict[str, Tuple[dt.time, dt.time]] = {}
    for day, span in (raw.get("hours") or {}).items():
        line = doc.line(doc.node("teams", team_id, "hours", day))
        match = SPAN.match(str(span)) if day in DAYS else None
        if day not in DAYS:
            errors.append(f"{line}: '{day}' is not a day (use {', '.join(DAYS)})")
        elif match is None:
            errors.append(f"{line}: hours '{span}' must look like 08:00-18:00")
        else:
            start = dt.time(int(match[1]), int(match[2]))
            end = dt.time.max if match[3] == "24" else dt.time(int(match[3]), int(match[4]))
            if end <= start:
                errors.append(f"{line}: hours '{span}' close before they open")
            else:
                hours[day] = (start, end)
    holidays: List[dt.date] = []
    for index, day in enumerate(raw.get("holidays") or []):
        try:
            holidays.append(day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)))
        except ValueError:
            errors.append(f"{doc.line(doc.node('teams', team_id, 'holidays', index))}: holiday '{day}' must be a date such as 2026-12-25")
    return Team(team_id, str(raw.get("name") or team_id.capitalize()), zone, hours, tuple(holidays))
