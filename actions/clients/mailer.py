"""Sending e-mail from actions. Pluggable: ENGAGE_MAILER="package.module:Class" names a class with
`async send(to, subject, body)`; the default writes each message to the action server's log."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Protocol

logger = logging.getLogger(__name__)

MAILER_ENV = "ENGAGE_MAILER"


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class LogMailer:
    """Writes the message to the log instead of sending it (development, tests, demos)."""

    async def send(self, to: str, subject: str, body: str) -> None:
        logger.warning("mail to %s (not sent: ENGAGE_MAILER is not set): %s | %s", to, subject, body)


class MailerError(RuntimeError):
    """ENGAGE_MAILER names something that cannot be loaded."""


def load_mailer() -> Mailer:
    spec = os.environ.get(MAILER_ENV, "").strip()
    if not spec:
        return LogMailer()
    module_name, _, class_name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise MailerError(f"{MAILER_ENV}={spec!r} cannot be loaded ({exc}); expected 'package.module:Class'") from exc
