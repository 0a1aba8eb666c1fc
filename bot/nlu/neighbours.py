"""Rasa intent classifier for few examples per intent and much out-of-scope traffic (see bot/nlu/few_shot.py).

It reads the dense sentence features of the featurizer before it (MiniLMFeaturizer), scores
every intent by nearest-example similarity mixed with a logistic regression, and falls back
(`nlu_fallback`, as Rasa's FallbackClassifier does) below a threshold it learns from the
training data at training time (from the team's own out-of-scope examples when it has them),
so no one has to tune it on a test set. A fixed
`fallback_threshold` in config.yml overrides it; the learned one is logged at training.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Text, Type

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import raise_warning

from bot.nlu.few_shot import (
    DEFAULT_C,
    DEFAULT_MIX,
    FALLBACK_WHEN_UNCALIBRATED,
    IntentScorer,
    choose_threshold,
    data_problems,
)

logger = logging.getLogger(__name__)

MIX = "mix"
C = "C"
FALLBACK_THRESHOLD = "fallback_threshold"
OUT_OF_SCOPE_INTENT = "out_of_scope_intent"
EXPECTED_OUT_OF_SCOPE = "expected_out_of_scope"
AUTO = "auto"
ARRAYS_FILE = "scorer.npz"
META_FILE = "meta.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class NeighbourIntentClassifier(GraphComponent, IntentClassifier):
    """Nearest-example similarity + logistic regression over sentence embeddings, with a learned fallback."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [DenseFeaturizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            MIX: DEFAULT_MIX,  # weight of the regression's probability beside the nearest-example similarity
            C: DEFAULT_C,  # inverse regularisation of the logistic regression
            FALLBACK_THRESHOLD: AUTO,  # "auto": chosen from the training data; or a number in [0, 1]
            # An intent whose examples are messages the assistant should not handle: when it has at
            # least 10, they are the out-of-scope evidence the threshold is chosen with.
            OUT_OF_SCOPE_INTENT: "out_of_scope",
            # The share of messages expected to be out of scope (0-1, exclusive), which the learned
            # threshold balances against; null weighs the evidence as it comes (about a half).
            EXPECTED_OUT_OF_SCOPE: None,
            "random_seed": 0,
        }

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        mix = config.get(MIX, DEFAULT_MIX)
        if not isinstance(mix, (int, float)) or not 0.0 <= mix <= 1.0:
            raise InvalidConfigException(f"{cls.__name__}: '{MIX}' must be a number from 0 to 1, got {mix!r}.")
        threshold = config.get(FALLBACK_THRESHOLD, AUTO)
        if threshold != AUTO and (not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0):
            raise InvalidConfigException(
                f"{cls.__name__}: '{FALLBACK_THRESHOLD}' must be \"{AUTO}\" or a number from 0 to 1, got {threshold!r}."
            )
        share = config.get(EXPECTED_OUT_OF_SCOPE)
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < share < 1.0):
            raise InvalidConfigException(
                f"{cls.__name__}: '{EXPECTED_OUT_OF_SCOPE}' must be null or the share of out-of-scope messages you expect, "
                f"a number between 0 and 1 (for example 0.1), got {share!r}."
            )

    @classmethod
    def create(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
    ) -> "NeighbourIntentClassifier":
        cls.validate_config(config)
        return cls(config, model_storage, resource)

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        scorer: Optional[IntentScorer] = None,
        threshold: float = FALLBACK_WHEN_UNCALIBRATED,
    ) -> None:
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self.scorer = scorer
        self.threshold = threshold

    @staticmethod
    def required_packages() -> List[Text]:
        return ["sklearn"]

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(INTENT)]
        vectors, intents, texts = [], [], []
        for message in examples:
            features = _sentence_features(message)
            if features is None:
                continue
            vectors.append(features)
            intents.append(message.get(INTENT))
            texts.append(message.get(TEXT) or "")
        if not vectors:
            raise_warning(f"{type(self).__name__}: no intent examples with sentence features; every message will fall back.")
            self.persist()
            return self._resource
        for problem in data_problems(texts, intents):
            raise_warning(f"NLU training data: {problem}")
        matrix = np.vstack(vectors)
        seed = int(self.component_config.get("random_seed", 0))
        mix, c = float(self.component_config[MIX]), float(self.component_config[C])
        self.scorer = IntentScorer.fit(matrix, intents, mix, c, seed)
        configured = self.component_config.get(FALLBACK_THRESHOLD, AUTO)
        if configured == AUTO:
            learned = choose_threshold(
                matrix, intents, mix, c, seed=seed, out_of_scope_intent=self.component_config.get(OUT_OF_SCOPE_INTENT),
                expected_out_of_scope=self.component_config.get(EXPECTED_OUT_OF_SCOPE),
            )
            if learned is None:
                raise_warning(
                    f"{type(self).__name__}: fewer than 3 intents and no out-of-scope examples, so no fallback "
                    "threshold can be learned; "
                    f"using {FALLBACK_WHEN_UNCALIBRATED}. Add intents or set '{FALLBACK_THRESHOLD}' in config.yml."
                )
                learned = FALLBACK_WHEN_UNCALIBRATED
            self.threshold = learned
            logger.info(f"{type(self).__name__}: fallback threshold {learned:.2f}, learned from the training data")
        else:
            self.threshold = float(configured)
        self.persist()
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            features = _sentence_features(message)
            ranking: List[Dict[str, Any]] = []
            if self.scorer is not None and features is not None:  # an empty message has no features
                ranking = [
                    {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: round(score, 6)}
                    for name, score in self.scorer.ranking(features, LABEL_RANKING_LENGTH)
                ]
            intent = ranking[0] if ranking else None
            if intent is None or intent[PREDICTED_CONFIDENCE_KEY] < self.threshold:
                # As FallbackClassifier does: the fallback intent first, the real ranking kept behind it.
                intent = {INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME, PREDICTED_CONFIDENCE_KEY: self.threshold}
                ranking = [intent, *ranking]
            message.set(INTENT, intent, add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            meta: Dict[str, Any] = {"threshold": self.threshold, "intents": self.scorer.intents if self.scorer else []}
            (directory / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
            if self.scorer is not None:
                np.savez(directory / ARRAYS_FILE, **self.scorer.to_arrays())

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "NeighbourIntentClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
                scorer = None
                if (directory / ARRAYS_FILE).exists():
                    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
                        scorer = IntentScorer.from_arrays({k: arrays[k] for k in arrays.files}, list(meta["intents"]))
                return cls(config, model_storage, resource, scorer, float(meta["threshold"]))
        except (ValueError, OSError, KeyError) as error:
            logger.warning(f"{cls.__name__}: no trained model found ({error}); every message will fall back.")
            return cls(config, model_storage, resource)


def _sentence_features(message: Message) -> Optional[np.ndarray]:
    _, sentence = message.get_dense_features(TEXT)
    if sentence is None:
        return None
    return np.asarray(sentence.features[0], dtype=np.float32)
