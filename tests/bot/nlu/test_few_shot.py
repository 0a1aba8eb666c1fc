"""The few-shot intent scores and the fallback threshold learned from training data (tiny hand-made vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.nlu.few_shot import IntentScorer, choose_threshold, data_problems, decide, unit_rows

RNG = np.random.default_rng(7)


def cluster(centre: np.ndarray, n: int, spread: float = 0.05) -> np.ndarray:
    return unit_rows(centre + spread * RNG.standard_normal((n, centre.size)))


def toy(intents: int = 6, per_intent: int = 8, dims: int = 32):
    centres = unit_rows(RNG.standard_normal((intents, dims)))
    vectors = np.vstack([cluster(c, per_intent) for c in centres])
    labels = [f"intent_{i}" for i in range(intents) for _ in range(per_intent)]
    return centres, vectors, labels


def test_a_message_near_an_intents_examples_gets_that_intent_with_high_score() -> None:
    centres, vectors, labels = toy()
    scorer = IntentScorer.fit(vectors, labels)
    scores = scorer.scores(cluster(centres[3], 4))
    assert [scorer.intents[i] for i in scores.argmax(1)] == ["intent_3"] * 4
    assert scores.max(1).min() > 0.8


def test_out_of_scope_scores_below_the_learned_threshold_and_in_scope_above() -> None:
    centres, vectors, labels = toy()
    threshold = choose_threshold(vectors, labels)
    assert threshold is not None and 0.2 < threshold < 0.95
    scorer = IntentScorer.fit(vectors, labels)
    unseen = unit_rows(RNG.standard_normal((20, centres.shape[1])))  # nowhere near any intent
    assert decide(scorer.scores(unseen), scorer.intents, threshold, "oos") == ["oos"] * 20
    assert decide(scorer.scores(cluster(centres[0], 5)), scorer.intents, threshold, "oos") == ["intent_0"] * 5


def test_round_trip_through_arrays_gives_the_same_scores() -> None:
    _, vectors, labels = toy()
    scorer = IntentScorer.fit(vectors, labels)
    again = IntentScorer.from_arrays(scorer.to_arrays(), scorer.intents)
    queries = unit_rows(RNG.standard_normal((5, vectors.shape[1])))
    np.testing.assert_allclose(again.scores(queries), scorer.scores(queries), rtol=1e-6)


def test_probabilities_match_scikit_learn_for_two_and_many_intents() -> None:
    from sklearn.linear_model import LogisticRegression

    for intents in (2, 5):
        _, vectors, labels = toy(intents=intents)
        scorer = IntentScorer.fit(vectors, labels)
        reference = LogisticRegression(C=10.0, max_iter=3000, random_state=0).fit(vectors, [scorer.intents.index(x) for x in labels])
        np.testing.assert_allclose(scorer.probabilities(vectors), reference.predict_proba(vectors), atol=1e-5)


def test_one_intent_and_one_example_still_score() -> None:
    scorer = IntentScorer.fit(np.ones((1, 4)), ["only"])
    assert scorer.ranking(np.ones(4)) == [("only", pytest.approx(1.0))]
    assert choose_threshold(np.ones((1, 4)), ["only"]) is None  # nothing to hold out: the caller decides


def test_no_examples_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one example"):
        IntentScorer.fit(np.zeros((0, 4)), [])


def test_data_problems_name_what_to_fix() -> None:
    texts = ["hi", "hello", "hello", "bye"] + [f"price {i}" for i in range(60)]
    intents = ["greet", "greet", "goodbye", "goodbye"] + ["pricing"] * 60
    texts.append("refund")
    intents.append("refund")
    problems = data_problems(texts, intents)
    assert any("fewer than 2 examples (refund)" in p for p in problems)
    assert any("'pricing' has 60 examples and 'refund' only 1" in p for p in problems)
    assert any("'hello' is in several intents (goodbye, greet)" in p for p in problems)
    assert data_problems(["a", "b"], ["x", "x"]) == []


def test_examples_marked_out_of_scope_calibrate_the_threshold() -> None:
    centres, vectors, labels = toy(intents=3)
    # Messages the team marked out of scope: halfway between two intents, where a guess would be wrong.
    marked = unit_rows((centres[0] + centres[1]) / 2 + 0.05 * RNG.standard_normal((12, centres.shape[1])))
    threshold = choose_threshold(np.vstack([vectors, marked]), labels + ["out_of_scope"] * 12, out_of_scope_intent="out_of_scope")
    scorer = IntentScorer.fit(vectors, labels)
    assert decide(scorer.scores(marked), scorer.intents, threshold, "oos") == ["oos"] * 12
    assert decide(scorer.scores(cluster(centres[2], 5)), scorer.intents, threshold, "oos") == ["intent_2"] * 5


def test_expecting_fewer_out_of_scope_messages_lowers_the_threshold() -> None:
    # Intents in pairs whose clusters overlap: a held-out intent looks much like its twin, so the
    # threshold trades in-scope answers against out-of-scope catches, and the expected share decides.
    rng = np.random.default_rng(3)
    centres = unit_rows(rng.standard_normal((4, 32)))
    twins = unit_rows(np.vstack([centres, centres + 0.6 * rng.standard_normal((4, 32))]))
    vectors = np.vstack([unit_rows(c + 0.35 * rng.standard_normal((10, 32))) for c in twins])
    labels = [f"intent_{i}" for i in range(8) for _ in range(10)]
    as_it_comes = choose_threshold(vectors, labels)
    rare = choose_threshold(vectors, labels, expected_out_of_scope=0.05)
    common = choose_threshold(vectors, labels, expected_out_of_scope=0.9)
    assert rare is not None and as_it_comes is not None and common is not None
    assert rare < as_it_comes <= common
    assert choose_threshold(vectors, labels, expected_out_of_scope=None) == as_it_comes
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_threshold(vectors, labels, expected_out_of_scope=1.0)
