"""Test helpers for the knowledge base: a transparent bag-of-words encoder, the real MiniLM, FAQ files."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pytest
import yaml

from knowledge_base.encoder import EncoderIdentity

DIM = 512
_WORD = re.compile(r"[a-z0-9]+")


class BagOfWordsEncoder:
    """Stand-in for MiniLM whose scores a test can reason about: cosine of word counts.

    Words hash into DIM buckets with crc32, so a text's vector depends only on its
    words; `calls` counts encode() calls so tests can see what was (re)encoded.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.texts: List[str] = []

    def identity(self) -> EncoderIdentity:
        return EncoderIdentity("test/bag-of-words", "crc32", DIM)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        matrix = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                matrix[row, zlib.crc32(word.encode()) % DIM] += 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


_minilm: Optional[object] = None


def minilm():
    """The real MiniLM encoder, loaded once per test session."""
    global _minilm
    if _minilm is None:
        from knowledge_base.encoder import MiniLMEncoder

        _minilm = MiniLMEncoder()
    return _minilm


# A small FAQ whose phrasings share few words, so bag-of-words scores are easy to predict.
SAMPLE_FAQ = [
    {
        "id": "reset-password",
        "question": "How do I reset my password?",
        "alternatives": ["forgot password", "cannot log in"],
        "answer": "Use 'Forgot password' on the sign-in page.",
        "url": "https://help.quillstack.example/account/password",
        "tags": ["account"],
        "product_area": "account",
    },
    {
        "id": "export-csv",
        "question": "Can I export form responses to CSV?",
        "alternatives": ["download responses as a spreadsheet"],
        "answer": "Open the form, choose Responses, then Export to CSV.",
        "product_area": "forms",
    },
    {
        "id": "sso-okta",
        "question": "Do you support single sign-on with Okta?",
        "alternatives": ["SAML SSO setup", "Azure AD login"],
        "answer": "Yes, SAML SSO with Okta or Azure AD is on the Business plan.",
        "url": "https://help.quillstack.example/security/sso",
    },
    {
        "id": "export-pdf",
        "question": "Can I export a page to PDF?",
        "alternatives": ["save a doc as PDF"],
        "answer": "Open the page menu and choose Export, then PDF.",
    },
]

TEST_CONFIG = {
    "answer_threshold": 0.8,
    "answer_margin": 0.05,
    "suggest_threshold": 0.25,
    "max_suggestions": 3,
    "max_query_chars": 1000,
    "ignore_terms": ["Quillstack"],
}


def write_yaml(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_sample_kb(root: Path, config: Optional[dict] = None) -> tuple[Path, Path]:
    """A FAQ directory and a config file under `root`; returns (faq_dir, config_path)."""
    faq_dir = root / "faqs"
    write_yaml(faq_dir / "sample.yml", SAMPLE_FAQ)
    config_path = write_yaml(root / "config.yml", config or TEST_CONFIG)
    return faq_dir, config_path


@pytest.fixture(autouse=True)
def private_index_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's knowledge base saves its index in a private folder, never in the user's cache."""
    directory = tmp_path_factory.mktemp("faq-index") / "index"
    monkeypatch.setenv("ENGAGE_FAQ_INDEX", str(directory))
    return directory
