"""Result comparison for execution accuracy: the allowances, and what still differs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from duet_agents.query.engines.base import Result, ResultColumn
from duet_agents.query.nl.accuracy import GoldQuestion, Outcome, same_result, score
from duet_agents.query.nl.translation import Refused


def result(*rows: tuple[Any, ...]) -> Result:
    width = len(rows[0]) if rows else 1
    columns = [ResultColumn(f"c{i}", "String") for i in range(width)]
    return Result(columns=columns, rows=list(rows), truncated=False, elapsed_ms=0.0)


def test_rows_compare_as_a_multiset_unless_ordered() -> None:
    gold = result(("a", 1), ("b", 2))
    shuffled = result(("b", 2), ("a", 1))
    assert same_result(gold, shuffled, ordered=False)
    assert not same_result(gold, shuffled, ordered=True)


def test_columns_match_by_content_and_extra_columns_are_allowed() -> None:
    gold = result(("Anna", 10), ("Ben", 20))
    # Swapped columns, and the key shown beside the name.
    predicted = result((20, 2, "Ben"), (10, 1, "Anna"))
    assert same_result(gold, predicted, ordered=False)


def test_numbers_compare_across_types_with_a_tolerance() -> None:
    assert same_result(result((Decimal("10.10"),)), result((10.1000000001,)), ordered=False)
    assert same_result(result((3,)), result((3.0,)), ordered=False)
    assert not same_result(result((10.1,)), result((10.2,)), ordered=False)


def test_a_midnight_timestamp_equals_its_date() -> None:
    assert same_result(
        result((date(2025, 3, 1), 5)), result((datetime(2025, 3, 1), 5)), ordered=True
    )
    assert not same_result(
        result((date(2025, 3, 1),)), result((datetime(2025, 3, 1, 12, 0),)), ordered=True
    )


def test_different_results_differ() -> None:
    gold = result(("a", 1), ("b", 2))
    assert not same_result(gold, result(("a", 1)), ordered=False)
    assert not same_result(gold, result(("a", 1), ("b", 3)), ordered=False)
    # Each gold column needs a column of its own.
    assert not same_result(result((1, 1)), result((1,)), ordered=False)
    assert not same_result(result(("a", None)), result(("a", 0)), ordered=False)


def test_empty_results() -> None:
    empty = Result(columns=[ResultColumn("n", "UInt64")], rows=[], truncated=False, elapsed_ms=0)
    assert same_result(empty, empty, ordered=False)


def test_score_counts_answers_and_refusals_apart() -> None:
    answerable = GoldQuestion(id="a", db="shop", question="q", sql="SELECT 1")
    unanswerable = GoldQuestion(id="u", db="shop", question="q", sql=None)
    refused = Refused(question="q", reason="no")
    outcomes = [
        Outcome(answerable, refused, correct=False),
        Outcome(unanswerable, refused, correct=True),
    ]
    assert score(outcomes).accuracy == 0.0
    assert (score(outcomes).refused, score(outcomes).unanswerable) == (1, 1)
