"""The pure parts of a reconcile: plan caching and refusals, readiness, status, events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from duet_agents.planner.models import PriceTable
from duet_operator.models import DataPlatform
from duet_operator.models.dataplatform import Phase
from duet_operator.observe import (
    Replicas,
    expected_statefulsets,
    readiness,
    statefulset_components,
)
from duet_operator.planning import plan_platform, spec_hash
from duet_operator.reconcile import next_status, transition_events
from duet_operator.render.naming import Names
from duet_operator.status import (
    ConditionType,
    Reason,
    find,
    invalid_spec_status,
    set_condition,
)
from tests.support.platforms import platform

PRICES = PriceTable()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = Names("clicks", "analytics")


def with_status(p: DataPlatform, **status: Any) -> DataPlatform:
    return p.model_copy(update={"status": p.status.model_copy(update=status)})


def sts(
    name: str, replicas: int, ready: int, *, generation: int = 1, observed: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": "r1",
            "updateRevision": "r1",
        },
    }


# -- planning ------------------------------------------------------------------------------------


def test_a_new_spec_is_planned_and_an_unchanged_one_is_not() -> None:
    p = platform()
    first = plan_platform(p, PRICES)
    assert first.accepted
    assert first.changed
    assert first.design is not None
    cached = plan_platform(with_status(p, design=first.design, plan_hash=first.plan_hash), PRICES)
    assert cached.design == first.design
    assert not cached.changed


def test_the_hash_follows_what_planning_reads_and_nothing_else() -> None:
    base = spec_hash(platform(), PRICES)
    assert spec_hash(platform(autonomy={"mode": "auto"}), PRICES) == base
    assert spec_hash(platform(deletionPolicy="Delete"), PRICES) == base
    assert spec_hash(platform(requirements={"dataVolume": "3Ti"}), PRICES) != base
    assert spec_hash(platform(), PriceTable(cpu_core_month_usd=1)) != base


def test_a_budget_refusal_keeps_the_design_in_force() -> None:
    running = plan_platform(platform(), PRICES)
    poor = with_status(
        platform(budget={"monthlyUSD": 10}), design=running.design, plan_hash=running.plan_hash
    )
    refused = plan_platform(poor, PRICES)
    assert not refused.accepted
    assert refused.reason == Reason.BUDGET_INFEASIBLE
    assert "spec.budget.monthlyUSD" in refused.message
    assert refused.design == running.design
    assert refused.plan_hash == running.plan_hash, "so the refusal is re-evaluated next time"


def test_fewer_shards_are_refused_with_the_pin_that_would_keep_them() -> None:
    big = plan_platform(platform(requirements={"dataVolume": "6Ti"}), PRICES)
    assert big.design is not None
    assert big.design.clickhouse.shards == 3
    smaller = with_status(
        platform(requirements={"dataVolume": "1Ti"}), design=big.design, plan_hash=big.plan_hash
    )
    refused = plan_platform(smaller, PRICES)
    assert refused.reason == Reason.SHARD_REMOVAL_REFUSED
    assert refused.design == big.design
    assert "pin spec.clickhouse.shards to 3" in refused.message


def test_fewer_replicas_are_refused_unless_the_spec_allows_it() -> None:
    running = plan_platform(platform(clickhouse={"replicas": 3}), PRICES)
    assert running.design is not None
    fewer = with_status(
        platform(clickhouse={"replicas": 2}), design=running.design, plan_hash=running.plan_hash
    )
    refused = plan_platform(fewer, PRICES)
    assert (refused.accepted, refused.reason) == (False, Reason.REPLICA_REMOVAL_REFUSED)
    assert refused.design == running.design
    assert "spec.scaleDown.allowReplicaRemoval" in refused.message
    assert "pin spec.clickhouse.replicas to 3" in refused.message

    allowed = with_status(
        platform(clickhouse={"replicas": 2}, scaleDown={"allowReplicaRemoval": True}),
        design=running.design, plan_hash=running.plan_hash,
    )  # fmt: skip
    planned = plan_platform(allowed, PRICES)
    assert planned.accepted
    assert planned.design is not None
    assert planned.design.clickhouse.replicas == 2


def test_removing_shards_needs_its_own_consent() -> None:
    big = plan_platform(platform(requirements={"dataVolume": "6Ti"}), PRICES)
    assert big.design is not None
    replicas_only = with_status(
        platform(requirements={"dataVolume": "1Ti"}, scaleDown={"allowReplicaRemoval": True}),
        design=big.design, plan_hash=big.plan_hash,
    )  # fmt: skip
    assert plan_platform(replicas_only, PRICES).reason == Reason.SHARD_REMOVAL_REFUSED
    shards = with_status(
        platform(requirements={"dataVolume": "1Ti"}, scaleDown={"allowShardRemoval": True}),
        design=big.design, plan_hash=big.plan_hash,
    )  # fmt: skip
    planned = plan_platform(shards, PRICES)
    assert planned.accepted
    assert planned.design is not None
    assert planned.design.clickhouse.shards < big.design.clickhouse.shards


# -- readiness -----------------------------------------------------------------------------------


def test_readiness_waits_for_every_expected_statefulset() -> None:
    design = plan_platform(platform(), PRICES).design
    assert design is not None
    expected = expected_statefulsets(NAMES, design)
    assert expected == {"clicks-clickhouse-0": 2, "clicks-keeper": 3, "clicks-postgres": 2}
    full = [sts(n, wanted, wanted) for n, wanted in expected.items()]
    assert readiness(expected, full).ready
    assert not readiness(expected, full[:2]).ready
    assert "clicks-postgres to be created" in readiness(expected, full[:2]).message
    lagging = [sts("clicks-clickhouse-0", 2, 1), *full[1:]]
    assert readiness(expected, lagging).message == "replicas not ready: clicks-clickhouse-0 1/2"
    stale = [sts("clicks-clickhouse-0", 2, 2, generation=2, observed=1), *full[1:]]
    assert readiness(expected, stale).rolling
    assert not readiness(expected, stale).ready
    # A StatefulSet whose own spec is satisfied but which runs fewer than the design wants
    # (its update was refused, say) is not ready.
    behind = [sts("clicks-clickhouse-0", 1, 1), *full[1:]]
    assert not readiness(expected, behind).ready
    # Drift (a StatefulSet scaled by hand or deleted) calls for a full reconcile; a rollout
    # in progress does not.
    assert readiness(expected, behind).drifted
    assert readiness(expected, full[:2]).drifted
    assert not readiness(expected, full).drifted
    assert not readiness(expected, stale).drifted


def test_readiness_counts_replicas_per_component() -> None:
    p = platform(requirements={"dataVolume": "40Ti", "availability": "high"})
    design = plan_platform(p, PRICES).design
    assert design is not None
    assert design.clickhouse.shards >= 2
    expected = expected_statefulsets(NAMES, design)
    components = statefulset_components(NAMES, design)
    shards = design.clickhouse.shards
    clickhouse = shards * design.clickhouse.replicas
    full = [sts(n, wanted, wanted) for n, wanted in expected.items()]
    counts = readiness(expected, full, components).replicas
    assert counts == {
        "clickhouse": Replicas(desired=clickhouse, ready=clickhouse),
        "keeper": Replicas(3, 3),
        "postgres": Replicas(2, 2),
    }
    # One replica of the first shard down, the last shard not created yet: the shards are
    # summed, and what is missing counts as desired and not ready.
    broken = [sts("clicks-clickhouse-0", 2, 1), *full[1 : shards - 1], *full[shards:]]
    counts = readiness(expected, broken, components).replicas
    assert counts["clickhouse"] == Replicas(desired=clickhouse, ready=clickhouse - 3)
    # Scaled past the design by hand: the extra replicas are not wanted ones.
    over = [
        sts("clicks-keeper", 5, 5) if s["metadata"]["name"] == "clicks-keeper" else s for s in full
    ]
    assert readiness(expected, over, components).replicas["keeper"] == Replicas(3, 3)
    # Without the components, no counts: the status path needs only readiness.
    assert readiness(expected, full).replicas == {}


# -- status and events ---------------------------------------------------------------------------


def test_transition_time_moves_only_when_status_flips() -> None:
    once = set_condition([], ConditionType.READY, False, Reason.REPLICAS_NOT_READY, "a",
                         generation=1, now=T0)  # fmt: skip
    again = set_condition(once, ConditionType.READY, False, Reason.ROLLING_OUT, "b",
                          generation=1, now=T0 + timedelta(seconds=5))  # fmt: skip
    flipped = set_condition(again, ConditionType.READY, True, Reason.ALL_REPLICAS_READY, "c",
                            generation=1, now=T0 + timedelta(seconds=9))  # fmt: skip
    assert find(again, ConditionType.READY).last_transition_time == T0  # type: ignore[union-attr]
    assert find(flipped, ConditionType.READY).last_transition_time == T0 + timedelta(seconds=9)  # type: ignore[union-attr]


def test_a_fresh_platform_goes_provisioning_then_ready_then_degraded() -> None:
    p = platform()
    planned = plan_platform(p, PRICES)
    design = planned.design
    assert design is not None
    expected = expected_statefulsets(NAMES, design)

    provisioning = next_status(p, planned, readiness(expected, []), None, NAMES, now=T0)
    assert provisioning.phase == Phase.PROVISIONING
    assert provisioning.endpoints is not None
    assert provisioning.endpoints.clickhouse_http == (
        "http://clicks-clickhouse.analytics.svc.cluster.local:8123"
    )
    p = with_status(p, **provisioning.__dict__)
    healthy = [sts(n, wanted, wanted) for n, wanted in expected.items()]
    ready = next_status(p, planned, readiness(expected, healthy), None, NAMES, now=T0)
    assert ready.phase == Phase.READY
    events = transition_events(provisioning, ready)
    assert [(e.type, e.reason) for e in events] == [("Normal", "AllReplicasReady")]

    p = with_status(p, **ready.__dict__)
    lost = [sts("clicks-clickhouse-0", 2, 1), *healthy[1:]]
    degraded = next_status(p, planned, readiness(expected, lost), None, NAMES, now=T0)
    assert degraded.phase == Phase.DEGRADED
    assert [(e.type, e.reason) for e in transition_events(ready, degraded)] == [
        ("Warning", "ReplicasNotReady")
    ]
    assert transition_events(degraded, degraded) == [], "a resync posts nothing"

    # A rollout of a Ready platform (a new version, say) is news, not a fault.
    stale = [sts("clicks-clickhouse-0", 2, 2, generation=2, observed=1), *healthy[1:]]
    rolling = next_status(p, planned, readiness(expected, stale), None, NAMES, now=T0)
    assert [(e.type, e.reason) for e in transition_events(ready, rolling)] == [
        ("Normal", "RollingOut")
    ]


def test_a_refused_first_plan_fails_the_platform() -> None:
    p = platform(budget={"monthlyUSD": 10})
    planned = plan_platform(p, PRICES)
    status = next_status(p, planned, None, None, NAMES, now=T0)
    assert status.phase == Phase.FAILED
    assert status.design is None
    planned_condition = find(status.conditions, ConditionType.PLANNED)
    assert planned_condition is not None
    assert planned_condition.reason == "BudgetInfeasible"
    assert next((e.type, e.reason) for e in transition_events(p.status, status)) == (
        "Warning",
        "BudgetInfeasible",
    )


def test_an_apply_failure_is_a_condition_not_a_silent_log() -> None:
    p = platform()
    planned = plan_platform(p, PRICES)
    status = next_status(p, planned, None, "applying failed: 403 Forbidden", NAMES, now=T0)
    provisioned = find(status.conditions, ConditionType.PROVISIONED)
    assert provisioned is not None
    assert (provisioned.status, provisioned.reason) == ("False", "ApplyFailed")
    assert status.phase == Phase.FAILED


def test_an_apply_failure_on_a_running_platform_degrades_it_and_is_not_ready() -> None:
    p = platform()
    planned = plan_platform(p, PRICES)
    assert planned.design is not None
    expected = expected_statefulsets(NAMES, planned.design)
    healthy = readiness(expected, [sts(n, w, w) for n, w in expected.items()])
    ready = next_status(p, planned, healthy, None, NAMES, now=T0)
    p = with_status(p, **ready.__dict__)
    failed = next_status(p, planned, healthy, "applying failed: 422 Invalid", NAMES, now=T0)
    assert failed.phase == Phase.DEGRADED
    ready_condition = find(failed.conditions, ConditionType.READY)
    assert ready_condition is not None
    assert (ready_condition.status, ready_condition.reason) == ("False", "ApplyFailed")


def test_an_unreadable_new_platform_fails_naming_the_field() -> None:
    body = {"metadata": {"name": "odd", "generation": 3}, "spec": {}}
    status = invalid_spec_status(body, "spec.requirements.availability: bad", now=T0)
    assert status["phase"] == Phase.FAILED
    assert status["observedGeneration"] == 3
    (planned,) = status["conditions"]
    assert planned["type"] == "Planned"
    assert planned["status"] == "False"
    assert planned["reason"] == "InvalidSpec"
    assert planned["message"] == "spec.requirements.availability: bad"


def test_an_unreadable_running_platform_keeps_its_phase_and_readable_conditions() -> None:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "AllReplicasReady",
        "message": "ok",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    from_the_future = {"type": "Planned", "status": "Maybe"}
    body = {
        "metadata": {"name": "odd", "generation": 4},
        "status": {
            "phase": "Ready",
            "design": {"any": "thing"},
            "conditions": [ready, from_the_future],
        },
    }
    status = invalid_spec_status(body, "spec.x: bad", now=T0)
    assert status["phase"] == "Ready"
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["Planned"]["reason"] == "InvalidSpec"


# -- a model's proposal ---------------------------------------------------------------------------


def model_plan(p: DataPlatform, *, fallback: str | None = None, shards: int | None = None) -> Any:
    from decimal import Decimal  # noqa: PLC0415

    from duet_agents.llm.base import Usage  # noqa: PLC0415
    from duet_agents.planner import capacity  # noqa: PLC0415
    from duet_agents.planner.graph import ModelPlan  # noqa: PLC0415
    from duet_agents.planner.models import PlannerInfo  # noqa: PLC0415

    design = capacity.plan(p.spec.plan_request(), PRICES)
    if fallback is None:
        design = design.model_copy(
            update={"planner": PlannerInfo(provider="openai", model="gpt-x")}
        )
    if shards is not None:
        clickhouse = design.clickhouse.model_copy(update={"shards": shards})
        design = design.model_copy(update={"clickhouse": clickhouse})
    return ModelPlan(
        design=design,
        provider="openai",
        model="gpt-x",
        usage=Usage(input_tokens=1000, output_tokens=200),
        cost_usd=Decimal("0.0125"),
        price_known=True,
        attempts=1,
        fallback_reason=fallback,
    )


def test_a_models_design_is_used_and_its_cost_reported() -> None:
    p = platform()
    planned = plan_platform(p, PRICES, proposal=model_plan(p))
    assert planned.accepted
    assert planned.reason == Reason.DESIGNED
    assert planned.design is not None
    assert planned.design.planner.provider == "openai"
    assert planned.planner is not None
    assert (planned.planner.provider, planned.planner.tokens) == ("openai", 1200)
    assert planned.planner.cost_usd == 0.0125
    status = next_status(with_status(p), planned, None, None, NAMES, now=T0)
    assert status.planner is not None
    assert status.planner.tokens == 1200


def test_a_fallback_is_reported_and_stays_reported_while_its_design_is_in_force() -> None:
    p = platform()
    planned = plan_platform(p, PRICES, proposal=model_plan(p, fallback="HTTP 500: overloaded"))
    assert planned.reason == Reason.BUILTIN_FALLBACK
    assert "gpt-x was not used: HTTP 500: overloaded" in planned.message
    status = next_status(p, planned, None, None, NAMES, now=T0)
    again = plan_platform(p.model_copy(update={"status": status}), PRICES)
    assert not again.changed
    assert (again.reason, again.message) == (planned.reason, planned.message)
    kept = next_status(p.model_copy(update={"status": status}), again, None, None, NAMES, now=T0)
    assert kept.planner == status.planner, "tokens and cost stay with the design they paid for"


def test_a_model_cannot_drop_a_shard_either() -> None:
    p = platform(requirements={"dataVolume": "6Ti", "availability": "high"})
    running = plan_platform(p, PRICES)
    assert running.design is not None
    assert running.design.clickhouse.shards == 3
    changed = p.model_copy(
        update={"spec": p.spec.model_copy(update={"description": "fewer, please"})}
    )
    now = with_status(changed, design=running.design, plan_hash="older")
    planned = plan_platform(now, PRICES, proposal=model_plan(now, shards=1))
    assert not planned.accepted
    assert planned.reason == Reason.SHARD_REMOVAL_REFUSED
    assert planned.design == running.design
