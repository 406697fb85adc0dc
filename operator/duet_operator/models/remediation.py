"""The Remediation resource: one decision of the healer, kept as an auditable record.

The healer writes the spec (what it saw, what it concluded, what it would do); a person
approves by setting `spec.approved` (or `duet approve NAME`); the operator moves the status
along Pending -> Approved -> Applied -> Verified, or to Failed, Rejected or Expired.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import Field

from duet_agents.schema import CamelModel, ObjectName
from duet_operator.models.common import API_VERSION, Condition, ObjectMeta, cel, validated_by
from duet_operator.models.dataplatform import AutonomyMode, RemediationAction


class SymptomType(enum.StrEnum):
    CRASH_LOOP = "CrashLoop"
    OOM_KILLED = "OOMKilled"
    UNSCHEDULABLE = "Unschedulable"
    REPLICA_NOT_READY = "ReplicaNotReady"
    VOLUME_NEARLY_FULL = "VolumeNearlyFull"
    REPLICATION_LAG = "ReplicationLag"
    DRIFT = "Drift"


class PlatformRef(CamelModel):
    name: ObjectName


class Symptom(CamelModel):
    type: SymptomType
    object: str = Field(max_length=512, description="The object that shows it, as kind/name.")
    reason: str = Field(default="", max_length=1024)
    evidence: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="What was observed: counts, status fields, events, log lines.",
    )
    first_seen: datetime | None = None


class ActionSpec(CamelModel):
    type: RemediationAction
    parameters: dict[str, str] = Field(default_factory=dict, max_length=32)


class RemediationSpec(CamelModel):
    model_config = validated_by(
        cel(
            "!has(oldSelf.approved) || !oldSelf.approved || self.approved",
            "an approval cannot be withdrawn; create a new decision instead",
            ".approved",
        ),
        cel("self.action == oldSelf.action", "the action of a decision cannot change", ".action"),
    )

    platform_ref: PlatformRef
    symptom: Symptom
    diagnosis: str = Field(max_length=4096)
    action: ActionSpec
    mode: AutonomyMode = Field(description="The autonomy mode in force when it was decided.")
    approved: bool = False


class RemediationPhase(enum.StrEnum):
    PENDING = "Pending"
    APPROVED = "Approved"
    APPLIED = "Applied"
    VERIFIED = "Verified"
    FAILED = "Failed"
    REJECTED = "Rejected"
    EXPIRED = "Expired"


class RemediationStatus(CamelModel):
    phase: RemediationPhase | None = None
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list)
    message: str | None = Field(default=None, max_length=4096)
    applied_at: datetime | None = None
    verified_at: datetime | None = None


class Remediation(CamelModel):
    api_version: Literal["duet.aidatalabs.ai/v1alpha1"] = API_VERSION
    kind: Literal["Remediation"] = "Remediation"
    metadata: ObjectMeta
    spec: RemediationSpec
    status: RemediationStatus = Field(default_factory=RemediationStatus)
