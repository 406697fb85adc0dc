"""Adjustments: figures of a design raised after it was planned, by the healer.

A remediation that raises memory, grows storage or adds a shard changes what the platform
needs, so it has to outlive the next reconcile and the next planning: otherwise the drift
timer would render the old figure again and undo the repair. Each adjustment is a floor over
whatever the planner designs, kept in the platform's status with the decision that made it.

What the user pinned in the spec wins over an adjustment: a pin is a person's decision, and
the healer does not propose to change a pinned figure (`pinned_fields`). Adjustments only
ever raise: a design that already asks for more keeps its own figure.
"""

from __future__ import annotations

import enum

from pydantic import AwareDatetime, Field

from duet_agents.planner.capacity import monthly_cost_usd
from duet_agents.planner.models import PlanRequest, PlatformDesign, PriceTable
from duet_agents.schema import CamelModel
from duet_agents.units import parse_quantity

# Rationale lines added here start with this: a reader tells the healer's figures from the
# planner's, and a later cost line replaces the earlier one.
RATIONALE_PREFIX = "healer: "
COST_PREFIX = f"{RATIONALE_PREFIX}cost with the raised figures: "


class AdjustedField(enum.StrEnum):
    """The figures the healer may raise: paths into the design, as `duet plan` prints it."""

    CLICKHOUSE_MEMORY = "clickhouse.resources.memory"
    KEEPER_MEMORY = "clickhouse.keeper.resources.memory"
    POSTGRES_MEMORY = "postgres.resources.memory"
    CLICKHOUSE_STORAGE = "clickhouse.storage.size"
    KEEPER_STORAGE = "clickhouse.keeper.storage.size"
    POSTGRES_STORAGE = "postgres.storage.size"
    CLICKHOUSE_SHARDS = "clickhouse.shards"


class Adjustment(CamelModel):
    """One raised figure and the decision behind it."""

    field: AdjustedField
    value: str = Field(
        max_length=64, description="The new floor: a quantity (memory, storage) or a count."
    )
    remediation: str = Field(max_length=253, description="The Remediation that raised it.")
    reason: str = Field(default="", max_length=512, description="The symptom it answered.")
    at: AwareDatetime | None = None


def pinned_fields(request: PlanRequest) -> frozenset[AdjustedField]:
    """The adjustable figures the user fixed in the spec."""
    ch, pg = request.clickhouse, request.postgres
    keeper = ch.keeper
    pins = {
        AdjustedField.CLICKHOUSE_MEMORY: ch.resources is not None and ch.resources.memory,
        AdjustedField.KEEPER_MEMORY: keeper is not None
        and keeper.resources is not None
        and keeper.resources.memory,
        AdjustedField.POSTGRES_MEMORY: pg.resources is not None and pg.resources.memory,
        AdjustedField.CLICKHOUSE_STORAGE: ch.storage is not None and ch.storage.size,
        AdjustedField.KEEPER_STORAGE: keeper is not None
        and keeper.storage is not None
        and keeper.storage.size,
        AdjustedField.POSTGRES_STORAGE: pg.storage is not None and pg.storage.size,
        AdjustedField.CLICKHOUSE_SHARDS: ch.shards is not None,
    }
    return frozenset(field for field, pinned in pins.items() if pinned)


def current_value(design: PlatformDesign, field: AdjustedField) -> str:
    ch, pg = design.clickhouse, design.postgres
    return {
        AdjustedField.CLICKHOUSE_MEMORY: ch.resources.memory,
        AdjustedField.KEEPER_MEMORY: ch.keeper.resources.memory,
        AdjustedField.POSTGRES_MEMORY: pg.resources.memory,
        AdjustedField.CLICKHOUSE_STORAGE: ch.storage.size,
        AdjustedField.KEEPER_STORAGE: ch.keeper.storage.size,
        AdjustedField.POSTGRES_STORAGE: pg.storage.size,
        AdjustedField.CLICKHOUSE_SHARDS: str(ch.shards),
    }[field]


def merged(adjustments: list[Adjustment], new: Adjustment) -> list[Adjustment]:
    """`adjustments` with `new` in place of any earlier one of the same field (a later raise
    supersedes an earlier one of the same figure), in field order."""
    kept = [a for a in adjustments if a.field != new.field]
    order = list(AdjustedField)
    return sorted([*kept, new], key=lambda a: order.index(a.field))


def adjust(
    design: PlatformDesign,
    adjustments: list[Adjustment],
    request: PlanRequest,
    prices: PriceTable,
) -> PlatformDesign:
    """`design` with each adjustment that is not pinned applied as a floor, a rationale line
    for each figure it raised and the cost recomputed. Used on a freshly planned design (with
    every adjustment in force) and on the design in force (with a new one); an adjustment
    that raises nothing leaves no line, so applying one twice changes nothing."""
    pinned = pinned_fields(request)
    wire = design.wire()
    rationale = list(design.rationale)
    for adjustment in adjustments:
        field = adjustment.field
        before = current_value(design, field)
        if field in pinned:
            line = (
                f"{RATIONALE_PREFIX}{field} {adjustment.value} ({adjustment.remediation}) is "
                f"not applied: the spec pins it at {before}"
            )
            if line not in rationale:
                rationale.append(line)
            continue
        if not _larger(adjustment.value, before, field):
            continue
        _set(wire, field, adjustment.value)
        why = f" for {adjustment.reason}" if adjustment.reason else ""
        rationale.append(
            f"{RATIONALE_PREFIX}{field} {before} -> {adjustment.value}: raised by "
            f"{adjustment.remediation}{why}"
        )
    adjusted = PlatformDesign.model_validate(wire)
    cost = monthly_cost_usd(adjusted.clickhouse, adjusted.postgres, prices)
    if cost != design.estimated_monthly_cost_usd:
        rationale = [line for line in rationale if not line.startswith(COST_PREFIX)]
        rationale.append(f"{COST_PREFIX}${cost:,.2f}/month")
    return adjusted.model_copy(update={"rationale": rationale, "estimated_monthly_cost_usd": cost})


def _larger(value: str, planned: str, field: AdjustedField) -> bool:
    if field is AdjustedField.CLICKHOUSE_SHARDS:
        return int(value) > int(planned)
    return parse_quantity(value) > parse_quantity(planned)


def _set(wire: dict[str, object], field: AdjustedField, value: str) -> None:
    *parents, leaf = field.value.split(".")
    node = wire
    for key in parents:
        child = node[key]
        assert isinstance(child, dict)
        node = child
    node[leaf] = int(value) if field is AdjustedField.CLICKHOUSE_SHARDS else value
