"""Full re-clustering keeps theme ids by matching members, so status and history survive."""

from __future__ import annotations

import io
import itertools
import json
from types import SimpleNamespace

import redis.asyncio

from analytics.ideas.config import load_settings
from analytics.ideas.recluster import RECLUSTERS, describe, match_ids
from analytics.ideas.themes import ThemeStore
from analytics.schema import SOURCE_STAFF, THEMES_RECLUSTERED, LogEvent
from tests.analytics.ideas.support import TableEncoder, entry, idea
from tests.analytics.ideas.test_status import status


def counter(prefix: str = "TH-", start: int = 10):
    numbers = itertools.count(start)
    return lambda: f"{prefix}{next(numbers)}"


def test_a_split_theme_keeps_its_id_on_the_larger_part_and_merged_themes_leave_one_id() -> None:
    old = {"a": "TH-1", "b": "TH-1", "c": "TH-1", "d": "TH-2", "e": "TH-3", "f": "TH-3"}
    matching = match_ids(old, [["d", "e", "f"], ["a", "b"], ["c"], ["new"]], counter())
    assert matching.ids == ["TH-3", "TH-1", "TH-10", "TH-11"]
    assert matching.fresh == ["TH-10", "TH-11"]
    assert matching.retired == {"TH-2": "TH-3"}


def test_the_same_clusters_in_another_order_get_the_same_ids() -> None:
    old = {"a": "TH-1", "b": "TH-1", "c": "TH-2", "d": "TH-2"}
    assert match_ids(old, [["c", "d"], ["a", "b"]], counter()).ids == ["TH-2", "TH-1"]
    assert match_ids(old, [["a", "b"], ["c", "d"]], counter()).ids == ["TH-1", "TH-2"]


async def test_recluster_moves_members_keeps_ids_and_status_and_a_replay_ends_the_same(client: redis.asyncio.Redis) -> None:
    # Online, "dark theme please" arrived before its neighbours and started a theme of its own;
    # the full clustering puts it with the dark-mode ideas.
    encoder = TableEncoder({
        "add dark mode": [1, 0, 0], "please add a dark mode": [0.98, 0.05, 0], "dark theme please": [0.55, 0.0, 0.835],
        "night mode for docs": [0.8, 0.0, 0.6], "export dashboards to pdf": [0, 1, 0], "pdf export of dashboards": [0, 0.99, 0.05],
    })
    store = ThemeStore(client, encoder, load_settings())
    log = [
        idea("C-1", "add dark mode", 1.0), idea("C-2", "export dashboards to pdf", 2.0), idea("C-3", "dark theme please", 3.0),
        idea("C-4", "please add a dark mode", 4.0), idea("C-5", "night mode for docs", 5.0), idea("C-6", "pdf export of dashboards", 6.0),
        status("TH-1", "planned", 7.0, "Q3"),
    ]
    await store.apply_batch(log)
    before = {t["id"]: len(t["members"]) for t in await store.themes()}
    request = entry(LogEvent(THEMES_RECLUSTERED, "themes:needs", SOURCE_STAFF, "", 8.0, data={"space": "needs", "by": "pat"}))
    assert await store.apply_batch([request]) == {}
    after = {t["id"]: t for t in await store.themes()}
    assert before == {"TH-1": 2, "TH-2": 2, "TH-3": 2}
    assert {ident: len(t["members"]) for ident, t in after.items()} == {"TH-1": 4, "TH-2": 2}  # TH-3 folded into TH-1
    assert after["TH-1"]["status"] == "planned" and after["TH-1"]["history"][0]["note"] == "Q3"
    assert after["TH-2"]["members"] and all(i["theme"] == "TH-2" for i in await store.items(after["TH-2"]["members"]))
    summary = json.loads(await client.hget(RECLUSTERS, request[1].event_id))
    assert summary["items"] == 6 and summary["retired"] == {"TH-3": "TH-1"} and summary["moved"] == 2
    assert "TH-3 -> TH-1" in describe(summary)
    retired = await store.theme("TH-3")
    assert retired["merged_into"] == "TH-1" and retired["members"] == []
    # Staff who still say TH-3 are told where it went; the service follows merged_into for a logged change.
    err = io.StringIO()
    args = SimpleNamespace(command="ideas", ideas_command="status", theme="TH-3", status="shipped", note="", by="pat")
    from analytics.ideas import cli

    assert await cli.set_status(store, args, io.StringIO(), err) == 2 and "merged into TH-1" in err.getvalue()
    for theme in after.values():
        for item in await store.items(theme["members"]):
            assert item["theme"] == theme["id"]
    snapshot = {t["id"]: sorted(t["members"]) for t in await store.themes()}

    # A new idea after the re-clustering joins by the new grouping; a replay from zero ends the same.
    await store.reset()
    await store.apply_batch([*log, request])
    assert {t["id"]: sorted(t["members"]) for t in await store.themes()} == snapshot


def test_a_scheduled_recluster_is_due_after_the_period_and_only_if_the_themes_changed() -> None:
    from analytics.ideas.recluster import due

    assert not due(None, 100.0, 24, version=3)  # the first look starts the period
    last = {"at": 0.0, "version": 3}
    assert not due(last, 23 * 3600.0, 24, version=9)  # too soon
    assert not due(last, 25 * 3600.0, 24, version=3)  # nothing changed
    assert due(last, 25 * 3600.0, 24, version=9)
    assert not due(None, 100.0, 0, version=9)  # schedule off


async def test_the_schedule_logs_one_request_per_due_space_even_with_two_services(client: redis.asyncio.Redis) -> None:
    import asyncio

    from analytics.ideas.recluster import request_due
    from analytics.ideas.themes import VERSION
    from analytics.schema import EVENTS_STREAM

    await client.set(VERSION, 5)
    assert await request_due(client, 1000.0, 24, ["needs", "questions"]) == []  # a first start re-clusters nothing
    await client.incr(VERSION)
    later = 1000.0 + 25 * 3600
    first = await asyncio.gather(request_due(client, later, 24, ["needs", "questions"]), request_due(client, later, 24, ["needs", "questions"]))
    assert sorted(first[0] + first[1]) == ["needs", "questions"]
    assert await request_due(client, later + 25 * 3600, 24, ["needs"]) == []  # due by time, but nothing changed since
    await client.incr(VERSION)
    assert await request_due(client, later + 25 * 3600, 24, ["needs"]) == ["needs"]
    logged = [LogEvent.from_fields(fields) for _, fields in await client.xrange(EVENTS_STREAM)]
    assert [(e.type, e.data["space"], e.data["by"]) for e in logged] == [(THEMES_RECLUSTERED, "needs", "schedule"), (THEMES_RECLUSTERED, "questions", "schedule"),
                                                                       (THEMES_RECLUSTERED, "needs", "schedule")]
