"""What the themes' online step decides with, kept in memory by each consumer: the items' vectors,
each theme's members and a matrix of the themes' vector sums, and the rule (pure functions)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from analytics.ideas.config import IdeasSettings

JOINED, VOTE, NEW = "joined", "vote", "new"


def _pack(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float32)


def _digest(vector: np.ndarray) -> bytes:
    """16 bytes naming a vector's exact bytes: the key of `copies` (the bytes themselves are 1.5 KiB)."""
    return hashlib.blake2b(np.asarray(vector, dtype=np.float32).tobytes(), digest_size=16).digest()


class _Memory:
    """What decisions need, loaded from Redis: item vectors (a growing array, so adding one is
    not a copy of all), the theme of each, each theme's member rows, and a matrix of the themes'
    vector sums with their member counts (one row per theme, grown in place), so the mean cosine
    of a new item to every theme is one matrix-vector product."""

    def __init__(self) -> None:
        self.ids: List[str] = []
        self.theme_of: List[str] = []
        self.names: List[str] = []  # the theme of each row of the sums matrix
        self.index: Dict[str, int] = {}
        self.members: Dict[str, List[int]] = {}  # theme -> rows of its items
        self.copies: Dict[bytes, Dict[str, int]] = {}  # a vector's digest -> theme -> its first row holding exactly it
        # Each distinct vector is held once (an idea told again word for word has the same vector):
        # `_slot` gives each row's place in `_distinct`.
        self._distinct = np.zeros((0, 0), dtype=np.float32)
        self._slot = np.zeros(0, dtype=np.int32)
        self._distinct_count = 0
        self._sums = np.zeros((0, 0), dtype=np.float32)
        self._counts = np.zeros(0, dtype=np.float32)

    @property
    def vectors(self) -> np.ndarray:
        """Every row's vector (a new array: for the full re-clustering)."""
        return self._distinct[self._slot[: len(self.ids)]]

    def vectors_at(self, rows: Any) -> np.ndarray:
        """The vectors of `rows` (a list of rows, or one row)."""
        return self._distinct[self._slot[rows]]

    def means(self, vector: np.ndarray) -> np.ndarray:
        """Mean cosine of `vector` to the members of each theme (rows in `names` order)."""
        count = len(self.names)
        return (self._sums[:count] @ vector) / self._counts[:count]

    def add(self, event_id: str, vector: np.ndarray, theme: str) -> None:
        digest = _digest(vector)
        if self._slot.shape[0] <= len(self.ids):
            self._slot = np.concatenate([self._slot, np.zeros(max(64, len(self.ids) // 4), dtype=np.int32)])
        self._slot[len(self.ids)] = self._hold(digest, vector)
        row = self.index.get(theme)
        if row is None:
            row = self.index[theme] = len(self.names)
            self.names.append(theme)
            self._sums = _grown(self._sums, row, vector.shape[0])
            if self._counts.shape[0] <= row:
                self._counts = np.concatenate([self._counts, np.zeros(max(64, row), dtype=np.float32)])
            self._sums[row] = 0.0
            self._counts[row] = 0.0
        self._sums[row] += vector
        self._counts[row] += 1.0
        self.members.setdefault(theme, []).append(len(self.ids))
        self.copies.setdefault(digest, {}).setdefault(theme, len(self.ids))
        self.ids.append(event_id)
        self.theme_of.append(theme)

    def _hold(self, digest: bytes, vector: np.ndarray) -> int:
        """The slot of `vector` in `_distinct`, where it is added unless it is held already."""
        first_in = self.copies.get(digest)
        if first_in:  # the first row with this digest (its first theme's), whose vector is held first
            slot = int(self._slot[next(iter(first_in.values()))])
            if np.array_equal(self._distinct[slot], vector):
                return slot
        slot = self._distinct_count
        self._distinct = _grown(self._distinct, slot, vector.shape[0])
        self._distinct[slot] = vector
        self._distinct_count += 1
        return slot


def _grown(array: np.ndarray, used: int, width: int) -> np.ndarray:
    """`array` with room for one more row (a quarter more each time: doubling left up to half of the
    distinct vectors' array empty, at 1.5 KiB a row), its first `used` rows kept."""
    if array.shape[0] > used:
        return array
    grown = np.zeros((max(64, used + used // 4), width), dtype=np.float32)
    if used:
        grown[:used] = array[:used]
    return grown


def decide(vector: np.ndarray, memory: _Memory, settings: IdeasSettings) -> Tuple[str, Optional[str], Optional[str]]:
    """(how, theme, duplicate_of): a vote on a near duplicate, a join, or a new theme (theme None).

    An idea joins the theme whose members it is closest to on average, when that mean cosine
    is at least 1 - clustering.distance_threshold: the average-linkage rule the full
    clustering uses, applied to one new item (the mean is its dot product with the theme's
    vector sum over the member count). Joining by the cosine to a theme's centre instead let
    themes drift and swallow their neighbours: on 1,000 Banking77 utterances it made 36 themes
    with ARI 0.186 against the categories, where the clustering scores 0.558. Within that
    theme, a member at cosine >= duplicates.similarity makes the idea a vote on it. Only the
    chosen theme's members are searched for the duplicate (not every kept item): the cost
    grows with the number of themes, not of items (bench/idea_clustering.py --only online).
    """
    if not memory.names:
        return NEW, None, None
    mean = memory.means(vector)
    floor = 1.0 - settings.cluster.distance_threshold
    close = np.flatnonzero(mean >= floor)
    if not len(close):
        return NEW, None, None
    copy = _first_copy(vector, memory, close)
    if copy is not None and float(vector @ vector) >= settings.duplicate_similarity:
        return VOTE, memory.theme_of[copy], memory.ids[copy]
    rows = [row for theme in close.tolist() for row in memory.members[memory.names[theme]]]
    similarity = memory.vectors_at(rows) @ vector
    best = int(similarity.argmax())
    if similarity[best] >= settings.duplicate_similarity:
        return VOTE, memory.theme_of[rows[best]], memory.ids[rows[best]]
    return JOINED, memory.names[int(mean.argmax())], None


def _first_copy(vector: np.ndarray, memory: _Memory, close: np.ndarray) -> Optional[int]:
    """The row a search of the close themes' members would find first for an exact copy of `vector`
    (the same text told again: its cosine to itself is the highest there is), or None. Saves the
    search through a popular theme's members, which grows with every vote on it."""
    first_in = memory.copies.get(_digest(vector))
    if not first_in:
        return None
    for theme in close.tolist():
        row = first_in.get(memory.names[theme])
        if row is not None:
            return row if np.array_equal(memory.vectors_at(row), vector) else None
    return None


def nearest_member(vector: np.ndarray, memory: _Memory, theme: str) -> Optional[str]:
    rows = memory.members.get(theme)
    if not rows:
        return None
    similarity = memory.vectors_at(rows) @ vector
    return memory.ids[rows[int(similarity.argmax())]]


_BLAS: Any = None


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """One BLAS thread for what runs inside: the products here are small, and waking an idle
    OpenBLAS pool cost more than the product itself (p95 8 ms against 1 ms with 100k items,
    bench/idea_clustering.py)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


def decide_now(vector: np.ndarray, memory: _Memory, settings: IdeasSettings) -> Tuple[str, Optional[str], Optional[str]]:
    """`decide` with one BLAS thread."""
    with blas_single_thread():
        return decide(vector, memory, settings)
