"""Set-up scripts: hash keys, interpreter discovery, Redis URL parsing, the test summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts import envs, junit_summary, train
from scripts.stack import StackError, redis_env

ROOT = Path(__file__).resolve().parents[2]


def test_env_hash_changes_with_any_requirement_or_python() -> None:
    base = envs.env_hash("rasa", ["rasa==3.6.21", "pytest>=8"], "3.10")
    assert base == envs.env_hash("rasa", ["rasa==3.6.21", "pytest>=8"], "3.10")
    assert base != envs.env_hash("rasa", ["rasa==3.6.21", "pytest>=9"], "3.10")
    assert base != envs.env_hash("rasa", ["rasa==3.6.21", "pytest>=8"], "3.11")


def test_pyproject_declares_both_runtimes() -> None:
    sets, versions = envs.load_sets()
    assert versions == {"rasa": "3.10", "actions": "3.11"}
    assert "rasa==3.6.21" in sets["rasa"]
    assert any(req.startswith("rasa-sdk") for req in sets["actions"])


def test_find_python_prefers_real_interpreters() -> None:
    found = envs.find_python("3.11")
    assert "shims" not in found
    out = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert out.stdout.strip() == "(3, 11)"


def test_model_hash_follows_the_training_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [tmp_path / "config.yml", tmp_path / "nlu.yml"]
    for f in files:
        f.write_text("a: 1\n")
    monkeypatch.setattr(train, "ROOT", tmp_path)
    monkeypatch.setattr(train, "ENCODER_MANIFEST", tmp_path / "missing.json")
    first = train.model_hash(files)
    assert first == train.model_hash(files)
    files[1].write_text("a: 2\n")
    assert first != train.model_hash(files)


def test_training_inputs_cover_domain_data_and_config() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in train.input_files()}
    assert "config.yml" in names
    assert any(n.startswith("bot/domain/") for n in names)
    assert any(n.startswith("nlu_data/nlu/") for n in names)
    assert not any(n.startswith("nlu_data/test/") for n in names), "the held-out set must not train the model"


def test_redis_url_is_split_for_endpoints() -> None:
    env = redis_env("redis://:s%40cret@redis.internal:6380/2")
    assert env["REDIS_HOST"] == "redis.internal"
    assert env["REDIS_PORT"] == "6380"
    assert env["REDIS_DB"] == "2"
    assert env["REDIS_PASSWORD"] == "s@cret"
    assert redis_env("redis://localhost")["REDIS_DB"] == "0"
    with pytest.raises(StackError, match="redis://"):
        redis_env("http://localhost:6379")


def test_junit_summary_sums_stages_and_fails_on_failures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ok = tmp_path / "a.xml"
    ok.write_text('<testsuites><testsuite tests="5" failures="0" errors="0" skipped="1"/></testsuites>')
    bad = tmp_path / "b.xml"
    bad.write_text('<testsuite tests="3" failures="1" errors="1" skipped="0"/>')
    assert junit_summary.main([str(ok)]) == 0
    assert "4 passed, 0 failed, 1 skipped" in capsys.readouterr().out
    assert junit_summary.main([str(ok), str(bad)]) == 1
    assert "5 passed, 2 failed, 1 skipped" in capsys.readouterr().out
    broken = tmp_path / "c.xml"
    broken.write_text("<testsuite")
    assert junit_summary.main([str(broken)]) == 1
