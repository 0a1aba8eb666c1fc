"""Theme labels a person would write: keyphrases from spaCy (noun chunks and verb-object pairs,
lemmatised, function words dropped by their part of speech) ranked by class-based TF-IDF.

No stop-word list: what is kept is decided by the tagger (nouns, proper nouns, adjectives,
numbers, and the verb a request turns on), so "please give us a night theme" yields
"night theme" and "give night theme", never "please" or "us".
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, List, Optional, Sequence

KEEP = {"NOUN", "PROPN", "ADJ", "NUM"}
MAX_WORDS = 4


def phrase(tokens: Iterable[Any]) -> str:
    """Lower-case lemmas of the content words of a span, in order."""
    words = [token.lemma_.lower() for token in tokens if token.pos_ in KEEP and token.lemma_.strip() and any(ch.isalnum() for ch in token.lemma_)]
    return " ".join(words[-MAX_WORDS:])


def keyphrases(doc: Any) -> List[str]:
    """Candidate labels in one text: noun chunks and verb + object chunk ("export dashboard")."""
    found: List[str] = []
    for chunk in doc.noun_chunks:
        text = phrase(chunk)
        if text:
            found.append(text)
            head = chunk.root.head
            if chunk.root.dep_ == "dobj" and head.pos_ == "VERB":
                found.append(f"{head.lemma_.lower()} {text}")
    if not found:  # fragments without a noun chunk ("dark mode pls" is sometimes tagged oddly)
        text = phrase(doc)
        if text:
            found.append(text)
    return found


class CtfidfLabeller:
    """Labels themes with their most distinctive keyphrase (c-TF-IDF, as BERTopic defines it).

    A phrase's weight in a theme is its frequency there times log(1 + A / f), where f is its
    frequency over all themes and A the mean number of phrases per theme: frequent in the
    theme and rare elsewhere. Counting a phrase once per idea keeps one wordy idea from
    naming the theme.
    """

    def __init__(self, nlp: Optional[Any] = None, batch_size: int = 256) -> None:
        self._nlp = nlp
        self._batch_size = batch_size

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            from analytics.ideas.nlp import english

            self._nlp = english()
        return self._nlp

    def phrases(self, texts: Sequence[str]) -> List[List[str]]:
        return [sorted(set(keyphrases(doc))) for doc in self.nlp.pipe(texts, batch_size=self._batch_size)]

    def labels(self, themes: List[List[str]], representatives: List[str]) -> List[str]:
        flat = [text for texts in themes for text in texts]
        per_text = iter(self.phrases(flat))
        counts = [Counter(p for _ in texts for p in next(per_text)) for texts in themes]
        overall: Counter = Counter()
        for count in counts:
            overall.update(count)
        average = sum(overall.values()) / max(len(counts), 1)
        out = []
        for count, fallback, texts in zip(counts, representatives, themes):
            if not count:
                out.append(fallback)
                continue
            total = sum(count.values())
            scored = {p: (n / total) * math.log(1 + average / overall[p]) for p, n in count.items()}
            out.append(best_label(scored, len(texts)))
        return out


def best_label(scored: dict, members: int) -> str:
    """The top phrase, or a longer phrase containing it that scores at least half as much
    ("dark mode" over "mode", "export dashboard pdf" over "pdf")."""
    ranked = sorted(scored.items(), key=lambda kv: (-kv[1], -len(kv[0].split()), kv[0]))
    top, weight = ranked[0]
    longer = [c for c, value in ranked[1:] if value >= weight / 2 and f" {top} " in f" {c} "]
    return max(longer, key=lambda c: (scored[c], len(c))) if longer else top
