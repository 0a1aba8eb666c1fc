"""A built index on disk: `index.faiss`, `centroids.npy`, `entries.json` and `manifest.json`, checked when loaded.

The manifest records the model and dimension, a hash of everything the vectors were
built from (entries, encoder, ignore_terms, index kind and parameters), the index kind,
when and how fast it was built, the FAQ source files, and a checksum of each file.
`load` refuses an index built with another model or dimension, built from other content
(stale), or whose files do not match their checksums (corrupt), each with a message
that says what to do. `save` writes a new directory and swaps it in whole, so a reader
never sees half an index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import faiss
import numpy as np

from knowledge_base.encoder import EncoderIdentity
from knowledge_base.errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexStale
from knowledge_base.index import PhrasingIndex
from knowledge_base.loader import FaqEntry
from knowledge_base.search import phrasing_table
from knowledge_base.settings import IndexSettings

FORMAT = 1
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
ENTRIES_FILE = "entries.json"
CENTROIDS_FILE = "centroids.npy"


@dataclass(frozen=True)
class Manifest:
    format: int
    model: Dict[str, Any]  # EncoderIdentity as a dict
    dim: int
    content_hash: str
    index_kind: str
    index_params: Dict[str, int]
    vectors: int
    entries: int
    ignore_terms: List[str]
    built_at: str  # UTC, ISO 8601
    build_seconds: float
    faiss_version: str
    sources: List[Dict[str, str]]  # {"path", "sha256"} of each FAQ file read
    files: Dict[str, str]  # sha256 of index.faiss, centroids.npy and entries.json

    @classmethod
    def from_dict(cls, raw: Any, where: Path) -> "Manifest":
        if not isinstance(raw, dict):
            raise IndexCorrupt(f"{where} is not a JSON object", where.parent)
        names = [name for name in cls.__dataclass_fields__]
        missing = [name for name in names if name not in raw]
        if missing:
            raise IndexCorrupt(f"{where} lacks {', '.join(missing)}", where.parent)
        return cls(**{name: raw[name] for name in names})


@dataclass
class SavedIndex:
    """What a build produces and a load returns."""

    manifest: Manifest
    index: PhrasingIndex
    entries: List[FaqEntry]


def content_hash(entries: Sequence[FaqEntry], identity: EncoderIdentity, ignore_terms: Sequence[str], kind: str, params: Dict[str, int]) -> str:
    """Everything the saved files are computed from; an index with another hash is stale."""
    payload = {
        "format": FORMAT,
        "model": identity.as_dict(),
        "ignore_terms": list(ignore_terms),
        "index": {"kind": kind, "params": params},
        "entries": [_entry_dict(entry, with_source=False) for entry in entries],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_records(paths: Sequence[Path]) -> List[Dict[str, str]]:
    return [{"path": str(path.resolve()), "sha256": file_sha256(path)} for path in paths]


def changed_sources(manifest: Manifest) -> List[str]:
    """The FAQ files the index was built from that have changed or gone since (the index is stale)."""
    changed = []
    for record in manifest.sources:
        path = Path(record["path"])
        if not path.is_file():
            changed.append(f"{path} (gone)")
        elif file_sha256(path) != record["sha256"]:
            changed.append(f"{path} (changed)")
    return changed


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


# -- saving ------------------------------------------------------------------------


def save(directory: Path, built: SavedIndex) -> Manifest:
    """Write the index to `directory`, replacing what was there in one swap. Returns the final manifest."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        faiss.write_index(built.index.faiss_index, str(staging / INDEX_FILE))
        np.save(staging / CENTROIDS_FILE, built.index.centroids, allow_pickle=False)
        entries = [_entry_dict(entry, with_source=True) for entry in built.entries]
        (staging / ENTRIES_FILE).write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
        files = {name: file_sha256(staging / name) for name in (INDEX_FILE, CENTROIDS_FILE, ENTRIES_FILE)}
        manifest = Manifest(**{**asdict(built.manifest), "files": files})
        (staging / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)
        _swap_in(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _swap_in(staging: Path, directory: Path) -> None:
    retired: Optional[Path] = None
    if directory.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=directory.parent))
        os.rename(directory, retired / "index")
    os.rename(staging, directory)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


# -- loading -----------------------------------------------------------------------


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        what = "no index" if not Path(directory).exists() else f"no {MANIFEST}"
        raise IndexMissing(f"{what} at {directory}", directory)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorrupt(f"{path} cannot be read ({exc})", directory) from exc
    manifest = Manifest.from_dict(raw, path)
    if manifest.format != FORMAT:
        raise IndexStale(f"{directory} holds an index in format {manifest.format}, this version reads {FORMAT}", directory)
    return manifest


def check_identity(manifest: Manifest, identity: EncoderIdentity, directory: Path) -> None:
    built = manifest.model
    if built.get("model") != identity.model or built.get("dim") != identity.dim or manifest.dim != identity.dim:
        raise IndexMismatch(
            f"the index at {directory} was built with {built.get('model')} ({manifest.dim} dimensions), "
            f"but the encoder in use is {identity.model} ({identity.dim} dimensions); "
            "vectors from different models cannot be compared",
            directory,
        )
    if built.get("weights") != identity.weights:
        raise IndexMismatch(
            f"the index at {directory} was built with other weights of {identity.model} "
            f"({built.get('weights')}, in use: {identity.weights})",
            directory,
        )


def load(directory: Path, identity: EncoderIdentity, settings: IndexSettings, expected_hash: Optional[str] = None) -> SavedIndex:
    """Load and verify a saved index; raises an IndexUnavailable subclass saying what is wrong."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    check_identity(manifest, identity, directory)
    if expected_hash is not None and manifest.content_hash != expected_hash:
        raise IndexStale(f"the index at {directory} was built from other FAQ content or settings", directory)
    for name, expected in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise IndexCorrupt(f"{path} is missing", directory)
        if file_sha256(path) != expected:
            raise IndexCorrupt(f"{path} does not match its checksum in {MANIFEST}", directory)
    try:
        faiss_index = faiss.read_index(str(directory / INDEX_FILE))
    except RuntimeError as exc:
        raise IndexCorrupt(f"{directory / INDEX_FILE} is not a readable FAISS index", directory) from exc
    entries = _read_entries(directory)
    _, owners = phrasing_table(entries)
    centroids = _read_centroids(directory)
    if (
        faiss_index.d != manifest.dim
        or faiss_index.ntotal != manifest.vectors
        or len(owners) != faiss_index.ntotal
        or centroids.shape != (len(entries), manifest.dim)
    ):
        raise IndexCorrupt(
            f"{directory}: the index holds {faiss_index.ntotal} vectors of {faiss_index.d} dimensions and {centroids.shape} "
            f"centroids, the manifest says {manifest.vectors} of {manifest.dim} and the entries have {len(owners)} phrasings",
            directory,
        )
    index = PhrasingIndex(faiss_index, owners, manifest.index_kind, dict(manifest.index_params), centroids)
    index.tune(settings)
    return SavedIndex(manifest, index, entries)


def _read_centroids(directory: Path) -> np.ndarray:
    try:
        return np.load(directory / CENTROIDS_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{directory / CENTROIDS_FILE} cannot be read ({exc})", directory) from exc


def _read_entries(directory: Path) -> List[FaqEntry]:
    path = directory / ENTRIES_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [
            FaqEntry(**{**item, "alternatives": tuple(item["alternatives"]), "tags": tuple(item["tags"])}) for item in raw
        ]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise IndexCorrupt(f"{path} cannot be read as FAQ entries ({exc})", directory) from exc


def _entry_dict(entry: FaqEntry, with_source: bool) -> Dict[str, Any]:
    data = asdict(entry)
    data["alternatives"] = list(entry.alternatives)
    data["tags"] = list(entry.tags)
    if not with_source:
        del data["source"]
    return data
