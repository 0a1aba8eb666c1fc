"""Plumbing every webhook channel shares: reading a body with a size limit, and background work."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, List

from sanic import Sanic
from sanic.request import Request

from connectors.payload import body_too_large


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) once it passes `limit` bytes.

    On a streaming route (`stream=True`) Sanic hands the body over unread, so an oversized
    one is refused after `limit` bytes instead of being buffered first.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    if request.stream is None:  # body already read (route not streaming)
        body = request.body or b""
        if len(body) > limit:
            raise body_too_large(limit)
        return body
    chunks: List[bytes] = []
    size = 0
    while True:
        chunk = await request.stream.read()
        if chunk is None:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)


def spawn(app: Sanic, work: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any]":
    """Run `work` in the background (a webhook is acknowledged before its messages are handled).

    Through Sanic's add_task when the app runs under app.run (as in `rasa run`); an app served
    with create_server (tests, embedding) cannot schedule tasks once started (add_task defers
    them to a signal the finalised router refuses), so there the loop takes them directly.
    """
    if app.is_running or app.asgi:
        task = app.add_task(work)
        if task is not None:
            return task
    return asyncio.get_running_loop().create_task(work)
