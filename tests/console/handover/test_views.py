"""The handover pages and API on the real console app (Rasa not running: what the agent is told)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from analytics.schema import EVENTS_STREAM, HANDOVER_QUEUE, handover_request_key
from console.handover.store import HandoverStore
from console.users import UserStore
from tests.console.conftest import api_csrf, sign_in
from tests.console.handover.test_store import waiting

SCRIPT = '<script>alert("x")</script>'


async def test_the_queue_shows_each_team_its_own_and_escapes_what_customers_wrote(web: TestClient, client: Any) -> None:
    await waiting(client, "C-0000000000000001", 10.0, reason=SCRIPT)
    await waiting(client, "C-0000000000000002", 20.0, team="sales", trigger="sales_ready", reason="ready to buy")
    assert await sign_in(web, "ada") == 303
    async with web.get("/queue") as response:
        page = await response.text()
    assert SCRIPT not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "C-0000000000000001" in page and "C-0000000000000002" not in page
    async with web.get("/api/queue") as response:
        state = await response.json()
    assert [t["id"] for t in state["teams"]] == ["support"]
    assert state["teams"][0]["waiting"][0]["reason"] == SCRIPT  # JSON carries it as text; the page sets it with textContent
    async with web.get("/conversations/C-0000000000000002") as response:
        assert response.status == 403 and "sales team" in await response.text()


async def test_claiming_while_rasa_is_down_puts_it_back_and_says_why(web: TestClient, client: Any) -> None:
    await waiting(client, "C-0000000000000003", 30.0)
    assert await sign_in(web, "ada") == 303
    token = await api_csrf(web)
    async with web.post("/api/claim", json={"conversation_id": "C-0000000000000003", "team": "support"}, headers={"X-CSRF-Token": token}) as response:
        body = await response.json()
    assert response.status == 502 and "back in the queue" in body["message"] and "Rasa server did not answer" in body["message"]
    assert await client.zscore(HANDOVER_QUEUE, "C-0000000000000003") == 30.0
    assert await client.hget(handover_request_key("C-0000000000000003"), "owner") is None
    types = [fields["type"] for _, fields in await client.xrange(EVENTS_STREAM)]
    assert types == ["handover_claimed", "handover_transferred"]  # the undo is logged too


async def test_only_the_owner_replies_resolves_or_transfers(web: TestClient, client: Any) -> None:
    await waiting(client, "C-0000000000000004", 40.0)
    bob = await UserStore(client).get("bob")
    await HandoverStore(client).claim(bob, "C-0000000000000004", "support", 3)
    assert await sign_in(web, "ada") == 303
    token = await api_csrf(web)
    headers = {"X-CSRF-Token": token}
    base = "/api/conversations/C-0000000000000004"
    for path, body in (("/reply", {"text": "hello"}), ("/resolve", {"outcome": "solved"}), ("/handback", {}), ("/transfer", {"to_team": "sales"})):
        async with web.post(base + path, json=body, headers=headers) as response:
            answer = await response.json()
            assert response.status == 403 and answer["error"] == "not_owner" and "bob" in answer["message"], (path, answer)
    async with web.post(base + "/reply", json={"text": "x" * 5000}, headers=headers) as response:
        assert response.status == 400 and "Split it" in (await response.json())["message"]
    for body in (b"{not json", b"[" * 5000 + b"]" * 5000):  # nested deeper than the parser follows: found by the fuzz suite
        async with web.post(base + "/reply", data=body, headers={**headers, "Content-Type": "application/json"}) as response:
            assert response.status == 400 and (await response.json())["error"] == "bad_json"
    # A colleague of the team may read it (and leave a note), not answer.
    async with web.get("/conversations/C-0000000000000004") as response:
        page = await response.text()
        assert response.status == 200 and "owned by Bob Agent" in page and 'id="reply-form"' not in page  # the name, not the login
    async with web.post(base + "/notes", json={"text": SCRIPT}, headers=headers) as response:
        assert response.status == 200
    async with web.get("/conversations/C-0000000000000004") as response:
        page = await response.text()
        assert SCRIPT not in page and "&lt;script&gt;" in page
    assert (await HandoverStore(client).get("C-0000000000000004")).owner == "bob"


async def test_sales_sees_the_sales_queue_and_the_admin_sees_all(web: TestClient, client: Any) -> None:
    await waiting(client, "C-0000000000000005", 50.0, team="sales", trigger="sales_ready")
    assert await sign_in(web, "sam") == 303
    async with web.get("/api/queue") as response:
        state = await response.json()
    assert [(t["id"], [w["conversation_id"] for w in t["waiting"]]) for t in state["teams"]] == [("sales", ["C-0000000000000005"])]
    web.session.cookie_jar.clear()
    assert await sign_in(web, "root") == 303
    async with web.get("/api/queue") as response:
        assert {t["id"] for t in (await response.json())["teams"]} == {"support", "sales"}


async def test_canned_answers_say_when_the_faq_is_unavailable(web: TestClient) -> None:
    assert await sign_in(web, "ada") == 303
    async with web.get("/api/canned?q=sso") as response:
        body = await response.json()
    assert response.status == 503 and "Type the answer yourself" in body["message"]


async def test_the_live_feed_starts_where_the_page_was_rendered(web: TestClient, client: Any) -> None:
    import json

    from analytics.schema import SOURCE_RASA, LogEvent

    await waiting(client, "C-0000000000000006", 60.0)
    await HandoverStore(client).claim(await UserStore(client).get("ada"), "C-0000000000000006", "support", 3)
    assert await sign_in(web, "ada") == 303
    async with web.get("/conversations/C-0000000000000006") as response:
        since = re.search(r'data-since="([^"]+)"', await response.text()).group(1)
    # The customer writes while the page is on its way to the browser, before the feed connects.
    await client.xadd(EVENTS_STREAM, LogEvent("user", "C-0000000000000006", SOURCE_RASA, "socketio", text="are you there? <b>").to_fields())
    await client.xadd(EVENTS_STREAM, LogEvent("user", "C-00000000000000ff", SOURCE_RASA, "socketio", text="someone else").to_fields())
    lines = []
    async with web.get("/api/live", params={"conversation": "C-0000000000000006", "since": since}) as feed:
        assert feed.status == 200 and feed.headers["Content-Type"].startswith("text/event-stream")
        event, entry = "", ""
        async for raw in feed.content:
            text = raw.decode().rstrip("\r\n")
            if text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("id:"):
                entry = text[3:].strip()
            elif text.startswith("data:") and event == "line":
                lines.append((entry, json.loads(text[5:])))
                break
    [(entry, line)] = lines
    assert (line["who"], line["text"], line["channel"]) == ("customer", "are you there? <b>", "socketio") and re.match(r"\d+-\d+$", entry)
    async with web.get("/api/live", params={"conversation": "C-0000000000000002"}) as feed:
        assert feed.status == 404  # not a handover: refused before any stream starts
