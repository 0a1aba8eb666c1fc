"""The FAISS index over FAQ phrasings: exact inner product for small collections, HNSW above a size.

Every question and alternative is one normalised vector (so the inner product is the
cosine similarity) and `owners[row]` names the entry it belongs to. A search asks FAISS
for the best rows and folds them into candidate entries, each scored by its best
phrasing; with a `centroid_weight`, the candidates are re-scored as
`(1 - w) * best phrasing + w * centroid` (the normalised mean of the entry's phrasings),
which bench/faq_retrieval.py measured as better than either alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import faiss
import numpy as np

from knowledge_base.search import Hit, normalise, top_entries
from knowledge_base.settings import IndexSettings

FLAT = "flat"
HNSW = "hnsw"
ADD_CHUNK = 4096
RESCORE_CANDIDATES = 20  # entries re-scored with their centroids (and, in the service, BM25)

Progress = Callable[[int], None]  # called with the number of vectors just added


def choose_kind(vectors: int, settings: IndexSettings) -> str:
    """Exact search up to `exact_max_vectors`, HNSW above (see BENCHMARKS.md for where they cross)."""
    return FLAT if vectors <= settings.exact_max_vectors else HNSW


def build_params(kind: str, settings: IndexSettings) -> Dict[str, int]:
    """What a built index depends on besides its vectors (recorded in the manifest)."""
    if kind == HNSW:
        return {"M": settings.hnsw_m, "efConstruction": settings.hnsw_ef_construction}
    return {}


def set_threads(threads: int) -> None:
    """FAISS's OpenMP threads, process-wide. One query is too small to split; 1 avoids thread hand-offs."""
    faiss.omp_set_num_threads(max(1, threads))


@dataclass
class PhrasingIndex:
    """A FAISS index whose rows are phrasings, with the entry number of each row."""

    faiss_index: Any
    owners: np.ndarray
    kind: str
    params: Dict[str, int]
    centroids: np.ndarray  # (entries, dim), normalised mean of each entry's phrasings

    @classmethod
    def build(
        cls, vectors: np.ndarray, owners: np.ndarray, settings: IndexSettings, progress: Optional[Progress] = None
    ) -> "PhrasingIndex":
        matrix = normalise(vectors)
        owners = np.asarray(owners, dtype=np.int64)
        if matrix.ndim != 2 or matrix.shape[0] != owners.shape[0]:
            raise ValueError(f"{owners.shape[0]} owners for vectors of shape {matrix.shape}")
        kind = choose_kind(matrix.shape[0], settings)
        params = build_params(kind, settings)
        centroids = entry_centroids(matrix, owners)
        index = cls(new_faiss_index(kind, matrix.shape[1], params), owners, kind, params, centroids)
        for start in range(0, matrix.shape[0], ADD_CHUNK):
            chunk = np.ascontiguousarray(matrix[start : start + ADD_CHUNK])
            index.faiss_index.add(chunk)
            if progress is not None:
                progress(len(chunk))
        index.tune(settings)
        return index

    def tune(self, settings: IndexSettings) -> None:
        """Query-time settings, which may change without a rebuild."""
        if self.kind == HNSW:
            self.faiss_index.hnsw.efSearch = settings.hnsw_ef_search

    @property
    def dim(self) -> int:
        return int(self.faiss_index.d)

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def search(self, query: np.ndarray, k: int, centroid_weight: float = 0.0) -> List[Hit]:
        return self.search_many(np.asarray(query, dtype=np.float32).reshape(1, -1), k, centroid_weight)[0]

    def search_many(self, queries: np.ndarray, k: int, centroid_weight: float = 0.0) -> List[List[Hit]]:
        """The `k` best entries for each query row, best first."""
        matrix = normalise(np.asarray(queries, dtype=np.float32))
        if matrix.ndim != 2 or (len(self) and matrix.shape[1] != self.dim):
            raise ValueError(f"queries of shape {matrix.shape} do not match an index of dimension {self.dim}")
        total = len(self)
        if k <= 0 or total == 0:
            return [[] for _ in range(matrix.shape[0])]
        # Re-scoring needs more candidates than the k returned.
        wanted = max(k, RESCORE_CANDIDATES) if centroid_weight > 0 else k
        # Several rows can belong to one entry, so fetch more rows than entries wanted,
        # and more again in the rare case that the best rows cover fewer entries.
        fetch = min(total, max(4 * wanted, 64))
        while True:
            scores, rows = self.faiss_index.search(np.ascontiguousarray(matrix), fetch)
            results = [top_entries(r, s, self.owners, wanted) for r, s in zip(rows, scores)]
            if fetch >= total or all(len(hits) >= wanted for hits in results):
                break
            fetch = min(total, fetch * 4)
        if centroid_weight > 0:
            results = [self._rescore(query, hits, centroid_weight) for query, hits in zip(matrix, results)]
        return [hits[:k] for hits in results]

    def _rescore(self, query: np.ndarray, hits: List[Hit], weight: float) -> List[Hit]:
        entries = np.fromiter((h.entry for h in hits), dtype=np.int64, count=len(hits))
        centroid_scores = self.centroids[entries] @ query
        rescored = [Hit(h.entry, (1 - weight) * h.score + weight * float(c), h.row) for h, c in zip(hits, centroid_scores)]
        return sorted(rescored, key=lambda h: -h.score)


def entry_centroids(vectors: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """The normalised mean of each entry's rows (entries numbered 0..max(owners))."""
    count = int(owners.max()) + 1 if len(owners) else 0
    sums = np.zeros((count, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float32)
    np.add.at(sums, owners, vectors)
    return normalise(sums)


def new_faiss_index(kind: str, dim: int, params: Dict[str, int]) -> Any:
    if kind == FLAT:
        return faiss.IndexFlatIP(dim)
    if kind == HNSW:
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
        return index
    raise ValueError(f"unknown index kind {kind!r}; expected {FLAT!r} or {HNSW!r}")
