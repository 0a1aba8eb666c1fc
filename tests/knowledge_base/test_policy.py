"""The answer policy: answer, did-you-mean, or don't know."""

from __future__ import annotations

from typing import List

from knowledge_base.loader import FaqEntry
from knowledge_base.policy import FaqHit, Outcome, decide
from knowledge_base.settings import FaqSettings

SETTINGS = FaqSettings(answer_threshold=0.7, suggest_threshold=0.5, answer_margin=0.05, max_suggestions=3)


def hits(*scores: float) -> List[FaqHit]:
    return [FaqHit(FaqEntry(id=f"e{i}", question=f"q{i}", alternatives=(), answer="a"), s, f"q{i}") for i, s in enumerate(scores)]


def test_a_clear_high_score_is_answered() -> None:
    decision = decide(hits(0.9, 0.6), SETTINGS)
    assert decision.outcome is Outcome.ANSWER
    assert [h.entry.id for h in decision.hits] == ["e0"]
    assert decision.score == 0.9


def test_exactly_at_the_thresholds_counts() -> None:
    assert decide(hits(0.7, 0.65), SETTINGS).outcome is Outcome.ANSWER
    assert decide(hits(0.5), SETTINGS).outcome is Outcome.SUGGEST


def test_a_high_score_with_a_close_runner_up_is_a_suggestion_of_both() -> None:
    decision = decide(hits(0.9, 0.88, 0.3), SETTINGS)
    assert decision.outcome is Outcome.SUGGEST
    assert [h.entry.id for h in decision.hits] == ["e0", "e1"]


def test_middle_scores_suggest_up_to_the_limit_and_only_above_the_suggest_threshold() -> None:
    decision = decide(hits(0.69, 0.6, 0.55, 0.52, 0.4), SETTINGS)
    assert decision.outcome is Outcome.SUGGEST
    assert [h.entry.id for h in decision.hits] == ["e0", "e1", "e2"]
    assert [h.entry.id for h in decide(hits(0.6, 0.45), SETTINGS).hits] == ["e0"]


def test_low_scores_are_unknown_but_keep_the_nearest_entry() -> None:
    decision = decide(hits(0.49, 0.2), SETTINGS)
    assert decision.outcome is Outcome.UNKNOWN
    assert decision.hits == ()
    assert decision.best is not None and decision.best.entry.id == "e0"


def test_no_hits_is_unknown_without_a_score() -> None:
    decision = decide([], SETTINGS)
    assert decision.outcome is Outcome.UNKNOWN and decision.score is None


def test_an_entry_lacking_the_questions_words_is_suggested_not_answered() -> None:
    settings = FaqSettings(answer_threshold=0.7, suggest_threshold=0.5, min_coverage=0.4)
    entry = FaqEntry(id="slack", question="Slack integration", alternatives=(), answer="a")
    near_miss = [FaqHit(entry, 0.8, "Slack integration", coverage=0.25)]
    assert decide(near_miss, settings).outcome is Outcome.SUGGEST
    covered = [FaqHit(entry, 0.8, "Slack integration", coverage=0.4)]
    assert decide(covered, settings).outcome is Outcome.ANSWER
