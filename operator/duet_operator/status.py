"""Conditions and phase: pure functions from what was observed to what status says.

Condition types and reasons are named constants; a condition's lastTransitionTime moves only
when its status flips, so `kubectl get -w` shows real transitions, not reconcile ticks.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from duet_operator.models.common import Condition, ConditionStatus
from duet_operator.models.dataplatform import Phase


class ConditionType(enum.StrEnum):
    PLANNED = "Planned"
    PROVISIONED = "Provisioned"
    READY = "Ready"
    HEALING = "Healing"  # written by the healer: a remediation is being carried out
    SCHEMA_IN_SYNC = "SchemaInSync"  # every ClickHouse host has the cluster's tables
    RESTORED = "Restored"  # spec.restoreFrom's backup is in the new platform's databases


class Reason(enum.StrEnum):
    DESIGNED = "Designed"
    BUILTIN_FALLBACK = "BuiltinFallback"  # a model planner failed; the built-in design is used
    BUDGET_INFEASIBLE = "BudgetInfeasible"
    PLANNING_FAILED = "PlanningFailed"
    SHARD_REMOVAL_REFUSED = "ShardRemovalRefused"
    REPLICA_REMOVAL_REFUSED = "ReplicaRemovalRefused"
    APPLIED = "Applied"
    APPLY_FAILED = "ApplyFailed"
    NOT_PLANNED = "NotPlanned"
    ALL_REPLICAS_READY = "AllReplicasReady"
    REPLICAS_NOT_READY = "ReplicasNotReady"
    ROLLING_OUT = "RollingOut"
    INVALID_SPEC = "InvalidSpec"
    PLATFORM_NOT_FOUND = "PlatformNotFound"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a reason, not a password)
    REMEDIATING = "Remediating"
    NO_REMEDIATION = "NoRemediation"
    SCHEMA_IN_STEP = "InStep"
    SCHEMA_REPLAYED = "Replayed"  # hosts lacked tables and were given them
    SCHEMA_NOT_IN_STEP = "NotInStep"
    SCHEMA_UNREADABLE = "SchemaUnreadable"
    RESTORING = "Restoring"
    RESTORE_FAILED = "RestoreFailed"
    RESTORE_DONE = "Restored"
    BACKUP_NOT_FOUND = "BackupNotFound"
    BACKUP_NOT_COMPLETED = "BackupNotCompleted"
    NOT_RESTORED = "NotRestored"  # Ready's, while Restored is False


def find(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: ConditionType) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == ConditionStatus.TRUE


def is_false(conditions: list[Condition], type_: ConditionType) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == ConditionStatus.FALSE


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: bool | None,
    reason: Reason,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """`conditions` with `type_` set (None: Unknown); its transition time kept unless the
    status flips."""
    wanted = (
        ConditionStatus.UNKNOWN
        if status is None
        else ConditionStatus.TRUE
        if status
        else ConditionStatus.FALSE
    )
    previous = find(conditions, type_)
    since = previous.last_transition_time if previous and previous.status == wanted else now
    updated = Condition(
        type=type_,
        status=wanted,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type_]
    order = [str(t) for t in ConditionType]
    return sorted(
        [*others, updated], key=lambda c: order.index(c.type) if c.type in order else len(order)
    )


def phase_of(conditions: list[Condition], *, was_ready: bool, has_design: bool) -> Phase:
    """One word for `kubectl get dp`; the conditions carry the detail."""
    if is_true(conditions, ConditionType.READY):
        return Phase.READY
    if has_design and is_true(conditions, ConditionType.HEALING):
        return Phase.HEALING
    planned = find(conditions, ConditionType.PLANNED)
    if not has_design:
        failed = planned is not None and planned.status == ConditionStatus.FALSE
        return Phase.FAILED if failed else Phase.PLANNING
    provisioned = find(conditions, ConditionType.PROVISIONED)
    if provisioned is not None and provisioned.status == ConditionStatus.FALSE:
        # A platform that ran keeps running on what was applied before: degraded, not failed.
        return Phase.DEGRADED if was_ready else Phase.FAILED
    return Phase.DEGRADED if was_ready else Phase.PROVISIONING


def invalid_spec_status(body: Mapping[str, Any], message: str, *, now: datetime) -> dict[str, Any]:
    """The status of an object the API server admitted but our model refuses (a CRD older
    than the operator, or a status written by a newer one): Planned=False, InvalidSpec,
    naming the fields. Built from the raw body, since the model cannot read it; a design in
    force stays in force, as with any other refused plan."""
    raw: Mapping[str, Any] = body.get("status") or {}
    conditions = []
    for item in raw.get("conditions") or []:
        try:
            conditions.append(Condition.model_validate(item))
        except ValidationError:
            continue  # what we cannot read, we do not write back
    generation = (body.get("metadata") or {}).get("generation")
    conditions = set_condition(
        conditions,
        ConditionType.PLANNED,
        False,
        Reason.INVALID_SPEC,
        message,
        generation=generation,
        now=now,
    )
    phase = raw.get("phase") if raw.get("design") else Phase.FAILED
    return {
        "phase": phase or Phase.FAILED,
        "observedGeneration": generation,
        "conditions": [c.wire() for c in conditions],
    }
