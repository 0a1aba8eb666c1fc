"""Cutting long replies for channels with a length limit (WhatsApp counts characters, Telegram UTF-16 units)."""

from __future__ import annotations

from connectors.messages import split_text, utf16_units


def test_short_and_empty_texts() -> None:
    assert split_text("short", 4096) == ["short"]
    assert split_text("  padded \n", 4096) == ["padded"]
    assert split_text("", 10) == [] and split_text(" \n ", 10) == []


def test_a_word_is_cut_only_when_there_is_no_break_in_the_second_half() -> None:
    assert split_text("x" * 9000, 4096) == ["x" * 4096, "x" * 4096, "x" * 808]
    assert split_text("aaa bbb ccc", 8) == ["aaa bbb", "ccc"]
    assert split_text("a " + "b" * 20, 10) == ["a bbbbbbbb", "bbbbbbbbbb", "bb"]  # the space is too early


def test_paragraphs_are_preferred_to_lines_and_lines_to_words() -> None:
    assert split_text("first paragraph here\n\nsecond line\nthird words", 32) == ["first paragraph here", "second line\nthird words"]
    assert split_text("one two three\nfour five six", 20) == ["one two three", "four five six"]
    assert split_text("one\ntwo three four five", 16) == ["one\ntwo three", "four five"]  # the line break is too early


def test_no_text_is_lost_and_every_part_fits() -> None:
    words = " ".join(f"word{n}" for n in range(2000))
    parts = split_text(words, 500)
    assert " ".join(parts) == words and all(0 < len(p) <= 500 for p in parts)


def test_utf16_counting_keeps_emoji_whole() -> None:
    assert utf16_units("abc") == 3 and utf16_units("\U0001F600") == 2 and utf16_units("é") == 1
    emoji = "\U0001F600" * 3000  # 6000 UTF-16 code units
    parts = split_text(emoji, 4096, utf16_units)
    assert "".join(parts) == emoji and [utf16_units(p) for p in parts] == [4096, 1904]
    mixed = ("ok \U0001F44D " * 1000).strip()
    parts = split_text(mixed, 4096, utf16_units)
    assert " ".join(parts) == mixed and all(utf16_units(p) <= 4096 for p in parts)
    assert split_text(emoji, 4096) == [emoji]  # 3000 characters: one WhatsApp message, two on Telegram
