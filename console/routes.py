"""Every route of the console, in one place."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console import auth_views
from console.dashboards import views as dashboards
from console.handover import views as handover

STATIC = Path(__file__).resolve().parent / "static"


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/login", auth_views.login_page)
    app.router.add_post("/login", auth_views.login)
    app.router.add_post("/logout", auth_views.logout)
    app.router.add_post("/logout-everywhere", auth_views.logout_everywhere)
    app.router.add_get("/", auth_views.home)
    app.router.add_get("/queue", handover.queue_page)
    app.router.add_get("/conversations/{conversation_id}", handover.conversation_page)
    app.router.add_get("/api/queue", handover.queue_api)
    app.router.add_get("/api/live", handover.live)
    app.router.add_post("/api/claim", handover.claim)
    app.router.add_post("/api/conversations/{conversation_id}/reply", handover.reply)
    app.router.add_post("/api/conversations/{conversation_id}/notes", handover.add_note)
    app.router.add_post("/api/conversations/{conversation_id}/transfer", handover.transfer)
    app.router.add_post("/api/conversations/{conversation_id}/resolve", handover.resolve)
    app.router.add_post("/api/conversations/{conversation_id}/handback", handover.handback)
    app.router.add_get("/api/canned", handover.canned)
    app.router.add_post("/api/presence", handover.presence)
    dashboards.setup(app)
    app.router.add_static("/static/", STATIC, append_version=True)
