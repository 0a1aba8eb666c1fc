"""Checks and normalisation for the sales form's answers (pure functions, no I/O).

Each `check_*` returns the cleaned value, or a re-ask that says what was wrong
and gives an example. Timeline and budget accept the quick-reply titles and
also free text ("next month", "about 10k"), mapped to the same buckets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable, Dict, List, Optional, Tuple

from actions.constants import (
    LEAD_BUDGET,
    LEAD_COMPANY,
    LEAD_EMAIL,
    LEAD_NAME,
    LEAD_NEED,
    LEAD_ROLE,
    LEAD_SLOTS,
    LEAD_TIMELINE,
)
from actions.conversation import is_payload, truncate

WITHIN_A_MONTH = "Within a month"
WITHIN_3_MONTHS = "Within 3 months"
WITHIN_A_YEAR = "Within a year"
LATER_OR_EXPLORING = "Later or just exploring"
TIMELINE_BUCKETS = (WITHIN_A_MONTH, WITHIN_3_MONTHS, WITHIN_A_YEAR, LATER_OR_EXPLORING)

UNDER_5K = "Under $5k / year"
FROM_5K_TO_25K = "$5k–$25k / year"
FROM_25K_TO_100K = "$25k–$100k / year"
OVER_100K = "Over $100k / year"
NOT_SURE = "Not sure yet"
BUDGET_BUCKETS = (UNDER_5K, FROM_5K_TO_25K, FROM_25K_TO_100K, OVER_100K, NOT_SURE)

MAX_NAME = 100
MAX_COMPANY = 120
MAX_ROLE = 100
MAX_NEED = 2000


@dataclass(frozen=True)
class Checked:
    """Either a value to store, or `reask`: what was wrong, with an example."""

    value: Optional[str] = None
    reask: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.value is not None


def _clean(text: object) -> str:
    return " ".join(str(text if text is not None else "").split())


def _strip_lead_in(text: str, lead_ins: Tuple[str, ...]) -> str:
    lowered = text.lower()
    for lead_in in lead_ins:
        if lowered.startswith(lead_in + " "):
            text = text[len(lead_in) + 1 :]
            break
    return text.strip(" .,!;:\"'")


# -- name ------------------------------------------------------------------------

NAME_LEAD_INS = ("my name is", "my name's", "name is", "name:", "i am", "i'm", "im", "it's", "its", "this is", "call me")
NOT_A_NAME = frozenset(
    "no nope nah skip none n/a na idk yes yeah yep ok okay sure hi hello hey anonymous later why".split()
)
NAME_EXAMPLE = "For example: Maria Lopez."


def check_name(raw: object) -> Checked:
    text = _clean(raw)
    if is_payload(text):
        return Checked(reask=f"What's your name? {NAME_EXAMPLE}")
    name = _strip_lead_in(text, NAME_LEAD_INS)
    letters = sum(ch.isalpha() for ch in name)
    if "@" in name:
        return Checked(reask=f"That looks like an e-mail address; I'll ask for that next. What's your name? {NAME_EXAMPLE}")
    if name.lower() in NOT_A_NAME:
        return Checked(reask=f"I need a name to pass on to our sales team (or say \"stop\" to leave). {NAME_EXAMPLE}")
    if sum(ch.isdigit() for ch in name) >= 3:
        return Checked(reask=f"That looks more like a number than a name. What's your name? {NAME_EXAMPLE}")
    if letters < 2:
        return Checked(reask=f"That's a bit short for a name. Could you give me your full name? {NAME_EXAMPLE}")
    if len(name) > MAX_NAME:
        return Checked(reask=f"That's longer than a name usually is; just your name, please. {NAME_EXAMPLE}")
    return Checked(value=name)


# -- e-mail ----------------------------------------------------------------------

_EMAIL_CANDIDATE = re.compile(r"[^\s<>()\[\],;:\"]+@[^\s<>()\[\],;:\"]+")
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
EMAIL_EXAMPLE = "like maria.lopez@company.com"


def check_email(raw: object) -> Checked:
    text = _clean(raw)
    if is_payload(text):
        return Checked(reask="What's your e-mail address? For example: maria.lopez@company.com.")
    text = re.sub(r"(?i)\bmailto:", "", text)
    candidates = [c.strip(".'") for c in _EMAIL_CANDIDATE.findall(text)]
    if not candidates:
        if "@" in text:
            return Checked(reask=f"An e-mail address has a name before the @ and a domain after it, {EMAIL_EXAMPLE}. What's yours?")
        return Checked(reask=f"That doesn't look like an e-mail address: it needs an @ and a domain, {EMAIL_EXAMPLE}. What's yours?")
    unique = {c.lower() for c in candidates}
    if len(unique) > 1:
        return Checked(reask="I see more than one address there. Which one should our sales team use?")
    email = candidates[0]
    local, _, domain = email.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        return Checked(reask=f"The part before the @ doesn't look right. Could you check it? An address looks {EMAIL_EXAMPLE}.")
    labels = domain.split(".")
    if len(labels) < 2:
        return Checked(reask=f"The part after the @ needs a full domain such as company.com, {EMAIL_EXAMPLE}. Could you check it?")
    if not all(_LABEL.match(label) for label in labels) or not _TLD.match(labels[-1]):
        return Checked(reask=f"The domain \"{truncate(domain, 60)}\" doesn't look right. Could you check it? For example: maria.lopez@company.com.")
    address = f"{local}@{domain}"
    if len(address) > 254:
        return Checked(reask="That address is longer than e-mail allows. Could you check it?")
    return Checked(value=address)


# -- company, role, need ---------------------------------------------------------

COMPANY_LEAD_INS = (
    "i work at", "i work for", "i'm from", "i am from", "we are", "we're", "my company is", "our company is",
    "the company is", "company is", "company:", "it's", "its", "at",
)
ROLE_LEAD_INS = (
    "i'm a", "i am a", "i'm an", "i am an", "i'm the", "i am the", "i work as a", "i work as an", "i work as",
    "my role is", "my title is", "my job is", "role:", "i'm", "i am",
)


def check_company(raw: object) -> Checked:
    text = _clean(raw)
    company = _strip_lead_in(text, COMPANY_LEAD_INS) if not is_payload(text) else ""
    if not any(ch.isalnum() for ch in company):
        return Checked(reask="Which company or organisation are you with? For example: Acme Logistics.")
    if "@" in company and " " not in company:
        return Checked(reask="That looks like an e-mail address. What's the name of your company? For example: Acme Logistics.")
    if len(company) > MAX_COMPANY:
        return Checked(reask="That's quite long for a company name; just the name, please. For example: Acme Logistics.")
    return Checked(value=company)


def check_role(raw: object) -> Checked:
    text = _clean(raw)
    role = _strip_lead_in(text, ROLE_LEAD_INS) if not is_payload(text) else ""
    if sum(ch.isalpha() for ch in role) < 2:
        return Checked(reask="What's your role? For example: Head of Operations, or IT administrator.")
    if len(role) > MAX_ROLE:
        return Checked(reask="Just your job title, please. For example: Head of Operations.")
    return Checked(value=role)


def check_need(raw: object) -> Checked:
    text = _clean(raw)
    if is_payload(text) or sum(ch.isalnum() for ch in text) < 3:
        return Checked(
            reask="What would you like Quillstack to help with? For example: \"An internal wiki for 80 people with SSO\"."
        )
    return Checked(value=truncate(text, MAX_NEED))


# -- timeline --------------------------------------------------------------------
#
# Buckets are horizons from today, and an answer goes to the smallest horizon that holds the
# whole period the customer named (its last day): "next quarter" said in November ends in
# March, so it is "Within a year", never "This year". The customer's own words are kept beside
# the bucket (see actions/leads.py), so nothing they said is lost to the rounding.

_NUMBER_WORDS: Dict[str, float] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple": 2, "couple of": 2, "a couple of": 2, "few": 3,
    "a few": 3, "several": 4, "half a": 0.5,
}
_UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.44, "quarter": 91.3, "year": 365.25}
_NUM = r"(?:\d+(?:\.\d+)?|a couple of|couple of|a few|half a|couple|few|several|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_DURATION = re.compile(
    rf"\b(?P<low>{_NUM})(?:\s*(?:-|to|or)\s*(?P<high>{_NUM}))?\s*(?P<unit>day|week|month|quarter|year)s?\b"
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}
# A month name counts only after a preposition ("by June"): "we may buy" is not May.
_MONTH = re.compile(r"\b(?:in|by|until|till|before|around|from|end of|early|mid|late)\s+(?P<month>" + "|".join(_MONTHS) + r")\b")
_QUARTER = re.compile(r"\bq(?P<q>[1-4])\b")

# Phrases whose period is fixed by the calendar: the function gives its last day.
_CALENDAR_PHRASES: List[Tuple[str, Callable[[date], date]]] = [
    (r"\b(this|current) month\b|end of (the )?month", lambda d: _month_end(d.year, d.month)),
    (r"\bnext month\b", lambda d: _month_end(d.year + d.month // 12, d.month % 12 + 1)),
    (r"\b(this|current) quarter\b|end of (the )?quarter", lambda d: _quarter_end(d.year, (d.month - 1) // 3)),
    (r"\bnext quarter\b", lambda d: _quarter_end(d.year + (d.month - 1) // 9, ((d.month - 1) // 3 + 1) % 4)),
    (r"\b(this|current) year\b|end of (the )?year|\byear end\b", lambda d: date(d.year, 12, 31)),
    (r"\bnext year\b", lambda d: date(d.year + 1, 12, 31)),
]
# Phrases that name a horizon rather than a date.
_HORIZON_PHRASES: List[Tuple[str, str]] = [
    (r"\basap\b|as soon as possible|right (away|now)|\bimmediately\b|\burgent(ly)?\b|\btoday\b|\btomorrow\b"
     r"|\b(this|next) week\b|straight away|\bnow\b", WITHIN_A_MONTH),
    (r"\bsoon\b|\bshortly\b|coming weeks", WITHIN_3_MONTHS),
    (r"\bnext (half|six months)\b|\bthis (summer|autumn|fall|winter|spring)\b", WITHIN_A_YEAR),
    (r"explor|just looking|looking around|\bbrowsing\b|no rush|no hurry|no (fixed |set |real )?(timeline|date|deadline|plans?)"
     r"|not sure|\bunsure\b|don'?t know|no idea|\bundecided\b|\btbd\b|to be decided|research|\bcurious\b"
     r"|some ?day|\beventually\b|long[- ]term|\blater\b|not (yet|soon)|\bidk\b", LATER_OR_EXPLORING),
]


def _fold(text: object) -> str:
    folded = _clean(text).lower().replace("’", "'").replace("–", "-").replace("—", "-")
    return folded.strip(" .!?\"'")


def _month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def _quarter_end(year: int, quarter: int) -> date:
    """The last day of quarter `quarter` (0-3) of `year`."""
    return _month_end(year, 3 * quarter + 3)


def _bucket_for_days(days: float) -> str:
    if days <= 31:
        return WITHIN_A_MONTH
    if days <= 92:
        return WITHIN_3_MONTHS
    if days <= 366:
        return WITHIN_A_YEAR
    return LATER_OR_EXPLORING


def _number(word: str) -> float:
    return float(word) if word[0].isdigit() else float(_NUMBER_WORDS[word])


def normalise_timeline(raw: object, today: Optional[date] = None) -> Optional[str]:
    """One of TIMELINE_BUCKETS, or None when the text cannot be placed."""
    text = _fold(raw)
    if not text or is_payload(text):
        return None
    for bucket in TIMELINE_BUCKETS:
        key = bucket.lower()
        if text in (key, key.replace(" ", "_")):
            return bucket
    duration = _DURATION.search(text)
    if duration:
        amount = _number(duration.group("high") or duration.group("low"))
        return _bucket_for_days(amount * _UNIT_DAYS[duration.group("unit")])
    today = today or date.today()
    month = _MONTH.search(text)
    if month:
        number = _MONTHS[month.group("month")]
        year = today.year if number >= today.month else today.year + 1
        return _bucket_for_days((_month_end(year, number) - today).days)
    quarter = _QUARTER.search(text)
    if quarter:
        index = int(quarter.group("q")) - 1
        end = _quarter_end(today.year, index)
        if end < today:
            end = _quarter_end(today.year + 1, index)
        return _bucket_for_days((end - today).days)
    for pattern, last_day in _CALENDAR_PHRASES:
        if re.search(pattern, text):
            return _bucket_for_days((last_day(today) - today).days)
    for pattern, bucket in _HORIZON_PHRASES:
        if re.search(pattern, text):
            return bucket
    return None


# -- budget ----------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?P<cur>[$€£])?\s*(?P<num>\d+(?:[.,]\d+)*)\s*(?P<suf>k|m|mm|mil|thousand|million|grand)?\b"
    r"(?:\s*(?P<cur2>\$|€|£|usd|eur|gbp|dollars?|euros?|pounds?|bucks))?",
)
_SUFFIX = {"k": 1e3, "thousand": 1e3, "grand": 1e3, "m": 1e6, "mm": 1e6, "mil": 1e6, "million": 1e6}
_RANGE_JOIN = re.compile(r"^\s*(?:-|to|and|or)\s*$")
_BELOW = re.compile(r"\b(under|less than|below|up to|max(imum)?|at most|no more than|not more than)\b|<")
_ABOVE = re.compile(r"\b(over|more than|above|at least|min(imum)?|north of|upwards of)\b|>|\+")
_MONTHLY = re.compile(r"(per|a|/|each)\s*(month|mo)\b|\bmonthly\b|\bpm\b")
_QUARTERLY = re.compile(r"(per|a|/|each)\s*quarter\b|\bquarterly\b")
_PER_SEAT = re.compile(r"(per|a|/|each)\s*(user|seat|head|person|license|licence)\b")
_UNSURE = re.compile(
    r"not sure|\bunsure\b|don'?t know|no idea|\btbd\b|to be decided|\bdepends\b|no budget|not decided|\bundecided\b"
    r"|\bflexible\b|not (yet )?(set|defined|known)|\bidk\b|no clue"
)
_BUDGET_KEYS = {
    UNDER_5K: ("under $5k / year", "under $5k", "under 5k", "under_5k", "<5k"),
    FROM_5K_TO_25K: ("$5k-$25k / year", "$5k-$25k", "5k-25k", "5k_25k"),
    FROM_25K_TO_100K: ("$25k-$100k / year", "$25k-$100k", "25k-100k", "25k_100k"),
    OVER_100K: ("over $100k / year", "over $100k", "over 100k", "over_100k", ">100k", "100k+"),
    NOT_SURE: ("not sure yet", "not_sure", "not sure"),
}


def _parse_number(raw: str, has_suffix: bool) -> Optional[float]:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
        return float(raw.replace(",", ""))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", raw) and not has_suffix:
        return float(raw.replace(".", "").replace(",", "."))  # 10.000 written the European way
    if re.fullmatch(r"\d+,\d{1,2}", raw):
        return float(raw.replace(",", "."))
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return float(raw)
    return None


def _amounts(text: str) -> List[Tuple[float, Optional[float], re.Match]]:
    """(number, multiplier or None, match) for each amount that reads as money."""
    found = []
    for match in _AMOUNT.finditer(text):
        suffix = match.group("suf")
        number = _parse_number(match.group("num"), bool(suffix))
        if number is None:
            continue
        multiplier = _SUFFIX[suffix] if suffix else None
        found.append((number, multiplier, match))
    return found


def _bucket_for_amount(yearly: float) -> str:
    # Edges: 5k and 25k fall in the bucket whose label they end; 100k is "$25k–$100k".
    if yearly < 5_000:
        return UNDER_5K
    if yearly <= 25_000:
        return FROM_5K_TO_25K
    if yearly <= 100_000:
        return FROM_25K_TO_100K
    return OVER_100K


_AMOUNT_BUCKETS = (UNDER_5K, FROM_5K_TO_25K, FROM_25K_TO_100K, OVER_100K)


def _yearly_range(text: str) -> Optional[Tuple[float, float]]:
    """The lowest and highest yearly amount an answer allows, or None when it names no amount
    (or one that cannot be read as a yearly total)."""
    amounts = _amounts(text)
    if not amounts or _PER_SEAT.search(text):
        return None  # "$15 per user" says nothing about the total without the number of users
    number, multiplier, match = amounts[0]
    high: Optional[float] = None
    if len(amounts) > 1 and _RANGE_JOIN.match(text[match.end() : amounts[1][2].start()]):
        high_number, high_multiplier, _ = amounts[1]
        if multiplier is None and high_multiplier is not None and number < high_number:
            multiplier = high_multiplier  # "10-20k" means 10k to 20k
        high = high_number * (high_multiplier or 1.0)
    has_currency = bool(match.group("cur") or match.group("cur2"))
    low = number * (multiplier or 1.0)
    if multiplier is None and not has_currency and low < 100 and high is None:
        return None  # "about 50": fifty what? Ask rather than guess.
    high = low if high is None else high
    low, high = min(low, high), max(low, high)
    per_year = 12 if _MONTHLY.search(text) else 4 if _QUARTERLY.search(text) else 1
    low, high = low * per_year, high * per_year
    if _BELOW.search(text):
        return 0.0, high - 0.01
    if _ABOVE.search(text):
        return low + 0.01, float("inf")
    return low, high


def budget_buckets(raw: object) -> Tuple[str, ...]:
    """Every bucket the answer allows, lowest first: one for "about 10k", two for "10k-50k"
    (which a single bucket would contradict), none when the text names no budget."""
    text = _fold(raw).replace(" / ", "/").replace(" /", "/")
    if not text or is_payload(text):
        return ()
    spaced = text.replace("/", " / ")
    for bucket, keys in _BUDGET_KEYS.items():
        if text in keys or spaced in keys or text.replace(" ", "") in {k.replace(" ", "") for k in keys}:
            return (bucket,)
    span = _yearly_range(text)
    if span is None:
        return (NOT_SURE,) if _UNSURE.search(text) and not _amounts(text) else ()
    first, last = (_AMOUNT_BUCKETS.index(_bucket_for_amount(value)) for value in span)
    return _AMOUNT_BUCKETS[first : last + 1]


def normalise_budget(raw: object) -> Optional[str]:
    """The one bucket of BUDGET_BUCKETS the answer falls in; None when it names no budget or
    spans several buckets (`budget_buckets` says which, so the form can ask)."""
    buckets = budget_buckets(raw)
    return buckets[0] if len(buckets) == 1 else None


TIMELINE_REASK = (
    "I couldn't place that on a timeline. Please pick the closest option below, "
    "or tell me roughly when, e.g. \"within 3 months\"."
)
BUDGET_REASK = (
    "I couldn't read a yearly budget from that. Please pick the closest option below, "
    "or give a rough total, e.g. \"about 10k a year\"."
)


def check_timeline(raw: object, today: Optional[date] = None) -> Checked:
    bucket = normalise_timeline(raw, today)
    return Checked(value=bucket) if bucket else Checked(reask=TIMELINE_REASK)


def check_budget(raw: object) -> Checked:
    """A budget that falls in one bucket; a range across buckets is re-asked (the form asks which)."""
    bucket = normalise_budget(raw)
    return Checked(value=bucket) if bucket else Checked(reask=BUDGET_REASK)


def check_field(slot: str, raw: object, today: Optional[date] = None) -> Checked:
    """The sales form's check for `slot`, whichever field it is."""
    if slot == LEAD_TIMELINE:
        return check_timeline(raw, today)
    if slot == LEAD_BUDGET:
        return check_budget(raw)
    return _CHECKS[slot](raw)


# -- which field to correct ------------------------------------------------------

FIELD_ALIASES: Dict[str, str] = {
    **{slot: slot for slot in LEAD_SLOTS},
    "name": LEAD_NAME, "full name": LEAD_NAME, "my name": LEAD_NAME,
    "email": LEAD_EMAIL, "e-mail": LEAD_EMAIL, "mail": LEAD_EMAIL, "email address": LEAD_EMAIL,
    "e-mail address": LEAD_EMAIL, "address": LEAD_EMAIL,
    "company": LEAD_COMPANY, "company name": LEAD_COMPANY, "organisation": LEAD_COMPANY,
    "organization": LEAD_COMPANY, "business": LEAD_COMPANY, "employer": LEAD_COMPANY,
    "role": LEAD_ROLE, "job": LEAD_ROLE, "job title": LEAD_ROLE, "title": LEAD_ROLE, "position": LEAD_ROLE,
    "need": LEAD_NEED, "needs": LEAD_NEED, "use case": LEAD_NEED, "requirements": LEAD_NEED,
    "requirement": LEAD_NEED,
    "timeline": LEAD_TIMELINE, "timing": LEAD_TIMELINE, "timeframe": LEAD_TIMELINE, "time frame": LEAD_TIMELINE,
    "when": LEAD_TIMELINE, "date": LEAD_TIMELINE,
    "budget": LEAD_BUDGET, "spend": LEAD_BUDGET, "price": LEAD_BUDGET,
}


_CHECKS = {LEAD_NAME: check_name, LEAD_EMAIL: check_email, LEAD_COMPANY: check_company, LEAD_ROLE: check_role, LEAD_NEED: check_need}
_EMAIL_IN_TEXT = re.compile(r"[^\s@<>,;:]+@[^\s@<>,;:]+\.[A-Za-z]{2,}")
# "... my e-mail is x", "change the company to x", "the name should be x", "budget: x"
_GIVES_VALUE = re.compile(r"(?:\b(?:is|are|to|should be|should read|was meant to be|as)\b|[:=])\s+(?P<value>.+)$", re.IGNORECASE)
_TRAILING = re.compile(r"[\s,.!]*(?:\b(?:please|instead|thanks|thank you|not .*)\b[\s,.!]*)*$", re.IGNORECASE)


def new_value_in(text: object, slot: str, mention: Optional[str] = None) -> Optional[str]:
    """The new value a correction carries ("actually my e-mail is dana@northbeam.io",
    "change the company to Northbeam"), or None when it only names the field."""
    text = _clean(text)
    if slot == LEAD_EMAIL:
        found = _EMAIL_IN_TEXT.search(text)
        return found.group(0).rstrip(".") if found else None
    start = text.lower().find(mention.lower()) if mention else -1
    if not mention or start < 0:
        return None  # only what follows the field's name can be its value
    given = _GIVES_VALUE.search(text[start + len(mention) :])
    if not given:
        return None
    value = _TRAILING.sub("", given.group("value")).strip(" \"'")
    return value or None


def resolve_field(value: object) -> Optional[str]:
    """The lead slot a correction refers to ("e-mail" -> lead_email), or None."""
    if value is None:
        return None
    key = _fold(value)
    return FIELD_ALIASES.get(key) or FIELD_ALIASES.get(key.replace("_", " "))
