"""Words of questions and identifiers: tokens, stems, identifier splitting, compounds."""

from __future__ import annotations

import pytest

from duet_agents.query.nl.words import (
    number,
    phrase_stems,
    singular,
    split_identifier,
    stem,
    tokenize,
    value_words,
)


@pytest.mark.parametrize(
    ("forms", "expected"),
    [
        (["order", "orders", "ordered", "ordering"], "order"),
        (["rate", "rated", "rating", "ratings"], "rat"),
        (["cancelled", "canceled"], "cancel"),
        (["category", "categories"], "category"),
        (["status", "statuses"], "status"),
        (["ship", "shipped"], "ship"),
        (["add", "added"], "add"),
        (["reply", "replied"], "reply"),
    ],
)
def test_forms_of_a_word_share_a_stem(forms: list[str], expected: str) -> None:
    assert {stem(f) for f in forms} == {expected}


def test_words_that_differ_keep_different_stems() -> None:
    assert stem("user") != stem("used")
    assert stem("product") != stem("production")
    assert stem("2024") == "2024"


def test_singular() -> None:
    assert singular("countries") == "country"
    assert singular("boxes") == "box"
    assert singular("people") == "person"
    assert singular("status") == "status"
    assert singular("opened") == "opened"


def test_identifiers_split_on_case_and_separators() -> None:
    assert split_identifier("total_amount") == ["total", "amount"]
    assert split_identifier("signedUpAt") == ["signed", "up", "at"]
    assert split_identifier("loadTimeMS") == ["load", "time", "ms"]
    assert split_identifier("page-views") == ["page", "views"]


def test_a_phrasal_verb_is_one_word_in_questions_and_names() -> None:
    assert [t.stem for t in tokenize("users who signed up")] == ["user", "who", "signup"]
    assert phrase_stems("signed_up_at") == ("signup", "at")
    assert phrase_stems("signup_date") == ("signup", stem("date"))


def test_tokens_fold_apostrophes_and_ampersands() -> None:
    # U+2019, the apostrophe word processors type.
    tokens = tokenize("Which customers didn\u2019t order from Home & Garden? The customer's email")
    assert [t.text for t in tokens] == [
        "which", "customers", "did", "not", "order", "from", "home", "and", "garden", "the",
        "customer", "email",
    ]  # fmt: skip


def test_values_match_by_singular_not_by_stem() -> None:
    assert value_words("signup") == ("signup",)
    assert value_words("Home & Garden") == ("home", "and", "garden")
    # A question's "opened" is not the status 'open'.
    assert value_words("open") != (singular("opened"),)


def test_numbers() -> None:
    assert number("five") == 5
    assert number("4.5") == 4.5
    assert number("five-ish") is None
