"""What staff read: trend, channel mix, filters by time and area, quotes with links, CSV/JSON export."""

from __future__ import annotations

import csv
import io
import json

import redis.asyncio

from analytics.ideas.areas import AreaMatcher, load_catalogue
from analytics.ideas.cli import parse_when, write_export
from analytics.ideas.config import load_settings
from analytics.ideas.mining import RepresentativeLabeller
from analytics.ideas.report import summaries, trend
from analytics.ideas.themes import ThemeStore
from analytics.service import record_store
from tests.analytics.ideas.support import TableEncoder, idea

DAY = 86400.0
NOW = 1_780_000_000.0


def test_trend_counts_this_period_against_the_last() -> None:
    items = [{"at": NOW - d * DAY} for d in (1, 2, 3, 35, 40)]
    assert trend(items, NOW, 30 * DAY) == {"this_period": 3, "last_period": 2, "change_pct": 50.0, "period_days": 30.0}
    assert trend(items[:1], NOW, 30 * DAY)["change_pct"] is None


def test_since_takes_a_date_or_an_age() -> None:
    assert parse_when("30d", NOW) == NOW - 30 * DAY
    assert parse_when("12h", NOW) == NOW - 12 * 3600
    assert parse_when("2026-11-01") == 1_793_491_200.0
    assert parse_when(None) is None
    try:
        parse_when("last week")
    except ValueError as exc:
        assert "expected a date like 2026-11-01 or an age like 30d" in str(exc)
    else:
        raise AssertionError("a vague --since must be refused")


async def test_themes_filtered_by_time_and_area_with_links_and_exported(client: redis.asyncio.Redis, monkeypatch) -> None:
    monkeypatch.setenv("ENGAGE_CONVERSATION_URL", "https://console.example/c/{customer}#{event_id}")
    encoder = TableEncoder({"add dark mode": [1, 0], "dark mode please": [0.99, 0.1], "a Slack integration": [0, 1], "post to Slack": [0.05, 1]})
    store = ThemeStore(client, encoder, load_settings())
    await store.apply_batch([
        idea("C-1", "add dark mode", NOW - 40 * DAY, "whatsapp"), idea("C-2", "dark mode please", NOW - 2 * DAY, "telegram"),
        idea("C-3", "a Slack integration", NOW - 45 * DAY), idea("C-4", "post to Slack", NOW - 50 * DAY),
    ])
    settings, records, areas = load_settings(), record_store(client), AreaMatcher(load_catalogue())
    rows = await summaries(store, records, settings.demand, RepresentativeLabeller(), areas, now=NOW)
    assert [row["id"] for row in rows] == ["TH-1", "TH-2"]
    dark = rows[0]
    assert dark["demand"]["channels"] == {"whatsapp": 1, "telegram": 1}
    assert (dark["trend"]["this_period"], dark["trend"]["last_period"]) == (1, 1)
    assert dark["quotes"][0]["link"].startswith("https://console.example/c/C-")
    recent = await summaries(store, records, settings.demand, RepresentativeLabeller(), areas, since=NOW - 30 * DAY, now=NOW)
    assert [(row["id"], row["demand"]["mentions"]) for row in recent] == [("TH-1", 1)]
    slack = await summaries(store, records, settings.demand, RepresentativeLabeller(), areas, area="slack", now=NOW)
    assert [row["id"] for row in slack] == ["TH-2"] and slack[0]["areas"] == {"Integrations / Slack": 2}

    out = io.StringIO()
    write_export(rows, "csv", out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["id"], r["customers"], r["channels"]) for r in table] == [("TH-1", "2", "telegram=1;whatsapp=1"), ("TH-2", "2", "socketio=2")]
    out = io.StringIO()
    write_export(rows, "json", out)
    assert [r["id"] for r in json.loads(out.getvalue())] == ["TH-1", "TH-2"] and set(json.loads(out.getvalue())[0]) == set(table[0])
