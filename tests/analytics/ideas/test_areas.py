"""Product areas: in-use context first, else the catalogue through a PhraseMatcher; catalogue mistakes named by line."""

from __future__ import annotations

import pytest

from analytics.ideas.areas import CONTEXT, TEXT, AreaMatcher, context_area, load_catalogue, parse_catalogue
from analytics.ideas.errors import CatalogueError
from analytics.ideas.nlp import english


@pytest.fixture(scope="module")
def matcher() -> AreaMatcher:
    return AreaMatcher(load_catalogue(), english())


def test_the_shipped_catalogue_loads_with_products_features_and_integrations() -> None:
    catalogue = load_catalogue()
    assert {"Docs", "Forms", "Insights", "Insights / Dashboards", "Integrations / Slack", "Platform / Mobile app"} <= set(catalogue.areas)


def test_areas_are_found_in_text_longest_match_first_and_plurals_too(matcher: AreaMatcher) -> None:
    assert matcher.areas(["we use Teams, please build a Microsoft Teams integration"]) == [["Integrations / Microsoft Teams"]]
    assert matcher.areas(["export DASHBOARDS to pdf"]) == [["Insights / Dashboards"]]
    assert matcher.areas(["sync form leads to HubSpot"]) == [["Forms", "Integrations / HubSpot"]]
    assert matcher.areas(["the weather is nice"]) == [[]]


def test_in_use_context_wins_over_the_text(matcher: AreaMatcher) -> None:
    assert matcher.area_of("a Slack integration", {"product": "forms", "feature": "conditional logic", "page": "/f/1"}) == (["Forms / Conditional logic"], CONTEXT)
    assert matcher.area_of("a Slack integration", {"page": "/home"}) == (["Integrations / Slack"], TEXT)
    assert context_area(None) is None and context_area({"product": "docs"}) == "Docs"


def test_every_catalogue_mistake_is_named_with_its_line() -> None:
    text = (
        "products:\n"
        "  - name: Docs\n"
        "    synonyms: [docs, page]\n"
        "    features:\n"
        "      - name: Editor\n"
        "        synonyms: [page]\n"
        "      - synonyms: [x]\n"
        "  - name: Forms\n"
        "    synonyms: forms\n"
        "integrations:\n"
        "  - name: Slack\n"
        "    colour: blue\n"
        "teams: []\n"
    )
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(text, "cat.yml")
    message = str(caught.value)
    assert message.startswith("5 mistake(s) in the product catalogue")
    for expected in ("cat.yml:6: 'page' already names 'Docs' (cat.yml:3)", "cat.yml:7: every entry needs a name",
                     "cat.yml:9: synonyms of 'Forms' must be a list", "cat.yml:12: unknown key 'colour'", "cat.yml:13: unknown section 'teams'"):
        assert expected in message
