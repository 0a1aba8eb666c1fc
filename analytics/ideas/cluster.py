"""Themes from unit-length sentence vectors, without being told how many (pure functions, no I/O).

Average-linkage agglomerative clustering cut at a cosine distance, chosen on Banking77 by
bench/idea_clustering.py (see BENCHMARKS.md "Idea mining"): its threshold means the same
at 10 items and at 100k (the mean distance between the members of two themes), where
Ward's merge cost grows with the size of the themes. Agglomerative clustering needs every
pairwise distance, so above `exact_limit` items it runs on a seeded sample of that size and
every other item joins its nearest theme centroid, as a new item does online.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

UNCLUSTERED = -1


@dataclass(frozen=True)
class ClusterSettings:
    linkage: str = "average"  # or "ward" (euclidean on unit vectors), "complete"
    distance_threshold: float = 0.4  # cosine distance (average, complete) or Ward merge cost
    min_theme_size: int = 2  # smaller groups are left unclustered
    exact_limit: int = 10_000  # above this, Ward on a sample and the rest assigned
    join_similarity: float = 0.5  # cosine to a theme centroid needed to join it
    seed: int = 0


LINKAGES = ("average", "complete", "ward")


def agglomerative_labels(vectors: np.ndarray, linkage: str, threshold: float) -> np.ndarray:
    """Agglomerative clustering cut at `threshold`; one label per row."""
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.int64)
    metric = "euclidean" if linkage == "ward" else "cosine"
    model = AgglomerativeClustering(n_clusters=None, linkage=linkage, metric=metric, distance_threshold=threshold)
    return model.fit_predict(vectors).astype(np.int64)


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Labels renumbered 0.. by size (largest first), groups under `min_size` set to UNCLUSTERED."""
    out = np.full(len(labels), UNCLUSTERED, dtype=np.int64)
    names, counts = np.unique(labels[labels != UNCLUSTERED], return_counts=True)
    kept = [name for name, count in sorted(zip(names, counts), key=lambda nc: (-nc[1], nc[0])) if count >= min_size]
    for new, name in enumerate(kept):
        out[labels == name] = new
    return out


def centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean vector of each label 0..max (rows in label order)."""
    count = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    out = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    for label in range(count):
        mean = vectors[labels == label].mean(axis=0)
        out[label] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def assign(vectors: np.ndarray, theme_centroids: np.ndarray, min_similarity: float) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row and its cosine; UNCLUSTERED where below `min_similarity`."""
    if len(theme_centroids) == 0 or len(vectors) == 0:
        return np.full(len(vectors), UNCLUSTERED, dtype=np.int64), np.zeros(len(vectors), dtype=np.float32)
    similarity = vectors @ theme_centroids.T
    best = similarity.argmax(axis=1)
    score = similarity[np.arange(len(vectors)), best]
    return np.where(score >= min_similarity, best, UNCLUSTERED).astype(np.int64), score.astype(np.float32)


def cluster_vectors(vectors: np.ndarray, settings: ClusterSettings = ClusterSettings()) -> np.ndarray:
    """One theme label per row (0.., largest theme first) or UNCLUSTERED."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n <= settings.exact_limit:
        return drop_small(agglomerative_labels(vectors, settings.linkage, settings.distance_threshold), settings.min_theme_size)
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(n, settings.exact_limit, replace=False))
    sample_labels = drop_small(agglomerative_labels(vectors[sample], settings.linkage, settings.distance_threshold), settings.min_theme_size)
    labels, _ = assign(vectors, centroids(vectors[sample], sample_labels), settings.join_similarity)
    labels[sample] = sample_labels
    return drop_small(labels, settings.min_theme_size)


def groups(labels: np.ndarray) -> Dict[int, List[int]]:
    """Row indexes per theme label (UNCLUSTERED left out)."""
    out: Dict[int, List[int]] = {}
    for row, label in enumerate(labels.tolist()):
        if label != UNCLUSTERED:
            out.setdefault(label, []).append(row)
    return out
