"""BM25 over FAQ entries with the `bm25s` library: the lexical baseline the semantic index is measured against.

One document per entry: its question, alternatives and answer text. English stop
words are dropped and words are stemmed (Snowball, via PyStemmer), which is how
BM25 is usually run as a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence

import bm25s
import numpy as np
import Stemmer

from knowledge_base.loader import FaqEntry


@dataclass(frozen=True)
class LexicalHit:
    entry: int
    score: float


def entry_document(entry: FaqEntry) -> str:
    return "\n".join((*entry.phrasings, entry.answer))


class Bm25Index:
    """BM25 (Lucene variant, k1=1.5, b=0.75: the library's defaults) over one document per entry."""

    def __init__(self, documents: Sequence[str]) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._size = len(documents)
        self._retriever: Any = bm25s.BM25()
        if documents:
            self._retriever.index(self._tokenize(documents), show_progress=False)

    @classmethod
    def from_entries(cls, entries: Sequence[FaqEntry]) -> "Bm25Index":
        return cls([entry_document(entry) for entry in entries])

    def __len__(self) -> int:
        return self._size

    def _tokenize(self, texts: Sequence[str]) -> List[List[str]]:
        tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)
        return [list(words) for words in tokens]

    def search(self, query: str, k: int) -> List[LexicalHit]:
        """The `k` best entries, best first; entries sharing no word with the query are left out."""
        if k <= 0 or self._size == 0:
            return []
        words = self._tokenize([query])[0]
        if not words:
            return []
        scores = np.asarray(self._retriever.get_scores(words), dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [LexicalHit(int(i), float(scores[i])) for i in order if scores[i] > 0]
