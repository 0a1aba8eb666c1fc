"""What connectors say to customers in their own words, and how long texts are cut for a channel
(no Rasa imports: tests in the other runtime read it)."""

import re
from typing import Callable, List

# The one place the apology lives; every connector sends exactly this.
APOLOGY_TEXT = (
    "Sorry, something went wrong on our side and I couldn't answer that just now. "
    "Please try again in a minute, or e-mail support@quillstack.example and we'll get back to you."
)

TEXT_ONLY = "I can only read text for now. Could you type your message instead?"

EMPTY_TEXT = "I didn't get any words in that message. What would you like to ask?"

SLOW_DOWN_TEXT = (
    "You're sending messages faster than I can read them, so I skipped some. "
    "Please wait a few seconds, then send what you still need an answer to."
)

# A UTF-16 surrogate not in a pair: JSON can carry one (`"\ud800"`), UTF-8 cannot, and the
# sentence encoder's tokenizer fails on it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def normalise_text(text: str) -> str:
    """A customer's text as every channel hands it to Rasa: each lone surrogate (a half emoji cut
    by a client, or a forged escape) becomes U+FFFD, as a browser's TextDecoder does, so the rest
    of the message is still read. Python strings never hold a valid pair, so every surrogate is lone."""
    return _LONE_SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def too_long_text(length: int, limit: int) -> str:
    return (
        f"Sorry, that message is too long for me ({length} characters). "
        f"Please keep it under {limit} characters, or split it into a few shorter messages."
    )


def utf16_units(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units, so a character outside the BMP (most emoji) is 2."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> List[str]:
    """`text` in parts of at most `limit` (as `measure` counts), each cut at the last paragraph,
    line or word break in its second half, or mid-word when there is none."""
    text = text.strip()
    parts: List[str] = []
    while measure(text) > limit:
        end = _longest_fitting_prefix(text, limit, measure)
        window = text[:end]
        cut = end
        for separator in ("\n\n", "\n", " "):
            found = window.rfind(separator)
            if found >= end // 2 and found > 0:
                cut = found
                break
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def _longest_fitting_prefix(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """The most characters of `text` whose measure is at most `limit` (at least one)."""
    low, high = 1, min(len(text), limit)  # every character measures at least 1
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low
