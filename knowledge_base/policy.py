"""The answer policy: answer, suggest ("did you mean") or admit not knowing, from search scores."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from knowledge_base.loader import FaqEntry
from knowledge_base.settings import FaqSettings


@dataclass(frozen=True)
class FaqHit:
    """An entry found for a query: its best score and the phrasing that gave it."""

    entry: FaqEntry
    score: float
    matched: str
    coverage: float = 1.0  # share of the query's content words found in the entry's text


class Outcome(str, enum.Enum):
    ANSWER = "answer"
    SUGGEST = "suggest"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    hits: Tuple[FaqHit, ...]  # ANSWER: the one answered; SUGGEST: the suggestions; UNKNOWN: ()
    best: Optional[FaqHit]  # the best hit whatever the outcome (logged with unanswered questions)

    @property
    def score(self) -> Optional[float]:
        return self.best.score if self.best else None


def decide(hits: Sequence[FaqHit], settings: FaqSettings) -> Decision:
    """`hits` must be sorted best first (as the search returns them)."""
    if not hits:
        return Decision(Outcome.UNKNOWN, (), None)
    best = hits[0]
    runner_up = hits[1].score if len(hits) > 1 else None
    # The epsilon keeps "exactly the margin" a clear winner despite float rounding (0.7 - 0.65 < 0.05).
    clear_winner = runner_up is None or best.score - runner_up >= settings.answer_margin - 1e-9
    # A near-miss ("does the Slack integration support Enterprise Grid?") scores high against the
    # entry it resembles; the words the entry lacks are what tell it apart.
    covered = best.coverage >= settings.min_coverage - 1e-9
    if best.score >= settings.answer_threshold and clear_winner and covered:
        return Decision(Outcome.ANSWER, (best,), best)
    if best.score >= settings.suggest_threshold:
        suggestions = tuple(h for h in hits if h.score >= settings.suggest_threshold)
        return Decision(Outcome.SUGGEST, suggestions[: settings.max_suggestions], best)
    return Decision(Outcome.UNKNOWN, (), best)
