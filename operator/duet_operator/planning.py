"""The plan step: a design for the spec, planned once per spec change and cached in status.

The cache key is a hash of what planning reads, so a resync or an operator restart never
plans again (and, with a model planner, never pays for a second call). A refusal keeps the
design in force: a platform that runs keeps running as it was.

The figures of a new design, from the bottom up: the planner's (built-in or a model's), grown
by the memory's lessons within pins, policy and budget (`apply_lessons`), then raised to the
healer's adjustments (`adjust`): each layer only raises, a pin stops all of them, and each
change is a rationale line naming where it came from. Lessons are not in the cache key: one
learnt later applies to new platforms and spec changes, never to a design in force.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from duet_agents.memory.adjust import apply_lessons
from duet_agents.memory.lessons import Lesson, MemoryPolicy
from duet_agents.planner import capacity
from duet_agents.planner.adjustments import adjust
from duet_agents.planner.errors import PlanningError
from duet_agents.planner.models import PlatformDesign, PriceTable
from duet_operator.models import DataPlatform
from duet_operator.models.dataplatform import PlannerStatus, ScaleDownSpec
from duet_operator.status import ConditionType, Reason, find

if TYPE_CHECKING:
    from duet_agents.planner.graph import ModelPlan


@dataclass(frozen=True)
class PlanOutcome:
    design: PlatformDesign | None  # what to provision: new, cached, or the one in force
    plan_hash: str | None
    accepted: bool  # False: the spec was refused; `design` is the previous one, if any
    reason: Reason
    message: str
    changed: bool  # a new design was made this time
    planner: PlannerStatus | None = None  # who made a new design, and what it cost


def spec_hash(platform: DataPlatform, prices: PriceTable) -> str:
    """Everything planning reads: the planning fields of the spec, the planner, the prices."""
    spec = platform.spec
    material = {
        "request": spec.plan_request().wire(),
        "planner": spec.planner.wire(),
        "prices": prices.wire(),
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def cached_plan(platform: DataPlatform, prices: PriceTable) -> PlanOutcome | None:
    """The design in force, when it was planned from this very spec: nothing to ask anyone."""
    current = platform.status.design
    wanted = spec_hash(platform, prices)
    if current is None or platform.status.plan_hash != wanted:
        return None
    # A fallback stays reported for as long as its design is in force.
    planned = find(platform.status.conditions, ConditionType.PLANNED)
    if planned is not None and planned.reason == Reason.BUILTIN_FALLBACK:
        return PlanOutcome(current, wanted, True, Reason.BUILTIN_FALLBACK, planned.message, False)
    return PlanOutcome(current, wanted, True, Reason.DESIGNED, _summary(current), False)


def plan_platform(
    platform: DataPlatform,
    prices: PriceTable,
    *,
    proposal: ModelPlan | None = None,
    lessons: Sequence[Lesson] = (),
    memory_policy: MemoryPolicy | None = None,
) -> PlanOutcome:
    """Plan the spec: with the built-in planner, or take a model's checked `proposal` (whose
    design is the built-in one when the model failed). Either way the same guards apply, and
    the `lessons` of similar platforms grow the design where they apply."""
    cached = cached_plan(platform, prices)
    if cached is not None:
        return cached
    current = platform.status.design
    if proposal is None:
        try:
            design = capacity.plan(platform.spec.plan_request(), prices)
        except PlanningError as e:
            return PlanOutcome(
                current, platform.status.plan_hash, False, Reason(e.reason), str(e), False
            )
        planner = PlannerStatus(provider=design.planner.provider, model=design.planner.model)
    else:
        design = proposal.design
        planner = PlannerStatus(
            provider=proposal.provider,
            model=proposal.model,
            tokens=proposal.usage.input_tokens + proposal.usage.output_tokens,
            cost_usd=float(proposal.cost_usd),
        )
    request = platform.spec.plan_request()
    if lessons:
        design = apply_lessons(design, request, list(lessons), prices, policy=memory_policy)
    # The healer's raised figures outlive the planning they came after (planning.md).
    design = adjust(design, platform.status.adjustments, request, prices)
    refusal = host_removal_refusal(current, design, platform.spec.scale_down)
    if refusal is not None:
        reason, message = refusal
        return PlanOutcome(current, platform.status.plan_hash, False, reason, message, False)
    wanted = spec_hash(platform, prices)
    if proposal is not None and proposal.fallback_reason is not None:
        message = (
            f"{_summary(design)}; the {proposal.provider} model {proposal.model} was not used: "
            f"{proposal.fallback_reason}"
        )
        return PlanOutcome(design, wanted, True, Reason.BUILTIN_FALLBACK, message, True, planner)
    return PlanOutcome(design, wanted, True, Reason.DESIGNED, _summary(design), True, planner)


def host_removal_refusal(
    current: PlatformDesign | None, design: PlatformDesign, consent: ScaleDownSpec
) -> tuple[Reason, str] | None:
    """Why `design` may not replace `current`: it removes ClickHouse hosts without the
    user's consent in spec.scaleDown. None when it may."""
    if current is None:
        return None
    now, new = current.clickhouse, design.clickhouse
    if new.shards < now.shards and not consent.allow_shard_removal:
        return Reason.SHARD_REMOVAL_REFUSED, (
            f"the new design has {new.shards} shards, fewer than the {now.shards} running: "
            f"removing a shard takes its rows out of every query, so the design in force is "
            f"kept (pin spec.clickhouse.shards to {now.shards} or more, or set "
            f"spec.scaleDown.allowShardRemoval once the rows are moved)"
        )
    if new.replicas < now.replicas and not consent.allow_replica_removal:
        return Reason.REPLICA_REMOVAL_REFUSED, (
            f"the new design has {new.replicas} replicas per shard, fewer than the "
            f"{now.replicas} running: tables that are not replicated would lose what the "
            f"removed replicas hold, so the design in force is kept (pin "
            f"spec.clickhouse.replicas to {now.replicas} or more, or set "
            f"spec.scaleDown.allowReplicaRemoval)"
        )
    return None


def _summary(design: PlatformDesign) -> str:
    ch = design.clickhouse
    return (
        f"{ch.shards} shard(s) x {ch.replicas} replica(s) of {ch.resources.cpu} CPU / "
        f"{ch.resources.memory}, {ch.storage.size} each; Keeper {ch.keeper.replicas}; "
        f"PostgreSQL {design.postgres.instances}; about "
        f"${design.estimated_monthly_cost_usd:,.0f}/month ({design.planner.provider} planner)"
    )
