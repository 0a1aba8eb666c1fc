"""Exceptions raised by the channel connectors; each carries the HTTP answer it becomes."""

from __future__ import annotations

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
