"""MiniLMFeaturizer on the real ONNX export (.models/minilm-onnx, made by `make setup`)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.minilm import MiniLMFeaturizer, MiniLMModelNotFound

ROOT = Path(__file__).resolve().parents[3]
EXPORT = ROOT / ".models" / "minilm-onnx"

SENTENCES = [
    "hi",
    "How much is the Business plan per user?",
    "the desktop app crashes when I open a form with 200 questions on Windows 11",
    "talk to a person",
    "Can Quillstack Insights show dashboards over Forms submissions?",
    "ok thanks",
    "I'd love a dark mode in Docs",
    "What's the weather in Lisbon tomorrow?",
    "reset password",
    "Is there an EU data residency option for Enterprise customers, and does it cover backups?",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    if not (EXPORT / "manifest.json").is_file():
        raise RuntimeError(f"{EXPORT} is missing: run `make setup` (it exports the encoder)")
    return EXPORT


def make(tmp_path: Path, **config: Any) -> MiniLMFeaturizer:
    full = {**MiniLMFeaturizer.get_default_config(), **config}
    return MiniLMFeaturizer.create(
        full,
        LocalModelStorage(tmp_path / "storage"),
        Resource("minilm"),
        ExecutionContext(GraphSchema({}), node_name="minilm_featurizer"),
    )


@pytest.fixture
def featurizer(model_dir: Path, tmp_path: Path) -> MiniLMFeaturizer:
    return make(tmp_path, model_dir=str(model_dir))


def sentence_vector(message: Message, attribute: str = TEXT) -> np.ndarray:
    sequence, sentence = message.get_dense_features(attribute)
    assert sequence is None  # sentence features only, by design
    assert sentence is not None
    return sentence.features


def test_adds_a_384_dim_normalised_sentence_feature(featurizer: MiniLMFeaturizer) -> None:
    messages = [Message(data={TEXT: s}) for s in SENTENCES]
    featurizer.process(messages)
    for message in messages:
        vector = sentence_vector(message)
        assert vector.shape == (1, 384)
        assert vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    # Different sentences do get different vectors.
    first, second = (sentence_vector(m)[0] for m in messages[:2])
    assert float(first @ second) < 0.9


def test_same_sentence_same_vector(featurizer: MiniLMFeaturizer, model_dir: Path, tmp_path: Path) -> None:
    one, two = Message(data={TEXT: SENTENCES[1]}), Message(data={TEXT: SENTENCES[1]})
    featurizer.process([one])
    make(tmp_path, model_dir=str(model_dir)).process([two])
    np.testing.assert_array_equal(sentence_vector(one), sentence_vector(two))


def test_batching_equals_one_at_a_time(model_dir: Path, tmp_path: Path) -> None:
    batched = make(tmp_path, model_dir=str(model_dir), batch_size=3)
    single = make(tmp_path, model_dir=str(model_dir), batch_size=1)
    training = TrainingData([Message(data={TEXT: s, "intent": "x"}) for s in SENTENCES])
    batched.process_training_data(training)
    for example in training.training_examples:
        alone = Message(data={TEXT: example.get(TEXT)})
        single.process([alone])
        # Padding inside a batch changes float summation order only.
        np.testing.assert_allclose(sentence_vector(example), sentence_vector(alone), atol=1e-5)


def test_matches_sentence_transformers_reference(featurizer: MiniLMFeaturizer, model_dir: Path) -> None:
    """reference.json holds sentence-transformers' output (action runtime) for probe sentences."""
    reference = json.loads((model_dir / "reference.json").read_text())
    got = featurizer.embed(reference["sentences"])
    assert np.abs(got - np.array(reference["embeddings"])).max() <= 1e-4


def test_training_data_gets_text_and_action_text_features(featurizer: MiniLMFeaturizer) -> None:
    training = TrainingData([
        Message(data={TEXT: "hello there", "intent": "greet"}),
        Message(data={ACTION_TEXT: "Hi! How can I help?"}),
        Message(data={"intent": "greet"}),  # intent-only example from stories: nothing to embed
    ])
    featurizer.process_training_data(training)
    text, action_text, intent_only = training.training_examples
    assert sentence_vector(text).shape == (1, 384)
    assert sentence_vector(action_text, ACTION_TEXT).shape == (1, 384)
    assert intent_only.features == []


def test_empty_text_gets_no_features(featurizer: MiniLMFeaturizer) -> None:
    message = Message(data={TEXT: ""})
    featurizer.process([message])
    assert message.features == []


def test_a_lone_surrogate_is_read_as_a_replacement_character(featurizer: MiniLMFeaturizer) -> None:
    odd, plain = Message(data={TEXT: "hi \ud800 there"}), Message(data={TEXT: "hi \ufffd there"})
    featurizer.process([odd, plain])
    assert np.allclose(odd.features[0].features, plain.features[0].features)


def test_long_text_is_truncated_not_rejected(featurizer: MiniLMFeaturizer) -> None:
    message = Message(data={TEXT: "export fails " * 2000})
    featurizer.process([message])
    assert np.linalg.norm(sentence_vector(message)) == pytest.approx(1.0, abs=1e-5)


def test_missing_model_dir_says_to_run_make_setup(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(MiniLMModelNotFound, match="make setup") as error:
        make(tmp_path, model_dir=str(missing))
    assert "model.onnx" in str(error.value) and str(missing) in str(error.value)


def test_incomplete_model_dir_lists_what_is_missing(model_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(model_dir / "manifest.json", partial / "manifest.json")
    with pytest.raises(MiniLMModelNotFound, match="model.onnx, tokenizer.json"):
        make(tmp_path, model_dir=str(partial))


@pytest.mark.parametrize("config", [{"batch_size": 0}, {"batch_size": "8"}, {"num_threads": -1},
                                    {"model_dir": ""}])
def test_bad_config_is_rejected(config: Dict[str, Any], model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigException):
        make(tmp_path, **{"model_dir": str(model_dir), **config})


def test_fingerprint_follows_the_export_not_the_path(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "export"
    copy.mkdir()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = MiniLMFeaturizer.fingerprint_addon({"model_dir": str(copy)})
    assert before is not None and manifest["hash"] in before
    manifest["hash"] = "0" * 12
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert MiniLMFeaturizer.fingerprint_addon({"model_dir": str(copy)}) != before


def project_pipeline(model_dir: Path) -> List[Dict[str, Any]]:
    """config.yml's NLU pipeline, with the export's absolute path (tests may run from anywhere)."""
    import yaml

    pipeline = yaml.safe_load((ROOT / "config.yml").read_text())["pipeline"]
    for component in pipeline:
        if component["name"] == "bot.nlu.minilm.MiniLMFeaturizer":
            component["model_dir"] = str(model_dir)
    return pipeline


def diet_pipeline(model_dir: Path) -> List[Dict[str, Any]]:
    """DIET takes MiniLM's dense sentence features next to sparse sequence features."""
    return [
        {"name": "WhitespaceTokenizer"},
        {"name": "bot.nlu.minilm.MiniLMFeaturizer", "model_dir": str(model_dir)},
        {"name": "CountVectorsFeaturizer"},
        {"name": "DIETClassifier", "epochs": 30, "random_seed": 1},
    ]


def test_config_yml_uses_this_featurizer() -> None:
    import yaml

    names = [c["name"] for c in yaml.safe_load((ROOT / "config.yml").read_text())["pipeline"]]
    assert "bot.nlu.minilm.MiniLMFeaturizer" in names
    assert "bot.nlu.neighbours.NeighbourIntentClassifier" in names  # it falls back by itself


@pytest.mark.slow
@pytest.mark.parametrize("make_pipeline", [project_pipeline, diet_pipeline], ids=["config.yml", "diet"])
def test_trains_and_parses_in_a_rasa_pipeline(
    model_dir: Path, tmp_path: Path, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    # Rasa would otherwise write its training cache into the checkout.
    monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(tmp_path / "cache"))
    pipeline = make_pipeline(model_dir)
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"recipe": "default.v1", "language": "en", "pipeline": pipeline}))
    nlu = tmp_path / "nlu.yml"
    nlu.write_text(yaml.safe_dump({"version": "3.1", "nlu": [
        {"intent": "ask_pricing", "examples": "- how much does it cost\n- what are your prices\n"
                                              "- pricing for the team plan\n- is there a discount\n"
                                              "- what do you charge per seat\n"},
        {"intent": "greet", "examples": "- hello\n- hi there\n- good morning\n- hey\n- good evening\n"},
        {"intent": "report_problem", "examples": "- the app crashes\n- I get an error when saving\n"
                                                 "- login is broken\n- it does not load\n"
                                                 "- the export fails\n"},
    ]}))
    model = train_nlu(str(config), str(nlu), str(tmp_path / "models"))
    assert model
    agent = Agent.load(model)
    parsed = asyncio.run(agent.parse_message("what's the price per user?"))
    assert parsed["intent"]["name"] == "ask_pricing"
    parsed = asyncio.run(agent.parse_message("the page keeps crashing"))
    assert parsed["intent"]["name"] == "report_problem"
