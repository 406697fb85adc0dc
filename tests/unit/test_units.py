"""Quantities and durations as Kubernetes and Go write them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from duet_agents.units import format_bytes, format_cpu, parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2Ti", Decimal(2 * 2**40)),
        ("500Gi", Decimal(500 * 2**30)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("100G", Decimal(10**11)),
        ("500m", Decimal("0.5")),
        ("4", Decimal(4)),
        (4, Decimal(4)),
        ("2k", Decimal(2000)),
    ],
)
def test_parse_quantity(text: str | int, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["lots", "1.", "-1Gi", "1 Gi", "1gi", "", "1GiB"])
def test_parse_quantity_refuses_what_kubernetes_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("amount", "text"),
    [(2 * 2**40, "2Ti"), (1536 * 2**20, "1536Mi"), (3 * 2**30, "3Gi"), (1000, "1000"), (0, "0")],
)
def test_format_bytes_uses_the_largest_exact_unit(amount: int, text: str) -> None:
    assert format_bytes(amount) == text
    assert parse_quantity(text) == amount


@pytest.mark.parametrize(("cores", "text"), [(4, "4"), (Decimal("0.5"), "500m"), (0.25, "250m")])
def test_format_cpu(cores: Decimal | float, text: str) -> None:
    assert format_cpu(cores) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", Decimal(1)), ("250ms", Decimal("0.25")), ("1m30s", Decimal(90)), ("2h", Decimal(7200))],
)
def test_parse_duration(text: str, seconds: Decimal) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["fast", "1", "1d", "-1s", ""])
def test_parse_duration_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
