"""The Ideas dashboard on the real console app: themes and FAQ gaps from the idea-mining projection
(hand-made vectors), and accepting a gap from the page into a copy of the FAQ."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from analytics.ideas.config import load_settings
from analytics.ideas.themes import ThemeStore
from analytics.schema import EVENTS_STREAM
from tests.analytics.ideas.support import TableEncoder, idea
from tests.analytics.ideas.test_gaps import QUESTIONS, asked, faq_copy  # noqa: F401 - the fixture
from tests.console.conftest import sign_in

NOW = time.time()
DAY = 86400.0
IDEAS = {"dark mode for the editor": [1, 0, 0], "a dark theme please": [0.98, 0.1, 0], "export to excel": [0, 0, 1]}


async def csrf(web: TestClient) -> str:
    async with web.get("/dashboards/ideas") as response:
        return re.search(r'<meta name="csrf-token" content="([^"]+)"', await response.text()).group(1)


async def test_themes_rank_by_demand_with_a_weekly_sparkline_and_filters(web: TestClient, client: Any) -> None:
    store = ThemeStore(client, TableEncoder(IDEAS), load_settings())
    await store.apply_batch([idea("C-1", "dark mode for the editor", NOW - 3 * DAY, "whatsapp"),
                             idea("C-2", "a dark theme please", NOW - 10 * DAY, "socketio"),
                             idea("C-3", "export to excel", NOW - 2 * DAY, "socketio")])
    assert await sign_in(web, "pia") == 303
    today = time.strftime("%Y-%m-%d", time.gmtime(NOW))
    async with web.get(f"/api/dashboards/ideas/themes?to={today}") as response:
        body = await response.json()
    assert response.status == 200 and body["empty"] is None
    rows = {row[0]: row for row in body["rows"]}
    dark = next(row for row in body["rows"] if row[5] == 2)
    assert dark[4] == 2 and dark[8][-1] == 1 and dark[8][-2] == 1 and sum(dark[8]) == 2  # one mention this week, one the week before
    assert len(rows) == 2 and "whatsapp 1" in dark[10]
    async with web.get(f"/api/dashboards/ideas/themes?to={today}&channel=whatsapp") as response:
        assert [row[0] for row in (await response.json())["rows"]] == [dark[0]]
    async with web.get(f"/api/dashboards/ideas/themes?to={today}&status=shipped") as response:
        assert (await response.json())["rows"] == []
    async with web.get(f"/api/dashboards/ideas/channels?to={today}") as response:
        mix = await response.json()
    assert mix["columns"] == ["theme", "socketio", "whatsapp"]
    async with web.get(f"/api/dashboards/ideas/themes?to={today}&format=csv") as response:
        assert response.status == 200 and "dark" in await response.text()


@pytest.mark.minilm
async def test_a_gap_is_accepted_from_the_page_into_the_faq(web: TestClient, client: Any, faq_copy: Path) -> None:  # noqa: F811
    store = ThemeStore(client, TableEncoder(QUESTIONS), load_settings())
    await store.apply_batch([asked("C-1", "can i pay in bitcoin", NOW - 60), asked("C-2", "do you take crypto payments?", NOW - 50),
                             asked("C-3", "Bitcoin as a payment method", NOW - 40)])
    assert await sign_in(web, "pia") == 303
    async with web.get("/api/dashboards/ideas/gaps") as response:
        gaps = await response.json()
    assert [row[0] for row in gaps["rows"]] == ["FQ-1"] and gaps["rows"][0][2] == 3
    headers = {"X-CSRF-Token": await csrf(web)}
    async with web.post("/api/dashboards/ideas/gaps/accept", json={"gap": "FQ-1", "answer": "no"}, headers=headers) as response:
        assert response.status == 400 and "--answer" in (await response.json())["message"]
    async with web.post("/api/dashboards/ideas/gaps/accept", json={"gap": "TH-1", "answer": "x" * 20}, headers=headers) as response:
        assert response.status == 400 and "FQ-2" in (await response.json())["message"]
    answer = "We take cards and bank transfer on annual plans; not cryptocurrencies."
    async with web.post("/api/dashboards/ideas/gaps/accept", json={"gap": "FQ-1", "answer": answer}, headers=headers) as response:
        body = await response.json()
    assert response.status == 200 and body["ok"] and "index rebuilt" in body["message"], body
    entries = yaml.safe_load((faq_copy / "gaps.yml").read_text())
    assert entries[-1]["answer"] == answer and len(entries[-1]["alternatives"]) == 2
    logged = [fields for _, fields in await client.xrange(EVENTS_STREAM) if fields["type"] == "theme_status_set"]
    assert len(logged) == 1 and '"by":"pia"' in logged[0]["data"]
