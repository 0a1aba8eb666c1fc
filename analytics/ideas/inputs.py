"""Reading a file of ideas, one JSON object `{"id": ..., "text": ...}` per line, with every mistake named by line."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from analytics.ideas.errors import IdeasInputError

MAX_REPORTED = 20  # mistakes listed before "... and N more"


@dataclass(frozen=True)
class Idea:
    id: str
    text: str  # as given, cut to the configured length
    line: int
    context: Optional[Dict[str, Any]] = None  # in-use context (product, feature, page, app_version) when known


def has_words(text: str) -> bool:
    """True when the text has a letter or a digit in any script (emoji and punctuation alone have none)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def parse_ideas(lines: List[str], source: str, max_chars: int) -> Tuple[List[Idea], List[str]]:
    """The ideas and the warnings (cut, no words); IdeasInputError naming every bad line."""
    ideas: List[Idea] = []
    warnings: List[str] = []
    problems: List[str] = []
    seen: dict = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object like {{\"id\": \"...\", \"text\": \"...\"}}, got {type(item).__name__}")
            continue
        missing = [key for key in ("id", "text") if key not in item]
        if missing:
            problems.append(f"{where}: missing {' and '.join(repr(key) for key in missing)}")
            continue
        ident, text = item["id"], item["text"]
        if isinstance(ident, bool) or not isinstance(ident, (str, int)) or str(ident).strip() == "":
            problems.append(f"{where}: 'id' must be a non-empty string or a whole number, not {ident!r}")
            continue
        if not isinstance(text, str):
            problems.append(f"{where}: 'text' must be a string, not {type(text).__name__}")
            continue
        ident = str(ident)
        if ident in seen:
            problems.append(f"{where}: id {ident!r} already used on line {seen[ident]}")
            continue
        seen[ident] = number
        if not text.strip():
            problems.append(f"{where}: 'text' is empty")
            continue
        context = item.get("context")
        if context is not None and not isinstance(context, dict):
            problems.append(f"{where}: 'context' must be an object like {{\"product\": \"forms\", \"feature\": \"...\"}}")
            continue
        if len(text) > max_chars:
            warnings.append(f"{where}: id {ident!r} is {len(text):,} characters; only the first {max_chars:,} are used")
            text = text[:max_chars]
        if not has_words(text):
            warnings.append(f"{where}: id {ident!r} has no words (only symbols or emoji); left unclustered")
        ideas.append(Idea(ident, text, number, context))
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise IdeasInputError(f"{len(problems)} bad line(s) in {source}; nothing was clustered:\n  " + "\n  ".join(shown) + more)
    if not ideas:
        raise IdeasInputError(f"{source}: no ideas in the file (expected one JSON object {{\"id\": ..., \"text\": ...}} per line)")
    return ideas, warnings


def read_ideas(path: Path, max_chars: int) -> Tuple[List[Idea], List[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise IdeasInputError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise IdeasInputError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_ideas(text.splitlines(), str(path), max_chars)
