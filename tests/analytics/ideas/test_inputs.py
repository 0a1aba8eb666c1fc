"""Reading idea files: bad lines named by number, odd texts warned about."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.ideas.errors import IdeasInputError
from analytics.ideas.inputs import has_words, parse_ideas, read_ideas


def test_good_lines_are_read_with_numeric_ids_as_strings() -> None:
    ideas, warnings = parse_ideas(['{"id": 1, "text": "dark mode"}', "", '{"id": "b", "text": "night theme", "extra": true}'], "f.jsonl", 100)
    assert [(i.id, i.text, i.line) for i in ideas] == [("1", "dark mode", 1), ("b", "night theme", 3)]
    assert warnings == []


def test_every_bad_line_is_named_and_nothing_is_returned() -> None:
    lines = ['{"id": 1, "text": "ok"}', "not json", '["a"]', '{"id": 2}', '{"id": 1, "text": "again"}', '{"id": 3, "text": "   "}', '{"id": null, "text": "x"}', '{"id": 4, "text": 5}', '{"id": 5, "text": "x", "context": "docs"}']
    with pytest.raises(IdeasInputError) as caught:
        parse_ideas(lines, "f.jsonl", 100)
    message = str(caught.value)
    assert message.startswith("8 bad line(s) in f.jsonl; nothing was clustered")
    for expected in ("f.jsonl:2: not JSON", "f.jsonl:3: expected an object", "f.jsonl:4: missing 'text'", "f.jsonl:5: id '1' already used on line 1",
                     "f.jsonl:6: 'text' is empty", "f.jsonl:7: 'id' must be", "f.jsonl:8: 'text' must be a string",
                     "f.jsonl:9: 'context' must be an object"):
        assert expected in message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(IdeasInputError, match="no ideas in the file"):
        read_ideas(path, 100)


def test_a_long_idea_is_cut_and_an_emoji_only_idea_is_warned_about() -> None:
    ideas, warnings = parse_ideas(['{"id": "long", "text": "' + "a" * 10_000 + '"}', '{"id": "e", "text": "🌙🌙 !!"}'], "f.jsonl", 2000)
    assert len(ideas[0].text) == 2000 and ideas[1].text == "🌙🌙 !!"
    assert warnings == ["f.jsonl:1: id 'long' is 10,000 characters; only the first 2,000 are used",
                        "f.jsonl:2: id 'e' has no words (only symbols or emoji); left unclustered"]


def test_words_in_any_script_count() -> None:
    assert has_words("mode sombre s'il vous plaît") and has_words("ダークモード") and has_words("v2")
    assert not has_words("🙂👍 ?!")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "caf\xe9"}\n')
    with pytest.raises(IdeasInputError, match=r"latin1.jsonl:2: not UTF-8"):
        read_ideas(path, 100)
