"""NeighbourIntentClassifier in a real Rasa NLU pipeline on the real MiniLM export: train, save, load, parse."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException

from bot.nlu.neighbours import NeighbourIntentClassifier
from tests.bot.nlu.test_minilm import EXPORT

INTENTS = {
    "ask_pricing": ["how much does it cost", "what are your prices", "pricing for the team plan", "is there a discount",
                    "what do you charge per seat", "how expensive is the business plan"],
    "greet": ["hello", "hi there", "good morning", "hey", "good evening", "hiya"],
    "report_problem": ["the app crashes", "I get an error when saving", "login is broken", "it does not load",
                       "the export fails", "the page is blank after the update"],
    "request_human": ["talk to a person", "can I speak to someone", "get me an agent", "I want a human",
                      "connect me with support staff", "is there a real person I can chat with"],
}


def train(tmp_path: Path, intents: Dict[str, List[str]], **classifier: Any) -> Any:
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    pipeline = [
        {"name": "WhitespaceTokenizer"},
        {"name": "bot.nlu.minilm.MiniLMFeaturizer", "model_dir": str(EXPORT)},
        {"name": "bot.nlu.neighbours.NeighbourIntentClassifier", **classifier},
    ]
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"recipe": "default.v1", "language": "en", "pipeline": pipeline}))
    nlu = tmp_path / "nlu.yml"
    nlu.write_text(yaml.safe_dump({"version": "3.1", "nlu": [
        {"intent": name, "examples": "".join(f"- {text}\n" for text in texts)} for name, texts in intents.items()
    ]}))
    model = train_nlu(str(config), str(nlu), str(tmp_path / "models"))
    assert model
    return Agent.load(model)  # loads what training persisted: the round trip


def parse(agent: Any, text: str) -> Dict[str, Any]:
    return asyncio.run(agent.parse_message(text))


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(tmp_path / "cache"))


def test_in_scope_is_classified_out_of_scope_and_empty_fall_back(tmp_path: Path) -> None:
    agent = train(tmp_path, INTENTS)
    assert parse(agent, "what's the price per user?")["intent"]["name"] == "ask_pricing"
    assert parse(agent, "the page keeps crashing")["intent"]["name"] == "report_problem"
    assert parse(agent, "could a human help me please")["intent"]["name"] == "request_human"
    weather = parse(agent, "What's the weather in Lisbon tomorrow?")
    assert weather["intent"]["name"] == "nlu_fallback"
    # The real ranking stays behind the fallback, as with Rasa's FallbackClassifier.
    assert weather["intent_ranking"][0]["name"] == "nlu_fallback" and len(weather["intent_ranking"]) == 1 + len(INTENTS)
    for text in ("", "   ", "Wie spät ist es in Berlin?", "🙂🙂🙂"):
        assert parse(agent, text)["intent"]["name"] == "nlu_fallback", text


def test_one_intent_with_one_example_trains_warns_and_parses(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="no fallback threshold can be learned"):
        agent = train(tmp_path, {"greet": ["hello"]})
    assert parse(agent, "hello")["intent"]["name"] == "greet"


def test_a_fixed_threshold_overrides_the_learned_one(tmp_path: Path) -> None:
    agent = train(tmp_path, INTENTS, fallback_threshold=0.99)
    assert parse(agent, "what's the price per user?")["intent"]["name"] == "nlu_fallback"


@pytest.mark.parametrize(
    "config",
    [{"mix": 2}, {"fallback_threshold": "high"}, {"fallback_threshold": -0.1}, {"expected_out_of_scope": 1.0}, {"expected_out_of_scope": "half"}],
)
def test_bad_config_is_rejected_with_the_setting_named(config: Dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigException, match=next(iter(config))):
        NeighbourIntentClassifier.create(
            {**NeighbourIntentClassifier.get_default_config(), **config},
            LocalModelStorage(tmp_path / "storage"),
            Resource("neighbours"),
            ExecutionContext(GraphSchema({}), node_name="neighbours"),
        )


def test_loading_without_a_trained_model_falls_back_instead_of_crashing(tmp_path: Path) -> None:
    from rasa.shared.nlu.training_data.message import Message

    classifier = NeighbourIntentClassifier.load(
        NeighbourIntentClassifier.get_default_config(), LocalModelStorage(tmp_path / "storage"), Resource("missing"),
        ExecutionContext(GraphSchema({}), node_name="neighbours"),
    )
    (message,) = classifier.process([Message(data={"text": "hello"})])
    assert message.get("intent")["name"] == "nlu_fallback"


def test_skewed_and_clashing_training_data_trains_with_warnings_that_say_what_to_fix(tmp_path: Path) -> None:
    data = {name: list(texts) for name, texts in INTENTS.items()}
    data["ask_pricing"] += [f"what is the price of plan number {i}" for i in range(2000)]  # 2,000 beside 6
    data["greet"].append("talk to a person")  # also an example of request_human
    with pytest.warns(UserWarning) as caught:
        agent = train(tmp_path, data)
    said = " ".join(str(w.message) for w in caught)
    assert "'ask_pricing' has 2006 examples" in said and "trim the large intent or add examples" in said
    assert "'talk to a person' is in several intents (greet, request_human)" in said
    assert parse(agent, "the page keeps crashing")["intent"]["name"] == "report_problem"
