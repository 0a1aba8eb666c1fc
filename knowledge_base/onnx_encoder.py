"""all-MiniLM-L6-v2 through onnxruntime from the export made at set-up (.models/minilm-onnx, by
scripts/export_minilm_onnx.py): the same vectors as sentence-transformers (the export is checked
to 1e-4; measured 2e-7) at a fraction of the time per single text, and without loading PyTorch.

The idea themes encode one idea at a time on the service's online path, where PyTorch took
12-25 ms p95 on two busy cores (BENCHMARKS.md "Idea mining"); the staff console's canned answers
search the FAQ index with it (`OnnxStandIn`), without PyTorch's 500 MB. `encode` is blocking:
call it from an executor.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from knowledge_base.encoder import MODEL_NAME, EncoderIdentity, MiniLMEncoder

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXPORT = ROOT / ".models" / "minilm-onnx"
REQUIRED = ("model.onnx", "tokenizer.json", "manifest.json")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class OnnxExportMissing(RuntimeError):
    """The ONNX export is not there (run `make setup`)."""


def export_present(path: Path = DEFAULT_EXPORT) -> bool:
    return all((path / name).is_file() for name in REQUIRED)


class OnnxMiniLMEncoder:
    """Unit-length float32 vectors, one row per text, from the ONNX export with one thread."""

    def __init__(self, export_dir: Optional[Path] = None, threads: int = 1) -> None:
        self._dir = (export_dir or DEFAULT_EXPORT).expanduser().resolve()
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple = ()
        self._lock = threading.Lock()
        self._identity: Optional[EncoderIdentity] = None

    def identity(self) -> EncoderIdentity:
        """The export's own hash (not the PyTorch weights' hash): its vectors are cached apart."""
        if self._identity is None:
            manifest = self._manifest()
            self._identity = EncoderIdentity(f"{MODEL_NAME} (onnx)", f"onnx-{manifest['hash']}", int(manifest["dimension"]))
        return self._identity

    def _manifest(self) -> dict:
        missing = [name for name in REQUIRED if not (self._dir / name).is_file()]
        if missing:
            raise OnnxExportMissing(f"{self._dir} lacks {', '.join(missing)}: run `make setup` (scripts/export_minilm_onnx.py)")
        return json.loads((self._dir / "manifest.json").read_text(encoding="utf-8"))

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            self._manifest()
            import onnxruntime
            from tokenizers import Tokenizer

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(str(self._dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
            self._tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
            self._inputs = tuple(i.name for i in self._session.get_inputs())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self._load()
        encodings = self._tokenizer.encode_batch([_LONE_SURROGATE.sub("\ufffd", text) for text in texts])
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (tokens,) = self._session.run(None, {name: feeds[name] for name in self._inputs})
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (tokens * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)


def exported_from(model_dir: Path, export_dir: Path = DEFAULT_EXPORT) -> bool:
    """Whether the export was made from exactly the model files in `model_dir`: its manifest's hash
    is the export script's hash of those files and recipe (scripts/export_minilm_onnx.py)."""
    from scripts.export_minilm_onnx import model_hash

    try:
        manifest = json.loads((Path(export_dir) / "manifest.json").read_text(encoding="utf-8"))
        return bool(manifest.get("hash")) and manifest["hash"] == model_hash(Path(model_dir))
    except (OSError, ValueError, RuntimeError):
        return False


class OnnxStandIn:
    """The ONNX export answering for the PyTorch encoder it was exported from: its vectors under
    the PyTorch model's identity, so an index the action server built with PyTorch loads and is
    searched with these (the same vectors to 1e-6: tests/knowledge_base/test_onnx_stand_in.py).
    Make it with `stand_in_or_none`, which checks the export came from the installed weights."""

    def __init__(self, model: MiniLMEncoder, export_dir: Optional[Path] = None) -> None:
        self._model = model  # its identity only (read from the files): PyTorch is never loaded
        self._onnx = OnnxMiniLMEncoder(export_dir)

    def identity(self) -> EncoderIdentity:
        return self._model.identity()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._onnx.encode(texts)


def stand_in_or_none(model: Optional[MiniLMEncoder] = None, export_dir: Path = DEFAULT_EXPORT) -> Optional[OnnxStandIn]:
    """An OnnxStandIn for `model` (the installed MiniLM) when the export is there and was made from
    its files; None otherwise (no export, or one from other weights: its vectors could differ)."""
    model = model or MiniLMEncoder()
    if not export_present(export_dir) or not exported_from(model.model_path, export_dir):
        return None
    return OnnxStandIn(model, export_dir)
