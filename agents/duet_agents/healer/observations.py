"""What the operator sees of one platform at one moment: the healer's only input.

The operator fills these from the Kubernetes objects it watches (label-filtered to the
platform) and from the database probes; `healer.readings` does the mapping from the API's
JSON. Field names follow the Kubernetes API (`restartCount` -> `restart_count`,
`lastState.terminated.reason` -> `last_terminated_reason`) so the mapping stays obvious.
Sizes are Kubernetes quantities as the API prints them (`8Gi`); times are timezone-aware.

Database data is optional by design: when a probe could not reach a database, the operator
leaves its lists empty and says so in `probes`, and the healer invents nothing from it.
"""

from __future__ import annotations

import enum
from decimal import Decimal

from pydantic import AwareDatetime, Field

from duet_agents.schema import CamelModel, Quantity
from duet_agents.units import parse_quantity

# An error text from a probe goes into evidence; enough to say what failed.
MAX_PROBE_ERROR_CHARS = 200


class Component(enum.StrEnum):
    CLICKHOUSE = "clickhouse"
    KEEPER = "keeper"
    POSTGRES = "postgres"


# The container that runs each component's server in Duet's pods (operator render/clickhouse.py,
# keeper.py, postgres.py). Any other is a sidecar beside it (PostgreSQL's exporter and
# wal-archiver): its failure is its own, not the database's, and the design's memory is not
# its memory.
SERVER_CONTAINERS: dict[Component, str] = {
    Component.CLICKHOUSE: "clickhouse",
    Component.KEEPER: "keeper",
    Component.POSTGRES: "postgres",
}


class PostgresRole(enum.StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"


class ContainerObservation(CamelModel):
    """One entry of `status.containerStatuses`, with the container's memory from its spec."""

    name: str
    ready: bool = False
    # None when the container has no startup probe state yet (the API omits `started`).
    started: bool | None = None
    restart_count: int = Field(default=0, ge=0)
    waiting_reason: str | None = None  # state.waiting.reason, e.g. CrashLoopBackOff
    waiting_message: str | None = None
    terminated_reason: str | None = None  # state.terminated.reason (terminated right now)
    last_terminated_reason: str | None = None  # lastState.terminated.reason, e.g. OOMKilled
    last_terminated_exit_code: int | None = None
    last_terminated_at: AwareDatetime | None = None  # lastState.terminated.finishedAt
    memory_limit: Quantity | None = None  # spec.containers[].resources.limits.memory
    memory_request: Quantity | None = None

    @property
    def oom_killed(self) -> bool:
        return "OOMKilled" in (self.last_terminated_reason, self.terminated_reason)


class PodObservation(CamelModel):
    name: str
    uid: str = ""
    component: Component
    statefulset: str | None = Field(default=None, description="The owning StatefulSet.")
    shard: int | None = Field(default=None, ge=0, description="ClickHouse shard index.")
    index: int | None = Field(default=None, ge=0, description="The StatefulSet ordinal.")
    postgres_role: PostgresRole | None = Field(
        default=None, description="For PostgreSQL pods: the role the operator knows it has."
    )
    phase: str = "Pending"  # status.phase: Pending, Running, Succeeded, Failed, Unknown
    ready: bool = False  # the Ready condition
    not_ready_since: AwareDatetime | None = None  # Ready=False lastTransitionTime
    unschedulable_reason: str | None = None  # PodScheduled=False reason, e.g. Unschedulable
    unschedulable_message: str | None = None
    unschedulable_since: AwareDatetime | None = None
    node: str | None = None  # spec.nodeName
    created_at: AwareDatetime | None = None
    deleting: bool = False  # metadata.deletionTimestamp is set
    containers: list[ContainerObservation] = Field(default_factory=list)

    @property
    def object(self) -> str:
        return f"pod/{self.name}"

    @property
    def restart_count(self) -> int:
        return sum(c.restart_count for c in self.containers)

    def container(self, name: str) -> ContainerObservation | None:
        return next((c for c in self.containers if c.name == name), None)

    def is_sidecar(self, container: str | None) -> bool:
        """Whether `container` runs beside the pod's database server rather than being it
        (None, no container named: not a sidecar)."""
        return container is not None and container != SERVER_CONTAINERS[self.component]

    def server_first(self, containers: list[ContainerObservation]) -> list[ContainerObservation]:
        """`containers` (some of this pod's) with the database server's first, the sidecars
        after it in the pod's order: when the server fails too, it is the one to name."""
        return sorted(containers, key=lambda c: self.is_sidecar(c.name))


class ContainerTemplate(CamelModel):
    """A container of a StatefulSet's pod template: what new pods will get."""

    name: str
    memory_limit: Quantity | None = None
    memory_request: Quantity | None = None


class StatefulSetObservation(CamelModel):
    name: str
    component: Component
    shard: int | None = Field(default=None, ge=0)
    replicas: int = Field(default=1, ge=0)  # spec.replicas
    ready_replicas: int = Field(default=0, ge=0)
    updated_replicas: int = Field(default=0, ge=0)
    generation: int = Field(default=0, ge=0)  # metadata.generation
    observed_generation: int = Field(default=0, ge=0)
    current_revision: str | None = None
    update_revision: str | None = None
    # updateStrategy OnDelete (ClickHouse shards, rolled by the operator): there the
    # controller never moves currentRevision, and updatedReplicas alone says a roll is done.
    on_delete: bool = False
    containers: list[ContainerTemplate] = Field(default_factory=list)

    @property
    def object(self) -> str:
        return f"statefulset/{self.name}"

    @property
    def rolling(self) -> bool:
        """A change is still rolling out (or not yet seen by the controller)."""
        return (
            self.observed_generation < self.generation
            or self.updated_replicas < self.replicas
            or (not self.on_delete and self.current_revision != self.update_revision)
        )

    @property
    def settled(self) -> bool:
        return not self.rolling and self.ready_replicas >= self.replicas

    def container(self, name: str) -> ContainerTemplate | None:
        return next((c for c in self.containers if c.name == name), None)


class ClaimObservation(CamelModel):
    """A PersistentVolumeClaim of a pod, with what its StorageClass allows."""

    name: str
    uid: str = ""
    pod: str | None = Field(default=None, description="The pod that mounts it.")
    requested: Quantity | None = None  # spec.resources.requests.storage
    capacity: Quantity | None = None  # status.capacity.storage
    storage_class: str | None = None
    allows_expansion: bool | None = Field(
        default=None, description="The StorageClass's allowVolumeExpansion; None: unknown."
    )
    phase: str = "Bound"
    created_at: AwareDatetime | None = None

    @property
    def object(self) -> str:
        return f"persistentvolumeclaim/{self.name}"

    @property
    def resizing(self) -> bool:
        """A resize was asked for and has not reached the volume yet."""
        if self.requested is None or self.capacity is None:
            return False
        return parse_quantity(self.requested) > parse_quantity(self.capacity)


class VolumeUsage(CamelModel):
    """Free space of one disk of one pod, from ClickHouse `system.disks` (free_space,
    total_space) or any other reading of the filesystem."""

    pod: str
    disk: str = "default"
    free_bytes: int = Field(ge=0)
    total_bytes: int = Field(ge=0)

    @property
    def free_fraction(self) -> Decimal | None:
        if self.total_bytes <= 0:
            return None
        return Decimal(self.free_bytes) / Decimal(self.total_bytes)


class ClickHouseReplica(CamelModel):
    """One row of `system.replicas` on one server."""

    pod: str
    database: str
    table: str
    is_readonly: bool = False
    is_session_expired: bool = False
    absolute_delay: int = Field(default=0, ge=0, description="Seconds behind, as ClickHouse says.")
    queue_size: int = Field(default=0, ge=0)


class PostgresLag(CamelModel):
    """How far one standby is behind: from `pg_stat_replication` on the primary (bytes), or
    from the standby itself (`now() - pg_last_xact_replay_timestamp()`, seconds)."""

    standby: str = Field(description="The standby's pod name.")
    bytes: int | None = Field(default=None, ge=0)
    seconds: float | None = Field(default=None, ge=0)


class EventObservation(CamelModel):
    """A recent Event about one of the platform's objects."""

    kind: str  # involvedObject.kind
    name: str  # involvedObject.name
    type: str = "Normal"  # Normal or Warning
    reason: str = ""
    message: str = ""
    count: int = Field(default=1, ge=1)
    last_seen: AwareDatetime | None = None

    @property
    def object(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


class DriftObservation(CamelModel):
    """An object the operator manages that differs from what it renders (or is missing)."""

    kind: str
    name: str
    differences: list[str] = Field(default_factory=list, description="What differs, one line each.")

    @property
    def object(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


class LogExcerpt(CamelModel):
    """The last lines a container wrote (for a crashed one, its previous run's:
    `kubectl logs --previous --tail`). Redacted and bounded before they become evidence."""

    pod: str
    container: str
    lines: list[str] = Field(default_factory=list)


class ProbesReachable(CamelModel):
    """Whether the database probes got an answer. None: not probed (no such database, or
    probing is off); False: tried and failed, with the error (no credentials in it)."""

    clickhouse: bool | None = None
    postgres: bool | None = None
    clickhouse_error: str | None = Field(default=None, max_length=MAX_PROBE_ERROR_CHARS)
    postgres_error: str | None = Field(default=None, max_length=MAX_PROBE_ERROR_CHARS)
    unreachable_pods: list[str] = Field(
        default_factory=list, description="Pods whose own probe failed while others answered."
    )

    def reachable(self, component: Component, pod: str | None = None) -> bool | None:
        """Whether database data about `component` (and `pod`) can be trusted."""
        if pod is not None and pod in self.unreachable_pods:
            return False
        if component is Component.POSTGRES:
            return self.postgres
        return self.clickhouse

    def error(self, component: Component) -> str | None:
        return self.postgres_error if component is Component.POSTGRES else self.clickhouse_error


class Observation(CamelModel):
    """Everything the healer knows about one platform at one moment."""

    platform: str
    namespace: str = "default"
    pods: list[PodObservation] = Field(default_factory=list)
    statefulsets: list[StatefulSetObservation] = Field(default_factory=list)
    claims: list[ClaimObservation] = Field(default_factory=list)
    volumes: list[VolumeUsage] = Field(default_factory=list)
    clickhouse_replicas: list[ClickHouseReplica] = Field(default_factory=list)
    postgres_lag: list[PostgresLag] = Field(default_factory=list)
    events: list[EventObservation] = Field(default_factory=list)
    drift: list[DriftObservation] = Field(default_factory=list)
    logs: list[LogExcerpt] = Field(default_factory=list)
    probes: ProbesReachable = Field(default_factory=ProbesReachable)

    def pod(self, name: str | None) -> PodObservation | None:
        return next((p for p in self.pods if p.name == name), None)

    def statefulset(self, name: str | None) -> StatefulSetObservation | None:
        return next((s for s in self.statefulsets if s.name == name), None)

    def claim(self, name: str | None) -> ClaimObservation | None:
        return next((c for c in self.claims if c.name == name), None)

    def claims_of(self, pod: str) -> list[ClaimObservation]:
        return sorted((c for c in self.claims if c.pod == pod), key=lambda c: c.name)

    def pods_of(self, statefulset: str) -> list[PodObservation]:
        return sorted((p for p in self.pods if p.statefulset == statefulset), key=lambda p: p.name)

    def postgres_primary(self) -> PodObservation | None:
        return next(
            (p for p in self.pods if p.postgres_role is PostgresRole.PRIMARY and not p.deleting),
            None,
        )
