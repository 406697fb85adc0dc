"""The healer's raised figures as floors over the planner's designs."""

from __future__ import annotations

from datetime import UTC, datetime

from duet_agents.planner import capacity
from duet_agents.planner.adjustments import (
    COST_PREFIX,
    AdjustedField,
    Adjustment,
    adjust,
    merged,
    pinned_fields,
)
from duet_agents.planner.models import PlanRequest, PriceTable

PRICES = PriceTable()
AT = datetime(2026, 11, 23, tzinfo=UTC)


def request(**pins: object) -> PlanRequest:
    return PlanRequest.model_validate(
        {"requirements": {"dataVolume": "500Gi", "availability": "high"}} | pins
    )


def raised(field: AdjustedField, value: str, name: str = "web-abc-1") -> Adjustment:
    return Adjustment(field=field, value=value, remediation=name, reason="OOMKilled", at=AT)


def test_an_adjustment_raises_the_figure_says_why_and_costs_it() -> None:
    plain = capacity.plan(request(), PRICES)
    before = plain.clickhouse.resources.memory
    memory = raised(AdjustedField.CLICKHOUSE_MEMORY, "48Gi")
    design = adjust(plain, [memory], request(), PRICES)
    assert design.clickhouse.resources.memory == "48Gi"
    assert design.estimated_monthly_cost_usd > plain.estimated_monthly_cost_usd
    assert f"healer: clickhouse.resources.memory {before} -> 48Gi: raised by web-abc-1" in (
        "\n".join(design.rationale)
    )
    assert design.rationale[-1].startswith(COST_PREFIX)
    # Everything else is the planner's.
    assert design.clickhouse.model_copy(update={"resources": plain.clickhouse.resources}) == (
        plain.clickhouse
    )


def test_applying_the_same_adjustment_again_changes_nothing() -> None:
    shards = raised(AdjustedField.CLICKHOUSE_SHARDS, "4")
    once = adjust(capacity.plan(request(), PRICES), [shards], request(), PRICES)
    assert once.clickhouse.shards == 4
    assert adjust(once, [shards], request(), PRICES) == once


def test_an_adjustment_below_the_design_leaves_the_planners_figure() -> None:
    plain = capacity.plan(request(), PRICES)
    small = raised(AdjustedField.CLICKHOUSE_STORAGE, "1Gi")
    assert adjust(plain, [small], request(), PRICES) == plain


def test_a_pinned_figure_wins_and_the_rationale_says_so() -> None:
    pinned = request(clickhouse={"resources": {"memory": "16Gi"}})
    assert pinned_fields(pinned) == {AdjustedField.CLICKHOUSE_MEMORY}
    plain = capacity.plan(pinned, PRICES)
    design = adjust(plain, [raised(AdjustedField.CLICKHOUSE_MEMORY, "48Gi")], pinned, PRICES)
    assert design.clickhouse.resources.memory == "16Gi"
    assert any("not applied: the spec pins it at 16Gi" in line for line in design.rationale)
    assert design.estimated_monthly_cost_usd == plain.estimated_monthly_cost_usd


def test_every_adjustable_figure_reaches_its_place_in_the_design() -> None:
    plain = capacity.plan(request(), PRICES)
    every = [
        raised(AdjustedField.CLICKHOUSE_MEMORY, "100Gi"),
        raised(AdjustedField.KEEPER_MEMORY, "30Gi"),
        raised(AdjustedField.POSTGRES_MEMORY, "31Gi"),
        raised(AdjustedField.CLICKHOUSE_STORAGE, "9Ti"),
        raised(AdjustedField.KEEPER_STORAGE, "300Gi"),
        raised(AdjustedField.POSTGRES_STORAGE, "301Gi"),
        raised(AdjustedField.CLICKHOUSE_SHARDS, "9"),
    ]
    design = adjust(plain, every, request(), PRICES)
    ch, pg = design.clickhouse, design.postgres
    assert (ch.resources.memory, ch.keeper.resources.memory, pg.resources.memory) == (
        "100Gi",
        "30Gi",
        "31Gi",
    )
    assert (ch.storage.size, ch.keeper.storage.size, pg.storage.size) == ("9Ti", "300Gi", "301Gi")
    assert ch.shards == 9


def test_a_later_raise_of_a_figure_replaces_the_earlier_one() -> None:
    first = raised(AdjustedField.CLICKHOUSE_MEMORY, "24Gi", "web-abc-1")
    shards = raised(AdjustedField.CLICKHOUSE_SHARDS, "3", "web-def-1")
    second = raised(AdjustedField.CLICKHOUSE_MEMORY, "36Gi", "web-abc-2")
    kept = merged(merged([first], shards), second)
    assert [(a.field, a.remediation) for a in kept] == [
        (AdjustedField.CLICKHOUSE_MEMORY, "web-abc-2"),
        (AdjustedField.CLICKHOUSE_SHARDS, "web-def-1"),
    ]
