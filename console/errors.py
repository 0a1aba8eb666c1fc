"""The console's exceptions; console.web turns the ones a request can cause into HTTP answers."""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class."""


class ConfigError(ConsoleError, ValueError):
    """console/config.yml (or a setting from the environment) is unusable."""


class UserError(ConsoleError, ValueError):
    """A staff account that cannot be created or changed as asked (the message says why)."""


class Refused(ConsoleError):
    """A request the console will not carry out: `status` is the HTTP status, `message` says what to do."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
