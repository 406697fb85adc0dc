"""Date expressions read against a fixed today."""

from __future__ import annotations

from datetime import date

import pytest

from duet_agents.query.nl.dates import add_months, find_dates

TODAY = date(2025, 6, 15)  # a Sunday


def ranges(text: str) -> list[tuple[date | None, date | None]]:
    return [(m.range.start, m.range.end) for m in find_dates(text, TODAY)]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("orders in 2024", date(2024, 1, 1), date(2025, 1, 1)),
        ("sessions in March 2025", date(2025, 3, 1), date(2025, 4, 1)),
        ("sessions in march of 2025", date(2025, 3, 1), date(2025, 4, 1)),
        ("tickets on 2025-03-05", date(2025, 3, 5), date(2025, 3, 6)),
        ("tickets on March 5, 2025", date(2025, 3, 5), date(2025, 3, 6)),
        ("tickets on 5 March 2025", date(2025, 3, 5), date(2025, 3, 6)),
        ("revenue in 2025-02", date(2025, 2, 1), date(2025, 3, 1)),
        ("revenue in Q2 2024", date(2024, 4, 1), date(2024, 7, 1)),
        ("between 2025-01-01 and 2025-03-31", date(2025, 1, 1), date(2025, 4, 1)),
        ("from January 2024 to March 2024", date(2024, 1, 1), date(2024, 4, 1)),
        ("in the last 30 days", date(2025, 5, 16), date(2025, 6, 16)),
        ("over the past 2 weeks", date(2025, 6, 1), date(2025, 6, 16)),
        ("in the past year", date(2024, 6, 15), date(2025, 6, 16)),
        ("last month", date(2025, 5, 1), date(2025, 6, 1)),
        ("last week", date(2025, 6, 2), date(2025, 6, 9)),
        ("last quarter", date(2025, 1, 1), date(2025, 4, 1)),
        ("last year", date(2024, 1, 1), date(2025, 1, 1)),
        ("this month", date(2025, 6, 1), date(2025, 6, 16)),
        ("year to date", date(2025, 1, 1), date(2025, 6, 16)),
        ("yesterday", date(2025, 6, 14), date(2025, 6, 15)),
        ("today", date(2025, 6, 15), date(2025, 6, 16)),
        # A month without a year: its latest start by today.
        ("in March", date(2025, 3, 1), date(2025, 4, 1)),
        ("in September", date(2024, 9, 1), date(2024, 10, 1)),
    ],
)
def test_date_ranges(text: str, start: date, end: date) -> None:
    assert ranges(text) == [(start, end)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("since May 2024", (date(2024, 5, 1), None)),
        ("after 2024", (date(2025, 1, 1), None)),
        ("before 2025-02-10", (None, date(2025, 2, 10))),
        ("until March 2025", (None, date(2025, 4, 1))),
    ],
)
def test_open_ranges(text: str, expected: tuple[date | None, date | None]) -> None:
    assert ranges(text) == [expected]


def test_the_words_it_was_read_from_are_kept() -> None:
    (mention,) = find_dates("how many orders in the last 30 days", TODAY)
    assert mention.range.text == "in the last 30 days"
    assert mention.range.describe() == "from 2025-05-16 to 2025-06-15"


def test_words_that_are_not_dates() -> None:
    assert ranges("what may happen") == []
    assert ranges("the 3 most recent orders") == []
    assert ranges("orders per month") == []
    # An impossible date is not read at all (its numbers are then words nothing links).
    assert ranges("on 2025-02-30") == []


def test_add_months_clamps_to_the_last_day() -> None:
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2025, 3, 15), -3) == date(2024, 12, 15)
