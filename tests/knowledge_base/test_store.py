"""Saving and loading a built index: manifest, refusal of other models, stale and corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge_base import store
from knowledge_base.build import build_index, expected_hash
from knowledge_base.encoder import EncoderIdentity
from knowledge_base.errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexStale
from knowledge_base.loader import load_directory
from knowledge_base.settings import load_settings
from tests.knowledge_base.helpers import DIM, BagOfWordsEncoder, write_sample_kb


@pytest.fixture
def built(tmp_path: Path):
    faq_dir, config = write_sample_kb(tmp_path / "kb")
    settings = load_settings(config)
    encoder = BagOfWordsEncoder()
    entries = load_directory(faq_dir)
    saved = build_index(entries, encoder, settings, sources=sorted(faq_dir.iterdir()))
    directory = tmp_path / "index"
    manifest = store.save(directory, saved)
    return directory, manifest, encoder, settings, entries


def test_the_manifest_records_what_the_index_is_built_from(built) -> None:
    directory, manifest, encoder, settings, entries = built
    assert sorted(p.name for p in directory.iterdir()) == ["centroids.npy", "entries.json", "index.faiss", "manifest.json"]
    on_disk = json.loads((directory / "manifest.json").read_text())
    assert on_disk["model"] == {"model": "test/bag-of-words", "weights": "crc32", "dim": DIM}
    assert on_disk["dim"] == DIM and on_disk["index_kind"] == "flat" and on_disk["index_params"] == {}
    assert on_disk["vectors"] == 10 and on_disk["entries"] == 4
    assert on_disk["content_hash"] == expected_hash(entries, encoder, settings)
    assert on_disk["built_at"].endswith("+00:00") and on_disk["build_seconds"] >= 0
    assert [Path(s["path"]).name for s in on_disk["sources"]] == ["sample.yml"]
    assert set(on_disk["files"]) == {"index.faiss", "centroids.npy", "entries.json"}


def test_a_saved_index_loads_and_searches_like_the_built_one(built) -> None:
    directory, manifest, encoder, settings, entries = built
    loaded = store.load(directory, encoder.identity(), settings.index, manifest.content_hash)
    assert loaded.entries == entries
    query = encoder.encode(["forgot password"])[0]
    assert loaded.index.search(query, k=1)[0].entry == 0
    assert loaded.manifest == manifest


def test_another_model_or_dimension_is_refused_with_a_clear_message(built) -> None:
    directory, manifest, encoder, settings, _ = built
    with pytest.raises(IndexMismatch, match=r"built with test/bag-of-words \(512 dimensions\).*other/model \(384 dimensions\).*rebuild it: python -m knowledge_base build"):
        store.load(directory, EncoderIdentity("other/model", "w", 384), settings.index)
    with pytest.raises(IndexMismatch, match="other weights"):
        store.load(directory, EncoderIdentity("test/bag-of-words", "retrained", DIM), settings.index)


def test_other_content_is_stale(built) -> None:
    directory, _, encoder, settings, _ = built
    with pytest.raises(IndexStale, match="other FAQ content"):
        store.load(directory, encoder.identity(), settings.index, expected_hash="0" * 16)


def test_missing_index_says_how_to_build_one(tmp_path: Path, built) -> None:
    _, _, encoder, settings, _ = built
    with pytest.raises(IndexMissing, match=r"no index at .*python -m knowledge_base build"):
        store.load(tmp_path / "absent", encoder.identity(), settings.index)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexMissing, match="no manifest.json"):
        store.load(tmp_path / "empty", encoder.identity(), settings.index)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "index.faiss").write_bytes((d / "index.faiss").read_bytes()[:100]), "does not match its checksum"),
        (lambda d: (d / "index.faiss").unlink(), "index.faiss is missing"),
        (lambda d: (d / "entries.json").write_text("[]"), "does not match its checksum"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "cannot be read"),
        (lambda d: (d / "manifest.json").write_text("[1, 2]"), "is not a JSON object"),
        (lambda d: (d / "manifest.json").write_text('{"format": 1}'), "lacks model"),
    ],
)
def test_corrupt_files_are_detected(built, damage, message: str) -> None:
    directory, _, encoder, settings, _ = built
    damage(directory)
    with pytest.raises(IndexCorrupt, match=message):
        store.load(directory, encoder.identity(), settings.index)


def test_consistent_but_unreadable_files_are_corrupt(built) -> None:
    """Checksums rewritten to match garbage: FAISS itself refuses it."""
    directory, _, encoder, settings, _ = built
    (directory / "index.faiss").write_bytes(b"garbage" * 10)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["index.faiss"] = store.file_sha256(directory / "index.faiss")
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="not a readable FAISS index"):
        store.load(directory, encoder.identity(), settings.index)


def test_an_index_from_an_older_format_is_stale(built) -> None:
    directory, _, encoder, settings, _ = built
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["format"] = 0
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexStale, match="format 0"):
        store.load(directory, encoder.identity(), settings.index)


def test_saving_again_replaces_the_index_whole_and_leaves_no_temporary_folders(built) -> None:
    directory, first, encoder, settings, entries = built
    again = build_index(entries[:2], encoder, settings)
    manifest = store.save(directory, again)
    assert manifest.entries == 2
    assert store.load(directory, encoder.identity(), settings.index).manifest.vectors == 5
    assert sorted(p.name for p in directory.parent.iterdir()) == ["index", "kb"]


def test_changed_sources_are_reported(built, tmp_path: Path) -> None:
    directory, manifest, *_ = built
    assert store.changed_sources(manifest) == []
    source = Path(manifest.sources[0]["path"])
    source.write_text(source.read_text() + "\n# edited\n")
    assert store.changed_sources(manifest) == [f"{source} (changed)"]
    source.unlink()
    assert store.changed_sources(manifest) == [f"{source} (gone)"]


def test_a_build_refuses_an_encoder_that_loses_rows(tmp_path: Path) -> None:
    faq_dir, config = write_sample_kb(tmp_path)

    class Lossy(BagOfWordsEncoder):
        def encode(self, texts):
            return np.zeros((1, DIM), dtype=np.float32)

    with pytest.raises(ValueError, match="for 10 texts"):
        build_index(load_directory(faq_dir), Lossy(), load_settings(config))
