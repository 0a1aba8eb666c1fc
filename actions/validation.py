"""Checks shared by the form validators: clean free text and tell a real answer from a generic one."""

from __future__ import annotations

import re
from typing import Any, FrozenSet, List

from actions.conversation import is_payload, truncate

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)

# Words that say nothing about *what* the idea or problem is.
FILLER = frozenset(
    """
    a an the i i'm im i'd id i've ive me my we we'd we've our us you your it it's its this that these those there
    here is are was were be been being am have has had having do does did doing would could should can
    will shall may might must to of for in on at by with about from into as and or but so if then than
    just also maybe please hey hi hello ok okay yes no not any some something anything thing things stuff
    one kind sort lot bit really very much more quick small little big new
    quillstack docs forms insights app apps product products tool tools platform software service
    like want wanted wanna need needs let make made get got give share tell say said think thought know
    """.split()
)


def clean_text(value: Any, limit: int) -> str:
    """Collapse whitespace and cap the length; slot values arrive as any JSON type."""
    text = " ".join(str(value if value is not None else "").split())
    return truncate(text, limit)


def words(text: str) -> List[str]:
    return [w.lower() for w in _WORD.findall(text)]


def specific_words(text: str, generic: FrozenSet[str]) -> List[str]:
    """Words that carry content: not filler, not in `generic`, at least two letters."""
    return [w for w in words(text) if len(w) > 1 and w not in FILLER and w not in generic]


def describes_something(text: str, generic: FrozenSet[str]) -> bool:
    """False for "I have an idea", "I found a bug", a button payload or an emoji."""
    return bool(text) and not is_payload(text) and bool(specific_words(text, generic))



def is_free_text_answer(text: str) -> bool:
    """Any words will do ("no idea", "not sure"); empty text, a payload or emoji alone will not."""
    return bool(text) and not is_payload(text) and any(ch.isalnum() for ch in text)
