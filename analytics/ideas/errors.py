"""Exceptions of idea mining; each message says what to fix and where."""

from __future__ import annotations


class IdeasError(Exception):
    """Base of every idea-mining error."""


class IdeasConfigError(IdeasError, ValueError):
    """analytics/ideas/config.yml (or another settings file) is unusable; names the line."""


class CatalogueError(IdeasError, ValueError):
    """The product catalogue has mistakes; each is named with its line."""


class IdeasInputError(IdeasError, ValueError):
    """An input file of ideas is unusable (empty, not JSON, wrong fields); names the line."""
