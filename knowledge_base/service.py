"""The loaded knowledge base (entries, index, encoder) and its once-per-process lazy provider."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from knowledge_base import store
from knowledge_base.bm25 import Bm25Index, coverage, entry_document, tokenize
from knowledge_base.build import build_index, expected_hash
from knowledge_base.encoder import Encoder, MiniLMEncoder
from knowledge_base.errors import FaqValidationError, IndexUnavailable, KnowledgeBaseError, KnowledgeBaseUnavailable
from knowledge_base.index import RESCORE_CANDIDATES, PhrasingIndex, set_threads
from knowledge_base.loader import FaqEntry, faq_files, load_files
from knowledge_base.policy import FaqHit
from knowledge_base.search import Hit, phrasing_table, remove_terms
from knowledge_base.settings import DEFAULT_CONFIG, FaqSettings, load_settings

logger = logging.getLogger(__name__)

DEFAULT_FAQ_DIR = Path(__file__).resolve().parent / "faqs"
FAQ_DIR_ENV = "ENGAGE_FAQ_DIR"
INDEX_DIR_ENV = "ENGAGE_FAQ_INDEX"


@dataclass
class KnowledgeBase:
    entries: Sequence[FaqEntry]
    index: PhrasingIndex
    encoder: Encoder
    settings: FaqSettings
    manifest: Optional[store.Manifest] = None
    by_id: Dict[str, FaqEntry] = field(init=False)
    texts: List[str] = field(init=False)
    terms: List[FrozenSet[str]] = field(init=False)
    lexical: Bm25Index = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {entry.id: entry for entry in self.entries}
        self.texts, _ = phrasing_table(self.entries)
        documents = tokenize([entry_document(entry) for entry in self.entries]) if self.entries else []
        self.terms = [frozenset(words) for words in documents]
        self.lexical = Bm25Index(documents)

    @classmethod
    def from_saved(cls, saved: store.SavedIndex, encoder: Encoder, settings: FaqSettings) -> "KnowledgeBase":
        return cls(saved.entries, saved.index, encoder, settings, saved.manifest)

    def get(self, faq_id: str) -> Optional[FaqEntry]:
        return self.by_id.get(faq_id)

    def search(self, query: str, k: Optional[int] = None) -> List[FaqHit]:
        """Blocking (encodes the query, searches FAISS): run it in an executor. Best first."""
        text = self.clean(query)
        if not text.strip() or len(self.index) == 0:
            return []
        return self.rank(text, self.encoder.encode([text])[0], k)

    def clean(self, query: str) -> str:
        """The part of a query that is searched: cut to max_query_chars, ignored words removed."""
        return clean_query(query, self.settings)

    def rank(self, text: str, vector: np.ndarray, k: Optional[int] = None) -> List[FaqHit]:
        """Entries for the cleaned query `text` and its vector: dense candidates, re-ranked with BM25."""
        # Two hits at least, so the policy can see how close the runner-up is.
        k = k if k is not None else max(self.settings.max_suggestions, 2)
        found = self.index.search(vector, max(k, RESCORE_CANDIDATES), self.settings.centroid_weight)
        words = tokenize([text])[0]
        hits = self.hits(found, frozenset(words))
        weight = self.settings.lexical_weight
        if weight > 0 and len(hits) > 1:
            lexical = self.lexical.scores_for(words)[[h.entry for h in found]]
            fused = (1 - weight) * _min_max(np.array([h.score for h in hits])) + weight * _min_max(lexical)
            hits = [hits[i] for i in np.argsort(-fused, kind="stable")]
        return hits[:k]

    def hits(self, found: Sequence[Hit], words: FrozenSet[str]) -> List[FaqHit]:
        """Index hits with their entries, phrasings and coverage of the (cleaned) query's content words `words`."""
        return [FaqHit(self.entries[h.entry], h.score, self.texts[h.row], coverage(words, self.terms[h.entry])) for h in found]


def clean_query(text: str, settings: FaqSettings) -> str:
    """The part of a query that is searched: cut to max_query_chars, ignored words removed."""
    return remove_terms(text[: settings.max_query_chars], settings.ignore_terms)


def _min_max(values: np.ndarray) -> np.ndarray:
    spread = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values, dtype=np.float32)


def faq_directory() -> Path:
    configured = os.environ.get(FAQ_DIR_ENV)
    return Path(configured) if configured else DEFAULT_FAQ_DIR


def index_directory() -> Path:
    """Where the built index lives: $ENGAGE_FAQ_INDEX, else the cache outside the checkout."""
    configured = os.environ.get(INDEX_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("ENGAGE_CACHE") or "~/.cache/engage"
    return Path(cache).expanduser() / "faq-index"


class KnowledgeBaseProvider:
    """Loads the knowledge base once per process, lazily, off the event loop.

    A failed load is remembered for `retry_after` seconds, so a broken or missing
    knowledge base costs one quick check per interval rather than one per question.
    Every `reload_after` seconds the FAQ files' sizes and times are compared with those loaded;
    when they changed (an entry accepted from the FAQ gaps, an edit), the knowledge base is loaded
    again off the event loop and swapped in, the old one answering until then, and kept if the
    new content is refused.
    """

    def __init__(
        self,
        directory: Optional[Path] = None,
        config: Path = DEFAULT_CONFIG,
        encoder_factory: Callable[[], Encoder] = MiniLMEncoder,
        retry_after: float = 30.0,
        index_dir: Optional[Path] = None,
        reload_after: float = 30.0,
    ) -> None:
        self._directory = directory
        self._index_dir = index_dir
        self._config = config
        self._encoder_factory = encoder_factory
        self._encoder: Optional[Encoder] = None
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._loaded: Optional[KnowledgeBase] = None
        self._failure: Optional[KnowledgeBaseUnavailable] = None
        self._failed_at = 0.0
        self._reload_after = reload_after
        self._checked_at = 0.0
        self._signature: Tuple[Tuple[str, int, int], ...] = ()

    @property
    def directory(self) -> Path:
        return self._directory or faq_directory()

    @property
    def index_dir(self) -> Path:
        return self._index_dir or index_directory()

    async def get(self) -> KnowledgeBase:
        """The knowledge base, or KnowledgeBaseUnavailable saying why it cannot answer."""
        if self._loaded is not None:
            if time.monotonic() - self._checked_at >= self._reload_after:
                self._checked_at = time.monotonic()
                if self._files_signature() != self._signature:
                    await asyncio.get_running_loop().run_in_executor(None, self._reload)
            return self._loaded
        return await asyncio.get_running_loop().run_in_executor(None, self.load)

    def _files_signature(self) -> Tuple[Tuple[str, int, int], ...]:
        try:
            return tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in faq_files(self.directory))
        except (OSError, KnowledgeBaseError):
            return ()

    def _reload(self) -> None:
        with self._lock:
            signature = self._files_signature()
            if signature == self._signature:
                return
            try:
                fresh = self._build()
            except (KnowledgeBaseUnavailable, FaqValidationError, KnowledgeBaseError, OSError, RuntimeError, ValueError) as exc:
                self._signature = signature  # not again until the files change again
                logger.error("the FAQ content in %s changed but cannot be loaded; still answering from what was loaded before: %s", self.directory, exc)
                return
            self._loaded, self._signature = fresh, signature
            logger.info("knowledge base reloaded: the FAQ files in %s changed", self.directory)

    def load(self) -> KnowledgeBase:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            if self._failure is not None and time.monotonic() - self._failed_at < self._retry_after:
                raise self._failure
            try:
                signature = self._files_signature()
                self._loaded = self._build()
                self._signature, self._checked_at = signature, time.monotonic()
            except KnowledgeBaseUnavailable as exc:
                self._remember(exc)
                raise
            except FaqValidationError as exc:
                logger.error("the FAQ content in %s is invalid:\n%s", self.directory, exc)
                failure = KnowledgeBaseUnavailable(KnowledgeBaseUnavailable.INVALID, str(exc))
                self._remember(failure)
                raise failure from exc
            except (KnowledgeBaseError, OSError, RuntimeError, ValueError) as exc:
                logger.exception("the knowledge base in %s could not be loaded", self.directory)
                failure = KnowledgeBaseUnavailable(KnowledgeBaseUnavailable.LOAD_FAILED, str(exc))
                self._remember(failure)
                raise failure from exc
            return self._loaded

    def _remember(self, failure: KnowledgeBaseUnavailable) -> None:
        self._failure = failure
        self._failed_at = time.monotonic()

    def _build(self) -> KnowledgeBase:
        settings = load_settings(self._config)
        sources = faq_files(self.directory)
        entries = load_files(sources)
        if not entries:
            raise KnowledgeBaseUnavailable(KnowledgeBaseUnavailable.EMPTY, f"no FAQ entries in {self.directory}")
        if self._encoder is None:
            self._encoder = self._encoder_factory()
        encoder = self._encoder
        started = time.perf_counter()
        try:
            saved = store.load(self.index_dir, encoder.identity(), settings.index, expected_hash(entries, encoder, settings))
            how = f"loaded the index built {saved.manifest.built_at}"
        except IndexUnavailable as exc:
            logger.warning("building the FAQ index in process: %s", exc.problem)
            saved = build_index(entries, encoder, settings, sources)
            how = "built the index"
            try:
                store.save(self.index_dir, saved)
                how += f" and saved it to {self.index_dir}"
            except OSError as save_error:
                logger.warning("could not save the FAQ index to %s (%s); it is used from memory", self.index_dir, save_error)
        set_threads(settings.index.threads)
        knowledge_base = KnowledgeBase(entries, saved.index, encoder, settings, saved.manifest)
        logger.info(
            "knowledge base ready: %d entries, %d phrasings (%s index) from %s; %s in %.1fs",
            len(entries),
            len(saved.index),
            saved.index.kind,
            self.directory,
            how,
            time.perf_counter() - started,
        )
        return knowledge_base


def search_encoder() -> Encoder:
    """MiniLM for a process that only searches the index (the staff console): the ONNX export when
    it was made from the installed weights (no PyTorch: about 500 MB and seconds less), answering
    under the PyTorch identity the index was built with; else PyTorch itself, with a warning."""
    from knowledge_base.onnx_encoder import stand_in_or_none

    model = MiniLMEncoder()
    stand_in = stand_in_or_none(model)
    if stand_in is not None:
        return stand_in
    logger.warning("no ONNX export of MiniLM made from the installed weights (run `make setup`); searching the FAQ with PyTorch")
    return model


_default: Optional[KnowledgeBaseProvider] = None
_default_lock = threading.Lock()


def default_provider() -> KnowledgeBaseProvider:
    """The process-wide provider (created on first use, not at import)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = KnowledgeBaseProvider()
        return _default
