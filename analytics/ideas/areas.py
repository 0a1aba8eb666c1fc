"""Product areas of an idea: from the in-use context when the customer was in the product,
otherwise from the text with a spaCy PhraseMatcher over the catalogue (catalogue.yml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from analytics.ideas.errors import CatalogueError
from analytics.yaml_rules import read_text, read_yaml

DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue.yml")
CATALOGUE_ENV = "ENGAGE_IDEAS_CATALOGUE"
GROUPS = {"integrations": "Integrations", "platform": "Platform"}
CONTEXT = "context"
TEXT = "text"


@dataclass(frozen=True)
class Catalogue:
    phrases: Dict[str, str]  # lower-case phrase -> area ("Forms / Conditional logic", "Integrations / Slack")
    areas: Tuple[str, ...]


def load_catalogue(path: Optional[Path] = None) -> Catalogue:
    path = Path(path or os.environ.get(CATALOGUE_ENV) or DEFAULT_CATALOGUE)
    return parse_catalogue(read_text(path, "product catalogue", CatalogueError), str(path))


def parse_catalogue(text: str, source: str) -> Catalogue:
    doc = read_yaml(text, source, CatalogueError)
    data = doc.data if doc.data is not None else {}
    problems: List[str] = []
    phrases: Dict[str, str] = {}
    where: Dict[str, str] = {}
    areas: List[str] = []
    if not isinstance(data, dict):
        raise CatalogueError(f"{doc.line()}: expected the sections products, integrations, platform")
    for key in data:
        if key not in ("products", *GROUPS):
            problems.append(f"{doc.key_line(key)}: unknown section {key!r} (known: products, integrations, platform)")

    def entry(path: Tuple[Any, ...], item: Any, prefix: str, allowed: Tuple[str, ...]) -> Optional[str]:
        node = doc.node(*path)
        if not isinstance(item, dict):
            problems.append(f"{doc.line(node)}: expected a mapping with name and synonyms")
            return None
        for key in item:
            if key not in allowed:
                problems.append(f"{doc.line(doc.node(*path, key) or node)}: unknown key {key!r} (known: {', '.join(allowed)})")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{doc.line(node)}: every entry needs a name")
            return None
        area = f"{prefix}{name.strip()}"
        if area in areas:
            problems.append(f"{doc.line(node)}: {area!r} is listed twice")
        areas.append(area)
        synonyms = item.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
            problems.append(f"{doc.line(doc.node(*path, 'synonyms') or node)}: synonyms of {name!r} must be a list of non-empty strings")
            return area
        for index, synonym in enumerate([name, *synonyms]):
            key = " ".join(synonym.lower().split())
            line = doc.line(doc.node(*path, "synonyms", index - 1) if index else doc.node(*path, "name"))
            if key in phrases and phrases[key] != area:
                problems.append(f"{line}: {synonym!r} already names {phrases[key]!r} ({where[key]})")
                continue
            phrases[key], where[key] = area, line
        return area

    products = data.get("products") or []
    if not isinstance(products, list):
        problems.append(f"{doc.line(doc.node('products'))}: products must be a list")
        products = []
    for index, product in enumerate(products):
        name = entry(("products", index), product, "", ("name", "synonyms", "features"))
        features = product.get("features") or [] if isinstance(product, dict) else []
        if name is None:
            continue
        if not isinstance(features, list):
            problems.append(f"{doc.line(doc.node('products', index, 'features'))}: features of {name!r} must be a list")
            continue
        for number, feature in enumerate(features):
            entry(("products", index, "features", number), feature, f"{name} / ", ("name", "synonyms"))
    for group, title in GROUPS.items():
        items = data.get(group) or []
        if not isinstance(items, list):
            problems.append(f"{doc.line(doc.node(group))}: {group} must be a list")
            continue
        for index, item in enumerate(items):
            entry((group, index), item, f"{title} / ", ("name", "synonyms"))
    if problems:
        raise CatalogueError(f"{len(problems)} mistake(s) in the product catalogue:\n  " + "\n  ".join(problems))
    return Catalogue(phrases, tuple(areas))


def context_area(context: Optional[Mapping[str, Any]]) -> Optional[str]:
    """"Product / feature" from in-use context (what the customer was doing), or None."""
    if not context:
        return None
    product = str(context.get("product") or "").strip()
    feature = str(context.get("feature") or "").strip()
    if not product:
        return None
    return f"{product[:1].upper()}{product[1:]}" + (f" / {feature[:1].upper()}{feature[1:]}" if feature else "")


class AreaMatcher:
    """Finds catalogue areas in texts with a spaCy PhraseMatcher on lower-cased tokens."""

    def __init__(self, catalogue: Catalogue, nlp: Optional[Any] = None) -> None:
        from spacy.matcher import PhraseMatcher

        if nlp is None:
            from analytics.ideas.nlp import english

            nlp = english()
        self._nlp = nlp
        self._matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        patterns: Dict[str, List[Any]] = {}
        for phrase, area in catalogue.phrases.items():
            for variant in {phrase, phrase + "s"}:
                patterns.setdefault(area, []).append(nlp.make_doc(variant))
        for area, docs in patterns.items():
            self._matcher.add(area, docs)

    def areas(self, texts: Sequence[str]) -> List[List[str]]:
        """Areas named in each text, longest match first, each once (the tokenizer alone suffices)."""
        out = []
        for doc in self._nlp.tokenizer.pipe(texts):
            spans = sorted(((end - start, start, self._nlp.vocab.strings[match]) for match, start, end in self._matcher(doc)), key=lambda m: (-m[0], m[1]))
            taken: set = set()
            found: List[str] = []
            for length, start, area in spans:
                cover = set(range(start, start + length))
                if cover & taken:
                    continue  # "microsoft teams" wins over "teams"
                taken |= cover
                if area not in found:
                    found.append(area)
            out.append(found)
        return out

    def area_of(self, text: str, context: Optional[Mapping[str, Any]] = None) -> Tuple[List[str], str]:
        """(areas, where from): the in-use context when present, else the text."""
        given = context_area(context)
        if given:
            return [given], CONTEXT
        return self.areas([text])[0], TEXT
