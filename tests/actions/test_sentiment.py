"""Lexicon sentiment with negation, boosters, contrast and emoji."""

from __future__ import annotations

import pytest

from actions.sentiment import NEGATIVE, NEUTRAL, POSITIVE, analyse


@pytest.mark.parametrize(
    "text, label",
    [
        ("the new dashboard is great", POSITIVE),
        ("I love how easy the form builder is", POSITIVE),
        ("thanks, very helpful :)", POSITIVE),
        ("I like the new templates", POSITIVE),
        ("👍", POSITIVE),
        ("search is so slow in Docs", NEGATIVE),
        ("it keeps crashing when I upload", NEGATIVE),
        ("the export doesn't work", NEGATIVE),
        ("I can't find the settings page", NEGATIVE),
        ("Forms won’t load on Safari", NEGATIVE),
        ("the sidebar is confusing and clunky", NEGATIVE),
        ("😡", NEGATIVE),
        ("this is not good", NEGATIVE),
        ("not bad at all", POSITIVE),
        ("no problems at all since the update", POSITIVE),
        ("the editor moved to the left", NEUTRAL),
        ("looks like the sidebar moved", NEUTRAL),
        ("", NEUTRAL),
    ],
)
def test_labels(text: str, label: str) -> None:
    assert analyse(text).label == label


def test_scores_are_bounded_and_ordered_by_intensity() -> None:
    slow, so_slow, extremely_slow = (analyse(t).score for t in ("it is slow", "it is so slow", "it is extremely slow"))
    assert -1 < extremely_slow < so_slow < slow < 0
    assert analyse("great great great great great great great great").score < 1


def test_dampeners_soften() -> None:
    assert analyse("slightly slow").score > analyse("slow").score


def test_negation_is_weaker_than_the_opposite_word() -> None:
    assert analyse("not good").score > analyse("bad").score


def test_the_clause_after_but_weighs_more() -> None:
    assert analyse("I love it but the mobile app is slow").label == NEGATIVE
    assert analyse("it was slow at first but now it works great").label == POSITIVE


def test_negation_stops_at_punctuation() -> None:
    assert analyse("no, it is great").label == POSITIVE


def test_huge_and_odd_input_is_fine() -> None:
    assert analyse("slow " * 20_000).label == NEGATIVE
    assert analyse("\u0000\u200b💥🧪").label == NEUTRAL


def test_praise_and_complaint_together_are_mixed_whatever_the_label() -> None:
    assert analyse("love the editor but exports are slow").mixed
    assert analyse("the editor is great, though sync is slow").mixed
    assert not analyse("slow and buggy").mixed
    assert not analyse("great").mixed
