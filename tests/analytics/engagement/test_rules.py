"""The engagement rule file: the shipped one loads, and every mistake in a bad one is named with its line."""

from __future__ import annotations

import pytest

from analytics.engagement.rules import DIMENSIONS, RulesError, load_rules, parse_rules


def test_the_shipped_rules_load_and_cover_every_path() -> None:
    rules = load_rules()
    assert rules.half_life_days == 60 and len(rules.digest) == 16
    covered = {(rule.dimension, rule.path) for rule in rules.rules}
    for dimension in DIMENSIONS:  # every dimension has a signal the assistant really collects
        assert (dimension, "result") in covered and (dimension, "process") in covered, dimension


BAD = """half_life_days: -3
colour: blue
technical_terms: [api, 3]
rules:
  - id: a
    dimension: innovation
    path: result
    event: idea
    points: 2
    reason: ok
  - id: a
    dimension: charisma
    path: sideways
    event: idea
    points: 0
    when: {min_word: 3, has_context: "yes"}
  - just a string
  - id: b
    dimension: learning
    path: process
    on: user
    points: 1
    reason: typo'd key
"""


def test_every_mistake_is_reported_with_its_line() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(BAD, "rules.yml")
    message = str(caught.value)
    for expected in (
        "rules.yml:1: half_life_days must be a positive number",
        "rules.yml:2: unknown setting 'colour'",
        "rules.yml:3: technical_terms must be a list of words",
        "rules.yml:11: rule 'a': dimension must be one of",
        "rules.yml:11: rule 'a': path must be one of",
        "rules.yml:11: rule 'a': points must be a positive number",
        "rules.yml:11: rule 'a': reason must say why",
        "rules.yml:11: rule 'a': unknown condition 'min_word'",
        "rules.yml:11: rule 'a': condition has_context must be bool",
        "rules.yml:17: a rule must be a mapping",
        "rules.yml:18: unknown field(s) 'True'",
        "rules.yml:18: rule 'b': event must be one of",
    ):
        assert expected in message, message


def test_duplicate_ids_and_broken_yaml_are_refused() -> None:
    rule = "  - {id: x, dimension: learning, path: result, event: user, points: 1, reason: r}\n"
    with pytest.raises(RulesError, match=r"rules.yml:4: rule id 'x' is used twice \(first at rules.yml:3\)"):
        parse_rules("half_life_days: 5\nrules:\n" + rule + rule, "rules.yml")
    with pytest.raises(RulesError, match=r"rules.yml:3: not valid YAML"):
        parse_rules("half_life_days: 5\nrules: [\n", "rules.yml")
