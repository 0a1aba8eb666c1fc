"""The FAISS phrasing index: exact or HNSW by size, entries folded from rows, on hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge_base.index import FLAT, HNSW, PhrasingIndex, choose_kind
from knowledge_base.search import best_per_entry
from knowledge_base.settings import IndexSettings

# Rows 0-1 belong to entry 0, row 2 to entry 1, row 3 to entry 2.
VECTORS = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
OWNERS = np.array([0, 0, 1, 2])


def test_the_kind_follows_the_size_threshold() -> None:
    settings = IndexSettings(exact_max_vectors=100)
    assert choose_kind(100, settings) == FLAT
    assert choose_kind(101, settings) == HNSW


def test_flat_search_scores_each_entry_by_its_best_phrasing() -> None:
    index = PhrasingIndex.build(VECTORS, OWNERS, IndexSettings())
    assert (index.kind, len(index), index.dim) == (FLAT, 4, 3)
    hits = index.search(np.array([0.0, 1.0, 0.0]), k=3)
    assert [(h.entry, h.row) for h in hits] == [(1, 2), (0, 1), (2, 3)]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.8, 0.0])


def test_vectors_are_normalised_on_the_way_in_and_queries_too() -> None:
    index = PhrasingIndex.build(VECTORS * 5, OWNERS, IndexSettings())
    assert index.search(np.array([0.0, 7.0, 0.0]), k=1)[0].score == pytest.approx(1.0)


def test_hnsw_above_the_threshold_agrees_with_exact_search() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    owners = np.repeat(np.arange(200), 3)  # three phrasings per entry
    settings = IndexSettings(exact_max_vectors=100, hnsw_m=16, hnsw_ef_construction=100, hnsw_ef_search=64)
    progress = []
    index = PhrasingIndex.build(vectors, owners, settings, progress=progress.append)
    assert index.kind == HNSW and index.params == {"M": 16, "efConstruction": 100}
    assert sum(progress) == 600
    assert index.faiss_index.hnsw.efSearch == 64
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    agree = 0
    for query, hits in zip(queries, index.search_many(queries, k=5)):
        exact = best_per_entry(query / np.linalg.norm(query), vectors / np.linalg.norm(vectors, axis=1, keepdims=True), owners, 5)
        assert len(hits) == 5 and len({h.entry for h in hits}) == 5
        agree += hits[0].entry == exact[0].entry
    assert agree >= 48  # approximate, but on 600 vectors nearly always the same best entry


def test_more_rows_are_fetched_when_one_entry_owns_the_best_ones() -> None:
    # Entry 0 owns 100 identical rows that all beat entry 1's single row.
    vectors = np.vstack([np.tile([1.0, 0.0], (100, 1)), [[0.6, 0.8]]]).astype(np.float32)
    owners = np.array([0] * 100 + [1])
    hits = PhrasingIndex.build(vectors, owners, IndexSettings()).search(np.array([1.0, 0.0]), k=2)
    assert [h.entry for h in hits] == [0, 1]


def test_empty_index_and_bad_shapes() -> None:
    empty = PhrasingIndex.build(np.zeros((0, 3), dtype=np.float32), np.zeros(0), IndexSettings())
    assert empty.search(np.array([1.0, 0.0, 0.0]), k=3) == []
    index = PhrasingIndex.build(VECTORS, OWNERS, IndexSettings())
    assert index.search(np.array([1.0, 0.0, 0.0]), k=0) == []
    with pytest.raises(ValueError, match="do not match an index of dimension 3"):
        index.search(np.array([1.0, 0.0]), k=1)
    with pytest.raises(ValueError, match="owners"):
        PhrasingIndex.build(VECTORS, OWNERS[:2], IndexSettings())


def test_centroid_weight_rescoring_prefers_an_entry_whose_phrasings_agree() -> None:
    # Entry 0: one phrasing right on the query, one far off. Entry 1: two phrasings close to it.
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.95, 0.31, 0.0], [0.95, -0.31, 0.0]], dtype=np.float32)
    owners = np.array([0, 0, 1, 1])
    index = PhrasingIndex.build(vectors, owners, IndexSettings())
    query = np.array([1.0, 0.0, 0.0])
    assert [h.entry for h in index.search(query, k=2)] == [0, 1]  # best phrasing alone
    rescored = index.search(query, k=2, centroid_weight=0.5)
    assert [h.entry for h in rescored] == [1, 0]
    assert rescored[0].score == pytest.approx(0.5 * 0.95 + 0.5 * 1.0, abs=1e-3)
    assert index.centroids.shape == (2, 3)
