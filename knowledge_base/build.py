"""Build a phrasing index from FAQ entries: encode every phrasing (with a progress bar), index, describe."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Sequence

import faiss
import numpy as np
from tqdm import tqdm

from knowledge_base.encoder import Encoder
from knowledge_base.index import PhrasingIndex, build_params, choose_kind
from knowledge_base.loader import FaqEntry
from knowledge_base.search import phrasing_table, remove_terms
from knowledge_base.settings import FaqSettings
from knowledge_base.store import FORMAT, Manifest, SavedIndex, content_hash, now_iso, source_records

ENCODE_BATCH = 256


def expected_hash(entries: Sequence[FaqEntry], encoder: Encoder, settings: FaqSettings) -> str:
    """The content hash an up-to-date index of `entries` carries (cheap: nothing is encoded)."""
    texts, _ = phrasing_table(entries)
    kind = choose_kind(len(texts), settings.index)
    return content_hash(entries, encoder.identity(), settings.ignore_terms, kind, build_params(kind, settings.index))


def encode_all(encoder: Encoder, texts: Sequence[str], progress: bool = False, label: str = "encoding") -> np.ndarray:
    """Encode in batches, showing a progress bar on stderr when `progress` is set."""
    parts: List[np.ndarray] = []
    with tqdm(total=len(texts), desc=label, unit="text", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(texts), ENCODE_BATCH):
            batch = texts[start : start + ENCODE_BATCH]
            parts.append(np.asarray(encoder.encode(batch), dtype=np.float32))
            bar.update(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.identity().dim), dtype=np.float32)


def warm_up(encoder: Encoder) -> float:
    """Load the model (on first use) with one tiny encode; returns the seconds it took."""
    started = time.perf_counter()
    encoder.encode(["warm up"])
    return time.perf_counter() - started


def build_index(
    entries: Sequence[FaqEntry], encoder: Encoder, settings: FaqSettings, sources: Sequence[Path] = (), progress: bool = False
) -> SavedIndex:
    identity = encoder.identity()
    texts, owners = phrasing_table(entries)
    kind = choose_kind(len(texts), settings.index)
    params = build_params(kind, settings.index)
    started = time.perf_counter()  # includes loading the model unless the caller warmed it up
    vectors = encode_all(encoder, [remove_terms(text, settings.ignore_terms) for text in texts], progress)
    if vectors.shape != (len(texts), identity.dim):
        raise ValueError(f"the encoder returned vectors of shape {vectors.shape} for {len(texts)} texts of dimension {identity.dim}")
    with tqdm(total=len(texts), desc=f"indexing ({kind})", unit="vec", disable=not progress or kind == "flat", file=sys.stderr) as bar:
        index = PhrasingIndex.build(vectors, owners, settings.index, progress=bar.update)
    manifest = Manifest(
        format=FORMAT,
        model=identity.as_dict(),
        dim=identity.dim,
        content_hash=content_hash(entries, identity, settings.ignore_terms, kind, params),
        index_kind=kind,
        index_params=params,
        vectors=len(texts),
        entries=len(entries),
        ignore_terms=list(settings.ignore_terms),
        built_at=now_iso(),
        build_seconds=round(time.perf_counter() - started, 3),
        faiss_version=faiss.__version__,
        sources=source_records(sources),
        files={},
    )
    return SavedIndex(manifest, index, list(entries))
