"""What the planner reads (requirements, pins, budget, prices) and what it writes (a design).

These are the one definition of the fields: the DataPlatform custom resource embeds the input
models in its spec and the design in its status, and `duet plan -o json` prints the design.
"""

from __future__ import annotations

import enum
from decimal import Decimal

from pydantic import Field, field_validator, model_validator

from duet_agents.schema import CamelModel, Duration, ObjectName, Quantity
from duet_agents.units import parse_duration, parse_quantity


class Availability(enum.StrEnum):
    STANDARD = "standard"
    HIGH = "high"


class Requirements(CamelModel):
    """What the data needs. Only the volume is required; the rest has defaults that suit a
    small analytics team."""

    data_volume: Quantity = Field(
        description="Compressed on-disk volume at the retention horizon, e.g. 2Ti."
    )
    ingest_rows_per_second: int = Field(
        default=10_000, ge=0, le=100_000_000, description="Sustained insert rate, rows per second."
    )
    retention_days: int = Field(
        default=90, ge=1, le=36_500, description="How long data is kept, in days."
    )
    concurrent_queries: int = Field(
        default=10, ge=1, le=10_000, description="Queries running at the same time at peak."
    )
    query_latency_p95: Duration = Field(
        default="1s",
        description="Target 95th-percentile latency of dashboard queries.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "duration(self) > duration('0s')", "message": "must be longer than 0s"}
            ]
        },
    )
    availability: Availability = Field(
        default=Availability.STANDARD,
        description="standard: one replica per shard; high: replicated shards and Keeper quorum.",
    )

    @field_validator("query_latency_p95")
    @classmethod
    def _positive_latency(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @property
    def data_bytes(self) -> int:
        return int(parse_quantity(self.data_volume))

    @property
    def latency_seconds(self) -> Decimal:
        return parse_duration(self.query_latency_p95)


class Budget(CamelModel):
    monthly_usd: float = Field(
        gt=0, alias="monthlyUSD", description="The most the platform may cost a month, in USD."
    )


class Resources(CamelModel):
    """CPU and memory of one pod (requests equal limits: the planner sizes for the limit)."""

    cpu: Quantity
    memory: Quantity


class Storage(CamelModel):
    size: Quantity
    storage_class: ObjectName | None = Field(
        default=None, description="StorageClass of the volumes; the cluster default when unset."
    )


# -- pins: any field the user sets is kept as is by every planner ------------------------------


class ResourcesPin(CamelModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class StoragePin(CamelModel):
    size: Quantity | None = None
    storage_class: ObjectName | None = None


class KeeperPin(CamelModel):
    replicas: int | None = Field(default=None, ge=0, le=7)
    resources: ResourcesPin | None = None
    storage: StoragePin | None = None

    @model_validator(mode="after")
    def _odd_quorum(self) -> KeeperPin:
        if self.replicas not in (None, 0, 1, 3, 5, 7):
            raise ValueError("keeper.replicas must be 0, 1, 3, 5 or 7 (a Raft quorum is odd)")
        return self


class ClickHousePin(CamelModel):
    version: str | None = Field(default=None, description="ClickHouse server image tag.")
    shards: int | None = Field(default=None, ge=1, le=256)
    replicas: int | None = Field(default=None, ge=1, le=8)
    resources: ResourcesPin | None = None
    storage: StoragePin | None = None
    keeper: KeeperPin | None = None


class PostgresPin(CamelModel):
    enabled: bool = True
    version: str | None = Field(default=None, description="PostgreSQL major version, e.g. 17.")
    instances: int | None = Field(default=None, ge=1, le=5)
    resources: ResourcesPin | None = None
    storage: StoragePin | None = None


# -- the design ----------------------------------------------------------------------------------


class KeeperDesign(CamelModel):
    replicas: int = Field(ge=0, le=7)
    resources: Resources
    storage: Storage


class ClickHouseDesign(CamelModel):
    version: str
    shards: int = Field(ge=1, le=256)
    replicas: int = Field(ge=1, le=8)
    resources: Resources
    storage: Storage
    keeper: KeeperDesign


class PostgresDesign(CamelModel):
    enabled: bool
    version: str
    instances: int = Field(ge=0, le=5)
    resources: Resources
    storage: Storage


class PlannerInfo(CamelModel):
    provider: str = Field(description="builtin, anthropic or openai.")
    model: str | None = Field(default=None, description="The model that proposed the design.")


class PlatformDesign(CamelModel):
    """A validated, costed design: what the operator provisions."""

    clickhouse: ClickHouseDesign
    postgres: PostgresDesign
    estimated_monthly_cost_usd: float = Field(ge=0, alias="estimatedMonthlyCostUSD")
    rationale: list[str] = Field(description="Why each figure is what it is, one line each.")
    planner: PlannerInfo


class PriceTable(CamelModel):
    """Monthly prices the cost estimate uses; the chart's `planner.prices` overrides them.

    The defaults are round figures near on-demand prices of general-purpose cloud VMs and
    SSD block storage in 2025 (about $0.034 per vCPU-hour, $0.0045 per GiB-hour of memory,
    $0.08-0.10 per GiB-month of SSD), so estimates compare designs rather than quote a bill.
    """

    cpu_core_month_usd: float = Field(default=25.0, ge=0, alias="cpuCoreMonthUSD")
    memory_gib_month_usd: float = Field(default=3.3, ge=0, alias="memoryGiBMonthUSD")
    storage_gib_month_usd: float = Field(default=0.10, ge=0, alias="storageGiBMonthUSD")


class PlanRequest(CamelModel):
    """Everything a planner is given: the DataPlatform spec's planning fields."""

    description: str | None = Field(default=None, max_length=4000)
    requirements: Requirements
    budget: Budget | None = None
    clickhouse: ClickHousePin = Field(default_factory=ClickHousePin)
    postgres: PostgresPin = Field(default_factory=PostgresPin)
