"""The DataPlatform resource: what the data needs in spec, what Duet made of it in status."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field

from duet_agents.planner.adjustments import Adjustment
from duet_agents.planner.models import (
    Budget,
    ClickHousePin,
    PlanRequest,
    PlatformDesign,
    PostgresPin,
    Requirements,
)
from duet_agents.schema import CamelModel
from duet_operator.models.backup import RESTORE_FROM_FIXED, BackupSpec, RestoreFrom
from duet_operator.models.common import (
    API_VERSION,
    Condition,
    ObjectMeta,
    SecretKeyRef,
    cel,
    validated_by,
)


class PlannerProvider(enum.StrEnum):
    BUILTIN = "builtin"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


class PlannerSpec(CamelModel):
    """Who designs the platform. Any model's proposal is validated and bounded; when the model
    fails, the built-in planner's design is used and a condition says why."""

    model_config = validated_by(
        cel(
            "self.provider != 'builtin' || (!has(self.model) && !has(self.secretRef))",
            "model and secretRef apply to the anthropic and openai providers only",
        )
    )

    provider: PlannerProvider = PlannerProvider.BUILTIN
    model: str | None = Field(default=None, max_length=200, description="e.g. claude-sonnet-4-5")
    base_url: str | None = Field(
        default=None,
        alias="baseURL",
        max_length=2048,
        pattern=r"^https?://",
        description="An OpenAI-compatible endpoint (vLLM, Ollama, ...) or an Anthropic proxy.",
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="The Secret key holding the provider's API key."
    )


class AutonomyMode(enum.StrEnum):
    OBSERVE = "observe"
    RECOMMEND = "recommend"
    AUTO = "auto"


class RemediationAction(enum.StrEnum):
    RESTART_POD = "restartPod"
    RAISE_MEMORY = "raiseMemory"
    EXPAND_STORAGE = "expandStorage"
    REPLACE_REPLICA = "replaceReplica"
    REAPPLY = "reapply"
    SCALE_OUT = "scaleOut"
    PROMOTE_POSTGRES_REPLICA = "promotePostgresReplica"


DEFAULT_AUTO_ACTIONS = (
    RemediationAction.RESTART_POD,
    RemediationAction.RAISE_MEMORY,
    RemediationAction.EXPAND_STORAGE,
    RemediationAction.REAPPLY,
)


class AutonomySpec(CamelModel):
    """How far the healer may act on its own. `observe` is the kill switch: record only."""

    model_config = validated_by(
        cel(
            "!self.actions.exists(a, a == 'scaleOut')",
            "scaleOut always needs approval and cannot be listed for automatic action",
            ".actions",
        )
    )

    mode: AutonomyMode | None = Field(
        default=None,
        description="observe: record only; recommend: wait for approval; auto: act on"
        " `actions`. Unset: the operator's default (the chart's autonomy.defaultMode).",
    )
    max_actions_per_hour: int = Field(default=6, ge=0, le=60)
    actions: list[RemediationAction] = Field(
        default=list(DEFAULT_AUTO_ACTIONS),
        max_length=16,
        description="Actions applied without approval in auto mode; others wait for approval.",
    )


class ScaleDownSpec(CamelModel):
    """Consent to a design with fewer ClickHouse hosts. Without it such a design is refused
    and the one in force kept: a removed host takes what only it holds out of every query.
    The removed hosts' volumes are kept either way (docs/operations.md)."""

    allow_shard_removal: bool = Field(
        default=False,
        description="Let a design remove shards. Their rows leave the cluster's queries;"
        " move them first (INSERT ... SELECT into the remaining shards).",
    )
    allow_replica_removal: bool = Field(
        default=False,
        description="Let a design remove replicas of each shard. Replicated tables keep"
        " their rows on the remaining replicas; tables that are not replicated lose what"
        " the removed replicas held.",
    )


class RolloutSpec(CamelModel):
    """How a change of the ClickHouse pods' template (version, configuration, resources)
    rolls through the shards: host by host, each restarted host Ready and caught up on
    replication before the next of its shard; shards roll in parallel (docs/operations.md)."""

    max_unavailable: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Replicas of one shard restarting (or not caught up) at once. Never every"
        " replica of a shard, unless the shard has only one.",
    )


class DeletionPolicy(enum.StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class DataPlatformSpec(CamelModel):
    """What the data needs. Set any field of `clickhouse` or `postgres` to pin it: every
    planner keeps pinned fields as given."""

    model_config = validated_by(
        cel(
            "self.requirements.availability != 'high' || !has(self.clickhouse.replicas)"
            " || self.clickhouse.replicas >= 2",
            "availability high needs at least 2 ClickHouse replicas: raise"
            " spec.clickhouse.replicas or leave it unset",
            ".clickhouse.replicas",
        ),
        cel(
            "!has(self.clickhouse.replicas) || self.clickhouse.replicas < 2"
            " || !has(self.clickhouse.keeper) || !has(self.clickhouse.keeper.replicas)"
            " || self.clickhouse.keeper.replicas >= 3",
            "replicated ClickHouse needs a Keeper quorum of 3 or more: raise"
            " spec.clickhouse.keeper.replicas or leave it unset",
            ".clickhouse.keeper.replicas",
        ),
        # A rule on restoreFrom itself holds only while both versions have one.
        cel("has(self.restoreFrom) == has(oldSelf.restoreFrom)", RESTORE_FROM_FIXED),
    )

    description: str | None = Field(
        default=None,
        max_length=4000,
        description="What the platform is for, in plain words; model planners read it.",
    )
    requirements: Requirements
    budget: Budget | None = None
    # Defaults are instances, not factories, so that they reach the CRD schema and the API
    # server fills them in: `kubectl get -o yaml` then shows what is in force.
    clickhouse: ClickHousePin = ClickHousePin()
    postgres: PostgresPin = PostgresPin()
    planner: PlannerSpec = PlannerSpec()
    autonomy: AutonomySpec = AutonomySpec()
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.RETAIN,
        description="Retain keeps volumes and Secrets when the platform is deleted;"
        " Delete removes them.",
    )
    scale_down: ScaleDownSpec = ScaleDownSpec()
    rollout: RolloutSpec = RolloutSpec()
    backup: BackupSpec | None = Field(
        default=None,
        description="Scheduled backups; none when unset. A CronJob runs them; each run is"
        " recorded as a DataPlatformBackup, and the oldest past the retention count are"
        " deleted (docs/backup.md).",
    )
    restore_from: RestoreFrom | None = Field(
        default=None,
        description="Start from a backup's data, when the platform is created: set at"
        " creation only; the condition Restored follows it (docs/backup.md).",
    )

    def plan_request(self) -> PlanRequest:
        return PlanRequest(
            description=self.description,
            requirements=self.requirements,
            budget=self.budget,
            clickhouse=self.clickhouse,
            postgres=self.postgres,
        )


class Phase(enum.StrEnum):
    PLANNING = "Planning"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    HEALING = "Healing"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    DELETING = "Deleting"


class Endpoints(CamelModel):
    clickhouse_http: str | None = Field(default=None, alias="clickhouseHTTP")
    clickhouse_native: str | None = None
    postgres_read_write: str | None = None
    postgres_read_only: str | None = None


class PlannerStatus(CamelModel):
    provider: str
    model: str | None = None
    tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0, ge=0, alias="costUSD")


class DataPlatformStatus(CamelModel):
    phase: Phase | None = None
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list)
    design: PlatformDesign | None = None
    plan_hash: str | None = Field(
        default=None, description="Hash of the spec the design was planned from."
    )
    endpoints: Endpoints | None = None
    planner: PlannerStatus | None = None
    adjustments: list[Adjustment] = Field(
        default_factory=list,
        max_length=16,
        description="Figures the healer raised (memory, storage, shards), each with the"
        " Remediation that did: floors over every later design. A figure pinned in spec wins.",
    )
    postgres_primary: int | None = Field(
        default=None,
        ge=0,
        description="Ordinal of the PostgreSQL instance that is primary, once a"
        " promotePostgresReplica Remediation moved it; unset: instance 0.",
    )


class DataPlatform(CamelModel):
    api_version: Literal["duet.aidatalabs.ai/v1alpha1"] = API_VERSION
    kind: Literal["DataPlatform"] = "DataPlatform"
    metadata: ObjectMeta
    spec: DataPlatformSpec
    status: DataPlatformStatus = Field(default_factory=DataPlatformStatus)
