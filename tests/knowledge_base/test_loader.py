"""FAQ loading: valid YAML and JSON, and errors that name the file and the entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from knowledge_base.errors import FaqValidationError, KnowledgeBaseUnavailable
from knowledge_base.loader import load_directory, load_file
from tests.knowledge_base.helpers import SAMPLE_FAQ, write_yaml


def entry(entry_id: str = "e1", **overrides: object) -> dict:
    base = {"id": entry_id, "question": f"Question {entry_id}?", "alternatives": [f"alt {entry_id}"], "answer": "An answer."}
    base.update(overrides)
    return base


def problems(directory: Path) -> List[str]:
    with pytest.raises(FaqValidationError) as caught:
        load_directory(directory)
    return [str(p) for p in caught.value.problems]


def test_loads_yaml_with_every_field(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", SAMPLE_FAQ)
    entries = load_directory(tmp_path)
    assert [e.id for e in entries] == ["reset-password", "export-csv", "sso-okta", "export-pdf"]
    first = entries[0]
    assert first.question == "How do I reset my password?"
    assert first.alternatives == ("forgot password", "cannot log in")
    assert first.url == "https://help.quillstack.example/account/password"
    assert first.tags == ("account",)
    assert first.product_area == "account"
    assert first.source.endswith("a.yml")
    assert first.phrasings == ("How do I reset my password?", "forgot password", "cannot log in")
    assert entries[3].url is None and entries[3].tags == ()


def test_loads_json_with_the_same_fields(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps([entry("j1", url="https://x.example/j1", tags=["t"])]))
    (only,) = load_directory(tmp_path)
    assert (only.id, only.url, only.tags) == ("j1", "https://x.example/j1", ("t",))


def test_files_load_in_name_order_and_other_files_are_ignored(tmp_path: Path) -> None:
    write_yaml(tmp_path / "b.yaml", [entry("second")])
    write_yaml(tmp_path / "a.yml", [entry("first")])
    (tmp_path / "README.md").write_text("not FAQ content")
    assert [e.id for e in load_directory(tmp_path)] == ["first", "second"]


def test_whitespace_is_tidied_and_answer_lines_kept(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry(question="  How   do I\n do this? ", answer="Line one.\nLine two.\n")])
    (only,) = load_directory(tmp_path)
    assert only.question == "How do I do this?"
    assert only.answer == "Line one.\nLine two."


def test_alternatives_repeating_the_question_are_dropped(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry(question="Reset password?", alternatives=["reset password?", "new password", "New Password"])])
    (only,) = load_directory(tmp_path)
    assert only.alternatives == ("new password",)


def test_duplicate_ids_across_files_name_both_files(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry("same")])
    write_yaml(tmp_path / "b.yml", [entry("same", question="Other?", alternatives=["other"])])
    (message,) = problems(tmp_path)
    assert "b.yml" in message and "a.yml" in message and "'same'" in message and "duplicate id" in message


def test_duplicate_ids_within_a_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "a.yml", [entry("x"), entry("x", question="Other?", alternatives=[])])
    with pytest.raises(FaqValidationError, match="duplicate id"):
        load_file(path)


def test_empty_answer_names_file_and_entry(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry("ok"), entry("blank", answer="   ")])
    (message,) = problems(tmp_path)
    assert "a.yml" in message and "entry #2 (id 'blank')" in message and "'answer' is empty" in message


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry("x", answr="typo")])
    (message,) = problems(tmp_path)
    assert "unknown field(s) answr" in message and "id 'x'" in message


def test_missing_required_fields_are_each_reported(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [{"question": "Q?"}])
    found = problems(tmp_path)
    assert any("entry #1" in p and "missing required field 'id'" in p for p in found)
    assert any("missing required field 'answer'" in p for p in found)
    assert not any("'alternatives'" in p for p in found)


def test_alternatives_are_optional(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [{"id": "x", "question": "Q?", "answer": "A."}, {"id": "y", "question": "R?", "alternatives": None, "answer": "B."}])
    assert [e.alternatives for e in load_directory(tmp_path)] == [(), ()]


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("- id: a\n  question: [unclosed\n  answer: x\n")
    (message,) = problems(tmp_path)
    assert "broken.yml" in message and "not valid YAML" in message and "line" in message


def test_duplicate_yaml_keys_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "dup.yml").write_text(
        "- id: a\n  question: Q?\n  alternatives: []\n  answer: first\n  answer: second\n"
    )
    (message,) = problems(tmp_path)
    assert "dup.yml" in message and "duplicate key 'answer'" in message


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('[{"id": "a",\n "question": }]')
    (message,) = problems(tmp_path)
    assert "broken.json" in message and "not valid JSON" in message and "line 2" in message


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "is empty"),
        ("id: a\nquestion: Q?\n", "must hold a list of FAQ entries, not a mapping"),
        ("- just a string\n", "entry #1: must be a mapping of fields, not a string"),
    ],
)
def test_wrong_shapes(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "shape.yml").write_text(content)
    (message,) = problems(tmp_path)
    assert expected in message and "shape.yml" in message


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"id": 42}, "'id' must be text"),
        ({"id": 'has "quotes"'}, "may only use letters, digits"),
        ({"answer": 3}, "'answer' must be text"),
        ({"alternatives": "one string"}, "'alternatives' must be a list"),
        ({"alternatives": ["fine", ""]}, "'alternatives[2]' is empty"),
        ({"url": "ftp://files.example/x"}, "'url' must be an http(s) address"),
        ({"url": "help centre"}, "'url' must be an http(s) address"),
        ({"tags": "billing"}, "'tags' must be a list"),
        ({"answer": "x" * 6000}, "the limit is 5000"),
    ],
)
def test_field_checks(tmp_path: Path, overrides: dict, expected: str) -> None:
    write_yaml(tmp_path / "a.yml", [entry("e1", **overrides)])
    found = problems(tmp_path)
    assert any(expected in p and "a.yml" in p for p in found), found


def test_same_phrasing_under_two_entries_is_rejected(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry("a", alternatives=["change plan"]), entry("b", alternatives=["Change  plan"])])
    (message,) = problems(tmp_path)
    assert "id 'b'" in message and "also a phrasing of 'a'" in message


def test_every_problem_is_reported_at_once_and_nothing_is_returned(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yml", [entry("good"), entry("bad1", answer=""), entry("bad2", extra=1)])
    (tmp_path / "b.yml").write_text("{{{")
    found = problems(tmp_path)
    assert len(found) == 3
    assert str(FaqValidationError([])).startswith("0 problem(s)")


def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseUnavailable) as caught:
        load_directory(tmp_path / "nowhere")
    assert caught.value.reason == KnowledgeBaseUnavailable.MISSING


def test_directory_without_faq_files_gives_no_entries(tmp_path: Path) -> None:
    assert load_directory(tmp_path) == []


def test_not_utf8_is_reported(tmp_path: Path) -> None:
    (tmp_path / "latin1.yml").write_bytes("- id: caf\xe9\n".encode("latin-1"))
    (message,) = problems(tmp_path)
    assert "latin1.yml" in message and "not UTF-8" in message


def test_the_shipped_faq_content_is_valid() -> None:
    from knowledge_base.service import DEFAULT_FAQ_DIR

    entries = load_directory(DEFAULT_FAQ_DIR)
    assert len(entries) >= 20
    assert all(e.answer and e.question for e in entries)
