"""Deterministic perturbations of test messages: how NLU holds up when customers type like customers.

Each function maps a message to its perturbed form and is a pure function of the text (and a
seed derived from it), so a run is repeatable and a regression shows. Used by
bench/nlu_fewshot.py and by the quick subset in tests/bot/nlu.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from typing import Callable, Dict

_KEYBOARD_NEIGHBOURS = {
    "a": "qs", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj", "i": "uo", "j": "hk",
    "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o", "q": "w", "r": "et", "s": "ad", "t": "ry",
    "u": "yi", "v": "cb", "w": "qe", "x": "zc", "y": "tu", "z": "x",
}
_STOP = frozenset("a an the i my me you your we our is are am do does did can could would will to of for in on at it this that be".split())


def _rng(text: str, kind: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{kind}\n{text}".encode()).hexdigest()[:16], 16))


def typos(text: str, rate: float = 0.05) -> str:
    """About one letter in twenty swapped with the next, dropped, doubled or replaced by a keyboard
    neighbour, and at least one in any text with a letter: a hurried customer on a phone."""
    rng = _rng(text, "typos")
    letters = [i for i, char in enumerate(text) if char.isalpha()]
    if not letters:
        return text
    chosen = {i for i in letters if rng.random() < rate} or {rng.choice(letters)}
    out = list(text)
    for i in sorted(chosen):
        char, kind = out[i], rng.randrange(4)
        if kind == 0 and i + 1 < len(out) and out[i + 1].isalpha() and out[i + 1] != char:
            out[i], out[i + 1] = out[i + 1], char
        elif kind == 1 and len(letters) > 1:
            out[i] = ""
        elif kind == 2:
            out[i] = char * 2
        else:
            out[i] = rng.choice(_KEYBOARD_NEIGHBOURS.get(char.lower(), "e"))
    return "".join(out)


def no_capitals(text: str) -> str:
    return text.lower()


def no_punctuation(text: str) -> str:
    return " ".join(text.translate(str.maketrans("", "", string.punctuation)).split())


def one_word(text: str) -> str:
    """The longest word that is not a stop word: what a customer types when they type one word."""
    words = [w for w in re.findall(r"[A-Za-z0-9']+", text) if w.lower() not in _STOP]
    return max(words, key=len) if words else text


PERTURBATIONS: Dict[str, Callable[[str], str]] = {
    "typos": typos,
    "no capitals": no_capitals,
    "no punctuation": no_punctuation,
    "one word": one_word,
}
