"""Exceptions raised inside custom actions; each carries the context needed to log it usefully."""

from __future__ import annotations

from typing import Any, Dict, Optional


class ActionError(Exception):
    """Base class of the actions' own errors."""

    def __init__(self, message: str, *, conversation_id: str = "", context: Optional[Dict[str, Any]] = None) -> None:
        self.conversation_id = conversation_id
        self.context = dict(context or {})
        super().__init__(message)

    def __str__(self) -> str:
        base = super().__str__()
        details = ", ".join(f"{key}={value!r}" for key, value in self.context.items())
        where = f" [conversation {self.conversation_id}]" if self.conversation_id else ""
        return f"{base}{where}" + (f" ({details})" if details else "")


class HandoverQueueError(ActionError):
    """The handover queue in Redis could not be written (down, slow, or refused)."""
