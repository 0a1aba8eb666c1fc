"""The knowledge base and its lazy provider, with a bag-of-words encoder standing in for MiniLM."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from knowledge_base.errors import KnowledgeBaseUnavailable
from knowledge_base.service import KnowledgeBaseProvider
from tests.knowledge_base.helpers import TEST_CONFIG, BagOfWordsEncoder, write_sample_kb, write_yaml


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


async def test_a_saved_index_is_loaded_instead_of_encoding_again(tmp_path: Path, private_index_dir: Path) -> None:
    await provider_for(tmp_path, BagOfWordsEncoder()).get()
    assert (private_index_dir / "manifest.json").is_file()
    encoder = BagOfWordsEncoder()
    knowledge_base = await provider_for(tmp_path, encoder).get()  # as a restarted action server would
    assert encoder.calls == 0, "an up-to-date index must not be rebuilt"
    assert knowledge_base.search("forgot password")[0].entry.id == "reset-password"
    assert knowledge_base.manifest is not None and knowledge_base.manifest.entries == 4


async def test_changed_content_rebuilds_the_index(tmp_path: Path, private_index_dir: Path) -> None:
    await provider_for(tmp_path, BagOfWordsEncoder()).get()
    faq_dir = tmp_path / "faqs"
    data = (faq_dir / "sample.yml").read_text().replace("Use 'Forgot password'", "Click 'Forgot password'")
    (faq_dir / "sample.yml").write_text(data)
    encoder = BagOfWordsEncoder()
    knowledge_base = await KnowledgeBaseProvider(directory=faq_dir, config=tmp_path / "config.yml", encoder_factory=lambda: encoder).get()
    assert encoder.calls == 1
    assert knowledge_base.get("reset-password").answer.startswith("Click")


@pytest.mark.parametrize("damage", ["corrupt", "missing", "other-model"])
async def test_an_unusable_index_is_rebuilt_and_the_reason_logged(
    tmp_path: Path, private_index_dir: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    await provider_for(tmp_path, BagOfWordsEncoder()).get()
    if damage == "corrupt":
        (private_index_dir / "index.faiss").write_bytes(b"\0" * 64)
    elif damage == "missing":
        (private_index_dir / "manifest.json").unlink()
    else:
        manifest = json.loads((private_index_dir / "manifest.json").read_text())
        manifest["model"]["model"] = "other/model"
        (private_index_dir / "manifest.json").write_text(json.dumps(manifest))
    encoder = BagOfWordsEncoder()
    with caplog.at_level(logging.WARNING, logger="knowledge_base.service"):
        knowledge_base = await provider_for(tmp_path, encoder).get()
    assert encoder.calls == 1
    assert "building the FAQ index in process" in caplog.text
    assert knowledge_base.search("forgot password")[0].entry.id == "reset-password"
    assert json.loads((private_index_dir / "manifest.json").read_text())["model"]["model"] == "test/bag-of-words"


async def test_an_unwritable_index_folder_still_answers_from_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the index folder's parent should be")
    with caplog.at_level(logging.WARNING, logger="knowledge_base.service"):
        knowledge_base = await provider_for(tmp_path, BagOfWordsEncoder(), index_dir=blocker / "index").get()
    assert "could not save the FAQ index" in caplog.text
    assert knowledge_base.search("forgot password")[0].entry.id == "reset-password"


def test_index_directory_comes_from_the_environment_or_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENGAGE_FAQ_INDEX", str(tmp_path / "i"))
    assert KnowledgeBaseProvider().index_dir == tmp_path / "i"
    monkeypatch.delenv("ENGAGE_FAQ_INDEX")
    monkeypatch.setenv("ENGAGE_CACHE", str(tmp_path / "cache"))
    assert KnowledgeBaseProvider().index_dir == tmp_path / "cache" / "faq-index"


async def test_lexical_weight_reranks_candidates_and_coverage_is_reported(tmp_path: Path) -> None:
    faq_dir, _ = write_sample_kb(tmp_path)
    config = {**TEST_CONFIG, "lexical_weight": 1.0}
    write_yaml(tmp_path / "lexical.yml", config)
    provider = KnowledgeBaseProvider(directory=faq_dir, config=tmp_path / "lexical.yml", encoder_factory=BagOfWordsEncoder)
    knowledge_base = await provider.get()
    # Only BM25 counts: "PDF" appears in the export-pdf entry's text.
    hits = knowledge_base.search("the pdf")
    assert hits[0].entry.id == "export-pdf"
    assert hits[0].coverage == pytest.approx(1.0)  # "pdf" is in its text; "the" is a stop word
    assert [h.coverage for h in knowledge_base.search("pdf spreadsheet")][:1] == [pytest.approx(0.5)]


async def test_changed_faq_files_are_reloaded_and_refused_content_keeps_what_was_loaded(tmp_path: Path) -> None:
    encoder = BagOfWordsEncoder()
    provider = provider_for(tmp_path, encoder, reload_after=0)
    first = await provider.get()
    assert await provider.get() is first  # unchanged files: the same knowledge base, nothing encoded again
    assert first.get("pay-bitcoin") is None
    faq_dir = tmp_path / "faqs"
    write_yaml(faq_dir / "gaps.yml", [{"id": "pay-bitcoin", "question": "Can I pay in Bitcoin?", "answer": "No, cards and bank transfer only."}])
    second = await provider.get()
    assert second is not first and second.get("pay-bitcoin").answer == "No, cards and bank transfer only."
    assert second.search("pay in bitcoin")[0].entry.id == "pay-bitcoin"
    write_yaml(faq_dir / "broken.yml", [{"id": "broken"}])  # no question, no answer: refused
    assert await provider.get() is second
    assert await provider.get() is second  # not tried again until the files change again
