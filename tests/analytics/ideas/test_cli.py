"""`python -m analytics ideas cluster`: real MiniLM on a small file of ideas, and bad files refused."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.__main__ import main
from analytics.ideas import cli
from tests.knowledge_base.helpers import minilm

ROOT = Path(__file__).resolve().parents[3]

IDEAS = [
    ("d1", "add dark mode"),
    ("d2", "please add a dark mode"),
    ("d3", "can we get dark mode in the editor?", {"product": "docs", "feature": "editor"}),
    ("p1", "export my dashboard as a PDF"),
    ("p2", "please let me export dashboards to PDF"),
    ("p3", "let me save a dashboard to pdf for the board meeting"),
    ("t1", "integrate with Microsoft Teams"),
    ("t2", "we use Teams, please build a Microsoft Teams integration"),
    ("x1", "the invoice total was wrong last month"),
    ("e1", "🌙🌙🌙"),
]


def write(path: Path, rows: list) -> Path:
    lines = [{"id": row[0], "text": row[1], **({"context": row[2]} if len(row) > 2 else {})} for row in rows]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def args(path: Path, as_json: bool = True) -> object:
    return type("Args", (), {"input": path, "json": as_json})()


@pytest.mark.minilm
def test_overlapping_ideas_become_themes_and_the_rest_is_unclustered(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(args(write(tmp_path / "ideas.jsonl", IDEAS)), out, err, encoder=minilm()) == 0
    result = json.loads(out.getvalue())
    themes = sorted(sorted(cluster["members"]) for cluster in result["clusters"])
    assert themes == [["d1", "d2", "d3"], ["p1", "p2", "p3"], ["t1", "t2"]]
    assert set(result["unclustered"]) == {"x1", "e1"}
    dark = next(c for c in result["clusters"] if "d1" in c["members"])
    assert "dark mode" in dark["label"]
    assert dark["areas"] == {"Platform / Appearance": 2, "Docs / Editor": 1}  # d3 came with in-use context
    teams = next(c for c in result["clusters"] if "t1" in c["members"])
    assert "teams" in teams["label"] and teams["areas"] == {"Integrations / Microsoft Teams": 2}
    assert [c["id"] for c in result["clusters"]] == ["T1", "T2", "T3"]
    assert "e1' has no words" in err.getvalue()


@pytest.mark.minilm
def test_the_text_report_lists_themes_with_quotes(tmp_path: Path) -> None:
    out = io.StringIO()
    assert cli.run(args(write(tmp_path / "ideas.jsonl", IDEAS[:6]), as_json=False), out, io.StringIO(), encoder=minilm()) == 0
    report = out.getvalue()
    assert report.startswith("2 themes, 6 ideas in them, 0 unclustered")
    assert '"add dark mode"' in report or '"please give us a night theme"' in report


def test_bad_lines_are_named_and_nothing_is_printed_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "dark mode"}\n{"id": 2, "text": "night theme"\n', encoding="utf-8")
    assert main(["ideas", "cluster", "--input", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:2: not JSON" in captured.err


def test_the_command_runs_as_a_module_and_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "analytics", "ideas", "cluster", "--input", str(path)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert "no ideas in the file" in done.stderr
