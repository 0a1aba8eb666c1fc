"""Ideas in, themes out: encode, cluster with the configured method, label (used by the CLI and the service)."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections import Counter
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from analytics.ideas.cluster import UNCLUSTERED, centroids, cluster_vectors, groups
from analytics.ideas.config import IdeasSettings
from analytics.ideas.inputs import Idea, has_words


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class Areas(Protocol):
    def area_of(self, text: str, context: Optional[Dict[str, Any]] = None) -> Tuple[List[str], str]: ...

    def areas(self, texts: Sequence[str]) -> List[List[str]]: ...


class Labeller(Protocol):
    def labels(self, themes: List[List[str]], representatives: List[str]) -> List[str]:
        """One label per theme, from the texts of its members (nearest the centre first)."""
        ...


class RepresentativeLabeller:
    """The member text nearest the theme's centre: what a customer said, not a summary."""

    def labels(self, themes: List[List[str]], representatives: List[str]) -> List[str]:
        return list(representatives)


@dataclass
class Theme:
    id: str
    label: str
    members: List[str]
    quotes: List[str] = field(default_factory=list)  # member texts nearest the centre
    areas: Dict[str, int] = field(default_factory=dict)  # product area -> members in it, most first

    def as_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "label": self.label, "members": self.members, "areas": self.areas}


@dataclass
class Clustering:
    themes: List[Theme]
    unclustered: List[str]

    def as_dict(self) -> Dict[str, Any]:
        return {"clusters": [theme.as_dict() for theme in self.themes], "unclustered": self.unclustered}


def cluster_ideas(ideas: Sequence[Idea], encoder: Encoder, settings: IdeasSettings, labeller: Optional[Labeller] = None, areas: Optional[Areas] = None) -> Clustering:
    """Themes (largest first, ids T1, T2, ...) and the ids left unclustered, in input order.

    Ideas without words (emoji, punctuation) are not encoded: MiniLM would place them
    somewhere arbitrary, and they say nothing a theme could use.
    """
    worded = [idea for idea in ideas if has_words(idea.text)]
    wordless = [idea.id for idea in ideas if not has_words(idea.text)]
    labels = np.full(len(worded), UNCLUSTERED, dtype=np.int64)
    vectors = np.zeros((0, 0), dtype=np.float32)
    if worded:
        vectors = encoder.encode([idea.text for idea in worded])
        labels = cluster_vectors(vectors, settings.cluster)
    members = groups(labels)
    centres = centroids(vectors, labels) if members else np.zeros((0, 0), dtype=np.float32)
    themes: List[Theme] = []
    texts: List[List[str]] = []
    for label in sorted(members):
        rows = members[label]
        order = np.argsort(-(vectors[rows] @ centres[label]), kind="stable")
        nearest = [worded[rows[i]].text for i in order]
        found: Counter = Counter()
        if areas is not None:
            for row in rows:
                found.update(areas.area_of(worded[row].text, worded[row].context)[0])
        themes.append(Theme(f"T{label + 1}", "", [worded[row].id for row in rows], nearest[:3], dict(found.most_common())))
        texts.append(nearest)
    names = (labeller or RepresentativeLabeller()).labels(texts, [theme.quotes[0] for theme in themes])
    for theme, name in zip(themes, names):
        theme.label = name
    clustered = {ident for theme in themes for ident in theme.members}
    unclustered = [idea.id for idea in ideas if idea.id not in clustered]
    assert set(wordless) <= set(unclustered)
    return Clustering(themes, unclustered)
