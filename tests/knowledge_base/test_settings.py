"""knowledge_base/config.yml: the shipped file loads; bad files fail with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.errors import SettingsError
from knowledge_base.settings import DEFAULT_CONFIG, FaqSettings, IndexSettings, load_settings
from tests.knowledge_base.helpers import TEST_CONFIG, write_yaml


def test_the_shipped_config_loads() -> None:
    settings = load_settings(DEFAULT_CONFIG)
    assert 0 < settings.suggest_threshold <= settings.answer_threshold < 1
    assert settings.max_suggestions == 3


def test_values_are_read(tmp_path: Path) -> None:
    settings = load_settings(write_yaml(tmp_path / "c.yml", TEST_CONFIG))
    assert settings == FaqSettings(
        answer_threshold=0.8, suggest_threshold=0.25, answer_margin=0.05, max_suggestions=3, max_query_chars=1000, ignore_terms=("Quillstack",)
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"answer_threshold": 0.2}, "suggest_threshold <= answer_threshold"),
        ({"answer_threshold": "high"}, "'answer_threshold' must be a number"),
        ({"max_suggestions": True}, "'max_suggestions' must be a number"),
        ({"max_suggestions": 2.5}, "must be a whole number"),
        ({"max_suggestions": 0}, "max_suggestions must be between 1 and 10"),
        ({"answer_margin": 2}, "answer_margin must be between 0 and 1"),
        ({"ignore_terms": "Quillstack"}, "'ignore_terms' must be a list"),
        ({"threshold": 0.5}, "unknown setting(s) threshold"),
        ({"min_coverage": 1.5}, "min_coverage must be between 0 and 1"),
        ({"lexical_weight": -0.1}, "lexical_weight must be between 0 and 1"),
        ({"index": {"exact_max_vectors": 0}}, "index.exact_max_vectors must be a positive whole number"),
        ({"index": {"hnsw_ef_search": 1.5}}, "'index.hnsw_ef_search' must be a whole number"),
        ({"index": {"efSearch": 64}}, "unknown setting(s) index.efSearch"),
        ({"index": [1]}, "'index' must be a mapping"),
    ],
)
def test_bad_values_name_the_file(tmp_path: Path, change: dict, message: str) -> None:
    path = write_yaml(tmp_path / "c.yml", {**TEST_CONFIG, **change})
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert message in str(caught.value) and "c.yml" in str(caught.value)


def test_the_index_block_is_read_with_defaults_for_what_it_leaves_out(tmp_path: Path) -> None:
    settings = load_settings(write_yaml(tmp_path / "c.yml", {**TEST_CONFIG, "index": {"exact_max_vectors": 10, "threads": 2}}))
    assert settings.index == IndexSettings(exact_max_vectors=10, threads=2)
    assert load_settings(write_yaml(tmp_path / "d.yml", TEST_CONFIG)).index == IndexSettings()


def test_missing_threshold_and_unreadable_files(tmp_path: Path) -> None:
    config = dict(TEST_CONFIG)
    del config["suggest_threshold"]
    with pytest.raises(SettingsError, match="suggest_threshold"):
        load_settings(write_yaml(tmp_path / "c.yml", config))
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings(tmp_path / "absent.yml")
    (tmp_path / "bad.yml").write_text("answer_threshold: [")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(tmp_path / "bad.yml")
    (tmp_path / "list.yml").write_text("- 1\n")
    with pytest.raises(SettingsError, match="must be a mapping"):
        load_settings(tmp_path / "list.yml")
