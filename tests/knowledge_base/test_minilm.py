"""Search with the real MiniLM encoder (loaded once; marked `minilm`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge_base.policy import Outcome, decide
from knowledge_base.service import DEFAULT_FAQ_DIR, KnowledgeBaseProvider
from knowledge_base.settings import DEFAULT_CONFIG
from tests.knowledge_base.helpers import minilm, write_sample_kb

pytestmark = pytest.mark.minilm


def test_vectors_are_normalised_float32_from_one_torch_thread() -> None:
    import torch

    vectors = minilm().encode(["How do I reset my password?", ""])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert torch.get_num_threads() == 1


async def test_paraphrases_find_their_entry_and_unrelated_questions_do_not(tmp_path: Path) -> None:
    faq_dir, _ = write_sample_kb(tmp_path)
    provider = KnowledgeBaseProvider(directory=faq_dir, config=DEFAULT_CONFIG, encoder_factory=minilm)
    knowledge_base = await provider.get()
    settings = knowledge_base.settings

    close = knowledge_base.search("I forgot my password, how can I reset it?")
    assert close[0].entry.id == "reset-password"
    assert decide(close, settings).outcome is Outcome.ANSWER

    assert knowledge_base.search("can we log in through Okta")[0].entry.id == "sso-okta"
    assert knowledge_base.search("get the survey answers out as a csv file")[0].entry.id == "export-csv"

    unrelated = knowledge_base.search("what's the weather in Paris tomorrow?")
    assert decide(unrelated, settings).outcome is Outcome.UNKNOWN


async def test_odd_queries_do_not_break_the_search(tmp_path: Path) -> None:
    faq_dir, _ = write_sample_kb(tmp_path)
    knowledge_base = await KnowledgeBaseProvider(directory=faq_dir, config=DEFAULT_CONFIG, encoder_factory=minilm).get()
    for query in ("🙂🙂🙂", "x" * 10_000, "export " * 3000, "\u0000\u200b", "¿Cómo exporto a PDF?"):
        hits = knowledge_base.search(query)
        assert all(-1.0 <= h.score <= 1.0 + 1e-5 for h in hits)


async def test_every_shipped_question_finds_its_own_entry() -> None:
    knowledge_base = await KnowledgeBaseProvider(directory=DEFAULT_FAQ_DIR, config=DEFAULT_CONFIG, encoder_factory=minilm).get()
    wrong = [
        (entry.id, hits[0].entry.id)
        for entry in knowledge_base.entries
        if (hits := knowledge_base.search(entry.question))[0].entry.id != entry.id
    ]
    assert wrong == []
