"""Clustering on small hand-made vectors: the pure functions, no encoder."""

from __future__ import annotations

import numpy as np

from analytics.ideas.cluster import UNCLUSTERED, ClusterSettings, assign, centroids, cluster_vectors, drop_small, groups


def blobs(centres: list, per: int, noise: float, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for label, centre in enumerate(centres):
        for _ in range(per):
            rows.append(np.asarray(centre, dtype=np.float32) + rng.normal(0, noise, len(centre)))
            truth.append(label)
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.asarray(truth)


AXES = [np.eye(8)[i] for i in range(3)]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_separate_groups_become_themes_without_being_told_how_many() -> None:
    vectors, truth = blobs(AXES, per=6, noise=0.05)
    labels = cluster_vectors(vectors, ClusterSettings(distance_threshold=0.5))
    assert same_partition(labels, truth)


def test_a_lone_item_is_left_unclustered() -> None:
    vectors, _ = blobs(AXES[:2], per=5, noise=0.05)
    loner = np.eye(8, dtype=np.float32)[5:6]
    labels = cluster_vectors(np.vstack([vectors, loner]), ClusterSettings(distance_threshold=0.5))
    assert labels[-1] == UNCLUSTERED
    assert set(labels[:-1].tolist()) == {0, 1}


def test_themes_are_numbered_largest_first() -> None:
    small, _ = blobs(AXES[:1], per=3, noise=0.05)
    large, _ = blobs(AXES[1:2], per=7, noise=0.05, seed=1)
    labels = cluster_vectors(np.vstack([small, large]), ClusterSettings(distance_threshold=0.5))
    assert labels[:3].tolist() == [1, 1, 1] and labels[3:].tolist() == [0] * 7


def test_above_the_exact_limit_a_sample_is_clustered_and_the_rest_join_their_nearest_theme() -> None:
    vectors, truth = blobs(AXES, per=20, noise=0.05)
    exact = cluster_vectors(vectors, ClusterSettings(distance_threshold=0.5))
    sampled = cluster_vectors(vectors, ClusterSettings(distance_threshold=0.5, exact_limit=15, join_similarity=0.5))
    assert same_partition(sampled, truth) and same_partition(exact, truth)


def test_assign_refuses_an_item_far_from_every_theme() -> None:
    centres = np.eye(4, dtype=np.float32)[:2]
    items = np.asarray([[0.9, 0.1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    labels, scores = assign(items, centres, 0.5)
    assert labels.tolist() == [0, UNCLUSTERED]
    assert scores[0] > 0.99 and scores[1] == 0.0


def test_helpers_on_edge_cases() -> None:
    assert cluster_vectors(np.zeros((0, 4), dtype=np.float32)).tolist() == []
    assert cluster_vectors(np.eye(4, dtype=np.float32)[:1]).tolist() == [UNCLUSTERED]  # one item is no theme
    assert drop_small(np.asarray([3, 3, 9, UNCLUSTERED]), 2).tolist() == [0, 0, UNCLUSTERED, UNCLUSTERED]
    assert groups(np.asarray([1, UNCLUSTERED, 0, 1])) == {1: [0, 3], 0: [2]}
    centre = centroids(np.asarray([[1, 0], [0, 1]], dtype=np.float32), np.asarray([0, 0]))
    assert np.allclose(centre, [[2 ** -0.5, 2 ** -0.5]])
