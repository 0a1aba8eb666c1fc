"""NLU quality floors that CI checks quickly, so a regression shows (the full comparison is bench/nlu_fewshot.py).

- A seed-fixed Banking77 slice in the few-shot regime with out-of-scope messages
  (tests/data/banking77): Engage's scorer at its learned threshold beats plain nearest neighbour.
- The trained assistant (models/engage.tar.gz) on nlu_data/test perturbed the way customers type
  (bench/nlu_perturb.py), and on the hand-labelled demand signals (nlu_data/eval).
Floors sit a few points under what was measured when they were set (see BENCHMARKS.md, NLU).
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np
import pytest
import yaml

from bench.nlu_perturb import PERTURBATIONS, no_capitals, no_punctuation, one_word, typos
from bot.nlu.few_shot import IntentScorer, choose_threshold, decide
from bot.nlu.minilm import load_encoder
from tests.bot.nlu.test_minilm import EXPORT

ROOT = Path(__file__).resolve().parents[3]
SUBSET = ROOT / "tests" / "data" / "banking77"
MODEL = ROOT / "models" / "engage.tar.gz"


def rows(name: str) -> List[Tuple[str, str]]:
    with open(SUBSET / name, newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def mcc_at_learned_threshold(mix: float) -> float:
    from sklearn.metrics import matthews_corrcoef

    encoder = load_encoder(EXPORT)
    train, test = rows("train_subset.csv"), rows("test_subset.csv")
    vectors, intents = encoder.embed([t for t, _ in train]), [i for _, i in train]
    scorer = IntentScorer.fit(vectors, intents, mix=mix)
    threshold = choose_threshold(vectors, intents, mix=mix)
    known = set(intents)
    truth = [i if i in known else "out" for _, i in test]
    return matthews_corrcoef(truth, decide(scorer.scores(encoder.embed([t for t, _ in test])), scorer.intents, threshold, "out"))


def test_few_shot_with_out_of_scope_beats_plain_nearest_neighbour() -> None:
    engage, nearest = mcc_at_learned_threshold(0.3), mcc_at_learned_threshold(0.0)
    assert engage >= 0.75, f"MCC {engage:.3f} on the Banking77 slice (measured 0.81 when set)"
    assert engage >= nearest + 0.05, f"Engage {engage:.3f} vs plain nearest neighbour {nearest:.3f}"


def test_perturbations_are_deterministic_and_change_the_text() -> None:
    text = "Could you add Dark Mode to the Docs editor, please?"
    for perturb in PERTURBATIONS.values():
        assert perturb(text) == perturb(text)
    assert no_capitals(text) == text.lower()
    assert no_punctuation(text) == "Could you add Dark Mode to the Docs editor please"
    assert one_word(text) == "editor"
    assert typos(text) != text


@pytest.fixture(scope="module")
def agent() -> Any:
    from rasa.core.agent import Agent

    if not MODEL.exists():
        pytest.fail("no trained model: run `make setup`")
    return Agent.load(str(MODEL))


def accuracy(agent: Any, examples: List[Tuple[str, str]]) -> float:
    async def parse_all() -> List[str]:
        return [((await agent.parse_message(text)).get("intent") or {}).get("name") for text, _ in examples]

    predicted = asyncio.run(parse_all())
    right = [p == want or (want == "out_of_scope" and p == "nlu_fallback") for p, (_, want) in zip(predicted, examples)]
    return float(np.mean(right))


def test_the_assistant_holds_up_when_customers_type_carelessly(agent: Any) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    test = [(m.get("text"), m.get("intent")) for m in load_data(str(ROOT / "nlu_data" / "test")).intent_examples]
    clean = accuracy(agent, test)
    assert clean >= 0.92, f"accuracy {clean:.3f} on nlu_data/test (0.945 when set)"
    # Measured when set: no capitals 0.945, no punctuation 0.929, typos 0.753 (MiniLM's word pieces
    # break on misspellings: the open weakness BENCHMARKS.md reports).
    for name, floor in (("no capitals", 0.92), ("no punctuation", 0.90), ("typos", 0.70)):
        perturbed = accuracy(agent, [(PERTURBATIONS[name](t), i) for t, i in test])
        assert perturbed >= floor, f"{name}: {perturbed:.3f} (clean {clean:.3f})"


def test_ideas_feedback_and_problems_start_the_right_flow(agent: Any) -> None:
    data = yaml.safe_load((ROOT / "nlu_data" / "eval" / "demand_signals.yml").read_text())
    examples = [(text, data["intents"][kind]) for kind, texts in data["messages"].items() for text in texts]
    assert len(examples) >= 150
    assert accuracy(agent, examples) >= 0.72  # 0.76 when set (0.713 before issue 14)
    assert accuracy(agent, [("I think you should add dark mode", "suggest_idea")]) == 1.0


def test_demand_signals_are_never_trained_on() -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    trained = {m.get("text").lower().strip() for m in load_data(str(ROOT / "nlu_data" / "nlu")).intent_examples}
    data = yaml.safe_load((ROOT / "nlu_data" / "eval" / "demand_signals.yml").read_text())
    overlap = [t for texts in data["messages"].values() for t in texts if t.lower().strip() in trained]
    assert not overlap, f"in the training data too: {overlap}"
