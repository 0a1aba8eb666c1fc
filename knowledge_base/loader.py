"""Load and validate FAQ entries from YAML and JSON files.

Each file holds a list of entries with `id`, `question` and `answer`, and
optionally `alternatives` (other phrasings), `url`, `tags` and `product_area`. Every problem is
collected and reported with its file and entry, so an author fixes them all in
one pass; nothing is returned unless the whole content is valid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

import yaml

from knowledge_base.errors import FaqProblem, FaqValidationError, KnowledgeBaseUnavailable

FAQ_SUFFIXES = (".yml", ".yaml", ".json")
REQUIRED_FIELDS = ("id", "question", "answer")
OPTIONAL_FIELDS = ("alternatives", "url", "tags", "product_area")
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)

# Ids travel inside a button payload (`/ask_question{"faq_id":"<id>"}`) and into
# log records, so quotes, braces and spaces would break the payload.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_TEXT = 5_000


@dataclass(frozen=True)
class FaqEntry:
    """One question with its answer."""

    id: str
    question: str
    alternatives: Tuple[str, ...]
    answer: str
    url: Optional[str] = None
    tags: Tuple[str, ...] = ()
    product_area: Optional[str] = None
    source: str = ""  # the file it came from

    @property
    def phrasings(self) -> Tuple[str, ...]:
        """The question and its alternatives: each becomes one vector in the index."""
        return (self.question,) + self.alternatives


def load_directory(directory: Path) -> List[FaqEntry]:
    """Load every FAQ file in `directory` (sorted by name); ids must be unique across files.

    Raises KnowledgeBaseUnavailable(MISSING) when the directory does not exist and
    FaqValidationError when any file is invalid. An existing directory without FAQ
    files gives an empty list: the caller decides what an empty knowledge base means.
    """
    return load_files(faq_files(directory))


def faq_files(directory: Path) -> List[Path]:
    """The FAQ files (.yml, .yaml, .json) directly in `directory`, sorted by name."""
    if not directory.is_dir():
        raise KnowledgeBaseUnavailable(KnowledgeBaseUnavailable.MISSING, f"no FAQ directory at {directory}")
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in FAQ_SUFFIXES)


def load_files(files: Iterable[Path]) -> List[FaqEntry]:
    entries: List[FaqEntry] = []
    problems: List[FaqProblem] = []
    for path in files:
        file_entries, file_problems = _load_file(path)
        entries.extend(file_entries)
        problems.extend(file_problems)
    problems.extend(_cross_entry_problems(entries))
    if problems:
        raise FaqValidationError(problems)
    return entries


def load_file(path: Path) -> List[FaqEntry]:
    """Load one file on its own (duplicate ids within it are still checked)."""
    return load_files([path])


# -- parsing ---------------------------------------------------------------------


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictYamlLoader, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
    seen: Dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key; construct_mapping reports it properly
            duplicate = False
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 - a SafeLoader subclass


def _load_file(path: Path) -> Tuple[List[FaqEntry], List[FaqProblem]]:
    name = str(path)
    try:
        data = _parse(path)
    except UnicodeDecodeError as exc:
        return [], [FaqProblem(name, "file", f"is not UTF-8 text ({exc.reason})")]
    except json.JSONDecodeError as exc:
        return [], [FaqProblem(name, "file", f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")]
    except yaml.YAMLError as exc:
        return [], [FaqProblem(name, "file", f"is not valid YAML: {_yaml_message(exc)}")]
    except OSError as exc:
        return [], [FaqProblem(name, "file", f"cannot be read: {exc.strerror or exc}")]
    if data is None:
        return [], [FaqProblem(name, "file", "is empty; expected a list of FAQ entries")]
    if not isinstance(data, list):
        return [], [FaqProblem(name, "file", f"must hold a list of FAQ entries, not a {_kind(data)}")]
    entries: List[FaqEntry] = []
    problems: List[FaqProblem] = []
    for position, raw in enumerate(data, start=1):
        entry, entry_problems = _validate_entry(raw, name, position)
        problems.extend(entry_problems)
        if entry is not None:
            entries.append(entry)
    return entries, problems


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string"}.get(type(value), type(value).__name__)


# -- validation ------------------------------------------------------------------


def _entry_label(raw: Any, position: int) -> str:
    if isinstance(raw, Mapping):
        raw_id = raw.get("id")
        if isinstance(raw_id, str) and raw_id.strip():
            return f"entry #{position} (id '{raw_id.strip()}')"
    return f"entry #{position}"


def _validate_entry(raw: Any, file: str, position: int) -> Tuple[Optional[FaqEntry], List[FaqProblem]]:
    label = _entry_label(raw, position)
    problems: List[FaqProblem] = []

    def problem(message: str) -> None:
        problems.append(FaqProblem(file, label, message))

    if not isinstance(raw, Mapping):
        problem(f"must be a mapping of fields, not a {_kind(raw)}")
        return None, problems

    unknown = sorted(str(key) for key in raw if key not in KNOWN_FIELDS)
    if unknown:
        problem(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KNOWN_FIELDS))}")
    for field_name in REQUIRED_FIELDS:
        if field_name not in raw:
            problem(f"missing required field '{field_name}'")

    entry_id = _text(raw.get("id"), "id", problem, required="id" in raw)
    if entry_id is not None and not ID_PATTERN.match(entry_id):
        problem(
            f"id '{entry_id}' may only use letters, digits, '.', '_' and '-' "
            "(it is sent inside button payloads)"
        )
        entry_id = None
    question = _text(raw.get("question"), "question", problem, required="question" in raw)
    answer = _text(raw.get("answer"), "answer", problem, required="answer" in raw, keep_lines=True)
    alternatives = _text_list(raw.get("alternatives"), "alternatives", problem) if raw.get("alternatives") is not None else ()
    tags = _text_list(raw.get("tags"), "tags", problem) if raw.get("tags") is not None else ()
    product_area = _text(raw.get("product_area"), "product_area", problem, required=False)
    url = _url(raw.get("url"), problem)

    if problems or entry_id is None or question is None or answer is None:
        return None, problems
    return (
        FaqEntry(
            id=entry_id,
            question=question,
            alternatives=_dedupe(alternatives, exclude=question),
            answer=answer,
            url=url,
            tags=tags,
            product_area=product_area,
            source=file,
        ),
        [],
    )


def _text(value: Any, field_name: str, problem: Any, *, required: bool, keep_lines: bool = False) -> Optional[str]:
    if value is None:
        if required:
            problem(f"'{field_name}' is empty")
        return None
    if not isinstance(value, str):
        problem(f"'{field_name}' must be text, not {_kind(value)} ({value!r})")
        return None
    cleaned = value.strip() if keep_lines else " ".join(value.split())
    if not cleaned:
        problem(f"'{field_name}' is empty")
        return None
    if len(cleaned) > MAX_TEXT:
        problem(f"'{field_name}' is {len(cleaned)} characters long; the limit is {MAX_TEXT}")
        return None
    return cleaned


def _text_list(value: Any, field_name: str, problem: Any) -> Tuple[str, ...]:
    if not isinstance(value, list):
        problem(f"'{field_name}' must be a list of texts, not {_kind(value)}")
        return ()
    items: List[str] = []
    for position, item in enumerate(value, start=1):
        cleaned = _text(item, f"{field_name}[{position}]", problem, required=True)
        if cleaned is not None:
            items.append(cleaned)
    return tuple(items)


def _url(value: Any, problem: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problem("'url' must be a non-empty http(s) address")
        return None
    url = value.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or any(c.isspace() for c in url):
        problem(f"'url' must be an http(s) address, got {url!r}")
        return None
    return url


def _dedupe(texts: Sequence[str], exclude: str) -> Tuple[str, ...]:
    seen = {exclude.casefold()}
    kept: List[str] = []
    for text in texts:
        key = text.casefold()
        if key not in seen:
            seen.add(key)
            kept.append(text)
    return tuple(kept)


def _cross_entry_problems(entries: Sequence[FaqEntry]) -> List[FaqProblem]:
    """Duplicate ids, and the same phrasing under two entries (the search could not tell them apart)."""
    problems: List[FaqProblem] = []
    by_id: Dict[str, FaqEntry] = {}
    for entry in entries:
        first = by_id.get(entry.id)
        if first is not None:
            problems.append(
                FaqProblem(entry.source, f"id '{entry.id}'", f"duplicate id: already used in {first.source}")
            )
        else:
            by_id[entry.id] = entry
    owner_of: Dict[str, FaqEntry] = {}
    for entry in entries:
        for text in entry.phrasings:
            key = " ".join(text.casefold().split())
            other = owner_of.get(key)
            if other is not None and other.id != entry.id:
                problems.append(
                    FaqProblem(
                        entry.source,
                        f"id '{entry.id}'",
                        f"phrasing {text!r} is also a phrasing of '{other.id}' ({other.source})",
                    )
                )
            else:
                owner_of[key] = entry
    return problems
