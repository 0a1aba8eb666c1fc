"""The projection keeps what the conversation told the customer: a vote where it said so, and a theme
of its own when the customer said it is something else."""

from __future__ import annotations

import redis.asyncio

from analytics.ideas.config import load_settings
from analytics.ideas.themes import NEW, VOTE, ThemeStore
from analytics.schema import IDEA, IDEA_SEPARATED, SOURCE_ACTION, LogEvent
from tests.analytics.ideas.support import TableEncoder, entry, idea

TABLE = {"add dark mode": [1, 0, 0], "dark mode please": [0.98, 0.1, 0], "high contrast colours": [0.62, 0.0, 0.78], "pdf export": [0, 1, 0]}


async def test_a_vote_the_customer_was_told_of_stands_and_something_else_gets_its_own_theme(client: redis.asyncio.Redis) -> None:
    store = ThemeStore(client, TableEncoder(TABLE), load_settings())
    told = LogEvent(IDEA, "C-3", SOURCE_ACTION, "telegram", 3.0, data={"summary": "high contrast colours", "reference": "IDEA-3", "theme": "TH-1"})
    log = [idea("C-1", "add dark mode", 1.0), idea("C-2", "dark mode please", 2.0), entry(told)]
    await store.apply_batch(log)
    (theme,) = await store.themes()
    items = {item["customer"]: item for item in await store.items(theme["members"])}
    assert theme["id"] == "TH-1" and items["C-3"]["how"] == VOTE  # alone it would have started a theme (cosine 0.62)

    separated = LogEvent(IDEA_SEPARATED, "C-3", SOURCE_ACTION, "telegram", 4.0, data={"idea": told.event_id, "theme": "TH-1"})
    not_theirs = LogEvent(IDEA_SEPARATED, "C-9", SOURCE_ACTION, "telegram", 4.5, data={"idea": log[0][1].event_id, "theme": "TH-1"})
    await store.apply_batch([entry(separated), entry(not_theirs)])
    themes = {t["id"]: t for t in await store.themes()}
    assert sorted(themes) == ["TH-1", "TH-2"] and len(themes["TH-1"]["members"]) == 2 and themes["TH-2"]["members"] == [told.event_id]
    (moved,) = await store.items([told.event_id])
    assert (moved["theme"], moved["how"], moved["separated_from"]) == ("TH-2", NEW, "TH-1")
    # The next idea is decided with the item in its new place.
    await store.apply_batch([idea("C-4", "pdf export", 5.0)])
    assert sorted(t["id"] for t in await store.themes()) == ["TH-1", "TH-2", "TH-3"]
