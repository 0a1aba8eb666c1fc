"""`python -m knowledge_base build | query | evaluate`: results, exit codes and messages, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from knowledge_base.cli import main
from knowledge_base.loader import load_directory
from knowledge_base.service import DEFAULT_FAQ_DIR
from tests.knowledge_base.helpers import BagOfWordsEncoder, write_sample_kb

ROOT = Path(__file__).resolve().parents[2]


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv, encoder_factory=BagOfWordsEncoder)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def kb(tmp_path: Path) -> Tuple[Path, Path, Path]:
    faq_dir, config = write_sample_kb(tmp_path / "kb")
    return faq_dir, config, tmp_path / "index"


def test_build_then_up_to_date_then_forced(kb, capsys) -> None:
    faq_dir, config, out = kb
    code, stdout, _ = run(["build", str(faq_dir), "--out", str(out), "--config", str(config), "--quiet"], capsys)
    assert code == 0 and "4 entries, 10 vectors of 512 dimensions, flat index" in stdout
    assert (out / "manifest.json").is_file()
    code, stdout, _ = run(["build", str(faq_dir / "sample.yml"), "--out", str(out), "--config", str(config)], capsys)
    assert code == 0 and "up to date" in stdout
    code, stdout, _ = run(["build", str(faq_dir), "--out", str(out), "--config", str(config), "--force", "--quiet"], capsys)
    assert code == 0 and "built in" in stdout


def test_build_reports_invalid_content_with_file_and_entry(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yml").write_text("- id: x\n  question: Q?\n  answer: ''\n")
    code, _, stderr = run(["build", str(tmp_path / "bad.yml"), "--out", str(tmp_path / "i")], capsys)
    assert code == 2 and "bad.yml: entry #1 (id 'x'): 'answer' is empty" in stderr
    assert not (tmp_path / "i").exists(), "nothing half-written"
    code, _, stderr = run(["build", str(tmp_path / "absent"), "--out", str(tmp_path / "i")], capsys)
    assert code == 2 and "no such file or folder" in stderr
    (tmp_path / "empty").mkdir()
    code, _, stderr = run(["build", str(tmp_path / "empty"), "--out", str(tmp_path / "i")], capsys)
    assert code == 2 and "no FAQ files" in stderr


def test_build_into_an_unwritable_place_is_a_clear_error(kb, tmp_path: Path, capsys) -> None:
    faq_dir, config, _ = kb
    (tmp_path / "file").write_text("x")
    code, _, stderr = run(["build", str(faq_dir), "--out", str(tmp_path / "file" / "index"), "--config", str(config), "--quiet"], capsys)
    assert code == 2 and stderr.startswith("error:")


@pytest.fixture
def built(kb, capsys) -> Tuple[Path, Path, Path]:
    faq_dir, config, out = kb
    assert run(["build", str(faq_dir), "--out", str(out), "--config", str(config), "--quiet"], capsys)[0] == 0
    return kb


def test_query_shows_ranked_entries_and_the_decision(built, capsys) -> None:
    _, config, out = built
    code, stdout, _ = run(["query", str(out), "forgot password", "--config", str(config)], capsys)
    assert code == 0
    assert "1. 1.000  reset-password  How do I reset my password?" in stdout
    assert "matched: forgot password" in stdout and "the assistant would: answer with reset-password" in stdout
    code, stdout, _ = run(["query", str(out), "forgot password", "--k", "2", "--json", "--config", str(config)], capsys)
    result = json.loads(stdout)
    assert result["decision"] == "answer" and [h["faq_id"] for h in result["hits"]][0] == "reset-password"
    assert len(result["hits"]) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("   ", "error: the query is empty"),
        ("🙂🙂🙂", "the assistant would: say it does not know"),
        ("¿Cómo restablezco mi contraseña?", "the assistant would:"),
        ("Quillstack", "nothing left to search for"),
    ],
)
def test_odd_queries_get_an_answer_or_a_clear_error(built, capsys, text: str, expected: str) -> None:
    _, config, out = built
    code, stdout, stderr = run(["query", str(out), text, "--config", str(config)], capsys)
    assert expected in stdout + stderr
    assert code == (2 if "error" in expected else 0)


def test_a_very_long_query_is_cut_and_says_so(built, capsys) -> None:
    _, config, out = built
    code, stdout, stderr = run(["query", str(out), "export " * 1500, "--config", str(config)], capsys)
    assert code == 0 and "the first 1000 are searched" in stderr


def test_query_refuses_missing_corrupt_and_other_model_indexes(built, tmp_path: Path, capsys) -> None:
    _, config, out = built
    code, _, stderr = run(["query", str(tmp_path / "absent"), "hi", "--config", str(config)], capsys)
    assert code == 2 and "no index at" in stderr and "python -m knowledge_base build" in stderr
    (out / "index.faiss").write_bytes(b"\0" * 32)
    code, _, stderr = run(["query", str(out), "hi", "--config", str(config)], capsys)
    assert code == 2 and "does not match its checksum" in stderr
    code, _, stderr = run(["query", str(out), "hi", "--k", "0", "--config", str(config)], capsys)
    assert code == 2 and "--k must be between 1 and 100" in stderr


def test_query_warns_when_the_sources_changed_since_the_build(built, capsys) -> None:
    faq_dir, config, out = built
    (faq_dir / "sample.yml").write_text((faq_dir / "sample.yml").read_text() + "\n# edited\n")
    code, _, stderr = run(["query", str(out), "forgot password", "--config", str(config)], capsys)
    assert code == 0 and "the index is stale" in stderr and "sample.yml (changed)" in stderr


def test_evaluate_prints_metrics_beside_bm25_and_checks_held_out_queries(kb, tmp_path: Path, capsys) -> None:
    faq_dir, config, _ = kb
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps(q)
            for q in (
                {"query": "I forgot the password", "faq_id": "reset-password"},
                {"query": "responses as CSV please", "faq_id": "export-csv"},
                {"query": "okta single sign-on", "faq_id": "sso-okta"},
                {"query": "what is the weather tomorrow", "faq_id": None},
            )
        )
    )
    plot = tmp_path / "curve.png"
    code, stdout, _ = run(
        ["evaluate", "--faqs", str(faq_dir), "--queries", str(queries), "--check", str(queries), "--config", str(config), "--calibrate", "--plot", str(plot)],
        capsys,
    )
    assert code == 0
    for expected in ("P@1", "MRR@10", "Recall@5", "BM25", "calibrated on these queries", "answer-rate / precision curve", "abstain recall"):
        assert expected in stdout
    assert plot.stat().st_size > 10_000
    code, stdout, _ = run(["evaluate", "--faqs", str(faq_dir / "sample.yml"), "--queries", str(queries), "--config", str(config), "--json"], capsys)
    report = json.loads(stdout)
    assert report["dense"]["ranking"]["p_at_1"] == 1.0 and report["in_scope"] == 3 and report["to_abstain"] == 1
    assert {"p_at_1", "mrr_at_10", "recall_at_5"} <= set(report["bm25"]["ranking"])
    assert report["dense"]["configured"]["abstain_recall"] == 1.0


def test_evaluate_names_bad_query_lines(kb, tmp_path: Path, capsys) -> None:
    faq_dir, config, _ = kb
    (tmp_path / "q.jsonl").write_text('{"query": "x", "faq_id": "nope"}\n')
    code, _, stderr = run(["evaluate", "--faqs", str(faq_dir), "--queries", str(tmp_path / "q.jsonl"), "--config", str(config)], capsys)
    assert code == 2 and "line 1" in stderr and "'nope' is not an entry" in stderr


@pytest.mark.minilm
def test_the_module_runs_with_the_real_encoder(tmp_path: Path) -> None:
    """The command a user types, in a subprocess with the real MiniLM and the shipped FAQ."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "index"
    build = subprocess.run(
        [sys.executable, "-m", "knowledge_base", "build", "knowledge_base/faqs", "--out", str(out), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert f"{len(load_directory(DEFAULT_FAQ_DIR))} entries" in build.stdout
    query = subprocess.run(
        [sys.executable, "-m", "knowledge_base", "query", str(out), "how can I reset my password", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert query.returncode == 0, query.stderr
    result = json.loads(query.stdout)
    assert result["hits"][0]["faq_id"] == "account-password-reset" and result["decision"] == "answer"
