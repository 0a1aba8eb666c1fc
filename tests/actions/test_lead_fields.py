"""Sales-form answers: helpful re-asks, and free text normalised to the quick-reply buckets."""

from __future__ import annotations

from datetime import date

import pytest

from actions.lead_fields import (
    BUDGET_BUCKETS,
    FROM_5K_TO_25K,
    FROM_25K_TO_100K,
    LATER_OR_EXPLORING,
    NOT_SURE,
    OVER_100K,
    WITHIN_A_MONTH,
    WITHIN_3_MONTHS,
    WITHIN_A_YEAR,
    TIMELINE_BUCKETS,
    UNDER_5K,
    check_company,
    check_email,
    check_name,
    check_need,
    check_role,
    budget_buckets,
    normalise_budget,
    normalise_timeline,
    resolve_field,
)

TODAY = date(2025, 11, 22)


@pytest.mark.parametrize(
    "raw, value",
    [("Maria Lopez", "Maria Lopez"), ("my name is Anna Schmidt", "Anna Schmidt"), ("I'm Jean-Luc Picard.", "Jean-Luc Picard"), ("  Li  ", "Li"), ("Zoë Ødegaard", "Zoë Ødegaard")],
)
def test_names_are_accepted_and_tidied(raw: str, value: str) -> None:
    assert check_name(raw).value == value


@pytest.mark.parametrize(
    "raw, hint",
    [
        ("A", "a bit short for a name"),
        ("anna@acme.io", "looks like an e-mail address"),
        ("0612345678", "more like a number"),
        ("no", "need a name"),
        ("x" * 150, "longer than a name"),
        ("/deny", "What's your name?"),
    ],
)
def test_bad_names_are_re_asked_with_an_example(raw: str, hint: str) -> None:
    checked = check_name(raw)
    assert checked.value is None and hint in checked.reask and "Maria Lopez" in checked.reask


@pytest.mark.parametrize(
    "raw, value",
    [
        ("anna@acme.io", "anna@acme.io"),
        ("it's Anna.Schmidt@ACME.IO.", "Anna.Schmidt@acme.io"),
        ("mailto:sales+demo@quill-stack.co.uk", "sales+demo@quill-stack.co.uk"),
        ("<ops@xn--bcher-kva.example>", "ops@xn--bcher-kva.example"),
    ],
)
def test_emails_are_extracted_and_the_domain_lowercased(raw: str, value: str) -> None:
    assert check_email(raw).value == value


@pytest.mark.parametrize(
    "raw, hint",
    [
        ("anna at acme dot io", "needs an @"),
        ("anna@acme", "full domain such as company.com"),
        ("anna@acme.c", "doesn't look right"),
        ("anna..x@acme.io", "part before the @"),
        ("@acme.io", "name before the @"),
        ("a@one.io b@two.io", "more than one address"),
        ("anna@-acme.io", "doesn't look right"),
    ],
)
def test_bad_emails_say_what_is_wrong(raw: str, hint: str) -> None:
    checked = check_email(raw)
    assert checked.value is None and hint in checked.reask


def test_company_role_and_need() -> None:
    assert check_company("I work at Acme Logistics").value == "Acme Logistics"
    assert check_company("X").value == "X"
    assert check_company("🙂").value is None and "Acme Logistics" in check_company("🙂").reask
    assert check_company("ceo@acme.io").value is None
    assert check_role("I'm the Head of Operations").value == "Head of Operations"
    assert check_role("a").value is None
    assert check_need("an internal wiki for 80 people").value == "an internal wiki for 80 people"
    assert check_need("ok").value is None
    assert len(check_need("wiki " * 1000).value) <= 2000


@pytest.mark.parametrize(
    "raw, bucket",
    [
        ("This month", WITHIN_A_MONTH),  # the old button titles still read right
        ("Within a month", WITHIN_A_MONTH),
        ("within_3_months", WITHIN_3_MONTHS),
        ("Just exploring", LATER_OR_EXPLORING),
        ("asap", WITHIN_A_MONTH),
        ("in 2 weeks", WITHIN_A_MONTH),
        ("within a month", WITHIN_A_MONTH),
        ("next month", WITHIN_3_MONTHS),
        ("in a couple of months", WITHIN_3_MONTHS),
        ("within 3 months", WITHIN_3_MONTHS),
        ("3-6 months", WITHIN_A_YEAR),
        ("six months", WITHIN_A_YEAR),
        ("next quarter", WITHIN_A_YEAR),
        ("later this year", WITHIN_3_MONTHS),
        ("This year", WITHIN_3_MONTHS),
        ("by June", WITHIN_A_YEAR),
        ("by December", WITHIN_3_MONTHS),
        ("in November", WITHIN_A_MONTH),
        ("Q4", WITHIN_3_MONTHS),
        ("Q2", WITHIN_A_YEAR),
        ("in 2 years", LATER_OR_EXPLORING),
        ("next year", LATER_OR_EXPLORING),
        ("no rush, just looking", LATER_OR_EXPLORING),
        ("not sure", LATER_OR_EXPLORING),
    ],
)
def test_timeline_free_text(raw: str, bucket: str) -> None:
    assert normalise_timeline(raw, TODAY) == bucket


@pytest.mark.parametrize(
    "raw, today, bucket",
    [
        # The bucket holds the whole period the customer named, whatever the day they said it.
        ("next quarter", date(2026, 11, 28), WITHIN_A_YEAR),  # January to March: not "this year"
        ("next quarter", date(2026, 3, 31), WITHIN_3_MONTHS),  # April to June, over in 91 days
        ("this year", date(2026, 1, 5), WITHIN_A_YEAR),
        ("next month", date(2026, 12, 1), WITHIN_3_MONTHS),  # all of January next year
        ("Q1", date(2026, 11, 28), WITHIN_A_YEAR),  # the next Q1, not the one gone by
    ],
)
def test_timeline_bucket_holds_the_whole_period_named(raw: str, today: date, bucket: str) -> None:
    assert normalise_timeline(raw, today) == bucket


@pytest.mark.parametrize("raw", ["banana", "", "/affirm", "we may buy"])
def test_timeline_that_cannot_be_placed(raw: str) -> None:
    assert normalise_timeline(raw, TODAY) is None


@pytest.mark.parametrize(
    "raw, bucket",
    [
        ("about 10k", FROM_5K_TO_25K),
        ("Under $5k / year", UNDER_5K),
        ("$5k–$25k / year", FROM_5K_TO_25K),
        ("$5k-$25k / year", FROM_5K_TO_25K),
        ("$25k–$100k / year", FROM_25K_TO_100K),
        ("Over $100k / year", OVER_100K),
        ("Not sure yet", NOT_SURE),
        ("$3,000", UNDER_5K),
        ("10-20k", FROM_5K_TO_25K),
        ("between 30k and 60k", FROM_25K_TO_100K),
        ("500 a month", FROM_5K_TO_25K),
        ("$3,000 per month", FROM_25K_TO_100K),
        ("150,000", OVER_100K),
        ("10.000 EUR", FROM_5K_TO_25K),
        ("1.5M", OVER_100K),
        ("under 4k", UNDER_5K),
        ("more than 100k", OVER_100K),
        ("100k", FROM_25K_TO_100K),
        ("no budget yet", NOT_SURE),
        ("honestly, I don't know", NOT_SURE),
    ],
)
def test_budget_free_text(raw: str, bucket: str) -> None:
    assert normalise_budget(raw) == bucket


@pytest.mark.parametrize("raw", ["banana", "50", "$15 per user", "", "/deny"])
def test_budget_that_cannot_be_placed(raw: str) -> None:
    assert normalise_budget(raw) is None


@pytest.mark.parametrize(
    "raw, buckets",
    [
        ("10k-50k", (FROM_5K_TO_25K, FROM_25K_TO_100K)),
        ("under 25k", (UNDER_5K, FROM_5K_TO_25K)),
        ("more than 30k", (FROM_25K_TO_100K, OVER_100K)),
        ("2k to 200k", (UNDER_5K, FROM_5K_TO_25K, FROM_25K_TO_100K, OVER_100K)),
        ("between 30k and 60k", (FROM_25K_TO_100K,)),
        ("banana", ()),
    ],
)
def test_a_range_across_buckets_is_not_forced_into_one(raw: str, buckets: tuple) -> None:
    assert budget_buckets(raw) == buckets
    assert normalise_budget(raw) == (buckets[0] if len(buckets) == 1 else None)


def test_every_button_title_maps_to_itself() -> None:
    assert [normalise_timeline(b, TODAY) for b in TIMELINE_BUCKETS] == list(TIMELINE_BUCKETS)
    assert [normalise_budget(b) for b in BUDGET_BUCKETS] == list(BUDGET_BUCKETS)


@pytest.mark.parametrize(
    "said, slot",
    [("e-mail", "lead_email"), ("Email", "lead_email"), ("mail", "lead_email"), ("lead_budget", "lead_budget"), ("job title", "lead_role"), ("company", "lead_company"), ("timeline", "lead_timeline"), ("name", "lead_name"), ("need", "lead_need")],
)
def test_fields_to_correct_are_resolved(said: str, slot: str) -> None:
    assert resolve_field(said) == slot


def test_unknown_fields_are_not_resolved() -> None:
    assert resolve_field("banana") is None and resolve_field(None) is None
