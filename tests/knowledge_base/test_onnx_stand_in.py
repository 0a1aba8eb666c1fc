"""The staff console searches the FAQ index with MiniLM's ONNX export (knowledge_base.onnx_encoder.OnnxStandIn):
the index the action server builds with PyTorch loads as it is, and every evaluation query gets the same
entries in the same order with the same scores, to a tolerance measured here (marked `minilm`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from knowledge_base.encoder import MiniLMEncoder
from knowledge_base.onnx_encoder import DEFAULT_EXPORT, REQUIRED, OnnxStandIn, export_present, stand_in_or_none
from knowledge_base.search import phrasing_table
from knowledge_base.service import DEFAULT_FAQ_DIR, KnowledgeBaseProvider, search_encoder
from knowledge_base.loader import faq_files, load_files
from tests.knowledge_base.helpers import minilm

pytestmark = [
    pytest.mark.minilm,
    pytest.mark.skipif(not export_present(), reason="no ONNX export of MiniLM: run `make setup`"),
]
ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "knowledge_base" / "eval"
# Vectors are unit length; the export's own check allows 1e-4 and measured 2.2e-7 on 8 probes.
VECTOR_TOLERANCE = 1e-5


def eval_queries() -> List[str]:
    return [json.loads(line)["query"] for name in ("calibration.jsonl", "holdout.jsonl")
            for line in (EVAL / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_export_stands_in_for_the_installed_weights_under_their_identity() -> None:
    stand_in = search_encoder()
    assert isinstance(stand_in, OnnxStandIn)
    assert stand_in.identity() == MiniLMEncoder().identity()  # what the action server's index was built with


def test_onnx_and_pytorch_vectors_agree_on_every_faq_phrasing_and_eval_query() -> None:
    stand_in = stand_in_or_none()
    assert stand_in is not None
    texts, _ = phrasing_table(load_files(faq_files(DEFAULT_FAQ_DIR)))
    texts = [*texts, *eval_queries(), "", "Können Sie mir helfen? 🙁", "export " * 400]
    onnx, torch = stand_in.encode(texts), minilm().encode(texts)
    assert onnx.shape == torch.shape and onnx.dtype == np.float32
    worst = float(np.abs(onnx - torch).max())
    assert worst < VECTOR_TOLERANCE, f"{len(texts)} texts: largest difference {worst:.2e}"
    assert float((onnx * torch).sum(axis=1).min()) > 1 - VECTOR_TOLERANCE


async def test_the_pytorch_index_answers_every_eval_query_the_same_through_the_export(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    # The action server's way: PyTorch builds and saves the index.
    built = await KnowledgeBaseProvider(index_dir=index_dir, encoder_factory=minilm).get()
    manifest = (index_dir / "manifest.json").read_bytes()
    # The console's way: the same folder, loaded (not rebuilt) with the export.
    searched = await KnowledgeBaseProvider(index_dir=index_dir, encoder_factory=search_encoder).get()
    assert isinstance(searched.encoder, OnnxStandIn)
    assert (index_dir / "manifest.json").read_bytes() == manifest
    assert searched.manifest is not None and searched.manifest.built_at == built.manifest.built_at
    for query in eval_queries():
        expected, got = built.search(query, 5), searched.search(query, 5)
        assert [h.entry.id for h in got] == [h.entry.id for h in expected], query
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=VECTOR_TOLERANCE), query


def test_an_export_of_other_weights_is_not_used(tmp_path: Path) -> None:
    other = tmp_path / "minilm-onnx"
    other.mkdir()
    for name in REQUIRED:
        if name != "manifest.json":
            (other / name).symlink_to((DEFAULT_EXPORT / name).resolve())
    manifest = json.loads((DEFAULT_EXPORT / "manifest.json").read_text(encoding="utf-8"))
    (other / "manifest.json").write_text(json.dumps({**manifest, "hash": "0123456789ab"}), encoding="utf-8")
    assert stand_in_or_none(export_dir=other) is None
    assert stand_in_or_none(export_dir=tmp_path / "nowhere") is None


def test_searching_through_the_stand_in_never_imports_pytorch(tmp_path: Path) -> None:
    script = (
        "import sys, asyncio\n"
        "from knowledge_base.service import KnowledgeBaseProvider, search_encoder\n"
        f"kb = asyncio.run(KnowledgeBaseProvider(index_dir={str(tmp_path / 'index')!r}, encoder_factory=search_encoder).get())\n"
        "assert kb.search('can we log in with Okta?')[0].entry.id == 'security-sso-saml-setup'\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
