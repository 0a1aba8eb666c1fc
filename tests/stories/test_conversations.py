"""Rasa's own checks on the assistant: data validation and the conversation tests in this folder.

Runs in the Rasa runtime against the trained model (models/engage.tar.gz from `make setup`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "engage.tar.gz"
RASA = [sys.executable, "-m", "rasa"]
DATA = ["--domain", "bot/domain", "--data", "bot/data", "nlu_data/nlu", "--config", "config.yml"]


def run_rasa(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RASA_TELEMETRY_ENABLED="false")
    return subprocess.run([*RASA, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


def test_training_data_validates_without_warnings() -> None:
    result = run_rasa("data", "validate", *DATA, "--max-history", "5", "--fail-on-warnings")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_nlu_test_set_never_overlaps_the_training_data() -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    train = {m.get("text").lower().strip() for m in load_data(str(ROOT / "nlu_data" / "nlu")).intent_examples}
    test = {m.get("text").lower().strip() for m in load_data(str(ROOT / "nlu_data" / "test")).intent_examples}
    assert test, "the held-out NLU test set is empty"
    assert not (train & test), f"test examples also in training: {sorted(train & test)[:10]}"


def test_conversation_tests_pass(tmp_path: Path) -> None:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make setup`")
    result = run_rasa(
        "test", "core",
        "--model", str(MODEL),
        "--stories", "tests/stories",
        "--out", str(tmp_path),
        "--fail-on-prediction-errors",
    )
    failed = tmp_path / "failed_test_stories.yml"
    detail = failed.read_text()[-6000:] if failed.exists() else result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, detail


def test_nlu_on_the_held_out_set(tmp_path: Path) -> None:
    """The held-out set is a quality floor, not a tuning target (the pipeline choice is in BENCHMARKS.md)."""
    if not MODEL.exists():
        pytest.fail("no trained model: run `make setup`")
    result = run_rasa("test", "nlu", "--model", str(MODEL), "--nlu", "nlu_data/test", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((tmp_path / "intent_report.json").read_text())
    assert report["accuracy"] >= 0.85, f"intent accuracy on the held-out set fell to {report['accuracy']:.3f}"
