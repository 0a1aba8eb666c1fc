"""Retrieval and abstention metrics, and threshold calibration, as pure functions over ranked results.

A query either names the entry that answers it or has `faq_id` None, meaning the right
behaviour is to abstain. Ranking metrics (P@1, MRR@10, Recall@5) count in-scope queries
only; the abstention metrics count both kinds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from knowledge_base.errors import KnowledgeBaseError
from knowledge_base.policy import FaqHit, Outcome, decide
from knowledge_base.settings import FaqSettings

MAX_QUERY_LINE = 20_000
COVERAGE_GRID = (0.0, 0.2, 0.25, 0.3, 0.34, 0.4, 0.5, 0.6)

Ranking = Sequence[Tuple[str, float]]  # (faq id, score), best first


class QueryFileError(KnowledgeBaseError):
    """The queries file is unreadable or has bad lines (all of them are listed)."""


@dataclass(frozen=True)
class Query:
    text: str
    faq_id: Optional[str]  # None: the right behaviour is to abstain


def read_queries(path: Path, known_ids: Set[str]) -> List[Query]:
    """JSON lines `{"query": "...", "faq_id": "..." | null}`; every problem is reported with its line number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryFileError(f"{path}: cannot be read ({exc})") from exc
    queries: List[Query] = []
    problems: List[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = _query_problem(line, known_ids)
        if isinstance(problem, Query):
            queries.append(problem)
        else:
            problems.append(f"  - line {number}: {problem}")
    if problems:
        raise QueryFileError(f"{path}: {len(problems)} bad line(s):\n" + "\n".join(problems[:50]))
    if not queries:
        raise QueryFileError(f"{path}: no queries; expected JSON lines like {{\"query\": \"...\", \"faq_id\": \"...\"}}")
    return queries


def _query_problem(line: str, known_ids: Set[str]) -> "Query | str":
    if len(line) > MAX_QUERY_LINE:
        return f"longer than {MAX_QUERY_LINE} characters"
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})"
    if not isinstance(raw, dict) or set(raw) != {"query", "faq_id"}:
        return 'expected an object with exactly "query" and "faq_id"'
    text, faq_id = raw["query"], raw["faq_id"]
    if not isinstance(text, str) or not text.strip():
        return '"query" must be non-empty text'
    if faq_id is not None and not isinstance(faq_id, str):
        return '"faq_id" must be text or null'
    if faq_id is not None and faq_id not in known_ids:
        return f'"faq_id" {faq_id!r} is not an entry of the FAQ file'
    return Query(text, faq_id)


# -- ranking ---------------------------------------------------------------------


def ranking_metrics(queries: Sequence[Query], rankings: Sequence[Ranking]) -> Dict[str, float]:
    """P@1, MRR@10 and Recall@5 over the in-scope queries."""
    reciprocal: List[float] = []
    first: List[float] = []
    top5: List[float] = []
    for query, ranking in zip(queries, rankings):
        if query.faq_id is None:
            continue
        ids = [faq_id for faq_id, _ in ranking[:10]]
        rank = ids.index(query.faq_id) + 1 if query.faq_id in ids else None
        reciprocal.append(1.0 / rank if rank else 0.0)
        first.append(1.0 if rank == 1 else 0.0)
        top5.append(1.0 if rank and rank <= 5 else 0.0)
    return {
        "in_scope_queries": len(first),
        "p_at_1": _mean(first),
        "mrr_at_10": _mean(reciprocal),
        "recall_at_5": _mean(top5),
    }


# -- abstention ------------------------------------------------------------------


def answer_curve(queries: Sequence[Query], rankings: Sequence[Ranking], thresholds: Iterable[float]) -> List[Dict[str, float]]:
    """Answer with the top entry when its score reaches the threshold, else abstain; one point per threshold."""
    best = [(ranking[0] if ranking else (None, float("-inf"))) for ranking in rankings]
    in_scope = sum(q.faq_id is not None for q in queries)
    to_abstain = len(queries) - in_scope
    points = []
    for threshold in thresholds:
        answered = right = abstained_right = 0
        for query, (faq_id, score) in zip(queries, best):
            if score >= threshold:
                answered += 1
                right += query.faq_id is not None and faq_id == query.faq_id
            elif query.faq_id is None:
                abstained_right += 1
        points.append(
            {
                "threshold": round(float(threshold), 4),
                "answered": answered,
                "right": right,
                "answer_rate": answered / len(queries) if queries else 0.0,
                "precision": right / answered if answered else 1.0,
                "in_scope_accuracy": right / in_scope if in_scope else 0.0,
                "abstain_recall": abstained_right / to_abstain if to_abstain else 1.0,
            }
        )
    return points


def utility(right: int, wrong: int, wrong_answer_cost: float) -> float:
    """Right answers minus wrong ones weighted by their cost: what calibration maximises."""
    return right - wrong_answer_cost * wrong


def best_threshold(curve: Sequence[Dict[str, float]], wrong_answer_cost: float) -> Optional[Dict[str, float]]:
    """The curve point with the highest utility (ties: more abstention, then the higher threshold)."""
    answering = [p for p in curve if p["answered"] > 0]
    if not answering:
        return None
    return max(answering, key=lambda p: (utility(p["right"], p["answered"] - p["right"], wrong_answer_cost), p["abstain_recall"], p["threshold"]))


def policy_summary(queries: Sequence[Query], hits: Sequence[Sequence[FaqHit]], settings: FaqSettings) -> Dict[str, float]:
    """What the production answer policy does with each query under `settings`."""
    counts = {key: 0 for key in ("answered_right", "answered_wrong", "suggested_right", "suggested_wrong", "unknown_in_scope", "null_answered", "null_suggested", "null_unknown")}
    for query, query_hits in zip(queries, hits):
        decision = decide(query_hits, settings)
        offered = {hit.entry.id for hit in decision.hits}
        if query.faq_id is None:
            counts[{Outcome.ANSWER: "null_answered", Outcome.SUGGEST: "null_suggested", Outcome.UNKNOWN: "null_unknown"}[decision.outcome]] += 1
        elif decision.outcome is Outcome.UNKNOWN:
            counts["unknown_in_scope"] += 1
        else:
            verb = "answered" if decision.outcome is Outcome.ANSWER else "suggested"
            counts[f"{verb}_{'right' if query.faq_id in offered else 'wrong'}"] += 1
    in_scope = sum(q.faq_id is not None for q in queries)
    to_abstain = len(queries) - in_scope
    answered = counts["answered_right"] + counts["answered_wrong"] + counts["null_answered"]
    return {
        **counts,
        "in_scope_accuracy": counts["answered_right"] / in_scope if in_scope else 0.0,
        "right_entry_offered": (counts["answered_right"] + counts["suggested_right"]) / in_scope if in_scope else 0.0,
        "precision": counts["answered_right"] / answered if answered else 1.0,
        "abstain_recall": counts["null_unknown"] / to_abstain if to_abstain else 1.0,
        "abstain_not_answered": (counts["null_unknown"] + counts["null_suggested"]) / to_abstain if to_abstain else 1.0,
    }


def calibrate(
    queries: Sequence[Query],
    hits: Sequence[Sequence[FaqHit]],
    settings: FaqSettings,
    wrong_answer_cost: float = 3.0,
    max_null_offered: float = 0.25,
) -> Tuple[FaqSettings, Dict[str, float]]:
    """Thresholds for the answer policy, chosen on `queries`.

    answer_threshold, answer_margin and min_coverage: the set with the highest utility, right answers
    minus `wrong_answer_cost` times wrong ones (an answer to a query that should abstain
    is wrong), so every answer the thresholds let through is right at least
    cost/(cost+1) of the time at the margin. suggest_threshold: the lowest that offers
    something (answer or "did you mean") to at most `max_null_offered` of the queries that
    should abstain, so that as many customers as possible see the right entry.
    """
    best: Optional[Tuple[Tuple[float, float, float, float], FaqSettings]] = None
    for threshold in _grid(0.30, 0.90, 0.01):
        for margin in _grid(0.0, 0.08, 0.02):
            for min_coverage in COVERAGE_GRID:
                trial = dataclasses.replace(
                    settings,
                    answer_threshold=threshold,
                    answer_margin=margin,
                    min_coverage=min_coverage,
                    suggest_threshold=min(settings.suggest_threshold, threshold),
                )
                summary = policy_summary(queries, hits, trial)
                wrong = summary["answered_wrong"] + summary["null_answered"]
                key = (utility(summary["answered_right"], wrong, wrong_answer_cost), summary["abstain_recall"], -margin, -min_coverage)
                if best is None or key > best[0]:
                    best = (key, trial)
    assert best is not None  # the grid is never empty
    chosen = best[1]
    for threshold in _grid(0.20, chosen.answer_threshold, 0.01):
        trial = dataclasses.replace(chosen, suggest_threshold=threshold)
        summary = policy_summary(queries, hits, trial)
        if 1.0 - summary["abstain_recall"] <= max_null_offered:
            chosen = trial
            break
    else:
        chosen = dataclasses.replace(chosen, suggest_threshold=chosen.answer_threshold)
    return chosen, policy_summary(queries, hits, chosen)


def score_grid(rankings: Sequence[Ranking], points: int = 60) -> List[float]:
    """Thresholds spread over the observed top-1 scores (for scores without a fixed range, like BM25)."""
    tops = [ranking[0][1] for ranking in rankings if ranking]
    if not tops:
        return [0.0]
    quantiles = np.quantile(np.asarray(tops), np.linspace(0.0, 1.0, points))
    return sorted({round(float(q), 4) for q in quantiles} | {round(max(tops) + 1e-3, 4)})


def _grid(start: float, stop: float, step: float) -> List[float]:
    return [round(x, 4) for x in np.arange(start, stop + step / 2, step)]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0
