"""Exceptions of the knowledge base: invalid content, and a knowledge base that cannot be used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class KnowledgeBaseError(Exception):
    """Base class of every knowledge-base error."""


@dataclass(frozen=True)
class FaqProblem:
    """One thing wrong with the FAQ content, named by file and entry."""

    file: str
    entry: str  # "id 'sso-okta'" or "entry #3" when the entry has no usable id
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.entry}: {self.message}"


class FaqValidationError(KnowledgeBaseError):
    """The FAQ content is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[FaqProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the FAQ content:\n{lines}")


class SettingsError(KnowledgeBaseError):
    """knowledge_base/config.yml is invalid."""


class KnowledgeBaseUnavailable(KnowledgeBaseError):
    """The knowledge base cannot answer: `reason` says why (logged with the unanswered question)."""

    MISSING = "knowledge_base_missing"
    EMPTY = "knowledge_base_empty"
    INVALID = "knowledge_base_invalid"
    LOAD_FAILED = "knowledge_base_load_failed"

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class IndexUnavailable(KnowledgeBaseError):
    """A saved index cannot be used: `problem` says why; the message adds how to (re)build it."""

    action = "rebuild it"

    def __init__(self, problem: str, directory: object) -> None:
        self.problem = problem
        self.directory = directory
        super().__init__(f"{problem}; {self.action}: python -m knowledge_base build SOURCE... --out {directory}")


class IndexMissing(IndexUnavailable):
    """No index (or no manifest) where one was expected."""

    action = "build it"


class IndexCorrupt(IndexUnavailable):
    """The index files are unreadable, truncated or do not match their manifest."""


class IndexMismatch(IndexUnavailable):
    """The index was built with another model or dimension than the encoder in use."""


class IndexStale(IndexUnavailable):
    """The index was built from other FAQ content (or settings) than the current ones."""
