"""The threshold measurement: leave-one-out trials, tallies with the production policy, the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from knowledge_base.loader import load_directory
from knowledge_base.search import normalise, phrasing_table
from knowledge_base.settings import load_settings
from knowledge_base.thresholds import against_index, leave_one_out, main, outcome, read_nlu_examples, tally
from tests.knowledge_base.helpers import BagOfWordsEncoder, write_sample_kb


@pytest.fixture
def table(tmp_path: Path):
    faq_dir, config = write_sample_kb(tmp_path)
    entries = load_directory(faq_dir)
    texts, owners = phrasing_table(entries)
    return entries, texts, normalise(BagOfWordsEncoder().encode(texts)), owners, load_settings(config)


def test_leave_one_out_never_finds_the_query_itself(table) -> None:
    entries, texts, vectors, owners, _ = table
    trials = leave_one_out(entries, texts, vectors, owners)
    assert len(trials) == len(texts)  # every sample entry has at least two phrasings
    assert all(trial.query not in {h.matched for h in trial.hits} for trial in trials)
    forgot = next(t for t in trials if t.query == "forgot password")
    assert forgot.hits[0].entry.id == "reset-password"  # through "How do I reset my password?"


def test_outcomes_follow_the_production_policy(table) -> None:
    entries, texts, vectors, owners, settings = table
    trials = leave_one_out(entries, texts, vectors, owners)
    forgot = next(t for t in trials if t.query == "forgot password")
    assert forgot.hits[0].score == pytest.approx(1 / 12**0.5, abs=1e-4)  # 1 shared word of 2 and 6
    assert outcome(forgot, settings) == "suggest_right"  # 0.29 < answer_threshold 0.8
    assert outcome(forgot, dataclasses.replace(settings, answer_threshold=0.28, answer_margin=0.0)) == "answer_right"
    negatives = against_index(entries, texts, vectors, owners, ["weather tomorrow"], normalise(BagOfWordsEncoder().encode(["weather tomorrow"])))
    assert outcome(negatives[0], settings) == "unknown"
    shares = tally(trials, settings)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_nlu_examples_are_read_by_intent(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text('version: "3.1"\nnlu:\n- intent: out_of_scope\n  examples: |\n    - tell me a joke\n    - weather?\n- intent: greet\n  examples: |\n    - hi\n')
    assert read_nlu_examples(path, "out_of_scope") == ["tell me a joke", "weather?"]


def test_the_report_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    faq_dir, config = write_sample_kb(tmp_path)
    negatives = tmp_path / "neg.csv"
    negatives.write_text("text,category\nwhat is my card balance,bank\n")
    main(["--faqs", str(faq_dir), "--config", str(config), "--negatives-csv", str(negatives)], encoder=BagOfWordsEncoder())
    report = capsys.readouterr().out
    assert "4 entries, 10 phrasings" in report
    assert "leave-one-out positives: n=10" in report
    assert "with the configured settings: answer>=0.8 margin>=0.05 suggest>=0.25" in report
