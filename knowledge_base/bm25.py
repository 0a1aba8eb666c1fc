"""Lexical evidence: BM25 over FAQ entries (the baseline the semantic index is measured
against) and the share of a query's words that an entry's text contains (the check the
answer policy makes before answering outright).

One document per entry: its question, alternatives and answer text. English stop
words are dropped and words are stemmed (Snowball, via PyStemmer), which is how
BM25 is usually run as a baseline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, FrozenSet, List, Sequence

import bm25s
import numpy as np
import Stemmer

from knowledge_base.loader import FaqEntry

_stemmer = Stemmer.Stemmer("english")
_stemmer_lock = threading.Lock()  # PyStemmer objects are not thread-safe; searches run in a thread pool


def tokenize(texts: Sequence[str]) -> List[List[str]]:
    """Lower-cased, stemmed words without English stop words, one list per text."""
    with _stemmer_lock:
        tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer, return_ids=False, show_progress=False)
    return [list(words) for words in tokens]


def coverage(query_terms: FrozenSet[str], entry_terms: FrozenSet[str]) -> float:
    """The share of the query's words found in the entry's text; 0 for a query without content words."""
    if not query_terms:
        return 0.0
    return len(query_terms & entry_terms) / len(query_terms)


@dataclass(frozen=True)
class LexicalHit:
    entry: int
    score: float


def entry_document(entry: FaqEntry) -> str:
    return "\n".join((*entry.phrasings, entry.answer))


class Bm25Index:
    """BM25 (Lucene variant, k1=1.5, b=0.75: the library's defaults) over one document per entry."""

    def __init__(self, tokens: Sequence[List[str]]) -> None:
        """Index documents given as their `tokenize` words, one list per document."""
        self._size = len(tokens)
        self._retriever: Any = bm25s.BM25()
        if tokens:
            self._retriever.index(list(tokens), show_progress=False)

    @classmethod
    def from_documents(cls, documents: Sequence[str]) -> "Bm25Index":
        return cls(tokenize(documents) if documents else [])

    @classmethod
    def from_entries(cls, entries: Sequence[FaqEntry]) -> "Bm25Index":
        return cls.from_documents([entry_document(entry) for entry in entries])

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every entry for `query` (all zero when it has no indexed word)."""
        return self.scores_for(tokenize([query])[0])

    def scores_for(self, words: Sequence[str]) -> np.ndarray:
        """`scores` for a query tokenized already (its `tokenize` words)."""
        if not words or self._size == 0:
            return np.zeros(self._size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(list(words)), dtype=np.float32)

    def search(self, query: str, k: int) -> List[LexicalHit]:
        """The `k` best entries, best first; entries sharing no word with the query are left out."""
        if k <= 0:
            return []
        scores = self.scores(query)
        order = np.argsort(-scores, kind="stable")[:k]
        return [LexicalHit(int(i), float(scores[i])) for i in order if scores[i] > 0]
