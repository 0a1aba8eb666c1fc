"""Retrieval and abstention metrics and calibration, on hand-made rankings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from knowledge_base.evaluate import (
    Query,
    QueryFileError,
    answer_curve,
    best_threshold,
    calibrate,
    policy_summary,
    ranking_metrics,
    read_queries,
    score_grid,
)
from knowledge_base.loader import FaqEntry
from knowledge_base.policy import FaqHit
from knowledge_base.settings import FaqSettings

QUERIES = [Query("a?", "a"), Query("b?", "b"), Query("c?", "c"), Query("weather?", None)]
RANKINGS = [
    [("a", 0.9), ("b", 0.2)],  # right at rank 1
    [("a", 0.6), ("b", 0.5)],  # right at rank 2
    [("x", 0.4)] * 1 + [(f"z{i}", 0.1) for i in range(10)],  # not in the top 10
    [("a", 0.7)],  # should abstain
]


def test_ranking_metrics_count_in_scope_queries_only() -> None:
    metrics = ranking_metrics(QUERIES, RANKINGS)
    assert metrics == {"in_scope_queries": 3, "p_at_1": pytest.approx(1 / 3), "mrr_at_10": pytest.approx((1 + 0.5 + 0) / 3), "recall_at_5": pytest.approx(2 / 3)}


def test_the_answer_curve_trades_answers_for_precision() -> None:
    low, mid, high = answer_curve(QUERIES, RANKINGS, [0.3, 0.65, 0.95])
    assert low == {"threshold": 0.3, "answered": 4, "right": 1, "answer_rate": 1.0, "precision": 0.25, "in_scope_accuracy": pytest.approx(1 / 3), "abstain_recall": 0.0}
    assert (mid["answered"], mid["right"], mid["abstain_recall"]) == (2, 1, 0.0)
    assert (high["answered"], high["precision"], high["abstain_recall"]) == (0, 1.0, 1.0)


def test_the_best_threshold_weighs_wrong_answers_by_their_cost() -> None:
    curve = answer_curve(QUERIES, RANKINGS, [0.3, 0.65, 0.8, 0.95])
    assert best_threshold(curve, wrong_answer_cost=3)["threshold"] == 0.8  # 1 right, 0 wrong
    assert best_threshold(answer_curve(QUERIES, RANKINGS, [0.95]), 3) is None  # nothing answered at all


def test_score_grid_spans_unbounded_scores() -> None:
    grid = score_grid([[("a", 2.0)], [("b", 8.0)], []])
    assert grid[0] == 2.0 and grid[-1] > 8.0 and grid == sorted(grid)
    assert score_grid([[], []]) == [0.0]


def _hits(*pairs: tuple) -> List[FaqHit]:
    return [FaqHit(FaqEntry(id=i, question=i, alternatives=(), answer="x"), s, i, coverage=c) for i, s, c in pairs]


POLICY_QUERIES = [Query("q1", "a"), Query("q2", "b"), Query("q3", "c"), Query("q4", None), Query("q5", None)]
POLICY_HITS = [
    _hits(("a", 0.9, 1.0), ("b", 0.3, 0.0)),  # clear, right
    _hits(("a", 0.62, 1.0), ("b", 0.6, 1.0)),  # a near tie: right entry second
    _hits(("c", 0.45, 1.0)),  # right but low
    _hits(("a", 0.85, 0.2)),  # a near-miss: high score, few of its words
    _hits(("b", 0.3, 0.0)),  # plainly off-topic
]


def test_policy_summary_counts_each_outcome() -> None:
    settings = FaqSettings(answer_threshold=0.6, suggest_threshold=0.4, answer_margin=0.05)
    summary = policy_summary(POLICY_QUERIES, POLICY_HITS, settings)
    assert {k: summary[k] for k in ("answered_right", "suggested_right", "null_answered", "null_unknown")} == {
        "answered_right": 1, "suggested_right": 2, "null_answered": 1, "null_unknown": 1,
    }
    assert summary["precision"] == pytest.approx(0.5)
    assert summary["right_entry_offered"] == pytest.approx(1.0)
    assert summary["abstain_recall"] == pytest.approx(0.5)


def test_calibration_finds_the_coverage_gate_that_stops_the_near_miss() -> None:
    start = FaqSettings(answer_threshold=0.6, suggest_threshold=0.4)
    chosen, summary = calibrate(POLICY_QUERIES, POLICY_HITS, start, wrong_answer_cost=3, max_null_offered=0.5)
    assert (summary["answered_right"], summary["answered_wrong"], summary["null_answered"]) == (2, 0, 0)  # q1 and the low q3
    assert chosen.min_coverage > 0.2
    assert summary["null_suggested"] + summary["null_answered"] <= 1  # at most half of the two abstain queries


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_queries_accepts_nulls_and_blank_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "q.jsonl", json.dumps({"query": "a?", "faq_id": "a"}), "", json.dumps({"query": "hi", "faq_id": None}))
    assert read_queries(path, {"a"}) == [Query("a?", "a"), Query("hi", None)]


def test_read_queries_lists_every_bad_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "q.jsonl",
        "{not json",
        json.dumps({"query": "", "faq_id": "a"}),
        json.dumps({"query": "a?", "faq_id": "zz"}),
        json.dumps({"query": "a?"}),
        json.dumps(["a"]),
        json.dumps({"query": "x" * 30_000, "faq_id": None}),
        json.dumps({"query": "ok", "faq_id": 3}),
    )
    with pytest.raises(QueryFileError) as caught:
        read_queries(path, {"a"})
    message = str(caught.value)
    assert "7 bad line(s)" in message
    for expected in ("line 1: not valid JSON", "line 2: \"query\" must be non-empty", "line 3: \"faq_id\" 'zz' is not an entry", "line 4: expected an object", "line 6: longer than", "line 7: \"faq_id\" must be text"):
        assert expected in message


def test_read_queries_refuses_missing_or_empty_files(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match="cannot be read"):
        read_queries(tmp_path / "absent.jsonl", set())
    with pytest.raises(QueryFileError, match="no queries"):
        read_queries(write_lines(tmp_path / "e.jsonl", ""), set())
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(QueryFileError, match="cannot be read"):
        read_queries(tmp_path / "bin.jsonl", set())
