"""The answer policy's settings, read from knowledge_base/config.yml and checked."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Tuple, Type, TypeVar

import yaml

from knowledge_base.errors import SettingsError

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yml"

Settings = TypeVar("Settings", "IndexSettings", "FaqSettings")


@dataclass(frozen=True)
class IndexSettings:
    """How the FAISS index is built and searched (see knowledge_base/index.py)."""

    exact_max_vectors: int = 20_000  # exact inner product up to this many phrasings, HNSW above
    hnsw_m: int = 32  # HNSW graph degree
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128  # query time: candidates explored; higher is slower and more exact
    threads: int = 1  # FAISS OpenMP threads in the action server

    def __post_init__(self) -> None:
        for name in ("exact_max_vectors", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "threads"):
            if getattr(self, name) < 1:
                raise SettingsError(f"index.{name} must be a positive whole number, got {getattr(self, name)}")


@dataclass(frozen=True)
class FaqSettings:
    """Scores are cosine similarities of MiniLM vectors (-1..1)."""

    answer_threshold: float  # best score at or above: answer directly...
    suggest_threshold: float  # best score at or above (and not answered): "did you mean"
    answer_margin: float = 0.0  # ...unless the runner-up entry is closer than this: then suggest both
    min_coverage: float = 0.0  # ...or the entry's text holds less than this share of the query's words
    # Scoring (bench/faq_retrieval.py): an entry's score is (1 - centroid_weight) * its best phrasing
    # + centroid_weight * its centroid; candidates are ranked by (1 - lexical_weight) * that score +
    # lexical_weight * BM25, both min-max scaled over the candidates. Thresholds apply to the score.
    centroid_weight: float = 0.0
    lexical_weight: float = 0.0
    max_suggestions: int = 3
    max_query_chars: int = 1000  # MiniLM reads 256 word pieces; longer text only costs time
    # Words removed before encoding. The brand name appears in phrasings of unrelated entries and
    # pulls them together ("Quillstack for macOS" scored 0.77 against "Which tools does Quillstack
    # integrate with?"); every question is about Quillstack, so the word tells nothing apart.
    ignore_terms: Tuple[str, ...] = ()
    index: IndexSettings = field(default_factory=IndexSettings)

    def __post_init__(self) -> None:
        if not -1.0 <= self.suggest_threshold <= self.answer_threshold <= 1.0:
            raise SettingsError(
                "thresholds must satisfy -1 <= suggest_threshold <= answer_threshold <= 1, got "
                f"suggest_threshold={self.suggest_threshold}, answer_threshold={self.answer_threshold}"
            )
        if not 1 <= self.max_suggestions <= 10:
            raise SettingsError(f"max_suggestions must be between 1 and 10, got {self.max_suggestions}")
        if not 0.0 <= self.answer_margin <= 1.0:
            raise SettingsError(f"answer_margin must be between 0 and 1, got {self.answer_margin}")
        for name in ("min_coverage", "centroid_weight", "lexical_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.max_query_chars < 1:
            raise SettingsError(f"max_query_chars must be positive, got {self.max_query_chars}")


def load_settings(path: Path = DEFAULT_CONFIG) -> FaqSettings:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: is not valid YAML: {exc}") from exc
    try:
        return _settings(FaqSettings, raw, "")
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def _settings(kind: Type[Settings], raw: Any, prefix: str) -> Settings:
    if not isinstance(raw, dict):
        raise SettingsError(f"'{prefix.rstrip('.') or 'the file'}' must be a mapping of settings")
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(set(map(str, raw)) - set(known))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(prefix + name for name in unknown)}")
    values: Dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _value(known[name].type, value, prefix + name)
    try:
        return kind(**values)
    except TypeError as exc:  # a required setting is missing
        raise SettingsError(str(exc)) from exc


def _value(declared: Any, value: Any, name: str) -> Any:
    declared = str(getattr(declared, "__name__", declared))
    if declared == "IndexSettings":
        return _settings(IndexSettings, value, f"{name}.")
    if declared.startswith("Tuple[str"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise SettingsError(f"'{name}' must be a list of words, got {value!r}")
        return tuple(v.strip() for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"'{name}' must be a number, got {value!r}")
    if declared == "int":
        if not float(value).is_integer():
            raise SettingsError(f"'{name}' must be a whole number, got {value!r}")
        return int(value)
    return float(value)
