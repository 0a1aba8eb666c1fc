"""The console's aiohttp application factory: settings, Redis, sessions, templates and routes.

Shared objects live under typed `web.AppKey`s; Redis, the proactive client and the FAQ search are
opened and closed in `cleanup_ctx`, as in aiohttp-demos.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import setup as setup_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from analytics.proactive import ProactiveClient
from analytics.redis_connect import connect, redis_url
from console.config import ConsoleConfig
from console.handover.store import HandoverStore
from console.presence import Presence
from console.security import COOKIE, LoginLimiter, fernet_key
from console.users import UserStore

HERE = Path(__file__).resolve().parent

CONFIG = web.AppKey("config", ConsoleConfig)
REDIS = web.AppKey("redis", Any)
USERS = web.AppKey("users", UserStore)
HANDOVERS = web.AppKey("handovers", HandoverStore)
PRESENCE = web.AppKey("presence", Presence)
LIMITER = web.AppKey("limiter", LoginLimiter)
PROACTIVE = web.AppKey("proactive", ProactiveClient)
RECORDS = web.AppKey("records", Any)  # analytics.records.store.RecordStore, or None when its rules cannot load
FAQ = web.AppKey("faq", Any)  # knowledge_base.service.KnowledgeBaseProvider


def create_app(
    config: ConsoleConfig,
    *,
    secret: Optional[str] = None,
    redis: Optional[str] = None,
    rasa_url: Optional[str] = None,
    proactive_token: Optional[str] = None,
    faq: Any = None,
) -> web.Application:
    """The console. Unset arguments come from the environment (ENGAGE_CONSOLE_SECRET, REDIS_URL,
    ENGAGE_RASA_URL, ENGAGE_PROACTIVE_TOKEN); a missing secret is refused here, by name."""
    from console import routes
    from console.web import error_middleware, security_headers

    secret = secret if secret is not None else os.environ.get("ENGAGE_CONSOLE_SECRET", "")
    key = fernet_key(secret)
    app = web.Application(middlewares=[security_headers, error_middleware], client_max_size=256 * 1024)
    app[CONFIG] = config
    setup_session(app, EncryptedCookieStorage(
        key, cookie_name=COOKIE, httponly=True, samesite="Strict", secure=config.secure_cookies,
        max_age=int(config.session_hours * 3600), path="/",
    ))
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=jinja2.select_autoescape(default=True))
    app[aiohttp_jinja2.static_root_key] = "/static"
    rasa = (rasa_url or os.environ.get("ENGAGE_RASA_URL") or "http://127.0.0.1:5005").rstrip("/")
    token = proactive_token if proactive_token is not None else os.environ.get("ENGAGE_PROACTIVE_TOKEN", "")
    url = redis or redis_url()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        client = connect(url, 5.0, decode_responses=True, outage_wait=5.0)
        app[REDIS] = client
        app[USERS] = UserStore(client)
        app[HANDOVERS] = HandoverStore(client)
        app[PRESENCE] = Presence(client, config.away_after_seconds)
        app[LIMITER] = LoginLimiter(client, config.login_max_failures, config.login_window_minutes * 60)
        app[PROACTIVE] = ProactiveClient(rasa, token)
        app[RECORDS] = _records(client)
        if faq is not None:
            app[FAQ] = faq
        else:
            from knowledge_base.service import KnowledgeBaseProvider, search_encoder

            # Searching needs no PyTorch: the ONNX export, checked to come from the index's weights.
            app[FAQ] = KnowledgeBaseProvider(encoder_factory=search_encoder)
        yield
        await app[PROACTIVE].close()
        await client.aclose()

    app.cleanup_ctx.append(resources)
    routes.setup(app)
    return app


def _records(client: Any) -> Any:
    try:
        from analytics.service import record_store

        return record_store(client)
    except Exception:  # noqa: BLE001 - the packet says the record is unavailable; the console still works
        return None
