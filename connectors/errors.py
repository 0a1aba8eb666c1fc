"""Exceptions raised by the channel connectors; each carries the HTTP answer it becomes."""

from __future__ import annotations

import math
from typing import Any, Dict, Sequence


class ConnectorError(Exception):
    """Base class for connector errors."""


class ConnectorConfigError(ConnectorError, ValueError):
    """A connector's entry in credentials.yml is unusable (raised at start-up)."""


class RequestRejected(ConnectorError):
    """An inbound request that must not reach Rasa.

    `status` is the HTTP status, `code` a stable machine-readable reason, `detail`
    the sentence shown to the caller, `fields` the offending payload fields.
    """

    def __init__(self, status: int, code: str, detail: str, fields: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = list(fields)

    def body(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"error": self.code, "message": self.detail}
        if self.fields:
            body["fields"] = self.fields
        return body

    def headers(self) -> Dict[str, str]:
        return {}


class RateLimited(RequestRejected):
    """429: the caller sends too fast; `retry_after` whole seconds go into the Retry-After header."""

    def __init__(self, retry_after: float, detail: str) -> None:
        super().__init__(429, "rate_limited", detail)
        self.retry_after = max(1, math.ceil(min(retry_after, 86400.0)))

    def body(self) -> Dict[str, Any]:
        return {**super().body(), "retry_after": self.retry_after}

    def headers(self) -> Dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
