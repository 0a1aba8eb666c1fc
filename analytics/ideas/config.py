"""Idea-mining settings from YAML (analytics/ideas/config.yml); missing keys take the defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Optional

from analytics.ideas.cluster import LINKAGES, ClusterSettings
from analytics.ideas.errors import IdeasConfigError
from analytics.ideas.weights import DemandWeights
from analytics.yaml_rules import YamlDocument, read_text, read_yaml

DEFAULT_CONFIG = Path(__file__).with_name("config.yml")
CONFIG_ENV = "ENGAGE_IDEAS_CONFIG"


@dataclass(frozen=True)
class IdeasSettings:
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    duplicate_similarity: float = 0.55
    max_chars: int = 2000
    demand: DemandWeights = field(default_factory=DemandWeights)
    recluster_every_hours: float = 24.0  # 0: only on demand (ideas recluster)


_SECTIONS = {"clustering", "duplicates", "input", "demand", "recluster"}


def load_settings(path: Optional[Path] = None) -> IdeasSettings:
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    return parse_settings(read_text(path, "idea-mining settings", IdeasConfigError), str(path))


def parse_settings(text: str, source: str) -> IdeasSettings:
    doc = read_yaml(text, source, IdeasConfigError)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise IdeasConfigError(f"{doc.line()}: expected a mapping of sections ({', '.join(sorted(_SECTIONS))})")
    problems = [f"{doc.key_line(key)}: unknown section {key!r} (known: {', '.join(sorted(_SECTIONS))})" for key in data if key not in _SECTIONS]
    defaults = IdeasSettings()
    cluster = defaults.cluster
    clustering = _section(doc, data, "clustering", problems)
    numbers = {f.name: f.type for f in fields(ClusterSettings)}
    for key, value in clustering.items():
        if key not in numbers:
            problems.append(f"{doc.line(doc.node('clustering', key))}: unknown setting clustering.{key}")
            continue
        if key == "linkage":
            if value not in LINKAGES:
                problems.append(f"{doc.line(doc.node('clustering', key))}: clustering.linkage must be one of {', '.join(LINKAGES)}, not {value!r}")
            else:
                cluster = replace(cluster, linkage=value)
            continue
        checked = _number(doc, ("clustering", key), value, integer=numbers[key] == "int", problems=problems)
        if checked is not None:
            cluster = replace(cluster, **{key: checked})
    similarity = float(_single(doc, data, "duplicates", "similarity", defaults.duplicate_similarity, problems, upper=1.0))
    max_chars = int(_single(doc, data, "input", "max_chars", defaults.max_chars, problems, integer=True))
    weights = defaults.demand
    for key, value in _section(doc, data, "demand", problems).items():
        if key == "engagement":
            checked = _number(doc, ("demand", key), value, integer=False, problems=problems)
            weights = weights if checked is None else replace(weights, engagement=float(checked))
        elif key == "stages":
            if not isinstance(value, dict):
                problems.append(f"{doc.line(doc.node('demand', key))}: demand.stages must map funnel stages to weights")
                continue
            stages = dict(weights.stages)
            for stage, weight in value.items():
                checked = _number(doc, ("demand", key, stage), weight, integer=False, problems=problems)
                if checked is not None:
                    stages[str(stage)] = float(checked)
            weights = replace(weights, stages=stages)
        else:
            problems.append(f"{doc.line(doc.node('demand', key))}: unknown setting demand.{key}")
    every = float(_single(doc, data, "recluster", "every_hours", defaults.recluster_every_hours, problems))
    if problems:
        raise IdeasConfigError("; ".join(problems))
    return IdeasSettings(cluster, similarity, max_chars, weights, every)


def _single(doc: YamlDocument, data: Dict[str, Any], section: str, name: str, default: float, problems: list,
            integer: bool = False, upper: Optional[float] = None) -> float:
    """The one setting of a section (`duplicates.similarity`, `input.max_chars`, ...), or its default."""
    value = default
    for key, given in _section(doc, data, section, problems).items():
        if key != name:
            problems.append(f"{doc.line(doc.node(section, key))}: unknown setting {section}.{key}")
            continue
        checked = _number(doc, (section, key), given, integer=integer, problems=problems, upper=upper)
        value = value if checked is None else checked
    return value


def _section(doc: YamlDocument, data: Dict[str, Any], name: str, problems: list) -> Dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        problems.append(f"{doc.line(doc.node(name))}: {name} must be a mapping")
        return {}
    return value


def _number(doc: YamlDocument, path: tuple, value: Any, integer: bool, problems: list, upper: Optional[float] = None) -> Optional[float]:
    where = doc.line(doc.node(*path))
    name = ".".join(path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        problems.append(f"{where}: {name} must be {'a whole number' if integer else 'a number'}, not {value!r}")
        return None
    if value < 0 or (upper is not None and value > upper):
        problems.append(f"{where}: {name} must be between 0 and {upper:g}" if upper is not None else f"{where}: {name} must not be negative")
        return None
    return value
