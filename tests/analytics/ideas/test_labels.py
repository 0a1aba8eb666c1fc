"""Theme labels from the real spaCy English pipeline and class-based TF-IDF."""

from __future__ import annotations

import pytest

from analytics.ideas.labels import CtfidfLabeller, best_label, keyphrases
from analytics.ideas.nlp import english


@pytest.fixture(scope="module")
def labeller() -> CtfidfLabeller:
    return CtfidfLabeller(english())


def test_keyphrases_are_lemmatised_content_words_chosen_by_part_of_speech() -> None:
    nlp = english()
    assert keyphrases(nlp("please give us a night theme")) == ["night theme", "give night theme"]
    assert "dashboard" in keyphrases(nlp("export my dashboards as a PDF"))
    assert keyphrases(nlp("🌙🌙 !!")) == []


def test_a_theme_is_named_by_what_its_members_share_and_others_do_not(labeller: CtfidfLabeller) -> None:
    themes = [
        ["add dark mode", "please add a dark mode", "can we get dark mode in the editor?"],
        ["export my dashboard as a PDF", "please let me export dashboards to PDF", "let me save a dashboard to pdf"],
        ["the editor is slow with long pages", "typing in the editor lags"],
    ]
    labels = labeller.labels(themes, ["a", "b", "c"])
    assert labels[0] in ("dark mode", "add dark mode")
    assert "dashboard" in labels[1] or "pdf" in labels[1]
    assert labels[2] != labels[0] and "editor" in labels[2]


def test_a_theme_without_phrases_keeps_its_representative(labeller: CtfidfLabeller) -> None:
    assert labeller.labels([["🙂🙂", "👍"]], ["🙂🙂"]) == ["🙂🙂"]


def test_a_longer_phrase_containing_the_top_one_wins_when_it_scores_half_as_much() -> None:
    assert best_label({"mode": 1.0, "dark mode": 0.6, "editor": 0.9}, 3) == "dark mode"
    assert best_label({"mode": 1.0, "dark mode": 0.4}, 3) == "mode"
