"""Dashboard pages and their JSON endpoints: GET /dashboards/<page>, GET /api/dashboards/<page>/<chart>
(?from=YYYY-MM-DD&to=YYYY-MM-DD&channel=NAME, &format=csv for the export), the ideas page's actions
(set a theme's status, accept an FAQ gap) and a customer's page."""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import aiohttp_jinja2
from aiohttp import web

from analytics.dashboards import charts as counter_charts
from analytics.dashboards.charts import Chart, Window
from analytics.dashboards.read import data_range, load_counts, today
from console.app import HANDOVERS, RECORDS, REDIS
from console.dashboards import sources
from console.dashboards.export import flat, to_csv
from console.dashboards.filters import window as parse_window
from console.errors import Refused
from console.web import json_object
from console.security import USER, csrf_token, requires

# Plotly injects a few style rules at run time; scripts stay 'self' only.
DASHBOARD_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
                 "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
THEME_ID = re.compile(r"^(TH|FQ)-\d{1,9}$")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")


@dataclass(frozen=True)
class Page:
    name: str
    title: str
    roles: Tuple[str, ...]
    charts: Tuple[str, ...]
    intro: str


PAGES: Dict[str, Page] = {page.name: page for page in (
    Page("overview", "Overview", ("agent", "sales", "product"),
         ("conversations", "messages", "customers", "heatmap", "rates", "faq", "csat", "recommendation"),
         "Traffic, how much the bot handles on its own, and how customers feel."),
    Page("funnel", "Funnel", ("sales",), ("stages", "conversion", "time_in_stage", "stage_changes", "opportunities"),
         "Where customers are on the way from visitor to opportunity, and how fast they move."),
    Page("engagement", "Engagement", ("product",), ("distribution", "leaders", "co_creators"),
         "Who gives most: the five capability scores and the customers who co-create."),
    Page("ideas", "Ideas", ("product",), ("themes", "channels", "gaps"),
         "What customers ask for, ranked by demand; set a theme's status or answer an FAQ gap from here."),
    Page("service", "Service", (), ("queue", "teams", "agents", "handovers", "csat_by_team", "tickets"),
         "Support leads (the admin role): the queue now, waiting, first response and resolution times, CSAT."),
)}


def pages_for(role: str) -> List[Page]:
    return [page for page in PAGES.values() if role == "admin" or role in page.roles]


def _page(name: str) -> Page:
    page = PAGES.get(name)
    if page is None:
        raise Refused(404, "no_page", f"There is no dashboard {name[:40]!r}; the dashboards are {', '.join(PAGES)}.")
    return page


def _allowed(request: web.Request, page: Page) -> None:
    user = request[USER]
    if user.role != "admin" and user.role not in page.roles:
        who = " or ".join(page.roles) if page.roles else "admin"
        raise Refused(403, "role", f"The {page.title} dashboard is for the {who} role; yours is {user.role}. Ask an admin if you need it.")


async def chart_of(request: web.Request, page: Page, name: str, window: Window) -> Chart:
    if name not in page.charts:
        raise Refused(404, "no_chart", f"The {page.title} dashboard has no chart {name[:40]!r}; it has {', '.join(page.charts)}.")
    client = request.app[REDIS]
    records = request.app[RECORDS]
    now = time.time()
    if name in counter_charts.COUNTER_CHARTS:
        counts = await load_counts(client, window, counter_charts.metrics_for(name, window), sets=name in counter_charts.SET_CHARTS)
        return counter_charts.COUNTER_CHARTS[name](counts)
    if name == "stages":
        return counter_charts.stages(await load_counts(client, window, ("stage_in",), sets=False), await sources.stages_now(client))
    if name == "opportunities":
        return await sources.opportunities(client, records)
    half_life = records.rules.half_life_seconds if records is not None else 60 * 86400.0
    if name == "distribution":
        return await sources.distribution(client, half_life, now)
    if name == "leaders":
        return await sources.leaders(client, half_life, now)
    if name == "co_creators":
        return await sources.co_creators(client, records, half_life, now)
    if name in ("themes", "channels", "gaps"):
        from analytics.ideas.themes import QUESTIONS, status_name, theme_store

        status = request.query.get("status", "").strip()
        wanted = status_name(status) if status else None
        if status and wanted is None:
            raise Refused(400, "bad_status", "'status' is one of: new, under review, planned, shipped, declined.")
        area = request.query.get("area", "").strip()[:60] or None
        store = theme_store(client)
        if name == "gaps":
            return sources.gaps_chart(await sources.themes(store, records, window, None, None, space=QUESTIONS))
        rows = await sources.themes(store, records, window, area, wanted)
        return sources.themes_chart(rows) if name == "themes" else sources.channel_mix(rows)
    if name == "queue":
        return await sources.queue(request.app[HANDOVERS], now)
    raise Refused(404, "no_chart", f"No chart {name!r}.")


def page_handler(page: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @requires(*page.roles)
    async def handler(request: web.Request) -> web.StreamResponse:
        window = parse_window(request.query, today())
        user = request[USER]
        client = request.app[REDIS]
        context = {
            "user": user, "csrf": await csrf_token(request), "page": page, "pages": pages_for(user.role), "window": window,
            "charts": [{"name": name, "endpoint": f"/api/dashboards/{page.name}/{name}"} for name in page.charts],
            "channels": sorted(await client.smembers("engage:dashboards:channels")), "data_range": await data_range(client),
            "query": request.query_string, "area": request.query.get("area", ""), "status": request.query.get("status", ""),
            "statuses": ("new", "under review", "planned", "shipped", "declined"),
        }
        response = aiohttp_jinja2.render_template("dashboards/page.html", request, context)
        response.headers["Content-Security-Policy"] = DASHBOARD_CSP
        return response

    return handler


@requires("agent", "sales", "product")
async def index(request: web.Request) -> web.StreamResponse:
    pages = pages_for(request[USER].role)
    if not pages:
        raise Refused(403, "role", "Your role has no dashboards.")
    raise web.HTTPSeeOther(f"/dashboards/{pages[0].name}")


@requires("agent", "sales", "product")
async def chart_api(request: web.Request) -> web.StreamResponse:
    """One chart's data: JSON {chart, title, columns, rows, plot, empty, filters...}, or CSV with ?format=csv."""
    page = _page(request.match_info["page"])
    _allowed(request, page)
    window = parse_window(request.query, today())
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise Refused(400, "bad_format", "'format' is json (the default) or csv.")
    chart = await chart_of(request, page, request.match_info["chart"], window)
    if fmt == "csv":
        name = f"{page.name}-{chart.name}-{window.start}-{window.end}" + (f"-{window.channel}" if window.channel else "") + ".csv"
        return web.Response(text=to_csv(chart.columns, flat(chart.rows)), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
    body = chart.as_json()
    body["filters"] = {"from": window.start.isoformat(), "to": window.end.isoformat(), "channel": window.channel}
    body["page"] = page.name
    body["csv"] = f"/api/dashboards/{page.name}/{chart.name}?" + "&".join(
        f"{k}={v}" for k, v in (("from", window.start), ("to", window.end), ("channel", window.channel or "")) if v) + "&format=csv"
    if window.channel and not chart.channel_filter:
        body["notes"] = [*body["notes"], "The channel filter does not apply to this chart; it shows every channel."]
    return web.json_response(body)


@requires("product")
async def set_status(request: web.Request) -> web.StreamResponse:
    """POST {"theme", "status", "note"}: the `ideas status` command's own code path (logs theme_status_set;
    the analytics service applies it and tells opted-in requesters of shipped or declined themes)."""
    from analytics.ideas.cli import set_status as ideas_status
    from analytics.ideas.themes import theme_store

    body = await json_object(request)
    theme, status, note = str(body.get("theme", "")), str(body.get("status", "")), str(body.get("note", ""))
    if not THEME_ID.match(theme):
        raise Refused(400, "bad_theme", "'theme' is a theme id such as TH-3.")
    if len(note) > 2000:
        raise Refused(400, "note_too_long", "Keep the note under 2,000 characters.")
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(theme=theme, status=status, note=note, by=request[USER].login)
    code = await ideas_status(theme_store(request.app[REDIS]), args, out, err)
    if code != 0:
        raise Refused(400, "refused", err.getvalue().strip().removeprefix("error: "))
    return web.json_response({"ok": True, "message": out.getvalue().strip()})


@requires("product")
async def accept_gap(request: web.Request) -> web.StreamResponse:
    """POST {"gap", "answer", "question"?}: `faq-gaps accept` (entry written, gap logged as shipped), then
    the knowledge-base index rebuilt in an executor."""
    from analytics.ideas import gaps
    from analytics.ideas.themes import theme_store
    from knowledge_base.service import faq_directory, index_directory

    body = await json_object(request)
    gap, answer, question = str(body.get("gap", "")), str(body.get("answer", "")), str(body.get("question") or "") or None
    if not THEME_ID.match(gap) or not gap.startswith("FQ-"):
        raise Refused(400, "bad_gap", "'gap' is an FAQ gap id such as FQ-2.")
    if len(answer) > 4000 or (question and len(question) > 300):
        raise Refused(400, "too_long", "Keep the answer under 4,000 characters and the question under 300.")
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(command="faq-gaps", gaps_command="accept", gap=gap, answer=answer, question=question, file=None,
                              by=request[USER].login, no_build=True, json=False)
    code = await gaps.command(theme_store(request.app[REDIS]), request.app[RECORDS], args, out, err)
    if code != 0:
        raise Refused(400, "refused", err.getvalue().strip().removeprefix("error: "))
    from knowledge_base.cli import main as knowledge_base

    loop = asyncio.get_running_loop()
    built = await loop.run_in_executor(None, knowledge_base, ["build", str(faq_directory()), "--out", str(index_directory())])
    message = out.getvalue().strip()
    if built != 0:
        message += f"; the index did not rebuild (exit {built}): run `python -m knowledge_base build {faq_directory()} --out {index_directory()}`"
    else:
        message += "; index rebuilt: restart the action server (or make run) for the assistant to answer it"
    return web.json_response({"ok": built == 0, "message": message})


async def _customer(request: web.Request) -> Tuple[str, Dict[str, Any]]:
    """The customer of the URL and their record (a merged customer's: where they went)."""
    customer = request.match_info["customer_id"]
    if not CUSTOMER_ID.match(customer):
        raise Refused(400, "bad_customer", "That is not a customer id (they look like C-3f9a1c2b4d5e6f70).")
    records = request.app[RECORDS]
    record = await records.record(customer) if records is not None else None
    if record is None:
        raise Refused(404, "no_customer", f"No record of {customer}: the analytics service has not seen them (or they were erased).")
    return customer, record


@requires("sales", "product")
async def customer_page(request: web.Request) -> web.StreamResponse:
    customer, record = await _customer(request)
    if "merged_into" in record:
        raise web.HTTPSeeOther(f"/dashboards/customers/{record['merged_into']}")
    user = request[USER]
    response = aiohttp_jinja2.render_template("dashboards/customer.html", request, {
        "user": user, "csrf": await csrf_token(request), "pages": pages_for(user.role), "record": record, "customer": customer})
    response.headers["Content-Security-Policy"] = DASHBOARD_CSP
    return response


@requires("sales", "product")
async def customer_api(request: web.Request) -> web.StreamResponse:
    """A customer's scores explained: each dimension's score and the contributions behind it, over time."""
    customer, record = await _customer(request)
    if "merged_into" in record:
        raise Refused(404, "merged", f"{customer} was merged into {record['merged_into']}; ask for that customer.")
    rows = []
    for dimension, view in record["engagement"]["dimensions"].items():
        for item in view.get("recent", []):
            rows.append([sources.day_of_time(item["at"]), dimension, item["rule"], item["points"]])
    rows.sort()
    chart = Chart("contributions", "What the scores are made of", "Each contribution to a capability score, by day (points before decay).",
                  ["day", "dimension", "rule", "points"], rows, {"type": "scatter", "x": "day", "y": ["points"], "group": "dimension"},
                  channel_filter=False, empty=None if rows else "Nothing has counted towards this customer's scores yet.")
    if request.query.get("format") == "csv":
        return web.Response(text=to_csv(chart.columns, rows), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="customer-{customer}.csv"'})
    body = chart.as_json()
    body["scores"] = {d: v["score"] for d, v in record["engagement"]["dimensions"].items()}
    return web.json_response(body)


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it (no CDN, no build)."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


async def plotly(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(plotly_js(), headers={"Content-Type": "application/javascript", "Cache-Control": "public, max-age=86400"})


def setup(app: web.Application) -> None:
    app.router.add_get("/dashboards", index)
    for page in PAGES.values():
        app.router.add_get(f"/dashboards/{page.name}", page_handler(page))
    app.router.add_get("/dashboards/customers/{customer_id}", customer_page)
    app.router.add_get("/api/dashboards/customers/{customer_id}", customer_api)
    app.router.add_get("/api/dashboards/{page}/{chart}", chart_api)
    app.router.add_post("/api/dashboards/ideas/status", set_status)
    app.router.add_post("/api/dashboards/ideas/gaps/accept", accept_gap)
    app.router.add_get("/vendor/plotly.min.js", plotly)
