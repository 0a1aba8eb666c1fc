"""Dashboards on the running stack: scripted conversations over REST (an FAQ answer, a message the bot
does not understand, a request for a person that an admin claims, answers and resolves, a CSAT
rating), then each role signs in with headless Chromium, opens every dashboard it may, and each
chart is checked: the numbers it drew (plotly's own data and the SVG it rendered) are the numbers
of the page's JSON endpoint, and those are what a scan of the log gives. A role cannot open another
role's page. Screenshots go to results/artifacts/dashboard-<role>-<page>.png."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from typing import Any, Dict, List

import pytest
import redis
import requests

from scripts.stack import Stack
from tests.e2e.conftest import Providers, eventually, log_events
from tests.e2e.staff import PASSWORD, StaffSession, add_staff
from tests.e2e.test_messaging import WhatsApp
from tests.e2e.test_webchat import ARTIFACTS, _chromium
from tests.fakes import whatsapp_graph as wa

ROLES = ("agent", "sales", "product", "admin")
PAGES = {"agent": ["overview"], "sales": ["overview", "funnel"], "product": ["overview", "engagement", "ideas"],
         "admin": ["overview", "funnel", "engagement", "ideas", "service"]}
ALL_PAGES = ("overview", "funnel", "engagement", "ideas", "service")


class Staff(StaffSession):
    """A signed-in member of staff reading the dashboards' chart endpoints."""

    def chart(self, page: str, chart: str, query: str) -> Dict[str, Any]:
        response = self.http.get(f"{self.base}/api/dashboards/{page}/{chart}?{query}", timeout=30)
        assert response.status_code == 200, response.text[:300]
        return response.json()


@pytest.fixture(scope="module")
def logins(stack: Stack) -> Dict[str, str]:
    names = {role: f"{role[:4]}{uuid.uuid4().hex[:6]}" for role in ROLES}
    for role, login in names.items():
        add_staff(stack, login, role, f"E2E {role}")
    return names


def say(stack: Stack, sender: str, text: str) -> List[Dict[str, Any]]:
    response = requests.post(stack.rest_webhook, json={"sender": sender, "message": text}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def settled(stack: Stack) -> None:
    """Wait until the analytics service has applied everything in the log."""
    def done() -> bool:
        state = requests.get(f"{stack.analytics_url}/health", timeout=5).json()
        return state["lag"]["entries"] == 0 or None
    eventually(done, "the analytics service to catch up with the log", 60)


def scripted_conversations(stack: Stack, providers: Providers, store: redis.Redis, admin: Staff) -> str:
    """Three customers: an FAQ answered and an idea (REST), a message not understood (REST), and a WhatsApp customer
    who asks for a person, whom the admin claims, answers and resolves, and who rates the help 5."""
    asker, lost = (f"e2e-dash-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("faq", "lost"))
    say(stack, asker, "How do I set up SAML single sign-on for my team?")
    say(stack, asker, "/suggest_idea")
    # Not tests/e2e/test_ideas.py's dark mode: its customers must not find this idea's theme.
    say(stack, asker, "an offline mode for the Forms mobile app")
    say(stack, asker, "I fill in inspections on the train without any signal")
    eventually(lambda: [e for e in log_events(store, asker, settle=0.5, want="idea") if e.type == "idea"] or None, "the idea in the log")
    say(stack, lost, "blorp zzkx frumious wibble")
    phone = WhatsApp(stack, providers, store)
    phone.send(wa.text_message(phone.number, "I need to talk to a real person about my invoice"))
    customer = phone.customer
    eventually(lambda: store.zscore("engage:handover:queue", customer) is not None or None, "the WhatsApp request in the queue")
    claimed = admin.post("/api/claim", {"conversation_id": customer, "team": "support"})
    assert claimed.status_code == 200 and claimed.json()["intro"]["status"] == "delivered", claimed.text
    replied = admin.post(f"/api/conversations/{customer}/reply", {"text": "Hi, I can see your invoice; fixing it now."})
    assert replied.status_code == 200, replied.text
    assert admin.post(f"/api/conversations/{customer}/resolve", {"outcome": "solved"}).status_code == 200
    csat = eventually(lambda: [m for m in phone.received() if m.get("type") == "interactive"], "the satisfaction question")
    rows = [row["id"] for section in csat[-1]["interactive"]["action"]["sections"] for row in section["rows"]]
    phone.send(wa.list_reply(phone.number, rows[4], "5"))
    eventually(lambda: [e for e in log_events(store, customer, settle=0.5, want="csat") if e.type == "csat"] or None, "the CSAT rating in the log")
    settled(stack)
    return customer


def drawn_numbers(browser: Any, name: str) -> Dict[str, Any]:
    """What plotly drew in a card: its traces' values, and how many trace groups the SVG holds."""
    return browser.execute_script(
        "var card = document.getElementById('chart-' + arguments[0]); var gd = card.querySelector('.plot');"
        "return {state: card.dataset.state, traces: (gd.data || []).map(function (t) { return {name: t.name, x: t.x, y: t.y, z: t.z, orientation: t.orientation}; }),"
        " svgTraces: gd.querySelectorAll('g.trace, g.hm').length, empty: card.querySelector('.empty').textContent,"
        " tableRows: card.querySelectorAll('table tbody tr').length};", name)


HOVERS: List[str] = []  # the charts whose hover was checked


def check_card(browser: Any, name: str, data: Dict[str, Any]) -> None:
    seen = drawn_numbers(browser, name)
    assert seen["tableRows"] == len(data["rows"]), name
    if data["empty"]:
        assert seen["state"] == "empty" and seen["empty"] == data["empty"], (name, seen)
        return
    assert seen["state"] == "drawn", (name, seen)
    plot = data["plot"]
    if plot["type"] == "heatmap":
        assert seen["traces"][0]["z"] == [row[1:] for row in data["rows"]], name
        return
    assert seen["svgTraces"] >= 1
    column = {c: i for i, c in enumerate(data["columns"])}
    traces = seen["traces"]
    if "group" not in plot:
        assert [t["name"] for t in traces] == plot["y"], name
        for trace, series in zip(traces, plot["y"]):
            values = trace["x"] if trace.get("orientation") == "h" else trace["y"]
            assert values == [row[column[series]] for row in data["rows"]], (name, series)
    else:
        drawn = sorted(v for t in traces for v in (t["x"] if t.get("orientation") == "h" else t["y"]))
        assert drawn == sorted(row[column[plot["y"][0]]] for row in data["rows"]), name
    hovered(browser, name, traces)


def hovered(browser: Any, name: str, traces: List[Dict[str, Any]]) -> None:
    """Numbers on hover: hovering a point shows its value (plotly's own hover, as a mouse would)."""
    for curve, trace in enumerate(traces):
        values = trace["x"] if trace.get("orientation") == "h" else trace["y"]
        point = next((i for i, v in enumerate(values) if v not in (None, 0)), None)
        if point is None:
            continue
        text = browser.execute_script(
            "var gd = document.querySelector('#chart-' + arguments[0] + ' .plot');"
            "Plotly.Fx.hover(gd, [{curveNumber: arguments[1], pointNumber: arguments[2]}]);"
            "var layer = gd.querySelector('.hoverlayer'); return layer ? layer.textContent : '';", name, curve, point)
        numbers = [float(n.replace(",", "")) for n in re.findall(r"-?[\d,]*\.?\d+", text)]
        assert any(abs(n - float(values[point])) < 0.05 for n in numbers), (name, text, values[point])
        HOVERS.append(name)
        return


def gaps_listed(browser: Any, rows: List[List[Any]]) -> None:
    """The accept-a-gap form offers the open gaps; with none, it says so and cannot be sent (it was a blank list)."""
    from selenium.webdriver.support.ui import Select

    select = browser.find_element("id", "g-gap")
    values = [option.get_attribute("value") for option in Select(select).options]
    button = browser.find_element("css selector", "#gap-form button")
    if rows:
        assert values == [row[0] for row in rows] and select.is_enabled() and button.is_enabled(), values
    else:
        assert values == [""] and "No open FAQ gaps" in select.text and not select.is_enabled() and not button.is_enabled(), values


def set_status_from_the_page(browser: Any, store: redis.Redis, login: str, chosen: str) -> None:
    """The product user marks the scripted idea's theme planned with the page's form; the ideas command's event is logged."""
    from selenium.webdriver.support.ui import Select

    theme = Select(browser.find_element("id", "s-theme"))
    assert chosen in [option.get_attribute("value") for option in theme.options], "the status form lists the themes"
    theme.select_by_value(chosen)
    Select(browser.find_element("id", "s-status")).select_by_value("planned")
    browser.find_element("id", "s-note").send_keys("On the roadmap for next quarter")
    browser.find_element("css selector", "#status-form button").click()
    told = eventually(lambda: browser.find_element("id", "toast").text or None, "the page to say what happened", 20)
    assert f"{chosen} marked planned by {login}" in told, told

    def logged() -> Any:
        for _, fields in store.xrevrange("engage:events", count=500):
            if fields.get("type") == "theme_status_set" and f'"theme":"{chosen}"' in fields.get("data", "") and f'"by":"{login}"' in fields["data"]:
                return fields
        return None
    assert '"status":"planned"' in eventually(logged, "the status change in the log")["data"]


def test_every_role_sees_its_dashboards_with_the_numbers_of_the_log(stack: Stack, providers: Providers, store: redis.Redis, logins: Dict[str, str]) -> None:
    from analytics.dashboards.charts import COUNTER_CHARTS, Window
    from analytics.dashboards.read import scan_counts
    from analytics.redis_connect import connect

    admin = Staff(stack, logins["admin"])
    admin.post("/api/presence", {"status": "online"})
    customer = scripted_conversations(stack, providers, store, admin)
    today = dt.datetime.now(dt.timezone.utc).date()
    query = f"from={today - dt.timedelta(days=6)}&to={today}"

    # The endpoints' numbers are the log's: the same tables as a scan of the whole stream.
    async def scanned() -> Any:
        client = connect(stack.effective_redis_url, 5.0, decode_responses=True)
        try:
            # What the service dead-lettered (bad data from other tests, the fuzz suite's) it never applied.
            dead = {fields["entry_id"] for _, fields in await client.xrange("engage:events:dead") if "entry_id" in fields}
            return await scan_counts(client, Window(today - dt.timedelta(days=6), today), skip=dead)
        finally:
            await client.aclose()
    charts = (("overview", ("conversations", "messages", "rates", "faq", "csat")), ("service", ("teams", "agents", "handovers")))

    def differences() -> List[Any]:
        settled(stack)
        counts = asyncio.run(scanned())
        return [(page, name, served, scan) for page, names in charts for name in names
                if (served := admin.chart(page, name, query)["rows"]) != (scan := COUNTER_CHARTS[name](counts).as_json()["rows"])]

    # The log may still grow a little (Rasa writes a turn's events after the action's): compare once it is quiet.
    found: List[Any] = []
    for _ in range(5):
        found = differences()
        if not found:
            break
        time.sleep(2)
    assert not found, found
    agents = admin.chart("service", "agents", query)
    assert any(row[2] == logins["admin"] and row[3] >= 1 and row[5] >= 1 and row[7] >= 1 for row in agents["rows"]), agents["rows"]
    rates = admin.chart("overview", "rates", query)["rows"][-1]
    assert rates[1] >= 3 and rates[3] > 0 and rates[4] > 0  # our three conversations, one handed over, one not understood
    csat = admin.chart("overview", "csat", query)["rows"][-1]
    assert csat[1] >= 1 and 1 <= csat[2] <= 5
    faq = admin.chart("overview", "faq", query)["rows"][-1]
    assert faq[1] >= 1
    themes = admin.chart("ideas", "themes", query)
    ours = [row for row in themes["rows"] if "offline" in str(row[-1]).lower()]
    assert ours, themes["rows"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = _chromium()
    try:
        for role in ROLES:
            browser.delete_all_cookies()
            browser.set_window_size(1280, 1000)  # a laptop
            browser.get(f"{stack.console_url}/login")
            browser.find_element("id", "login").send_keys(logins[role])
            browser.find_element("id", "password").send_keys(PASSWORD + "\n")
            eventually(lambda: "/login" not in browser.current_url or None, f"{role} signed in", 20)
            staff = Staff(stack, logins[role])
            for page in ALL_PAGES:
                browser.get_log("browser")  # reading it clears it: what follows is this page's
                browser.get(f"{stack.console_url}/dashboards/{page}?{query}")
                if page not in PAGES[role]:
                    assert "cannot open this" in browser.find_element("tag name", "main").text, (role, page)
                    assert staff.http.get(f"{stack.console_url}/api/dashboards/{page}/x?{query}", timeout=10).status_code == 403
                    continue
                eventually(lambda: browser.find_element("tag name", "body").get_attribute("data-charts") == "loaded" or None, f"{page} charts", 60)
                names = browser.execute_script("return Array.from(document.querySelectorAll('.chart')).map(function (c) { return c.dataset.chart; })")
                assert names, page
                for name in names:
                    check_card(browser, name, staff.chart(page, name, query))
                assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE" and "favicon" not in entry["message"]], page
                if page == "ideas" and role == "product":
                    gaps_listed(browser, staff.chart(page, "gaps", query)["rows"])
                    set_status_from_the_page(browser, store, logins[role], ours[0][0])
                height = browser.execute_script("return document.body.scrollHeight")
                browser.set_window_size(1280, min(6000, height + 120))
                browser.save_screenshot(str(ARTIFACTS / f"dashboard-{role}-{page}.png"))
                browser.set_window_size(1280, 1000)
        # A tablet: one column, charts as wide as the screen.
        browser.set_window_size(820, 1180)
        browser.get(f"{stack.console_url}/dashboards/service?{query}")
        eventually(lambda: browser.find_element("tag name", "body").get_attribute("data-charts") == "loaded" or None, "service charts", 60)
        widths = browser.execute_script("return Array.from(document.querySelectorAll('.chart .main-svg')).map(function (s) { return s.getBoundingClientRect().width; })")
        assert widths and all(w > 600 for w in widths), widths
        browser.save_screenshot(str(ARTIFACTS / "dashboard-admin-service-tablet.png"))
        assert {"messages", "rates", "faq", "stages", "handovers", "csat_by_team"} <= set(HOVERS), sorted(set(HOVERS))
    finally:
        browser.quit()
    assert customer
