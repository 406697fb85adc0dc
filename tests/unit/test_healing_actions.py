"""How the operator carries out the healer's design-changing actions: pure parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from duet_agents.healer.observations import Component
from duet_agents.planner.adjustments import AdjustedField, Adjustment
from duet_agents.planner.models import PriceTable
from duet_operator.healing import (
    adjustment_for,
    autonomy_of,
    healing_condition,
    limits_of,
)
from duet_operator.models.dataplatform import AutonomyMode, DataPlatformStatus, Phase
from duet_operator.models.remediation import Remediation
from duet_operator.planning import plan_platform
from duet_operator.reconcile import next_status
from duet_operator.render.naming import Names
from duet_operator.status import ConditionType, Reason, find, set_condition
from tests.support.platforms import platform

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
NAMES = Names("clicks", "analytics")
PRICES = PriceTable()


def record(action: str, phase: str | None = None, **parameters: str) -> Remediation:
    body: dict[str, Any] = {
        "apiVersion": "duet.aidatalabs.ai/v1alpha1",
        "kind": "Remediation",
        "metadata": {"name": f"clicks-{action.lower()}-1", "namespace": "analytics"},
        "spec": {
            "platformRef": {"name": "clicks"},
            "symptom": {"type": "OOMKilled", "object": "pod/clicks-clickhouse-0-1"},
            "diagnosis": "d",
            "action": {"type": action, "parameters": parameters},
            "mode": "auto",
        },
    }
    if phase:
        body["status"] = {"phase": phase}
    return Remediation.model_validate(body)


def test_each_design_action_raises_the_figure_of_its_component() -> None:
    memory = adjustment_for(record("raiseMemory", statefulset=NAMES.keeper, to="3Gi"), NAMES, NOW)
    assert memory is not None
    assert (memory.field, memory.value) == (AdjustedField.KEEPER_MEMORY, "3Gi")
    assert memory.remediation == "clicks-raisememory-1"
    assert memory.reason == "OOMKilled on pod/clicks-clickhouse-0-1"
    storage = adjustment_for(
        record("expandStorage", claim=f"data-{NAMES.shard(1)}-0", to="2100Gi"), NAMES, NOW
    )
    assert storage is not None
    assert storage.field is AdjustedField.CLICKHOUSE_STORAGE
    postgres = adjustment_for(
        record("expandStorage", claim=f"data-{NAMES.postgres}-1", to="30Gi"), NAMES, NOW
    )
    assert postgres is not None
    assert postgres.field is AdjustedField.POSTGRES_STORAGE
    shards = adjustment_for(record("scaleOut", to="3"), NAMES, NOW)
    assert shards is not None
    assert (shards.field, shards.value) == (AdjustedField.CLICKHOUSE_SHARDS, "3")
    assert adjustment_for(record("restartPod", pod="p"), NAMES, NOW) is None


def test_pinned_figures_are_out_of_the_healers_reach() -> None:
    free = limits_of(platform())
    assert (free.pinned_memory, free.pinned_storage, free.pinned_shards) == (
        frozenset(),
        frozenset(),
        False,
    )
    pinned = limits_of(
        platform(
            clickhouse={"shards": 2, "resources": {"memory": "16Gi"}},
            postgres={"storage": {"size": "50Gi"}},
        )
    )
    assert pinned.pinned_memory == {Component.CLICKHOUSE}
    assert pinned.pinned_storage == {Component.POSTGRES}
    assert pinned.pinned_shards


def test_an_unset_mode_is_the_operators_default() -> None:
    assert autonomy_of(platform()).mode == "recommend"
    assert autonomy_of(platform(), AutonomyMode.OBSERVE).mode == "observe"
    assert autonomy_of(platform(autonomy={"mode": "auto"}), AutonomyMode.OBSERVE).mode == "auto"


def test_adjustments_outlive_a_new_plan_and_keep_it_from_dropping_the_added_shard() -> None:
    first = plan_platform(platform(), PRICES)
    assert first.design is not None
    planned = first.design.clickhouse.shards
    added = Adjustment(
        field=AdjustedField.CLICKHOUSE_SHARDS, value=str(planned + 1), remediation="r", at=NOW
    )
    running = platform().model_copy(
        update={
            "status": DataPlatformStatus(
                design=first.design, plan_hash=first.plan_hash, adjustments=[added]
            )
        }
    )
    # A new spec is planned again; the healer's shard is still there, and no refusal.
    changed = running.model_copy(
        update={"spec": running.spec.model_copy(update={"description": "now with words"})}
    )
    again = plan_platform(changed, PRICES)
    assert again.accepted, again.message
    assert again.design is not None
    assert again.design.clickhouse.shards == planned + 1
    # And the status a reconcile writes keeps the adjustments.
    status = next_status(changed, again, None, None, NAMES, now=NOW)
    assert status.adjustments == [added]


def test_healing_shows_while_a_remediation_is_carried_out_and_clears_after() -> None:
    first = plan_platform(platform(), PRICES)
    not_ready = set_condition(
        [], ConditionType.READY, False, Reason.REPLICAS_NOT_READY, "1/2", generation=1, now=NOW
    )
    degraded = DataPlatformStatus(phase=Phase.DEGRADED, design=first.design, conditions=not_ready)
    # Never acted on: no condition at all.
    assert healing_condition(degraded, [], generation=1, now=NOW) is None
    applied = record("raiseMemory", "Applied", statefulset=NAMES.shard(0), to="24Gi")
    healing = healing_condition(degraded, [applied], generation=1, now=NOW)
    assert healing is not None
    assert healing.phase is Phase.HEALING
    condition = find(healing.conditions, ConditionType.HEALING)
    assert condition is not None
    assert condition.status == "True"
    assert "clicks-raisememory-1: raiseMemory (Applied)" in condition.message
    # Written once: the same state again needs no write.
    assert healing_condition(healing, [applied], generation=1, now=NOW) is None
    # Verified: Healing False, and the platform is what its other conditions say.
    done = healing_condition(healing, [], generation=1, now=NOW)
    assert done is not None
    assert done.phase is Phase.DEGRADED
    cleared = find(done.conditions, ConditionType.HEALING)
    assert cleared is not None
    assert (cleared.status, cleared.reason) == ("False", Reason.NO_REMEDIATION)
