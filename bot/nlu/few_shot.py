"""Intent scores that hold up with few examples and many out-of-scope messages (pure numpy; no Rasa).

A message's score for an intent mixes two views of the training examples (unit-length sentence
embeddings):

- the cosine similarity to the intent's nearest example: high only when the message is close to
  something the intent was taught, so out-of-scope messages score low whatever the intent;
- a multinomial logistic regression's probability: separates intents whose examples sit close.

    score = (1 - mix) * nearest_similarity + mix * probability

Measured on Banking77 with 27 intents held out as out-of-scope (bench/nlu_fewshot.py): the mix
beats nearest-neighbour alone and DIET at 5, 10 and 20 examples per intent and at full data.

The fallback threshold comes from the training data alone (`choose_threshold`), so it transfers
to a new bot: a fifth of the intents at a time plays "out of scope" for a model trained on the
rest, each training example plays "in scope" scored without itself, and the threshold with the
best Matthews correlation over both is kept.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

DEFAULT_MIX = 0.3
DEFAULT_C = 10.0
THRESHOLD_GRID = tuple(i / 100 for i in range(5, 100))
PSEUDO_OOS_FOLDS = 5
MIN_INTENTS_FOR_CV = 3
MIN_OUT_OF_SCOPE_EXAMPLES = 10
PLATEAU = 0.005  # MCC within this of the best counts as equally good
FALLBACK_WHEN_UNCALIBRATED = 0.5


@dataclass
class IntentScorer:
    """Training examples, their intents and the regression's weights: everything `scores` needs."""

    examples: np.ndarray  # (n, d) float32, unit rows
    labels: np.ndarray  # (n,) int indices into `intents`
    intents: List[str]
    coef: Optional[np.ndarray] = None  # (k, d), or None with a single intent
    intercept: Optional[np.ndarray] = None  # (k,)
    mix: float = DEFAULT_MIX

    @classmethod
    def fit(cls, vectors: np.ndarray, intents: Sequence[str], mix: float = DEFAULT_MIX, c: float = DEFAULT_C, seed: int = 0) -> "IntentScorer":
        if len(vectors) != len(intents) or len(vectors) == 0:
            raise ValueError(f"need one intent per example and at least one example (got {len(vectors)} vectors, {len(intents)} intents)")
        examples = unit_rows(np.asarray(vectors, dtype=np.float32))
        names = sorted(set(intents))
        index = {name: i for i, name in enumerate(names)}
        labels = np.array([index[name] for name in intents], dtype=np.int64)
        coef = intercept = None
        if len(names) > 1:
            from sklearn.linear_model import LogisticRegression  # training only: loading needs numpy alone

            model = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(examples, labels)
            coef, intercept = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
        return cls(examples, labels, names, coef, intercept, mix)

    def nearest(self, queries: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """(m, k): each query's cosine similarity to every intent's nearest example."""
        similarity = queries @ self.examples.T
        if exclude_self:
            np.fill_diagonal(similarity, -1.0)
        best = np.full((len(queries), len(self.intents)), -1.0, dtype=np.float32)
        for intent in range(len(self.intents)):
            members = self.labels == intent
            best[:, intent] = similarity[:, members].max(axis=1)
        return best

    def probabilities(self, queries: np.ndarray) -> np.ndarray:
        """(m, k): the logistic regression's probabilities (all 1 with a single intent)."""
        if self.coef is None or self.intercept is None:
            return np.ones((len(queries), len(self.intents)), dtype=np.float32)
        logits = queries @ self.coef.T + self.intercept
        if logits.shape[1] == 1:  # two intents: sklearn keeps one weight row
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1).astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)

    def scores(self, queries: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """(m, k) intent scores in [-1, 1]; `exclude_self` scores the training examples without themselves."""
        queries = unit_rows(np.asarray(queries, dtype=np.float32))
        return (1.0 - self.mix) * self.nearest(queries, exclude_self) + self.mix * self.probabilities(queries)

    def ranking(self, query: np.ndarray, limit: int = 10) -> List[Tuple[str, float]]:
        row = self.scores(query.reshape(1, -1))[0]
        order = np.argsort(-row)[:limit]
        return [(self.intents[i], float(row[i])) for i in order]

    def to_arrays(self) -> Dict[str, np.ndarray]:
        arrays = {"examples": self.examples, "labels": self.labels, "mix": np.array([self.mix], dtype=np.float32)}
        if self.coef is not None and self.intercept is not None:
            arrays.update(coef=self.coef, intercept=self.intercept)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], intents: List[str]) -> "IntentScorer":
        return cls(
            arrays["examples"], arrays["labels"], intents, arrays.get("coef"), arrays.get("intercept"), float(arrays["mix"][0])
        )


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def decide(scores: np.ndarray, intents: Sequence[str], threshold: float, out_of_scope: str) -> List[str]:
    best = scores.argmax(axis=1)
    confident = scores[np.arange(len(scores)), best] >= threshold
    return [intents[i] if ok else out_of_scope for i, ok in zip(best, confident)]


def choose_threshold(
    vectors: np.ndarray,
    intents: Sequence[str],
    mix: float = DEFAULT_MIX,
    c: float = DEFAULT_C,
    folds: int = PSEUDO_OOS_FOLDS,
    seed: int = 0,
    grid: Sequence[float] = THRESHOLD_GRID,
    out_of_scope_intent: Optional[str] = None,
    expected_out_of_scope: Optional[float] = None,
) -> Optional[float]:
    """The fallback threshold with the best MCC between in-scope and out-of-scope evidence from the
    training data; None when there is none.

    Out-of-scope evidence: the examples of `out_of_scope_intent` when the data has at least
    MIN_OUT_OF_SCOPE_EXAMPLES of them (real messages the team marked as out of scope), scored by a
    model without that intent; otherwise each fifth of the intents in turn, scored by a model
    trained on the rest. In-scope evidence: every other example, scored without itself. Of the
    thresholds within PLATEAU of the best MCC, the lowest.

    `expected_out_of_scope`: the share of out-of-scope messages the team expects in its traffic.
    None weighs the evidence as it comes: held-out intents are then as many as the in-scope
    examples (a half, as on young bots, where 40-70 % of messages are out of scope), and marked
    examples count as many as they are. A number weighs the two sides to that share, so a mature
    bot whose customers rarely stray sets a lower one and falls back less.
    """
    if expected_out_of_scope is not None and not 0.0 < expected_out_of_scope < 1.0:
        raise ValueError(f"expected_out_of_scope must be between 0 and 1 (exclusive), got {expected_out_of_scope!r}")
    from sklearn.metrics import matthews_corrcoef

    vectors = unit_rows(np.asarray(vectors, dtype=np.float32))
    labels = np.array(intents)
    explicit = out_of_scope_intent is not None and int((labels == out_of_scope_intent).sum()) >= MIN_OUT_OF_SCOPE_EXAMPLES
    if explicit:
        in_scope = labels != out_of_scope_intent
        vectors, labels, marked = vectors[in_scope], labels[in_scope], vectors[~in_scope]
    names = sorted(set(labels))
    if len(names) < (1 if explicit else MIN_INTENTS_FOR_CV):
        return None
    truth: List[str] = []
    predicted: List[str] = []
    confidence: List[float] = []
    out = "\x00out_of_scope"

    def held_out(scorer: IntentScorer, queries: np.ndarray) -> None:
        scores = scorer.scores(queries)
        best = scores.argmax(axis=1)
        truth.extend([out] * len(best))
        predicted.extend(scorer.intents[i] for i in best)
        confidence.extend(scores[np.arange(len(best)), best])

    scorer = IntentScorer.fit(vectors, list(labels), mix, c, seed)
    if explicit:
        held_out(scorer, marked)
    else:
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        folds = min(folds, len(names))
        for fold in range(folds):
            held = set(shuffled[fold::folds])
            kept = np.array([name not in held for name in labels])
            held_out(IntentScorer.fit(vectors[kept], list(labels[kept]), mix, c, seed), vectors[~kept])
    scores = scorer.scores(vectors, exclude_self=True)
    best = scores.argmax(axis=1)
    truth += list(labels)
    predicted += [scorer.intents[i] for i in best]
    confidence += list(scores[np.arange(len(best)), best])
    conf = np.array(confidence)
    pred = np.array(predicted, dtype=object)
    weights = None
    if expected_out_of_scope is not None:
        is_out = np.array([label == out for label in truth])
        weights = np.where(is_out, expected_out_of_scope / is_out.mean(), (1.0 - expected_out_of_scope) / (1.0 - is_out.mean()))
    results = [(matthews_corrcoef(truth, np.where(conf >= t, pred, out), sample_weight=weights), t) for t in grid]
    best = max(mcc for mcc, _ in results)
    # The lowest threshold on the plateau around the best: leave-one-out scores understate how sure
    # the model is of in-scope messages, and a needless fallback costs the customer a rephrase.
    return min(t for mcc, t in results if mcc >= best - PLATEAU)


def data_problems(texts: Sequence[str], intents: Sequence[str], few: int = 2, skew: float = 20.0) -> List[str]:
    """What a team should fix in its training data, one sentence each (empty when nothing)."""
    problems: List[str] = []
    counts: Dict[str, int] = {}
    for intent in intents:
        counts[intent] = counts.get(intent, 0) + 1
    sparse = sorted(name for name, n in counts.items() if n < few)
    if sparse:
        problems.append(
            f"{len(sparse)} intent(s) have fewer than {few} examples ({', '.join(sparse[:10])}): "
            "add at least 5 varied examples each, or out-of-scope detection for them is guesswork."
        )
    if counts and max(counts.values()) > skew * max(min(counts.values()), 1):
        top = max(counts, key=counts.__getitem__)
        low = min(counts, key=counts.__getitem__)
        problems.append(
            f"intent '{top}' has {counts[top]} examples and '{low}' only {counts[low]}: "
            f"trim the large intent or add examples to the small ones (more than {skew:g}x apart)."
        )
    owners: Dict[str, set] = {}
    for text, intent in zip(texts, intents):
        owners.setdefault(" ".join(text.lower().split()), set()).add(intent)
    clashes = sorted((text, sorted(names)) for text, names in owners.items() if len(names) > 1)
    for text, names in clashes[:10]:
        problems.append(f"the example {text!r} is in several intents ({', '.join(names)}): keep it in one.")
    if len(clashes) > 10:
        problems.append(f"... and {len(clashes) - 10} more examples in several intents.")
    return problems
