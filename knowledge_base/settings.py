"""The answer policy's settings, read from knowledge_base/config.yml and checked."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, Tuple

import yaml

from knowledge_base.errors import SettingsError

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yml"


@dataclass(frozen=True)
class FaqSettings:
    """Scores are cosine similarities of MiniLM vectors (-1..1)."""

    answer_threshold: float  # best score at or above: answer directly...
    suggest_threshold: float  # best score at or above (and not answered): "did you mean"
    answer_margin: float = 0.0  # ...unless the runner-up entry is closer than this: then suggest both
    max_suggestions: int = 3
    max_query_chars: int = 1000  # MiniLM reads 256 word pieces; longer text only costs time
    # Words removed before encoding. The brand name appears in phrasings of unrelated entries and
    # pulls them together ("Quillstack for macOS" scored 0.77 against "Which tools does Quillstack
    # integrate with?"); every question is about Quillstack, so the word tells nothing apart.
    ignore_terms: Tuple[str, ...] = ()

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
        if self.max_query_chars < 1:
            raise SettingsError(f"max_query_chars must be positive, got {self.max_query_chars}")


def load_settings(path: Path = DEFAULT_CONFIG) -> FaqSettings:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: must be a mapping of settings")
    known = {f.name: f for f in fields(FaqSettings)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(map(str, unknown))}")
    values: Dict[str, Any] = {}
    for name, value in raw.items():
        if name == "ignore_terms":
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise SettingsError(f"{path}: 'ignore_terms' must be a list of words, got {value!r}")
            values[name] = tuple(v.strip() for v in value)
            continue
        expected = float if known[name].type in ("float", float) else int
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{path}: '{name}' must be a number, got {value!r}")
        if expected is int and not float(value).is_integer():
            raise SettingsError(f"{path}: '{name}' must be a whole number, got {value!r}")
        values[name] = expected(value)
    try:
        return FaqSettings(**values)
    except TypeError as exc:  # a required setting is missing
        raise SettingsError(f"{path}: {exc}") from exc
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from exc
