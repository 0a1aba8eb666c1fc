"""The knowledge base and its lazy provider, with a bag-of-words encoder standing in for MiniLM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from knowledge_base.errors import KnowledgeBaseUnavailable
from knowledge_base.service import KnowledgeBaseProvider
from tests.knowledge_base.helpers import BagOfWordsEncoder, write_sample_kb, write_yaml


def provider_for(tmp_path: Path, encoder: BagOfWordsEncoder, **kwargs: object) -> KnowledgeBaseProvider:
    faq_dir, config = write_sample_kb(tmp_path)
    return KnowledgeBaseProvider(directory=faq_dir, config=config, encoder_factory=lambda: encoder, **kwargs)


async def test_loads_once_lazily_and_off_the_event_loop(tmp_path: Path) -> None:
    encoder = BagOfWordsEncoder()
    provider = provider_for(tmp_path, encoder)
    assert encoder.calls == 0, "nothing may load before the first question"
    first, second = await asyncio.gather(provider.get(), provider.get())
    assert first is second
    assert encoder.calls == 1  # the phrasings, encoded once in one batch
    assert len(first.index) == 4 + 6  # questions + alternatives
    assert await provider.get() is first


async def test_search_returns_entries_best_first_with_the_matched_phrasing(tmp_path: Path) -> None:
    knowledge_base = await provider_for(tmp_path, BagOfWordsEncoder()).get()
    hits = knowledge_base.search("I forgot password")
    assert hits[0].entry.id == "reset-password"
    assert hits[0].matched == "forgot password"
    assert hits[0].score > hits[1].score
    assert len(hits) == 3  # max_suggestions
    assert knowledge_base.get("sso-okta").question.startswith("Do you support")
    assert knowledge_base.get("nope") is None


async def test_ignored_terms_are_removed_from_queries_and_phrasings(tmp_path: Path) -> None:
    encoder = BagOfWordsEncoder()
    knowledge_base = await provider_for(tmp_path, encoder).get()
    assert knowledge_base.search("Quillstack") == []
    knowledge_base.search("Quillstack SSO setup")
    assert encoder.texts[-1] == "SSO setup"


async def test_long_queries_are_cut_to_max_query_chars(tmp_path: Path) -> None:
    encoder = BagOfWordsEncoder()
    knowledge_base = await provider_for(tmp_path, encoder).get()
    knowledge_base.search("export " * 2000)
    assert len(encoder.texts[-1]) <= 1000


async def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    provider = KnowledgeBaseProvider(directory=tmp_path / "absent", encoder_factory=BagOfWordsEncoder)
    with pytest.raises(KnowledgeBaseUnavailable) as caught:
        await provider.get()
    assert caught.value.reason == KnowledgeBaseUnavailable.MISSING


async def test_empty_directory_is_unavailable_and_loads_no_model(tmp_path: Path) -> None:
    (tmp_path / "faqs").mkdir()
    made = []
    provider = KnowledgeBaseProvider(directory=tmp_path / "faqs", encoder_factory=lambda: made.append(1) or BagOfWordsEncoder())
    with pytest.raises(KnowledgeBaseUnavailable) as caught:
        await provider.get()
    assert caught.value.reason == KnowledgeBaseUnavailable.EMPTY
    assert made == []


async def test_invalid_content_is_unavailable_with_the_file_named(tmp_path: Path) -> None:
    write_yaml(tmp_path / "faqs" / "bad.yml", [{"id": "x", "question": "Q?", "alternatives": [], "answer": ""}])
    provider = KnowledgeBaseProvider(directory=tmp_path / "faqs", encoder_factory=BagOfWordsEncoder)
    with pytest.raises(KnowledgeBaseUnavailable) as caught:
        await provider.get()
    assert caught.value.reason == KnowledgeBaseUnavailable.INVALID
    assert "bad.yml" in caught.value.detail and "'answer' is empty" in caught.value.detail


async def test_a_bad_config_is_a_load_failure(tmp_path: Path) -> None:
    faq_dir, _ = write_sample_kb(tmp_path)
    provider = KnowledgeBaseProvider(directory=faq_dir, config=tmp_path / "absent.yml", encoder_factory=BagOfWordsEncoder)
    with pytest.raises(KnowledgeBaseUnavailable) as caught:
        await provider.get()
    assert caught.value.reason == KnowledgeBaseUnavailable.LOAD_FAILED


async def test_a_failure_is_remembered_then_retried(tmp_path: Path) -> None:
    directory = tmp_path / "faqs"
    provider = KnowledgeBaseProvider(directory=directory, encoder_factory=BagOfWordsEncoder, retry_after=3600)
    with pytest.raises(KnowledgeBaseUnavailable):
        await provider.get()
    write_sample_kb(tmp_path)
    with pytest.raises(KnowledgeBaseUnavailable):
        await provider.get()  # still within retry_after: the remembered failure
    provider._retry_after = 0.0  # the interval has passed
    assert len((await provider.get()).entries) == 4


def test_directory_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENGAGE_FAQ_DIR", str(tmp_path))
    assert KnowledgeBaseProvider().directory == tmp_path
