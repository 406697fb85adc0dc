"""`apply_lessons`: the built-in (or any) design, grown where similar platforms needed more.

Pure. A lesson grows one figure (a component's memory or storage per pod) by its factor,
rounded up to a whole GiB, and never:
- a field the user pinned (the pin stands, and the rationale says the lesson was skipped);
- past `MemoryPolicy.max_factor`, nor past the planner policy's maximum for the component;
- past the budget: a lesson that would cost more than `request.budget` is skipped, saying so.
Every change, and every skip, is a rationale line naming the lesson and its platforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from duet_agents.healer.observations import Component
from duet_agents.memory.lessons import Lesson, MemoryPolicy, Resource
from duet_agents.planner.adjustments import AdjustedField, current_value, pinned_fields
from duet_agents.planner.capacity import monthly_cost_usd
from duet_agents.planner.models import PlanRequest, PlatformDesign, PriceTable
from duet_agents.planner.policy import PlannerPolicy, PodLimits
from duet_agents.units import GiB, format_bytes, parse_quantity


@dataclass(frozen=True)
class _Target:
    """Where a lesson's figure lives: the design's field (the same the healer's adjustments
    raise, so pins, reading and writing are theirs) and its rationale line."""

    field: AdjustedField
    label: str  # the rationale line of the figure starts with this

    @property
    def path(self) -> str:
        return f"spec.{self.field}"  # the pin: the spec names it as the design does


_TARGETS = {
    (Component.CLICKHOUSE, Resource.MEMORY): _Target(
        AdjustedField.CLICKHOUSE_MEMORY, "memory per replica"
    ),
    (Component.CLICKHOUSE, Resource.STORAGE): _Target(
        AdjustedField.CLICKHOUSE_STORAGE, "storage per replica"
    ),
    (Component.KEEPER, Resource.MEMORY): _Target(AdjustedField.KEEPER_MEMORY, "keeper pod"),
    (Component.KEEPER, Resource.STORAGE): _Target(AdjustedField.KEEPER_STORAGE, "keeper pod"),
    (Component.POSTGRES, Resource.MEMORY): _Target(AdjustedField.POSTGRES_MEMORY, "postgres pod"),
    (Component.POSTGRES, Resource.STORAGE): _Target(AdjustedField.POSTGRES_STORAGE, "postgres pod"),
}


def apply_lessons(
    design: PlatformDesign,
    request: PlanRequest,
    lessons: list[Lesson],
    prices: PriceTable | None = None,
    *,
    policy: MemoryPolicy | None = None,
    planner_policy: PlannerPolicy | None = None,
) -> PlatformDesign:
    """`design` with each lesson applied where pins, policy and budget allow, and why."""
    prices, policy = prices or PriceTable(), policy or MemoryPolicy()
    planner_policy = planner_policy or PlannerPolicy()
    lines = list(design.rationale)
    adjusted = design
    # The strongest lesson per figure; the others would only repeat it.
    strongest: dict[tuple[Component, Resource], Lesson] = {}
    for lesson in sorted(lessons, key=lambda item: item.pattern):
        key = (lesson.component, lesson.resource)
        if key not in strongest or lesson.factor > strongest[key].factor:
            strongest[key] = lesson
    pinned = pinned_fields(request)
    for key, lesson in sorted(strongest.items()):
        target = _TARGETS[key]
        because = lesson.because(policy.max_evidence_shown)
        if target.field in pinned:
            _insert(
                lines, target.label, f"{target.label}: kept — pinned ({target.path}); {because}"
            )
            continue
        current = parse_quantity(current_value(adjusted, target.field))
        factor = min(lesson.factor, policy.max_factor)
        ceiling = parse_quantity(_limit(planner_policy, *key))
        grown = min(_whole_gib(current * factor), max(ceiling, current))
        if grown <= current:
            _insert(
                lines,
                target.label,
                f"{target.label}: kept at {format_bytes(int(current))} — already at the policy "
                f"maximum of {format_bytes(int(ceiling))}; {because}",
            )
            continue
        candidate = _with_value(adjusted, target.field, format_bytes(int(grown)))
        cost = monthly_cost_usd(candidate.clickhouse, candidate.postgres, prices)
        if request.budget is not None and cost > request.budget.monthly_usd:
            _insert(
                lines,
                target.label,
                f"{target.label}: kept at {format_bytes(int(current))} — growing it to "
                f"{format_bytes(int(grown))} would cost ${cost:,.2f}/month, over the budget of "
                f"${request.budget.monthly_usd:,.2f}; {because}",
            )
            continue
        capped = " (capped by policy)" if grown < current * lesson.factor else ""
        _insert(
            lines,
            target.label,
            f"{target.label}: {format_bytes(int(grown))} — {format_bytes(int(current))} "
            f"x{factor.normalize():f}"
            f"{capped}, from {because}",
        )
        adjusted = candidate.model_copy(update={"estimated_monthly_cost_usd": cost})
    if adjusted is design:
        return design.model_copy(update={"rationale": lines})
    lines.append(
        f"cost with lessons: ${adjusted.estimated_monthly_cost_usd:,.2f}/month (the design "
        f"without them ${design.estimated_monthly_cost_usd:,.2f})"
        + (
            f", within the budget of ${request.budget.monthly_usd:,.2f}"
            if request.budget is not None
            else ""
        )
    )
    return adjusted.model_copy(update={"rationale": lines})


def _with_value(design: PlatformDesign, field: AdjustedField, value: str) -> PlatformDesign:
    wire = design.wire()
    *parents, leaf = field.value.split(".")
    node = wire
    for name in parents:
        node = node[name]
    node[leaf] = value
    return PlatformDesign.model_validate(wire)


def _limit(policy: PlannerPolicy, component: Component, resource: Resource) -> str:
    limits: PodLimits = {
        Component.CLICKHOUSE: policy.clickhouse,
        Component.KEEPER: policy.keeper,
        Component.POSTGRES: policy.postgres,
    }[component]
    return limits.max_memory if resource is Resource.MEMORY else limits.max_storage


def _whole_gib(amount: Decimal) -> Decimal:
    return (amount / GiB).to_integral_value(rounding=ROUND_CEILING) * GiB


def _insert(lines: list[str], label: str, line: str) -> None:
    """After the last line about the figure (its own line and any pin warnings), or last."""
    at = max(
        (i for i, existing in enumerate(lines) if existing.startswith(f"{label}:")), default=None
    )
    if at is None:
        lines.append(line)
    else:
        lines.insert(at + 1, line)
