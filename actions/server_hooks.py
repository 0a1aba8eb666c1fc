"""Hooks for the rasa-sdk action server (its `rasa_sdk_plugins` extension point), run at server start.

rasa-sdk imports a top-level module `rasa_sdk_plugins` if one is importable and
calls its `init_hooks(manager)`; the repository's `rasa_sdk_plugins.py` forwards
to `init_hooks` here. The app factory runs in every Sanic worker, so each worker
gets its own hooks. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from typing import Any, Optional

import pluggy

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.clients.eventlog import close_shared_writer
from actions.clients.redis_client import close_shared_client
from actions.server_auth import bind_loopback_by_default, load_token, token_middleware
from knowledge_base.errors import KnowledgeBaseUnavailable
from knowledge_base.service import default_provider

logger = logging.getLogger(__name__)

hookimpl = pluggy.HookimplMarker("rasa_sdk")

# rasa_sdk.utils.check_version_compatibility warns on every webhook call whose Rasa
# major.minor differs from the SDK's. Rasa 3.6 is the last open-source Rasa and the
# SDK 3.21 wire format is checked against it (tests/actions/test_wire_format.py), so this
# one warning is expected; the filter matches only it, from only that module.
VERSION_WARNING = r"Your versions of rasa and rasa_sdk might not be compatible"


def silence_version_warning() -> None:
    warnings.filterwarnings("ignore", message=VERSION_WARNING, category=UserWarning, module=r"rasa_sdk\.utils")


LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s  - %(message)s"  # rasa-sdk's own format


def configure_worker_logging() -> None:
    """Give a Sanic worker the logging rasa-sdk set up only in the main process.

    Workers are spawned fresh and rasa-sdk configures logging only in
    `main_from_args`, so without this a worker's records reach stderr unformatted
    through Python's last-resort handler and everything below WARNING is lost.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format=LOG_FORMAT)


_warm_up: Optional["asyncio.Task[None]"] = None
# A question the warm-up answers once, so the encoder's and FAISS's first-call costs are paid before /health says ok.
WARM_UP_QUERY = "how do I reset my password?"


async def _load_knowledge_base() -> None:
    started = time.perf_counter()
    try:
        knowledge_base = await default_provider().get()
        await asyncio.get_running_loop().run_in_executor(None, knowledge_base.search, WARM_UP_QUERY)
        logger.info("warm-up done in %.1fs: the first question will be answered at full speed", time.perf_counter() - started)
    except KnowledgeBaseUnavailable as exc:
        # The provider logged the details; questions will get the honest "can't look it up" reply.
        logger.error("knowledge base not available at start-up: %s", str(exc).splitlines()[0])
    except Exception:  # the server still serves every other action; questions retry the load
        logger.exception("warming up the knowledge base failed")


async def warm_up(*_: Any) -> None:
    """Load MiniLM and the FAQ index and answer one question (about 10 s on CPU), in the background.

    Until that is done /health answers 503 (see `health_waits_for_warm_up`), so the supervisor
    says "running" only when a first question is answered at full speed; a question that
    arrives meanwhile simply waits for the same load.
    """
    global _warm_up
    _warm_up = asyncio.get_running_loop().create_task(_load_knowledge_base(), name="engage-kb-warm-up")


def warmed_up() -> bool:
    return _warm_up is not None and _warm_up.done()


async def health_waits_for_warm_up(request: Request) -> Optional[HTTPResponse]:
    if request.path == "/health" and not warmed_up():
        return response.json({"status": "warming up"}, status=503, headers={"Retry-After": "1"})
    return None


async def close_clients(*_: Any) -> None:
    """Flush the interaction log (spooling what Redis does not take) and close Redis connections."""
    if _warm_up is not None and not _warm_up.done():
        _warm_up.cancel()
    try:
        await close_shared_writer()
    finally:
        await close_shared_client()


class EngageServerHooks:
    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        configure_worker_logging()
        silence_version_warning()
        bind_loopback_by_default()
        # Refuse to start without the shared secret: an open action server runs any action for anyone.
        app.register_middleware(token_middleware(load_token()), "request")
        app.register_middleware(health_waits_for_warm_up, "request")
        app.register_listener(warm_up, "after_server_start")
        # After the server stops taking requests, so the last actions' records are included.
        app.register_listener(close_clients, "after_server_stop")
        logger.debug("engage hooks attached to %s", app.name)


def init_hooks(manager: pluggy.PluginManager) -> None:
    if not manager.has_plugin("engage"):
        manager.register(EngageServerHooks(), name="engage")
