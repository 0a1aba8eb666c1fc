"""The online rule's shortcut for an exact copy: a vote on a copy, as the search of the close themes gives."""

from __future__ import annotations

import random

import numpy as np
import pytest

from analytics.ideas import memory as memory_module
from analytics.ideas.config import IdeasSettings
from analytics.ideas.memory import VOTE, _Memory, decide


def searched(vector: np.ndarray, memory: _Memory, settings: IdeasSettings):  # type: ignore[no-untyped-def]
    """decide() without the shortcut: every member of every close theme compared."""
    if not memory.names:
        return "new", None, None
    mean = memory.means(vector)
    close = np.flatnonzero(mean >= 1.0 - settings.cluster.distance_threshold)
    if not len(close):
        return "new", None, None
    rows = [row for theme in close.tolist() for row in memory.members[memory.names[theme]]]
    similarity = memory.vectors[rows] @ vector
    best = int(similarity.argmax())
    if similarity[best] >= settings.duplicate_similarity:
        return VOTE, memory.theme_of[rows[best]], memory.ids[rows[best]]
    return "joined", memory.names[int(mean.argmax())], None


def held(memory: _Memory, event_id: str) -> bytes:
    return memory.vectors[memory.ids.index(event_id)].tobytes()


def unit(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    vector = (centre + rng.normal(0, 0.35, centre.shape)).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize("digests", ["blake2b", "all colliding"])
def test_an_exact_copy_votes_on_a_copy_as_the_search_would(digests: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if digests == "all colliding":  # copies are found by a digest of the vector: one that names another vector is not taken for a copy
        monkeypatch.setattr(memory_module, "_digest", lambda vector: b"same")
    rng = np.random.default_rng(7)
    pick = random.Random(7)
    settings = IdeasSettings()
    centres = [rng.normal(0, 1, 48) for _ in range(4)]
    memory = _Memory()
    said = []
    shortcuts = 0
    for n in range(400):
        # Texts told again (the same vector) land in one theme or, when a conversation named one, another.
        vector = pick.choice(said) if said and pick.random() < 0.4 else unit(rng, centres[n % 4])
        theme = decide(vector, memory, settings)[1] or f"TH-{len(memory.names) + 1}"
        if pick.random() < 0.05:
            theme = pick.choice(memory.names or [theme])
        got, want = decide(vector, memory, settings), searched(vector, memory, settings)
        if got != want:
            # The search's pick among identical rows depends on how the product rounds each row;
            # both vote on a row holding exactly this vector.
            assert got[0] == want[0] == VOTE
            assert held(memory, got[2]) == held(memory, want[2]) == vector.tobytes()
        shortcuts += got[0] == VOTE and held(memory, got[2]) == vector.tobytes()
        memory.add(f"e{n}", vector, theme)
        said.append(vector)
    assert shortcuts > (100 if digests == "blake2b" else 0)


@pytest.mark.parametrize("digests", ["blake2b", "all colliding"])
def test_an_idea_told_again_word_for_word_keeps_no_second_vector(digests: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row still reads back exactly the vector it was added with; a copy takes no room."""
    if digests == "all colliding":
        monkeypatch.setattr(memory_module, "_digest", lambda vector: b"same")
    rng = np.random.default_rng(11)
    pick = random.Random(11)
    distinct = [unit(rng, rng.normal(0, 1, 48)) for _ in range(30)]
    memory = _Memory()
    added = []
    for n in range(500):
        vector = distinct[n] if n < len(distinct) else pick.choice(distinct).copy()
        memory.add(f"e{n}", vector, f"TH-{n % 7}")
        added.append(vector)
    assert memory.vectors.tobytes() == np.stack(added).tobytes()
    assert [memory.vectors_at(row).tobytes() for row in (0, 29, 30, 499)] == [added[row].tobytes() for row in (0, 29, 30, 499)]
    held = memory._distinct_count
    assert held == 30 if digests == "blake2b" else held == 500 - sum(np.array_equal(v, distinct[0]) for v in added[1:])
