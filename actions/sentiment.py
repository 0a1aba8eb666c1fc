"""Sentiment of short product feedback: a small lexicon with negation, intensity and "but" handling.

Pure and deterministic; the scoring follows VADER's rules of thumb (negation
flips and damps a word within three words, boosters add intensity, the clause
after "but" counts more, the sum is squashed to -1..1), with a lexicon written
for software feedback ("slow", "crashes", "intuitive") instead of social media.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

POSITIVE = "positive"
NEGATIVE = "negative"
NEUTRAL = "neutral"

# |score| below this is neutral (VADER's threshold on the same -1..1 scale).
NEUTRAL_BAND = 0.05
NEGATION_SCOPE = 3  # words after a negator that it affects
NEGATION_SCALAR = -0.74  # "not good" is less negative than "bad" is
BOOST = 0.293
ALPHA = 15.0  # squashing constant: score = s / sqrt(s^2 + ALPHA)
# A negated "works/loads/finds..." is a complaint ("doesn't load", "can't find"), not merely "not positive".
BLOCKED_VERB_SCORE = -1.5

LEXICON: Dict[str, float] = {
    # positive
    "great": 3.0, "love": 3.0, "loved": 3.0, "loving": 3.0, "loves": 3.0, "awesome": 3.0, "amazing": 3.0,
    "excellent": 3.0, "fantastic": 3.0, "brilliant": 3.0, "perfect": 3.0, "superb": 3.0, "best": 3.0,
    "wonderful": 3.0, "outstanding": 3.0, "good": 2.0, "nice": 2.0, "helpful": 2.0, "useful": 2.0,
    "easy": 2.0, "easier": 2.0, "intuitive": 2.0, "fast": 2.0, "faster": 2.0, "smooth": 2.0,
    "reliable": 2.0, "happy": 2.5, "glad": 2.0, "impressed": 2.5, "impressive": 2.5, "enjoy": 2.0,
    "enjoying": 2.0, "seamless": 2.0, "powerful": 2.0, "beautiful": 2.5, "improved": 2.0,
    "improvement": 1.5, "better": 1.5, "cool": 1.5, "quick": 1.5, "clean": 1.5, "simple": 1.5,
    "handy": 1.5, "solid": 1.5, "responsive": 1.5, "thanks": 1.5, "thank": 1.5, "pleased": 2.0,
    "liked": 2.0, "likes": 1.5, "recommend": 2.0, "lifesaver": 3.0, "wow": 1.5, "neat": 1.5,
    # negative
    "slow": -2.0, "slower": -2.0, "sluggish": -2.0, "laggy": -2.0, "lag": -1.5, "lags": -1.5,
    "broken": -2.5, "broke": -2.0, "breaks": -2.0, "crash": -2.5, "crashes": -2.5, "crashed": -2.5,
    "crashing": -2.5, "bug": -2.0, "bugs": -2.0, "buggy": -2.5, "error": -2.0, "errors": -2.0,
    "fail": -2.0, "fails": -2.0, "failed": -2.0, "failing": -2.0, "failure": -2.0, "hate": -3.0,
    "hated": -3.0, "awful": -3.0, "terrible": -3.0, "horrible": -3.0, "bad": -2.5, "worse": -2.5,
    "worst": -3.0, "annoying": -2.0, "annoyed": -2.0, "frustrating": -2.5, "frustrated": -2.5,
    "confusing": -2.0, "confused": -1.5, "difficult": -1.5, "hard": -1.0, "impossible": -2.0,
    "useless": -2.5, "unusable": -3.0, "clunky": -2.0, "ugly": -2.0, "missing": -1.0, "lost": -1.5,
    "stuck": -2.0, "freezes": -2.0, "frozen": -1.5, "freeze": -2.0, "freezing": -2.0, "hangs": -1.5,
    "disappointed": -2.5, "disappointing": -2.5, "unhappy": -2.5, "poor": -2.0, "problem": -1.5,
    "problems": -1.5, "issue": -1.0, "issues": -1.0, "cumbersome": -2.0, "messy": -1.5,
    "unreliable": -2.5, "expensive": -1.5, "overpriced": -2.0, "sucks": -2.5, "meh": -1.0,
    "glitch": -1.5, "glitchy": -2.0, "wrong": -1.5, "unable": -1.5, "painful": -2.0,
    "tedious": -1.5, "outdated": -1.5, "nightmare": -3.0, "mess": -2.0, "waste": -2.0,
}

NEGATORS = frozenset(
    {
        "not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "hardly", "barely",
        "without", "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent",
        "wont", "wouldnt", "shouldnt", "couldnt", "aint", "havent", "hasnt",
    }
)

BOOSTERS: Dict[str, float] = {
    "very": BOOST, "really": BOOST, "so": BOOST, "super": BOOST, "too": BOOST, "totally": BOOST,
    "extremely": 2 * BOOST, "incredibly": 2 * BOOST, "absolutely": 2 * BOOST, "insanely": 2 * BOOST,
    "painfully": 2 * BOOST, "ridiculously": 2 * BOOST, "quite": BOOST / 2, "pretty": BOOST / 2,
    "slightly": -BOOST, "somewhat": -BOOST, "little": -BOOST, "bit": -BOOST, "kinda": -BOOST,
}

BLOCKED_VERBS = frozenset(
    {
        "work", "works", "working", "load", "loads", "loading", "find", "open", "opens", "save",
        "saves", "saving", "login", "log", "access", "upload", "download", "export", "import",
        "sync", "syncs", "syncing", "connect", "connects", "sign", "see", "use", "show", "shows",
        "send", "sends", "print",
    }
)

# "like" is positive only as a verb of the speaker ("I like", "we really like"), not "looks like".
LIKE_SUBJECTS = frozenset({"i", "we", "really", "definitely", "totally", "do"})

CONTRAST = frozenset({"but", "however", "although", "though", "yet"})

EMOJI: Dict[str, float] = {
    "👍": 2.0, "👏": 2.0, "🙌": 2.0, "🎉": 2.0, "❤": 3.0, "❤️": 3.0, "😍": 3.0, "🥰": 3.0, "😀": 2.0,
    "😃": 2.0, "😄": 2.0, "😁": 2.0, "😊": 2.0, "🙂": 1.5, "🔥": 1.5, "💯": 2.0, "⭐": 1.5,
    "👎": -2.0, "😡": -3.0, "🤬": -3.0, "😠": -2.5, "😞": -2.0, "😢": -2.0, "😭": -2.0, "🙁": -1.5,
    "☹": -1.5, "😤": -2.0, "😩": -2.0, "😫": -2.0, "🤦": -1.5, "💩": -2.5,
    ":)": 1.5, ":-)": 1.5, ":d": 2.0, ":-d": 2.0, "(:": 1.5, ":(": -1.5, ":-(": -1.5, ":/": -1.0, ":'(": -2.0,
}

_EMOTICON = r":-?\)|:-?d\b|\(:|:'\(|:-?\(|:/(?!/)"
_TOKEN = re.compile(rf"{_EMOTICON}|[a-z]+(?:'[a-z]+)?|[^\w\s]", re.UNICODE)
_CLAUSE_BREAK = frozenset({".", ",", ";", "!", "?", ":"})


@dataclass(frozen=True)
class Sentiment:
    label: str  # positive | negative | neutral
    score: float  # -1 (very negative) .. 1 (very positive)
    mixed: bool = False  # praise and complaint in one ("love the editor but exports are slow"): idea mining reads these


def analyse(text: str) -> Sentiment:
    """Label and score one piece of feedback."""
    tokens = _tokens(text)
    contributions: List[Tuple[int, float]] = []
    negated_until = -1
    contrast_at = -1
    for position, token in enumerate(tokens):
        if token in _CLAUSE_BREAK:
            negated_until = -1
            continue
        if token in CONTRAST:
            contrast_at = position
            negated_until = -1
            continue
        if token in NEGATORS:
            negated_until = position + NEGATION_SCOPE
            continue
        negated = position <= negated_until
        value = _word_value(tokens, position, negated)
        if value:
            contributions.append((position, value))
    total = 0.0
    for position, value in contributions:
        if contrast_at >= 0:
            value *= 1.5 if position > contrast_at else 0.5
        total += value
    score = total / math.sqrt(total * total + ALPHA) if total else 0.0
    mixed = any(value > 0 for _, value in contributions) and any(value < 0 for _, value in contributions)
    if score >= NEUTRAL_BAND:
        return Sentiment(POSITIVE, round(score, 4), mixed)
    if score <= -NEUTRAL_BAND:
        return Sentiment(NEGATIVE, round(score, 4), mixed)
    return Sentiment(NEUTRAL, round(score, 4), mixed)


def _tokens(text: str) -> List[str]:
    lowered = text.lower().replace("’", "'").replace("‘", "'")
    # Fold "n't" contractions into one negator token: "doesn't" -> "doesnt", "can't" -> "cant".
    lowered = re.sub(r"\b([a-z]+)n't\b", lambda m: m.group(1) + "nt", lowered)
    lowered = lowered.replace("cannot", "cant")
    # Emoji are neither \w nor space, so they come out as one-character tokens in place.
    return _TOKEN.findall(lowered)


def _word_value(tokens: List[str], position: int, negated: bool) -> float:
    token = tokens[position]
    previous = tokens[position - 1] if position > 0 else ""
    if token == "like":
        value = 1.5 if previous in LIKE_SUBJECTS else 0.0
    elif token in BLOCKED_VERBS:
        return BLOCKED_VERB_SCORE if negated else 0.0
    else:
        value = LEXICON.get(token, EMOJI.get(token, 0.0))
    if not value:
        return 0.0
    # Boosters up to two words before ("really very slow") scale the word in its own direction.
    for offset in (1, 2):
        if position - offset >= 0:
            boost = BOOSTERS.get(tokens[position - offset], 0.0)
            if boost:
                value += math.copysign(1.0, value) * boost * (0.95 if offset == 2 else 1.0)
    if negated:
        value *= NEGATION_SCALAR
    return value
