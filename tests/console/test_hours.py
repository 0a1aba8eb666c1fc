"""Business hours, holidays and the next opening (pure), and console/config.yml's mistakes named by line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analytics.yaml_rules import read_yaml
from console.config import load, parse
from console.errors import ConfigError
from console.hours import describe_opening, is_open, next_opening

UTC = dt.timezone.utc


def test_the_shipped_settings_load() -> None:
    config = load(environ={})
    assert config.port == 5070 and {"support", "sales"} <= set(config.teams)


def test_hours_in_the_teams_time_zone_with_holidays() -> None:
    support = load(environ={}).teams["support"]  # Mon-Fri 08:00-18:00 Europe/Berlin
    assert is_open(support, dt.datetime(2026, 11, 27, 7, 30, tzinfo=UTC))  # Friday 08:30 in Berlin
    assert not is_open(support, dt.datetime(2026, 11, 27, 6, 30, tzinfo=UTC))  # 07:30 in Berlin
    assert not is_open(support, dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # Saturday
    assert not is_open(support, dt.datetime(2026, 12, 25, 10, 0, tzinfo=UTC))  # a holiday (a Friday)
    saturday = dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    opening = next_opening(support, saturday)
    assert opening is not None and (opening.date(), opening.hour) == (dt.date(2026, 11, 30), 8)
    assert describe_opening(opening, saturday) == "on Monday at 08:00 (Europe/Berlin)"
    christmas_eve = dt.datetime(2026, 12, 23, 18, 30, tzinfo=UTC)  # after hours on the 23rd; 24-26 are holidays
    assert next_opening(support, christmas_eve).date() == dt.date(2026, 12, 28)


@pytest.mark.parametrize("text, expected", [
    ("teams:\n  support:\n    time_zone: Mars/Olympus\n", "<t>:3: unknown time zone 'Mars/Olympus'"),
    ("teams:\n  support:\n    hours: {mon: '18:00-08:00'}\n", "<t>:3: hours '18:00-08:00' close before they open"),
    ("teams:\n  support:\n    holidays: [christmas]\n", "<t>:3: holiday 'christmas' must be a date"),
    ("agents:\n  max_concurent: 3\n", "<t>:2: unknown setting 'agents.max_concurent'"),
    ("port: -1\n", "<t>:1: 'port' must be a whole number above 0"),
])
def test_mistakes_are_named_with_their_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(read_yaml(text, "<t>", ConfigError))
    assert expected in str(error.value)


def test_a_bad_port_in_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ENGAGE_CONSOLE_PORT"):
        load(environ={"ENGAGE_CONSOLE_PORT": "http"})
