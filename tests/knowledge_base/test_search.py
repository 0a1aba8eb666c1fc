"""Search helpers on tiny hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge_base.loader import FaqEntry
from knowledge_base.search import best_per_entry, normalise, phrasing_table, remove_terms, top_entries

# Rows 0-1 belong to entry 0, row 2 to entry 1, row 3 to entry 2.
VECTORS = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
OWNERS = np.array([0, 0, 1, 2])


def test_each_entry_scores_by_its_best_row() -> None:
    hits = best_per_entry(np.array([0.0, 1.0, 0.0]), VECTORS, OWNERS, k=3)
    assert [(h.entry, h.row) for h in hits] == [(1, 2), (0, 1), (2, 3)]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.8, 0.0])


def test_an_entry_appears_once_even_when_several_rows_match() -> None:
    hits = best_per_entry(np.array([1.0, 0.1, 0.0]), VECTORS, OWNERS, k=2)
    assert [h.entry for h in hits] == [0, 1]
    assert hits[0].row == 0


def test_k_limits_and_zero_or_empty_gives_nothing() -> None:
    assert len(best_per_entry(np.array([1.0, 0.0, 0.0]), VECTORS, OWNERS, k=1)) == 1
    assert best_per_entry(np.array([1.0, 0.0, 0.0]), VECTORS, OWNERS, k=0) == []
    assert best_per_entry(np.array([1.0]), np.zeros((0, 1)), np.zeros(0), k=3) == []


def test_ties_keep_row_order() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    hits = best_per_entry(np.array([1.0, 0.0]), vectors, np.array([2, 0, 1]), k=3)
    assert [h.entry for h in hits] == [2, 0, 1]


def test_shape_mismatches_are_errors() -> None:
    with pytest.raises(ValueError, match="does not match"):
        best_per_entry(np.array([1.0, 0.0]), VECTORS, OWNERS, k=1)
    with pytest.raises(ValueError, match="owners"):
        best_per_entry(np.array([1.0, 0.0, 0.0]), VECTORS, OWNERS[:2], k=1)


def test_normalise_rows_and_leaves_zero_rows_alone() -> None:
    out = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    assert out.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]
    assert normalise(np.array([0.0, 2.0])).tolist() == [0.0, 1.0]


def test_remove_terms_drops_whole_words_and_possessives() -> None:
    terms = ("Quillstack",)
    assert remove_terms("Is Quillstack's API down? quillstack", terms) == "Is API down?"
    assert remove_terms("Quillstackers unite", terms) == "Quillstackers unite"
    assert remove_terms("unchanged", ()) == "unchanged"


def _entry(entry_id: str, question: str, *alternatives: str) -> FaqEntry:
    return FaqEntry(id=entry_id, question=question, alternatives=tuple(alternatives), answer="a")


def test_phrasing_table_points_every_phrasing_at_its_entry() -> None:
    texts, owners = phrasing_table([_entry("a", "qa", "a1", "a2"), _entry("b", "qb")])
    assert texts == ["qa", "a1", "a2", "qb"]
    assert owners.tolist() == [0, 0, 0, 1]


def test_top_entries_folds_ranked_rows_into_entries_and_skips_padding() -> None:
    owners = np.array([0, 0, 1, 2])
    hits = top_entries([1, -1, 0, 3, 2], [0.9, 0.0, 0.8, 0.5, 0.4], owners, k=2)
    assert [(h.entry, h.row, h.score) for h in hits] == [(0, 1, pytest.approx(0.9)), (2, 3, pytest.approx(0.5))]
    assert len(top_entries([1, 0], [0.9, 0.8], owners, k=5)) == 1  # fewer entries than asked for
