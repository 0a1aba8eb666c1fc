"""Reading a YAML rule file so that every mistake can be named with its line (engagement, funnel)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Type

import yaml


@dataclass(frozen=True)
class YamlDocument:
    """The parsed data and its node tree, for line numbers."""

    source: str
    data: Any
    root: Any

    def line(self, node: Optional[Any] = None) -> str:
        """`source:line` of `node` (of the document when None)."""
        node = node if node is not None else self.root
        return f"{self.source}:{node.start_mark.line + 1}" if node is not None else f"{self.source}:1"

    def node(self, *path: Any, within: Optional[Any] = None) -> Optional[Any]:
        """The node at `path` (mapping keys and list indexes), or None."""
        node = within if within is not None else self.root
        for step in path:
            if isinstance(node, yaml.MappingNode):
                node = next((value for key, value in node.value if key.value == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
            else:
                return None
        return node

    def key_line(self, key: str) -> str:
        """`source:line` of a top-level key (for unknown settings)."""
        if isinstance(self.root, yaml.MappingNode):
            for name, _ in self.root.value:
                if name.value == key:
                    return self.line(name)
        return self.line()


def read_text(path: Path, what: str, error: Type[Exception]) -> str:
    """The file's text, or `error` saying which file could not be read and why."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from exc


def read_yaml(text: str, source: str, error: Type[Exception]) -> YamlDocument:
    """Parse `text`, raising `error` with the line of a syntax mistake."""
    try:
        return YamlDocument(source, yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise error(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
