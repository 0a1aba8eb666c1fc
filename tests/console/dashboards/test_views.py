"""The dashboards on the real console app and a real redis-server, with aggregates the projection built."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, List

from aiohttp.test_utils import TestClient

from analytics.dashboards.projection import DashboardStore
from analytics.records.store import RecordStore
from analytics.schema import EVENTS_STREAM, FALLBACK, FAQ_ANSWERED, FAQ_UNANSWERED, HANDOVER_REQUESTED, SOURCE_ACTION, SOURCE_RASA, SOURCE_STAFF, LogEvent
from analytics.stream.consumer import ConsumerSettings, StreamConsumer
from tests.console.conftest import sign_in

JAN5 = 1_767_600_000.0  # 2026-01-05 08:00 UTC, a Monday
RANGE = "from=2026-01-04&to=2026-01-06"


def scripted() -> List[LogEvent]:
    a, b, c = "C-00000000000000a1", "C-00000000000000b2", "C-00000000000000c3"
    return [
        LogEvent("user", a, SOURCE_RASA, "socketio", JAN5, text="hi", intent="greet"),
        LogEvent(FAQ_ANSWERED, a, SOURCE_ACTION, "socketio", JAN5 + 1, data={"query": "sso?"}),
        LogEvent("user", a, SOURCE_RASA, "socketio", JAN5 + 60, text="=HYPERLINK(1)", intent="ask"),
        LogEvent(FAQ_UNANSWERED, a, SOURCE_ACTION, "socketio", JAN5 + 61, data={"query": "x", "reason": "low_score"}),
        LogEvent("user", b, SOURCE_RASA, "whatsapp", JAN5 + 3600, text="blah", intent="nlu_fallback"),
        LogEvent(FALLBACK, b, SOURCE_ACTION, "whatsapp", JAN5 + 3601),
        LogEvent("user", b, SOURCE_RASA, "whatsapp", JAN5 + 3660, text="a person please", intent="human"),
        LogEvent(HANDOVER_REQUESTED, b, SOURCE_ACTION, "whatsapp", JAN5 + 3661,
                 data={"team": "support", "trigger": "asked_for_person", "queued": True, "requested_at": JAN5 + 3661}),
        LogEvent("handover_claimed", b, SOURCE_STAFF, "", JAN5 + 3661 + 120, data={"team": "support", "by": "ada"}),
        LogEvent("bot", b, SOURCE_RASA, "whatsapp", JAN5 + 3661 + 180, text="Hello, Ada here", metadata={"author": {"role": "agent", "id": "ada", "name": "Ada"}}),
        LogEvent("handover_resolved", b, SOURCE_STAFF, "", JAN5 + 3661 + 600, data={"outcome": "solved", "by": "ada"}),
        LogEvent("csat", b, SOURCE_ACTION, "whatsapp", JAN5 + 3661 + 620, data={"score": 4, "agent": {"id": "ada"}}),
        LogEvent("user", c, SOURCE_RASA, "socketio", JAN5 + 86400, text="hello again", intent="greet"),
    ]


async def seeded(client: Any) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for event in scripted():
            pipe.xadd(EVENTS_STREAM, event.to_fields())
        await pipe.execute()
    await StreamConsumer(client, [RecordStore(client), DashboardStore(client)], ConsumerSettings(consumer="t")).drain()


async def chart(web: TestClient, path: str) -> Any:
    async with web.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_overview_charts_count_what_the_conversations_did(web: TestClient, client: Any) -> None:
    await seeded(client)
    assert await sign_in(web, "pia") == 303
    body = await chart(web, f"/api/dashboards/overview/conversations?{RANGE}")
    assert body["columns"] == ["day", "socketio", "whatsapp"] and body["filters"] == {"from": "2026-01-04", "to": "2026-01-06", "channel": None}
    assert body["rows"] == [["2026-01-04", 0, 0], ["2026-01-05", 1, 1], ["2026-01-06", 1, 0]] and body["empty"] is None
    messages = await chart(web, f"/api/dashboards/overview/messages?{RANGE}")
    assert messages["rows"][1] == ["2026-01-05", 2, 2]
    rates = await chart(web, f"/api/dashboards/overview/rates?{RANGE}")
    assert rates["rows"][1] == ["2026-01-05", 2, 50.0, 50.0, 25.0]  # b was handed over; 1 fallback in 4 messages
    assert rates["rows"][0] == ["2026-01-04", 0, None, None, None]  # no conversations: no rate, not 0 %
    faq = await chart(web, f"/api/dashboards/overview/faq?{RANGE}")
    assert faq["rows"][1] == ["2026-01-05", 1, 0, 1]
    heat = await chart(web, f"/api/dashboards/overview/heatmap?{RANGE}")
    monday = heat["rows"][0]
    assert monday[0] == "Monday" and monday[1 + 8] == 2 and monday[1 + 9] == 2 and sum(heat["rows"][1][1:]) == 1
    heat_whatsapp = await chart(web, f"/api/dashboards/overview/heatmap?{RANGE}&channel=whatsapp")
    assert heat_whatsapp["rows"][0][1 + 9] == 2 and sum(heat_whatsapp["rows"][0][1:]) == 2
    customers = await chart(web, f"/api/dashboards/overview/customers?{RANGE}")
    assert customers["rows"][1] == ["2026-01-05", 2, 2] and "About 3 different customers" in customers["notes"][0]
    csat = await chart(web, f"/api/dashboards/overview/csat?{RANGE}")
    assert csat["rows"][1] == ["2026-01-05", 1, 4.0]
    only_whatsapp = await chart(web, f"/api/dashboards/overview/rates?{RANGE}&channel=whatsapp")
    assert only_whatsapp["rows"][1] == ["2026-01-05", 1, 0.0, 100.0, 50.0]


async def test_service_times_per_team_and_agent(web: TestClient, client: Any) -> None:
    await seeded(client)
    assert await sign_in(web, "root") == 303
    teams = await chart(web, f"/api/dashboards/service/teams?{RANGE}")
    assert teams["rows"] == [["support", 1, 2.0, 3.0, 1, 10.0, 1, 4.0]]
    agents = await chart(web, f"/api/dashboards/service/agents?{RANGE}")
    assert agents["rows"] == [["ada (support)", "support", "ada", 1, 3.0, 1, 10.0, 1, 4.0]]
    triggers = await chart(web, f"/api/dashboards/service/handovers?{RANGE}")
    assert triggers["columns"] == ["day", "asked_for_person"] and triggers["rows"][1] == ["2026-01-05", 1]
    queue = await chart(web, "/api/dashboards/service/queue")
    assert queue["rows"] == [] and "No one is waiting" in queue["empty"]


async def test_funnel_counts_stages(web: TestClient, client: Any) -> None:
    await seeded(client)
    assert await sign_in(web, "sam") == 303
    stages = await chart(web, f"/api/dashboards/funnel/stages?{RANGE}")
    rows = {row[0]: row[1:] for row in stages["rows"]}
    assert rows["visitor"][1] == 3  # three customers made first contact in the period
    assert sum(now for now, _ in rows.values()) == 3


async def test_csv_is_the_same_table_and_safe_in_a_spreadsheet(web: TestClient, client: Any) -> None:
    await seeded(client)
    assert await sign_in(web, "pia") == 303
    body = await chart(web, f"/api/dashboards/overview/messages?{RANGE}")
    async with web.get(f"/api/dashboards/overview/messages?{RANGE}&format=csv") as response:
        assert response.status == 200 and response.content_type == "text/csv"
        assert 'filename="overview-messages-2026-01-04-2026-01-06.csv"' in response.headers["Content-Disposition"]
        table = list(csv.reader(io.StringIO(await response.text())))
    assert table[0] == body["columns"] and table[1:] == [[str(v) for v in row] for row in body["rows"]]
    from console.dashboards.export import to_csv

    written = list(csv.reader(io.StringIO(to_csv(["quote"], [['=HYPERLINK("x")'], ["-3"], [None]]))))
    assert written == [["quote"], ["'=HYPERLINK(\"x\")"], ["-3"], [""]]  # a formula is text; a negative number stays a number


async def test_each_role_sees_its_pages_and_is_refused_the_others(web: TestClient, client: Any) -> None:
    allowed = {"ada": {"overview"}, "sam": {"overview", "funnel"}, "pia": {"overview", "engagement", "ideas"},
               "root": {"overview", "funnel", "engagement", "ideas", "service"}}
    for login, pages in allowed.items():
        web.session.cookie_jar.clear()
        assert await sign_in(web, login) == 303
        for page, chart_name in (("overview", "rates"), ("funnel", "stages"), ("engagement", "leaders"), ("ideas", "gaps"), ("service", "teams")):
            async with web.get(f"/dashboards/{page}", allow_redirects=False) as response:
                assert (response.status == 200) == (page in pages), (login, page, response.status)
                if page not in pages:
                    assert response.status == 403 and "ask an admin" in (await response.text()).lower()
                else:
                    assert "'unsafe-inline'" in response.headers["Content-Security-Policy"]
            async with web.get(f"/api/dashboards/{page}/{chart_name}") as response:
                assert (response.status == 200) == (page in pages), (login, page, response.status)
                if page not in pages:
                    assert (await response.json())["error"] == "role"
    web.session.cookie_jar.clear()
    async with web.get("/api/dashboards/overview/rates") as response:
        assert response.status == 401
    async with web.get("/dashboards/overview", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/login"


async def test_bad_filters_are_refused_with_what_to_do(web: TestClient, client: Any) -> None:
    assert await sign_in(web, "root") == 303
    cases = [("from=yesterday", 400, "like 2026-11-01"), ("from=2026-02-30", 400, "like 2026-11-01"),
             ("from=2026-03-01&to=2026-02-01", 400, "swap them"), ("from=2020-01-01&to=2026-01-01", 400, "at most 400 days"),
             ("channel=<script>", 400, "channel name"), ("format=xml", 400, "json (the default) or csv")]
    for query, status, words in cases:
        async with web.get(f"/api/dashboards/overview/rates?{query}") as response:
            body = await response.json()
            assert response.status == status and words in body["message"], (query, body)
    async with web.get("/api/dashboards/overview/nope") as response:
        assert response.status == 404 and "rates" in (await response.json())["message"]
    async with web.get("/api/dashboards/nope/rates") as response:
        assert response.status == 404
    async with web.get("/dashboards/overview?from=bad") as response:
        assert response.status == 400 and "like 2026-11-01" in await response.text()
    async with web.get("/api/dashboards/ideas/themes?status=maybe") as response:
        assert response.status == 400


async def test_an_empty_period_says_why_it_is_empty(web: TestClient, client: Any) -> None:
    await seeded(client)
    assert await sign_in(web, "pia") == 303
    body = await chart(web, "/api/dashboards/overview/conversations?from=2025-01-01&to=2025-01-31")
    assert "No conversations between 2025-01-01 and 2025-01-31" in body["empty"] and "Widen the dates" in body["empty"]
    other = await chart(web, f"/api/dashboards/overview/messages?{RANGE}&channel=telegram")
    assert "on the telegram channel" in other["empty"]


async def test_a_theme_status_is_set_from_the_page_through_the_ideas_command(web: TestClient, client: Any) -> None:
    from analytics.ideas.themes import THEMES

    await client.hset(THEMES, "TH-1", json.dumps({"id": "TH-1", "space": "needs", "status": "new", "members": [], "created_at": JAN5}))
    assert await sign_in(web, "pia") == 303
    token = await api_csrf_dash(web)
    headers = {"X-CSRF-Token": token}
    async with web.post("/api/dashboards/ideas/status", json={"theme": "TH-1", "status": "declined", "note": ""}, headers=headers) as response:
        assert response.status == 400 and "say why" in (await response.json())["message"]
    async with web.post("/api/dashboards/ideas/status", json={"theme": "TH-9", "status": "planned"}, headers=headers) as response:
        assert response.status == 400 and "no theme 'TH-9'" in (await response.json())["message"]
    async with web.post("/api/dashboards/ideas/status", json={"theme": "TH-1", "status": "planned", "note": "Q3"}) as response:
        assert response.status == 403  # no CSRF token
    async with web.post("/api/dashboards/ideas/status", json={"theme": "TH-1", "status": "Planned", "note": "Q3"}, headers=headers) as response:
        assert response.status == 200 and "TH-1 marked planned by pia" in (await response.json())["message"]
    logged = [fields for _, fields in await client.xrange(EVENTS_STREAM) if fields["type"] == "theme_status_set"]
    assert len(logged) == 1 and json.loads(logged[0]["data"]) == {"theme": "TH-1", "status": "planned", "note": "Q3", "by": "pia"}


async def api_csrf_dash(web: TestClient) -> str:
    import re

    async with web.get("/dashboards/ideas") as response:
        found = re.search(r'<meta name="csrf-token" content="([^"]+)"', await response.text())
    assert found
    return found.group(1)


async def test_plotly_is_served_from_the_package(web: TestClient) -> None:
    async with web.get("/vendor/plotly.min.js") as response:
        text = await response.text()
        assert response.status == 200 and "javascript" in response.content_type and "plotly.js" in text[:2000] and len(text) > 1_000_000


async def test_a_customer_page_explains_the_scores_and_refuses_bad_ids(web: TestClient, client: Any) -> None:
    await seeded(client)
    assert await sign_in(web, "sam") == 303
    async with web.get("/dashboards/customers/C-00000000000000a1") as response:
        page = await response.text()
        assert response.status == 200 and "Customer C-00000000000000a1" in page and "first contact" in page
    body = await chart(web, "/api/dashboards/customers/C-00000000000000a1")
    assert body["columns"] == ["day", "dimension", "rule", "points"] and set(body["scores"]) == {
        "innovation", "communication", "recommendation", "learning", "knowledge"}
    assert body["rows"] and all(row[0] == "2026-01-05" for row in body["rows"]), body
    async with web.get("/api/dashboards/customers/C-00000000000000ff") as response:
        assert response.status == 404 and "has not seen them" in (await response.json())["message"]
    async with web.get("/api/dashboards/customers/%3Cscript%3E") as response:
        assert response.status == 400
    web.session.cookie_jar.clear()
    assert await sign_in(web, "ada") == 303
    async with web.get("/api/dashboards/customers/C-00000000000000a1") as response:
        assert response.status == 403
