"""Idea-mining settings: the shipped file loads, mistakes are named by line."""

from __future__ import annotations

import pytest

from analytics.ideas.config import DEFAULT_CONFIG, IdeasSettings, load_settings, parse_settings
from analytics.ideas.errors import IdeasConfigError


def test_the_shipped_settings_load_and_an_empty_file_gives_the_defaults() -> None:
    shipped = load_settings(DEFAULT_CONFIG)
    assert 0.0 < shipped.duplicate_similarity < 1.0
    assert shipped.cluster.distance_threshold > 0
    assert parse_settings("", "empty.yml") == IdeasSettings()


def test_values_override_the_defaults() -> None:
    settings = parse_settings("clustering:\n  distance_threshold: 3.0\nduplicates:\n  similarity: 0.8\n", "x.yml")
    assert settings.cluster.distance_threshold == 3.0 and settings.duplicate_similarity == 0.8
    assert settings.cluster.min_theme_size == IdeasSettings().cluster.min_theme_size


def test_every_mistake_is_named_with_its_line() -> None:
    text = "clustering:\n  linkage: single\n  distance_threshold: far\n  min_theme_size: 2.5\n  colour: blue\nduplicates:\n  similarity: 1.5\nthemes: {}\n"
    with pytest.raises(IdeasConfigError) as caught:
        parse_settings(text, "bad.yml")
    message = str(caught.value)
    for expected in ("bad.yml:2: clustering.linkage must be one of average, complete, ward, not 'single'",
                     "bad.yml:3: clustering.distance_threshold must be a number", "bad.yml:4: clustering.min_theme_size must be a whole number",
                     "bad.yml:5: unknown setting clustering.colour", "bad.yml:7: duplicates.similarity must be between 0 and 1",
                     "bad.yml:8: unknown section 'themes'"):
        assert expected in message


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(IdeasConfigError, match=r"bad.yml:3: not valid YAML"):
        parse_settings("clustering:\n  seed: 0\n  - x\n", "bad.yml")


def test_demand_weights_override_per_stage_and_mistakes_are_named() -> None:
    settings = parse_settings("demand:\n  stages: {lead: 4}\n  engagement: 0.5\n", "d.yml")
    assert settings.demand.stages["lead"] == 4.0 and settings.demand.stages["opportunity"] == 5.0
    assert settings.demand.engagement == 0.5
    with pytest.raises(IdeasConfigError, match=r"d.yml:2: demand.stages.lead must be a number"):
        parse_settings("demand:\n  stages: {lead: high}\n", "d.yml")


def test_the_recluster_schedule_is_read_and_its_mistakes_named() -> None:
    assert parse_settings("recluster:\n  every_hours: 6\n", "r.yml").recluster_every_hours == 6.0
    assert parse_settings("recluster:\n  every_hours: 0\n", "r.yml").recluster_every_hours == 0.0
    with pytest.raises(IdeasConfigError) as caught:
        parse_settings("recluster:\n  every_hours: daily\n  at: 3am\n", "r.yml")
    assert "r.yml:2: recluster.every_hours must be a number" in str(caught.value) and "r.yml:3: unknown setting recluster.at" in str(caught.value)
