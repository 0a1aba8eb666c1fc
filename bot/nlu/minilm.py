"""Rasa dense featurizer: all-MiniLM-L6-v2 sentence embeddings from the ONNX export, run with onnxruntime.

The export is made at set-up by scripts/export_minilm_onnx.py (action runtime) and
linked as `.models/minilm-onnx`; this component only reads it. Pooling and
normalisation match sentence-transformers (mean over real tokens, then L2).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple, Type

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import InvalidConfigException, RasaException
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from knowledge_base.onnx_encoder import OnnxMiniLMEncoder

logger = logging.getLogger(__name__)

MODEL_DIR = "model_dir"
BATCH_SIZE = "batch_size"
NUM_THREADS = "num_threads"
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "manifest.json")
SETUP_HINT = (
    "Run `make setup` (or `.venvs/actions/bin/python scripts/export_minilm_onnx.py`) "
    "from the repository root to export it."
)


class MiniLMModelNotFound(RasaException):
    """The ONNX export of MiniLM is missing or incomplete."""

    def __init__(self, model_dir: Path, missing: Sequence[str]) -> None:
        self.model_dir = model_dir
        self.missing = tuple(missing)
        super().__init__(
            f"MiniLM ONNX model not found: '{model_dir}' lacks {', '.join(self.missing)}. "
            f"{SETUP_HINT}"
        )


@dataclass(frozen=True)
class _Encoder:
    """One ONNX session and tokenizer per export and thread setting, shared by every featurizer
    using it. Encoding itself is knowledge_base's (the FAQ index and idea mining use the same
    export), so both runtimes pool and normalise one way."""

    onnx: OnnxMiniLMEncoder
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings, shape (len(texts), dimension), float32."""
        return self.onnx.encode(texts)


_ENCODERS: Dict[Tuple[str, int], _Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def _check_model_dir(model_dir: Path) -> Dict[str, Any]:
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise MiniLMModelNotFound(model_dir, missing)
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    except ValueError as error:
        raise MiniLMModelNotFound(model_dir, [f"a readable manifest.json ({error})"]) from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("dimension"), int):
        raise MiniLMModelNotFound(model_dir, ["a manifest.json with 'dimension'"])
    return manifest


def load_encoder(model_dir: Path, num_threads: int = 0) -> _Encoder:
    """Check the export (once per export and thread setting); the session loads on first use."""
    resolved = model_dir.expanduser().resolve()
    key = (str(resolved), num_threads)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            manifest = _check_model_dir(resolved)
            encoder = _Encoder(OnnxMiniLMEncoder(resolved, threads=num_threads), int(manifest["dimension"]))
            _ENCODERS[key] = encoder
            logger.debug(f"MiniLM ONNX encoder for '{resolved}' ready.")
        return encoder


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False
)
class MiniLMFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds all-MiniLM-L6-v2 sentence embeddings (384 dims) as dense sentence features.

    Only sentence-level features: DIET combines them with the sparse sequence
    features of the count vectorizers, and intent classifiers use the sentence
    level alone, so token-aligned sequence features would only cost time.
    """

    @classmethod
    def required_components(cls) -> List[Type]:
        return []

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # Relative paths are resolved against the working directory: Rasa runs
            # from the repository root.
            MODEL_DIR: ".models/minilm-onnx",
            BATCH_SIZE: 64,
            # 0 lets onnxruntime choose (all physical cores).
            NUM_THREADS: 0,
        }

    @staticmethod
    def required_packages() -> List[Text]:
        return ["onnxruntime", "tokenizers"]

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["en"]

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if not isinstance(config.get(MODEL_DIR), str) or not config[MODEL_DIR].strip():
            raise InvalidConfigException(f"MiniLMFeaturizer: '{MODEL_DIR}' must be a path.")
        batch_size = config.get(BATCH_SIZE)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidConfigException(
                f"MiniLMFeaturizer: '{BATCH_SIZE}' must be a positive integer, got {batch_size!r}."
            )
        threads = config.get(NUM_THREADS)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise InvalidConfigException(
                f"MiniLMFeaturizer: '{NUM_THREADS}' must be an integer >= 0, got {threads!r}."
            )

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """Tie Rasa's training cache to the export itself, not just the path in the config.

        Without it a re-export behind the same `.models/minilm-onnx` link would
        reuse features computed with the old model.
        """
        model_dir = Path(config.get(MODEL_DIR) or cls.get_default_config()[MODEL_DIR])
        try:
            manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return json.dumps(
            {"hash": manifest.get("hash"), "files": manifest.get("files")}, sort_keys=True
        )

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MiniLMFeaturizer:
        return cls(config, execution_context.node_name)

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        config = {**self.get_default_config(), **config}
        super().__init__(name, config)
        # Loaded eagerly so a missing export fails when training or loading
        # starts, not on the first customer message.
        self._encoder = load_encoder(Path(config[MODEL_DIR]), config[NUM_THREADS])

    @property
    def dimension(self) -> int:
        return self._encoder.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in batches of `batch_size`, shortest first to keep padding low."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch_size = self._config[BATCH_SIZE]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._encoder.embed([texts[i] for i in chunk])
        return out

    def _featurize(self, messages: Sequence[Message], attribute: Text) -> None:
        with_text = [m for m in messages if isinstance(m.get(attribute), str) and m.get(attribute)]
        if not with_text:
            return
        vectors = self.embed([m.get(attribute) for m in with_text])
        for message, vector in zip(with_text, vectors):
            self.add_features_to_message(
                sequence=None,
                sentence=vector.reshape(1, -1),
                attribute=attribute,
                message=message,
            )

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
            self._featurize(training_data.training_examples, attribute)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for attribute in (TEXT, ACTION_TEXT):
            self._featurize(messages, attribute)
        return messages
