"""Search helpers over FAQ phrasings: functions take vectors, not a model.

Every question and alternative is one row of the matrix, and `owners[row]`
names the entry it belongs to; an entry scores as its best-matching phrasing.
With normalised vectors the inner product is the cosine similarity.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import List, Pattern, Sequence, Tuple

import numpy as np

from knowledge_base.loader import FaqEntry


@dataclass(frozen=True)
class Hit:
    """An entry's best score for a query, and which row (phrasing) gave it."""

    entry: int
    score: float
    row: int


@functools.lru_cache(maxsize=8)
def _terms_pattern(terms: Tuple[str, ...]) -> Pattern[str]:
    alternatives = "|".join(re.escape(term) for term in terms)
    return re.compile(rf"\b(?:{alternatives})(?:'s)?\b", re.IGNORECASE)


def remove_terms(text: str, terms: Sequence[str]) -> str:
    """Drop whole-word occurrences of `terms` (and their possessive) and tidy the spaces."""
    if not terms:
        return text
    return " ".join(_terms_pattern(tuple(terms)).sub(" ", text).split())


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale rows to unit length (zero rows stay zero) as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        norm = float(np.linalg.norm(matrix))
        return matrix / norm if norm > 0 else matrix
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def best_per_entry(query: np.ndarray, vectors: np.ndarray, owners: np.ndarray, k: int) -> List[Hit]:
    """The `k` best entries for `query`, best first, each scored by its best row (exact, numpy).

    `vectors` is (rows, dim), `owners` is (rows,) entry numbers, `query` is (dim,).
    Ties keep row order, so results are deterministic.
    """
    if k <= 0 or len(vectors) == 0:
        return []
    query = np.asarray(query, dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    owners = np.asarray(owners)
    if vectors.ndim != 2 or query.ndim != 1 or query.shape[0] != vectors.shape[1]:
        raise ValueError(f"query of shape {query.shape} does not match vectors of shape {vectors.shape}")
    if owners.shape != (vectors.shape[0],):
        raise ValueError(f"owners of shape {owners.shape} do not match {vectors.shape[0]} rows")
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")
    return top_entries(order, scores[order], owners, k)


def top_entries(rows: Sequence[int], scores: Sequence[float], owners: np.ndarray, k: int) -> List[Hit]:
    """Fold rows ranked best first (as a FAISS search returns them) into the `k` best entries.

    An entry scores as its first (best) row; FAISS's -1 padding rows are skipped.
    """
    hits: List[Hit] = []
    seen = set()
    for row, score in zip(rows, scores):
        if row < 0:
            continue
        entry = int(owners[row])
        if entry in seen:
            continue
        seen.add(entry)
        hits.append(Hit(entry=entry, score=float(score), row=int(row)))
        if len(hits) == k:
            break
    return hits


def phrasing_table(entries: Sequence[FaqEntry]) -> Tuple[List[str], np.ndarray]:
    """The texts to encode and, for each, the number of the entry it belongs to."""
    texts: List[str] = []
    owners: List[int] = []
    for number, entry in enumerate(entries):
        for text in entry.phrasings:
            texts.append(text)
            owners.append(number)
    return texts, np.asarray(owners, dtype=np.int64)
