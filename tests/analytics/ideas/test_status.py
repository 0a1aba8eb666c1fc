"""Theme status set by staff through the log: history, unknown themes refused, opted-in requesters queued once."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import redis.asyncio

from analytics.ideas import cli
from analytics.ideas.config import load_settings
from analytics.ideas.notify import OUTBOX, PENDING
from analytics.ideas.themes import CONSENT, ThemeStore, status_name
from analytics.schema import EVENTS_STREAM, IDEA_UPDATES_CONSENT, SOURCE_ACTION, SOURCE_STAFF, THEME_STATUS_SET, LogEvent
from tests.analytics.ideas.support import TableEncoder, entry, idea

DARK = {"add dark mode": [1, 0, 0], "please add a dark mode": [0.97, 0.05, 0], "dark theme for the editor": [0.9, 0.1, 0.1],
        "export dashboards to pdf": [0, 1, 0]}


def status(theme: str, value: str, at: float, note: str = "", by: str = "pat") -> tuple:
    return entry(LogEvent(THEME_STATUS_SET, f"theme:{theme}", SOURCE_STAFF, "", at, data={"theme": theme, "status": value, "note": note, "by": by}))


def consent(customer: str, yes: bool, at: float, channel: str = "whatsapp") -> tuple:
    return entry(LogEvent(IDEA_UPDATES_CONSENT, customer, SOURCE_ACTION, channel, at, data={"consent": yes}))


def test_status_names_as_staff_type_them() -> None:
    assert status_name("Under-review") == "under review"
    assert status_name("under_review") == "under review"
    assert status_name("SHIPPED") == "shipped"
    assert status_name("done") is None


async def test_shipping_a_theme_keeps_history_and_queues_each_opted_in_requester_once(client: redis.asyncio.Redis) -> None:
    store = ThemeStore(client, TableEncoder(DARK), load_settings())
    log = [
        idea("C-1", "add dark mode", 1.0, "whatsapp", "IDEA-A"), consent("C-1", True, 1.5),
        idea("C-2", "please add a dark mode", 2.0, "telegram", "IDEA-B"), consent("C-2", True, 2.5, "telegram"),
        idea("C-3", "dark theme for the editor", 3.0), consent("C-3", False, 3.5, "socketio"),
        idea("C-4", "export dashboards to pdf", 4.0), consent("C-4", True, 4.5),
        idea("C-2", "add dark mode", 4.8, "telegram", "IDEA-C"),
        status("TH-1", "planned", 5.0), status("TH-1", "shipped", 6.0, "Settings > Appearance > Dark"),
    ]
    assert await store.apply_batch(log) == {}
    theme = await store.theme("TH-1")
    assert theme["status"] == "shipped"
    assert [(h["status"], h["by"], h["note"]) for h in theme["history"]] == [("planned", "pat", ""), ("shipped", "pat", "Settings > Appearance > Dark")]
    jobs = {ident: json.loads(raw) for ident, raw in (await client.hgetall(OUTBOX)).items()}
    assert sorted(jobs) == ["TH-1:shipped:C-1", "TH-1:shipped:C-2"]  # C-3 said no; C-4 asked for something else
    assert jobs["TH-1:shipped:C-2"]["text"] == "add dark mode" and jobs["TH-1:shipped:C-2"]["reference"] == "IDEA-C"  # their latest idea
    assert sorted(await client.zrange(PENDING, 0, -1)) == sorted(jobs)

    # The same decision again, a redelivery, a replay from empty: nothing new is queued.
    await client.hset(OUTBOX, "TH-1:shipped:C-1", json.dumps({**jobs["TH-1:shipped:C-1"], "state": "sent"}))
    await store.apply_batch([status("TH-1", "shipped", 7.0)])
    await store.apply_batch(log)
    await store.reset()
    await store.apply_batch(log)
    assert json.loads(await client.hget(OUTBOX, "TH-1:shipped:C-1"))["state"] == "sent"
    assert await client.hlen(OUTBOX) == 2
    assert json.loads(await client.hget(CONSENT, "C-3"))["consent"] is False


async def test_a_status_for_a_theme_that_does_not_exist_is_refused(client: redis.asyncio.Redis) -> None:
    store = ThemeStore(client, TableEncoder(DARK), load_settings())
    refused = await store.apply_batch([status("TH-9", "shipped", 1.0), status("TH-1", "done", 2.0)])
    assert refused == {"1000-0": "no theme 'TH-9'", "2000-0": "unknown status 'done' (known: new, under review, planned, shipped, declined)"}


async def test_the_status_command_logs_who_did_it_and_refuses_mistakes_with_exit_2(client: redis.asyncio.Redis) -> None:
    store = ThemeStore(client, TableEncoder(DARK), load_settings())
    await store.apply_batch([idea("C-1", "add dark mode", 1.0)])

    def run(theme: str, value: str, note: str = "") -> tuple:
        out, err = io.StringIO(), io.StringIO()
        args = SimpleNamespace(command="ideas", ideas_command="status", theme=theme, status=value, note=note, by="dana")
        return cli.set_status(store, args, out, err), out, err

    code, _, err = run("TH-7", "shipped")
    assert await code == 2 and "no theme 'TH-7'" in err.getvalue() and "TH-1" in err.getvalue()
    code, _, err = run("TH-1", "finished")
    assert await code == 2 and "unknown status 'finished'" in err.getvalue()
    code, _, err = run("TH-1", "declined")
    assert await code == 2 and "--note" in err.getvalue()
    assert await client.xlen(EVENTS_STREAM) == 0  # nothing logged for a refused command
    code, out, _ = run("TH-1", "declined", "not in our plans this year")
    assert await code == 0 and "TH-1 marked declined by dana" in out.getvalue()
    (_, fields), = await client.xrange(EVENTS_STREAM)
    logged = LogEvent.from_fields(fields)
    assert (logged.type, logged.source, logged.data) == (THEME_STATUS_SET, SOURCE_STAFF, {"theme": "TH-1", "status": "declined", "note": "not in our plans this year", "by": "dana"})
