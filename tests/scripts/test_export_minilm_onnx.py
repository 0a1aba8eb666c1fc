"""scripts/export_minilm_onnx.py: a real export into a temporary cache, checked against sentence-transformers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Tuple

import pytest

# Action runtime only (torch, sentence-transformers, onnx); the Rasa runtime skips this module.
pytest.importorskip("sentence_transformers")
pytest.importorskip("onnx")

import numpy as np  # noqa: E402

from scripts import export_minilm_onnx as exporter  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Path, Path, Path]]:
    """One real export for the module: (cache dir, link, target)."""
    base = tmp_path_factory.mktemp("export")
    cache, link = base / "cache", base / "checkout" / ".models" / "minilm-onnx"
    target = exporter.ensure(cache, link)
    yield cache, link, target


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(exporter.default_model_dir()), device="cpu")


def test_export_writes_every_file_and_links_it(exported: Tuple[Path, Path, Path]) -> None:
    cache, link, target = exported
    assert target.parent == cache / "onnx"
    assert target.name == f"minilm-{exporter.model_hash(exporter.default_model_dir())}"
    for name in ("model.onnx", "tokenizer.json", "reference.json", "manifest.json"):
        assert (target / name).is_file(), name
    assert link.is_symlink() and link.resolve() == target.resolve()
    # Only the finished directory is left: no temporary work directories.
    assert [p.name for p in (cache / "onnx").iterdir()] == [target.name]


def test_manifest_describes_the_export(exported: Tuple[Path, Path, Path]) -> None:
    _, _, target = exported
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["hash"] == target.name.split("-", 1)[1]
    assert manifest["dimension"] == 384
    assert manifest["max_seq_length"] == 256
    assert manifest["pooling"] == "mean" and manifest["normalize"] is True
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert 0 <= manifest["verification"]["max_abs_diff"] <= 1e-4
    for name, sha in manifest["files"].items():
        assert exporter.file_sha256(target / name) == sha, name
    tokenizer = json.loads((target / "tokenizer.json").read_text())
    assert tokenizer["truncation"]["max_length"] == 256
    assert tokenizer["padding"]["strategy"] == "BatchLongest"


def test_second_run_is_a_no_op(exported: Tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cache, link, target = exported
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in target.iterdir()}
    assert exporter.main(["--cache-dir", str(cache), "--link", str(link)]) == 0
    assert "up to date" in capsys.readouterr().out
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in target.iterdir()}
    assert after == before
    assert link.resolve() == target.resolve()


def test_onnx_matches_sentence_transformers_on_new_sentences(exported: Tuple[Path, Path, Path], st_model) -> None:
    """Independent of the script's own check: other sentences, a padded batch, pooling done here."""
    import onnx
    from onnx.reference import ReferenceEvaluator
    from tokenizers import Tokenizer

    _, _, target = exported
    sentences = [
        "Can I connect Quillstack Forms to HubSpot?",
        "ok",
        "what's the difference between Team and Business plans, and is SSO included",
    ]
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    encodings = tokenizer.encode_batch(sentences)  # padded to the longest
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    assert feeds["attention_mask"].min() == 0  # the batch really is padded
    (tokens,) = ReferenceEvaluator(onnx.load(str(target / "model.onnx"))).run(None, feeds)
    mask = feeds["attention_mask"][..., None].astype(np.float32)
    pooled = (tokens * mask).sum(1) / mask.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    expected = st_model.encode(sentences, convert_to_numpy=True)
    assert np.abs(pooled - expected).max() <= 1e-4


def test_reference_embeddings_are_sentence_transformers_output(exported: Tuple[Path, Path, Path], st_model) -> None:
    _, _, target = exported
    reference = json.loads((target / "reference.json").read_text())
    expected = st_model.encode(reference["sentences"], convert_to_numpy=True)
    assert np.abs(np.array(reference["embeddings"]) - expected).max() <= 1e-6


def test_hash_follows_model_files(tmp_path: Path) -> None:
    source = exporter.default_model_dir()
    copy = tmp_path / "model"
    for path in source.rglob("*"):
        if path.is_file():
            dest = copy / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(path)  # the weights are not copied, only referenced
    assert exporter.model_hash(copy) == exporter.model_hash(source)
    config = copy / "config.json"
    text = config.read_text()
    config.unlink()
    config.write_text(text.replace('"num_hidden_layers": 6', '"num_hidden_layers": 5'))
    assert exporter.model_hash(copy) != exporter.model_hash(source)


def test_incomplete_cache_entry_is_not_trusted(tmp_path: Path) -> None:
    target = tmp_path / "minilm-abc123"
    target.mkdir()
    (target / "model.onnx").write_bytes(b"half")
    assert not exporter.is_complete(target)
    for name in ("tokenizer.json", "reference.json"):
        (target / name).write_text("{}")
    (target / "manifest.json").write_text("{not json")
    assert not exporter.is_complete(target)
    (target / "manifest.json").write_text(json.dumps({"hash": "abc123"}))
    assert exporter.is_complete(target)


def test_missing_weights_fail_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "empty-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    cache, link = tmp_path / "cache", tmp_path / ".models" / "minilm-onnx"
    code = exporter.main(["--cache-dir", str(cache), "--link", str(link), "--model-dir", str(model_dir)])
    assert code == 1
    assert "no model weights" in capsys.readouterr().err
    assert not link.exists() and not link.is_symlink()
    assert not (cache / "onnx").exists() or not any((cache / "onnx").iterdir())


def test_link_never_replaces_a_real_directory(tmp_path: Path) -> None:
    link = tmp_path / "minilm-onnx"
    link.mkdir()
    with pytest.raises(exporter.ExportError, match="not a symlink"):
        exporter.link_to(link, tmp_path / "elsewhere")
    assert link.is_dir() and not link.is_symlink()
