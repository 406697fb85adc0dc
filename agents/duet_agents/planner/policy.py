"""What a model may propose, and the rules a proposal must keep before Duet provisions it.

A model's answer is untrusted data. It reaches the design only through `DesignProposal`
(the design's own fields, nothing else: unknown keys are refused), and only after `review`
finds nothing wrong with it:

- fixed fields: every field pinned in the spec, and the fields that are not the planner's to
  choose (versions, storage classes, whether PostgreSQL runs), equal the built-in design's;
- policy bounds: counts and per-pod CPU, memory and storage within `PlannerPolicy`;
- hard requirements, as the built-in rules state them: storage holds the shard's data with
  the merge headroom, availability high means replicated shards, a Keeper quorum and a
  PostgreSQL standby, Keeper sizes are valid Raft ensembles, and the cost, recomputed here
  with the built-in planner's cost function, is within the budget.

Soft rules of the built-in planner (data and ingest per shard, CPU from the latency model,
the memory ratios) are estimates the model may argue with; docs/llm-planner.md lists both.
A bound never forbids what the built-in design itself has (a large platform may need more
shards than the default policy allows), so the built-in design always passes its own review.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from duet_agents.planner.capacity import (
    DISK_FILL_LIMIT,
    KEEPER_QUORUM,
    MIN_CPU,
    MIN_MEMORY,
    MIN_STORAGE,
    POSTGRES_INSTANCES_HIGH,
    REPLICAS_HIGH,
    decide_storage,
    monthly_cost_usd,
)
from duet_agents.planner.models import (
    Availability,
    ClickHouseDesign,
    PlanRequest,
    PlatformDesign,
    PostgresDesign,
    PriceTable,
)
from duet_agents.schema import CamelModel, Quantity
from duet_agents.units import format_bytes, parse_quantity

# The schema's own ceiling on rationale text; `clean_rationale` then keeps far less. Refusing
# only absurd answers keeps a verbose model from burning a repair round on prose.
MAX_RATIONALE_LINES = 40
MAX_RATIONALE_LINE_CHARS = 1000

RationaleLine = Annotated[str, StringConstraints(max_length=MAX_RATIONALE_LINE_CHARS)]

# Fields that are not the planner's to choose: the built-in design's value (the pin, or the
# default) stands. A new version or StorageClass is the user's decision, not a model's.
FIXED_FIELDS = (
    "clickhouse.version",
    "clickhouse.storage.storageClass",
    "clickhouse.keeper.storage.storageClass",
    "postgres.enabled",
    "postgres.version",
    "postgres.storage.storageClass",
)
_QUANTITY_FIELDS = {"cpu", "memory", "size"}
RAFT_SIZES = (0, 1, 3, 5, 7)


class DesignProposal(CamelModel):
    """A proposed platform design: ClickHouse shards, replicas, pod sizes and Keeper, the
    PostgreSQL metadata database, and one line of rationale per decision."""

    clickhouse: ClickHouseDesign
    postgres: PostgresDesign
    rationale: list[RationaleLine] = Field(
        min_length=1,
        max_length=MAX_RATIONALE_LINES,
        description="Why each figure is what it is, one short plain-text line each.",
    )
    estimated_monthly_cost_usd: float | None = Field(
        default=None,
        alias="estimatedMonthlyCostUSD",
        description="Your estimate, for reference only: Duet computes the cost itself.",
    )


class PodLimits(CamelModel):
    """The smallest and largest pod a proposal may give one component."""

    min_cpu: Quantity
    max_cpu: Quantity
    min_memory: Quantity
    max_memory: Quantity
    min_storage: Quantity
    max_storage: Quantity


class PlannerPolicy(CamelModel):
    """Bounds on what a model planner may propose; the defaults suit one team's platform."""

    max_shards: int = Field(default=64, ge=1, le=256)
    max_replicas: int = Field(default=3, ge=1, le=8)
    max_keeper_replicas: int = Field(default=5, ge=0, le=7)
    max_postgres_instances: int = Field(default=3, ge=1, le=5)
    clickhouse: PodLimits = PodLimits(
        min_cpu=str(MIN_CPU),
        max_cpu="64",
        min_memory=format_bytes(MIN_MEMORY),
        max_memory="512Gi",
        min_storage=format_bytes(MIN_STORAGE),
        max_storage="16Ti",
    )
    keeper: PodLimits = PodLimits(
        min_cpu="250m",
        max_cpu="4",
        min_memory="512Mi",
        max_memory="16Gi",
        min_storage="1Gi",
        max_storage="100Gi",
    )
    postgres: PodLimits = PodLimits(
        min_cpu="250m",
        max_cpu="16",
        min_memory="512Mi",
        max_memory="64Gi",
        min_storage="1Gi",
        max_storage="1Ti",
    )
    max_cost_ratio: Decimal = Field(
        default=Decimal(2),
        ge=1,
        description="Without a budget, a proposal costs at most this times the built-in design.",
    )
    max_repairs: int = Field(default=2, ge=0, le=5, description="Repair rounds before fallback.")
    max_rationale_lines: int = Field(default=12, ge=1, le=MAX_RATIONALE_LINES)
    max_rationale_chars: int = Field(default=300, ge=40, le=MAX_RATIONALE_LINE_CHARS)


@dataclass(frozen=True)
class Review:
    """What is wrong with a proposal (nothing, when it can be provisioned) and its cost."""

    problems: list[str]
    cost_usd: float

    @property
    def accepted(self) -> bool:
        return not self.problems


def review(
    proposal: DesignProposal,
    *,
    request: PlanRequest,
    baseline: PlatformDesign,
    policy: PlannerPolicy,
    prices: PriceTable,
) -> Review:
    """Every rule the proposal breaks, each as `field: what is wrong, and the limit`."""
    pinned = _pinned_paths(request)
    cost = monthly_cost_usd(proposal.clickhouse, proposal.postgres, prices)
    problems = [
        *_fixed_fields(proposal, baseline, pinned),
        *_counts(proposal, baseline, policy),
        *_pod_sizes(proposal, baseline, policy),
        *_requirements(proposal, request, pinned),
        *_cost(cost, request, baseline, policy),
    ]
    return Review(problems=problems, cost_usd=cost)


def as_proposal(design: PlatformDesign) -> DesignProposal:
    """A design in the proposal's shape (the baseline shown to the model, and tests)."""
    return DesignProposal(
        clickhouse=design.clickhouse,
        postgres=design.postgres,
        rationale=list(design.rationale),
        estimated_monthly_cost_usd=design.estimated_monthly_cost_usd,
    )


def clean_rationale(lines: list[str], policy: PlannerPolicy) -> list[str]:
    """The model's rationale as plain single lines: control and formatting characters gone,
    whitespace collapsed, each line and the number of lines bounded by the policy."""
    cleaned = []
    for line in lines:
        text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in line)
        text = re.sub(r"\s+", " ", text).strip()
        if len(text) > policy.max_rationale_chars:
            text = text[: policy.max_rationale_chars - 3].rstrip() + "..."
        if text:
            cleaned.append(text)
    return cleaned[: policy.max_rationale_lines]


# -- fixed fields ----------------------------------------------------------------------------------


def fixed_values(request: PlanRequest, baseline: PlatformDesign) -> dict[str, Any]:
    """Each field a proposal must keep (pinned, or in FIXED_FIELDS) and its value."""
    wanted = _leaves(baseline.model_dump(by_alias=True, include={"clickhouse", "postgres"}))
    return {path: wanted.get(path) for path in sorted(_pinned_paths(request) | set(FIXED_FIELDS))}


def _pinned_paths(request: PlanRequest) -> set[str]:
    """The dotted paths the user set under spec.clickhouse and spec.postgres."""
    pins = {
        "clickhouse": request.clickhouse.model_dump(
            by_alias=True, exclude_unset=True, exclude_none=True
        ),
        "postgres": request.postgres.model_dump(
            by_alias=True, exclude_unset=True, exclude_none=True
        ),
    }
    return set(_leaves(pins))


def _fixed_fields(
    proposal: DesignProposal, baseline: PlatformDesign, pinned: set[str]
) -> list[str]:
    proposed = _leaves(proposal.model_dump(by_alias=True, include={"clickhouse", "postgres"}))
    wanted = _leaves(baseline.model_dump(by_alias=True, include={"clickhouse", "postgres"}))
    problems = []
    for path in sorted(pinned | set(FIXED_FIELDS)):
        if path == "postgres.instances" and not baseline.postgres.enabled:
            continue  # a count pinned while PostgreSQL is off runs nothing: _requirements
        got, want = proposed.get(path), wanted.get(path)
        if _same(path, got, want):
            continue
        why = (
            f"pinned in spec.{path}"
            if path in pinned
            else "not the planner's choice: keep the baseline's"
        )
        problems.append(f"{path}: must be {_show(want)} ({why}), not {_show(got)}")
    return problems


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat |= _leaves(value, path)
        else:
            flat[path] = value
    return flat


def _same(path: str, got: object, want: object) -> bool:
    if path.rsplit(".", 1)[-1] in _QUANTITY_FIELDS and got is not None and want is not None:
        return parse_quantity(str(got)) == parse_quantity(str(want))
    return got == want


def _show(value: object) -> str:
    if value is None:
        return "unset"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- policy bounds ---------------------------------------------------------------------------------


def _counts(proposal: DesignProposal, baseline: PlatformDesign, policy: PlannerPolicy) -> list[str]:
    ch, base = proposal.clickhouse, baseline.clickhouse
    checks = (
        ("clickhouse.shards", ch.shards, policy.max_shards, base.shards),
        ("clickhouse.replicas", ch.replicas, policy.max_replicas, base.replicas),
        (
            "clickhouse.keeper.replicas",
            ch.keeper.replicas,
            policy.max_keeper_replicas,
            base.keeper.replicas,
        ),
        (
            "postgres.instances",
            proposal.postgres.instances,
            policy.max_postgres_instances,
            baseline.postgres.instances,
        ),
    )
    return [
        f"{path}: {value} is above the policy limit of {max(limit, allowed)}"
        for path, value, limit, allowed in checks
        if value > max(limit, allowed)
    ]


def _pod_sizes(
    proposal: DesignProposal, baseline: PlatformDesign, policy: PlannerPolicy
) -> list[str]:
    ch, base = proposal.clickhouse, baseline.clickhouse
    pods = (
        (
            "clickhouse",
            ch.resources.cpu,
            ch.resources.memory,
            ch.storage.size,
            base,
            policy.clickhouse,
        ),
        (
            "clickhouse.keeper",
            ch.keeper.resources.cpu,
            ch.keeper.resources.memory,
            ch.keeper.storage.size,
            base.keeper,
            policy.keeper,
        ),
        (
            "postgres",
            proposal.postgres.resources.cpu,
            proposal.postgres.resources.memory,
            proposal.postgres.storage.size,
            baseline.postgres,
            policy.postgres,
        ),
    )
    problems = []
    for component, cpu, memory, size, allowed, limits in pods:
        fields = (
            ("resources.cpu", cpu, allowed.resources.cpu, limits.min_cpu, limits.max_cpu),
            (
                "resources.memory",
                memory,
                allowed.resources.memory,
                limits.min_memory,
                limits.max_memory,
            ),
            ("storage.size", size, allowed.storage.size, limits.min_storage, limits.max_storage),
        )
        for field, value, base_value, low, high in fields:
            amount, known = parse_quantity(value), parse_quantity(base_value)
            floor, ceiling = min(parse_quantity(low), known), max(parse_quantity(high), known)
            if amount < floor:
                shown = low if floor == parse_quantity(low) else base_value
                problems.append(f"{component}.{field}: {value} is below the minimum of {shown}")
            elif amount > ceiling:
                shown = high if ceiling == parse_quantity(high) else base_value
                problems.append(
                    f"{component}.{field}: {value} is above the policy limit of {shown}"
                )
    return problems


# -- hard requirements -----------------------------------------------------------------------------


def _requirements(proposal: DesignProposal, request: PlanRequest, pinned: set[str]) -> list[str]:
    """The built-in rules a design must keep whatever the model argues; a pin wins over a rule,
    as it does in the built-in planner."""
    ch, pg = proposal.clickhouse, proposal.postgres
    high = request.requirements.availability is Availability.HIGH
    problems = []
    if "clickhouse.storage.size" not in pinned:
        per_shard = -(-request.requirements.data_bytes // ch.shards)
        need = decide_storage(per_shard, None).value
        if parse_quantity(ch.storage.size) < parse_quantity(need):
            problems.append(
                f"clickhouse.storage.size: {ch.storage.size} is too small for "
                f"{format_bytes(per_shard)} of data per shard ({ch.shards} shards) kept at most "
                f"{DISK_FILL_LIMIT:.0%} full: at least {need}"
            )
    if high and "clickhouse.replicas" not in pinned and ch.replicas < REPLICAS_HIGH:
        problems.append(
            f"clickhouse.replicas: availability high needs at least {REPLICAS_HIGH} replicas "
            f"per shard, not {ch.replicas}"
        )
    if ch.keeper.replicas not in RAFT_SIZES:
        problems.append(
            f"clickhouse.keeper.replicas: {ch.keeper.replicas} is not a Raft ensemble size "
            f"(one of {', '.join(map(str, RAFT_SIZES))})"
        )
    elif "clickhouse.keeper.replicas" not in pinned:
        if ch.replicas > 1 and ch.keeper.replicas < KEEPER_QUORUM:
            problems.append(
                f"clickhouse.keeper.replicas: replicated shards need a quorum of at least "
                f"{KEEPER_QUORUM}, not {ch.keeper.replicas}"
            )
        elif ch.shards > 1 and ch.keeper.replicas < 1:
            problems.append(
                "clickhouse.keeper.replicas: several shards need a Keeper for distributed DDL"
            )
    if not pg.enabled and pg.instances != 0:
        problems.append(f"postgres.instances: PostgreSQL is disabled, so 0, not {pg.instances}")
    elif pg.enabled and "postgres.instances" not in pinned:
        need_pg = POSTGRES_INSTANCES_HIGH if high else 1
        if pg.instances < need_pg:
            why = "availability high needs a primary and a standby" if high else "it is enabled"
            problems.append(f"postgres.instances: {why}: at least {need_pg}, not {pg.instances}")
    return problems


def _cost(
    cost: float, request: PlanRequest, baseline: PlatformDesign, policy: PlannerPolicy
) -> list[str]:
    if request.budget is not None:
        if cost > request.budget.monthly_usd:
            return [
                f"estimatedMonthlyCostUSD: the design costs ${cost:,.2f}/month by Duet's price "
                f"table, over the budget of ${request.budget.monthly_usd:,.2f}"
            ]
        return []
    limit = Decimal(str(baseline.estimated_monthly_cost_usd)) * policy.max_cost_ratio
    if Decimal(str(cost)) > limit:
        return [
            f"estimatedMonthlyCostUSD: the design costs ${cost:,.2f}/month by Duet's price "
            f"table; with no budget set, the policy allows at most {policy.max_cost_ratio}x the "
            f"baseline's ${baseline.estimated_monthly_cost_usd:,.2f}, ${limit:,.2f}"
        ]
    return []
