"""Symptoms: what is wrong with a platform, read from one observation.

`detect(observation, now, thresholds)` is a pure function: the same observation and `now`
always give the same symptoms, in the same order (by key). Each symptom has a stable `key`,
`<type>/<object>` (`CrashLoop/pod/web-clickhouse-0-1`), so the operator recognises it again on
the next reconcile, and bounded evidence, since it ends up in a `Remediation` object.

A pod shows at most one of CrashLoop, OOMKilled and ReplicaNotReady: an OOM-killed container
also crash loops and is not Ready, but the cause is the memory, so it is one OOMKilled
symptom. Database data (disks, replication) is used only when its probe answered; when it did
not, the symptoms of that component say so in their evidence instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, Field

from duet_agents.healer.evidence import (
    MAX_EVIDENCE_LINES,
    MAX_REASON_CHARS,
    age,
    bounded,
    clip,
    event_lines,
    log_lines,
    when,
)
from duet_agents.healer.observations import (
    ClickHouseReplica,
    Component,
    ContainerObservation,
    Observation,
    PodObservation,
    PostgresLag,
    VolumeUsage,
)
from duet_agents.schema import CamelModel
from duet_agents.units import GiB, format_bytes

# The Remediation resource allows 512 characters; kind/name of a Kubernetes object fits.
MAX_OBJECT_CHARS = 512


class SymptomType(enum.StrEnum):
    """The same values as the Remediation resource's symptom types."""

    CRASH_LOOP = "CrashLoop"
    OOM_KILLED = "OOMKilled"
    UNSCHEDULABLE = "Unschedulable"
    REPLICA_NOT_READY = "ReplicaNotReady"
    VOLUME_NEARLY_FULL = "VolumeNearlyFull"
    REPLICATION_LAG = "ReplicationLag"
    DRIFT = "Drift"


class Cause(enum.StrEnum):
    """Which variant of a symptom it is, for the rules (the reason says it in words)."""

    CRASHING = "crashing"
    OOM = "oom"
    INSUFFICIENT_RESOURCES = "insufficientResources"
    VOLUME_NODE_AFFINITY = "volumeNodeAffinity"
    UNSCHEDULABLE_OTHER = "unschedulableOther"
    NOT_READY = "notReady"
    NOT_STARTED = "notStarted"
    NODE_LOST = "nodeLost"
    DISK_FULL = "diskFull"
    READ_ONLY = "readOnly"
    DELAY = "delay"
    WAL_LAG = "walLag"
    DRIFTED = "drifted"


class Thresholds(CamelModel):
    """When an observation becomes a symptom. Detection time is the threshold plus the
    operator's observation interval, so tests and benchmarks may shorten these."""

    crash_loop_restarts: int = Field(
        default=2,
        ge=1,
        description="Restarts before a container in CrashLoopBackOff is a symptom: the kubelet"
        " restarting it once is its own remedy; failing again after that is not a blip.",
    )
    oom_recent: timedelta = Field(
        default=timedelta(minutes=15),
        description="An OOM kill this recent is a symptom even if the container runs again:"
        " the next peak will kill it again. Older ones with a healthy container are history.",
    )
    unschedulable_after: timedelta = Field(
        default=timedelta(minutes=2),
        description="Pending and unschedulable this long: long enough for a cluster"
        " autoscaler to add a node (typically 1-2 min), so only what it cannot fix remains.",
    )
    not_ready_after: timedelta = Field(
        default=timedelta(seconds=30),
        description="Running but not Ready this long: readiness probes run every 5 s and fail"
        " after 3 misses, so 30 s is two full probe cycles past a blip.",
    )
    starting_grace: timedelta = Field(
        default=timedelta(minutes=10),
        description="A container still in its startup probe is not a symptom before this:"
        " ClickHouse's startup probe allows 10 min (120 x 5 s) to attach large table sets.",
    )
    replica_lost_after: timedelta = Field(
        default=timedelta(minutes=10),
        description="Not Ready this long, a replica counts as lost: the rules replace it"
        " (with approval) instead of restarting it.",
    )
    restart_window: timedelta = Field(
        default=timedelta(hours=1),
        description="A restart within this window that did not cure the symptom is not"
        " repeated: the rules escalate or leave it to a person.",
    )
    volume_free_fraction: float = Field(
        default=0.15,
        gt=0,
        lt=1,
        description="A disk with less free space than this is nearly full: ClickHouse needs"
        " room for its largest merge (up to 150 GB by default) and refuses merges, then"
        " inserts, without it; 15% leaves time to expand the volume (minutes to hours).",
    )
    clickhouse_delay: timedelta = Field(
        default=timedelta(minutes=5),
        description="A replica further behind than this is lagging: ClickHouse's own"
        " max_replica_delay_for_distributed_queries (300 s) stops sending queries to it.",
    )
    postgres_lag_seconds: float = Field(
        default=300,
        gt=0,
        description="A standby this many seconds behind serves stale reads and would lose"
        " that much on failover; the same 5 min as ClickHouse's limit.",
    )
    postgres_lag_bytes: int = Field(
        default=GiB,
        gt=0,
        description="A standby this far behind in WAL (1 GiB, PostgreSQL's default"
        " max_wal_size) risks needing WAL the primary has already recycled.",
    )
    event_window: timedelta = Field(
        default=timedelta(minutes=15),
        description="Events older than this are not evidence of the current state.",
    )
    max_events: int = Field(
        default=5, ge=0, le=MAX_EVIDENCE_LINES // 4, description="Event lines per symptom."
    )
    max_log_lines: int = Field(
        default=3, ge=0, le=MAX_EVIDENCE_LINES // 4, description="Log lines per symptom."
    )


class Symptom(CamelModel):
    """One thing wrong with the platform, with what shows it."""

    key: str = Field(description="`<type>/<object>`: stable across reconciles, for dedupe.")
    type: SymptomType
    cause: Cause
    object: str = Field(
        max_length=MAX_OBJECT_CHARS, description="The object that shows it, as kind/name."
    )
    reason: str = Field(max_length=MAX_REASON_CHARS)
    evidence: list[str] = Field(default_factory=list, max_length=MAX_EVIDENCE_LINES)
    first_seen: AwareDatetime
    component: Component | None = None
    pod: str | None = None
    container: str | None = None
    statefulset: str | None = None
    claim: str | None = None

    def record(self) -> dict[str, Any]:
        """The fields of the Remediation resource's `spec.symptom`, camelCase."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            include={"type", "object", "reason", "evidence", "first_seen"},
        )


def symptom_key(type_: SymptomType, object_: str) -> str:
    return f"{type_}/{object_}"


def detect(
    observation: Observation, now: datetime, thresholds: Thresholds | None = None
) -> list[Symptom]:
    """Every symptom the observation shows at `now`, sorted by key, one per key."""
    scan = _Scan(observation, now, thresholds or Thresholds())
    found: list[Symptom] = []
    for pod in observation.pods:
        if pod.deleting:  # on its way out: whatever it shows, a new pod replaces it
            continue
        symptom = scan.pod(pod)
        if symptom is not None:
            found.append(symptom)
    found.extend(scan.volumes())
    found.extend(scan.clickhouse_lag())
    found.extend(scan.postgres_lag())
    found.extend(scan.drift())
    unique = {s.key: s for s in found}
    return [unique[k] for k in sorted(unique)]


@dataclass(frozen=True)
class _Scan:
    observation: Observation
    now: datetime
    t: Thresholds

    # -- pods --------------------------------------------------------------------------------------

    def pod(self, pod: PodObservation) -> Symptom | None:
        # The culprit is the first of the failing containers, the database server's first:
        # a crash-looping sidecar is named as itself, not as the server it runs beside.
        oom = pod.server_first(
            [c for c in pod.containers if c.oom_killed and self._oom_is_current(c)]
        )
        if oom:
            return self._oom(pod, oom)
        crashing = pod.server_first(
            [
                c
                for c in pod.containers
                if c.waiting_reason == "CrashLoopBackOff"
                and c.restart_count >= self.t.crash_loop_restarts
            ]
        )
        if crashing:
            return self._crash_loop(pod, crashing)
        if pod.phase == "Pending" and pod.unschedulable_reason == "Unschedulable":
            return self._unschedulable(pod)
        if pod.phase in ("Running", "Unknown") and not pod.ready:
            return self._not_ready(pod)
        return None

    def _oom_is_current(self, container: ContainerObservation) -> bool:
        if not container.ready or container.terminated_reason == "OOMKilled":
            return True
        finished = container.last_terminated_at
        return finished is not None and self.now - finished <= self.t.oom_recent

    def _oom(self, pod: PodObservation, containers: list[ContainerObservation]) -> Symptom:
        first = containers[0]
        memory = f" at its {first.memory_limit} memory limit" if first.memory_limit else ""
        reason = (
            f"{_which(pod, first)} was killed for running out of memory{memory} "
            f"(exit code {first.last_terminated_exit_code or 137}); "
            f"{first.restart_count} restarts"
        )
        return self.symptom(
            SymptomType.OOM_KILLED,
            Cause.OOM,
            pod.object,
            reason,
            [*(_container_line(c) for c in containers), *self._pod_lines(pod)],
            since=first.last_terminated_at or pod.not_ready_since,
            pod=pod,
            container=first.name,
        )

    def _crash_loop(self, pod: PodObservation, containers: list[ContainerObservation]) -> Symptom:
        first = containers[0]
        code = first.last_terminated_exit_code
        reason = (
            f"{_which(pod, first)} keeps failing (last exit: "
            f"{first.last_terminated_reason or 'unknown'}, code {'?' if code is None else code})"
            f" and the kubelet backs off restarting it; {first.restart_count} restarts"
        )
        return self.symptom(
            SymptomType.CRASH_LOOP,
            Cause.CRASHING,
            pod.object,
            reason,
            [*(_container_line(c) for c in containers), *self._pod_lines(pod)],
            since=pod.not_ready_since or first.last_terminated_at,
            pod=pod,
            container=first.name,
        )

    def _unschedulable(self, pod: PodObservation) -> Symptom | None:
        since = pod.unschedulable_since or pod.created_at
        if since is None or self.now - since < self.t.unschedulable_after:
            return None
        message = pod.unschedulable_message or ""
        if "volume node affinity" in message or "PersistentVolume's node affinity" in message:
            cause, why = Cause.VOLUME_NODE_AFFINITY, "its volume is bound to a node it cannot use"
        elif "Insufficient" in message:
            cause, why = Cause.INSUFFICIENT_RESOURCES, "no node has room for its requests"
        else:
            cause, why = Cause.UNSCHEDULABLE_OTHER, "the scheduler finds no node for it"
        return self.symptom(
            SymptomType.UNSCHEDULABLE,
            cause,
            pod.object,
            f"pod pending for {age(since, self.now)}: {why}",
            [f"PodScheduled=False {pod.unschedulable_reason}: {message}", *self._pod_lines(pod)],
            since=since,
            pod=pod,
        )

    def _not_ready(self, pod: PodObservation) -> Symptom | None:
        since = pod.not_ready_since or pod.created_at
        if since is None:
            return None
        t = self.t
        if pod.phase == "Unknown":
            cause, why, threshold = Cause.NODE_LOST, "its node stopped reporting", t.not_ready_after
        elif any(c.started is False for c in pod.containers):
            cause, why, threshold = Cause.NOT_STARTED, "still starting", t.starting_grace
        else:
            cause, why, threshold = (
                Cause.NOT_READY,
                "failing its readiness probe",
                t.not_ready_after,
            )
        if self.now - since < threshold:
            return None
        unready = pod.server_first([c for c in pod.containers if not c.ready])
        culprit = unready[0] if unready else None
        where = f" ({_which(pod, culprit)})" if culprit and cause is not Cause.NODE_LOST else ""
        return self.symptom(
            SymptomType.REPLICA_NOT_READY,
            cause,
            pod.object,
            f"pod {pod.phase} but not Ready for {age(since, self.now)}: {why}{where}",
            [*(_container_line(c) for c in pod.containers), *self._pod_lines(pod)],
            since=since,
            pod=pod,
            container=culprit.name if culprit and cause is not Cause.NODE_LOST else None,
        )

    def _pod_lines(self, pod: PodObservation) -> list[str]:
        lines = [f"pod phase {pod.phase}, node {pod.node or 'none'}"]
        if pod.not_ready_since:
            since = pod.not_ready_since
            lines.append(f"Ready=False since {when(since)} ({age(since, self.now)})")
        if pod.postgres_role:
            lines.append(f"PostgreSQL {pod.postgres_role}")
        return lines

    # -- disks and replication ---------------------------------------------------------------------

    def volumes(self) -> list[Symptom]:
        # One symptom per claim (or pod, when its claim is unknown): the fullest of its disks.
        observation = self.observation
        limit = Decimal(str(self.t.volume_free_fraction))
        fullest: dict[str, tuple[Decimal, VolumeUsage]] = {}
        for usage in observation.volumes:
            pod = observation.pod(usage.pod)
            component = pod.component if pod else Component.CLICKHOUSE
            fraction = usage.free_fraction
            if observation.probes.reachable(component, usage.pod) is False or fraction is None:
                continue
            claims = observation.claims_of(usage.pod)
            target = claims[0].object if claims else f"pod/{usage.pod}"
            if fraction < limit and (target not in fullest or fraction < fullest[target][0]):
                fullest[target] = (fraction, usage)
        symptoms = []
        for target, (fraction, usage) in fullest.items():
            claims = observation.claims_of(usage.pod)
            claim = claims[0].name if claims else None
            reason = (
                f"disk {usage.disk} of pod {usage.pod} has {fraction:.1%} free "
                f"({_size(usage.free_bytes)} of {_size(usage.total_bytes)}); "
                f"below {self.t.volume_free_fraction:.0%}"
            )
            lines = [
                f"disk {usage.disk}: free {usage.free_bytes} of {usage.total_bytes} bytes",
                *self._claim_lines(claim),
            ]
            symptoms.append(
                self.symptom(
                    SymptomType.VOLUME_NEARLY_FULL,
                    Cause.DISK_FULL,
                    target,
                    reason,
                    lines,
                    pod=observation.pod(usage.pod),
                    pod_name=usage.pod,
                    claim=claim,
                )
            )
        return symptoms

    def _claim_lines(self, name: str | None) -> list[str]:
        claim = self.observation.claim(name)
        if claim is None:
            return []
        expansion = {True: "allows", False: "does not allow", None: "may or may not allow"}
        return [
            f"claim {claim.name}: requested {claim.requested}, capacity {claim.capacity}",
            f"StorageClass {claim.storage_class} {expansion[claim.allows_expansion]} expansion",
        ]

    def clickhouse_lag(self) -> list[Symptom]:
        observation = self.observation
        behind: dict[str, list[ClickHouseReplica]] = {}
        totals: dict[str, int] = {}
        limit = self.t.clickhouse_delay.total_seconds()
        for row in observation.clickhouse_replicas:
            if observation.probes.reachable(Component.CLICKHOUSE, row.pod) is False:
                continue
            totals[row.pod] = totals.get(row.pod, 0) + 1
            if row.is_readonly or row.absolute_delay > limit:
                behind.setdefault(row.pod, []).append(row)
        symptoms = []
        for pod_name, rows in behind.items():
            readonly = [r for r in rows if r.is_readonly]
            worst = max(rows, key=lambda r: r.absolute_delay)
            if readonly:
                cause = Cause.READ_ONLY
                reason = (
                    f"{len(readonly)} of {totals[pod_name]} replicated tables are read-only on "
                    f"{pod_name} (it lost its Keeper session or its metadata)"
                )
            else:
                cause = Cause.DELAY
                reason = (
                    f"{len(rows)} of {totals[pod_name]} replicated tables on {pod_name} are "
                    f"behind; the worst by {worst.absolute_delay} s "
                    f"({worst.database}.{worst.table})"
                )
            rows.sort(key=lambda r: (not r.is_readonly, -r.absolute_delay, r.database, r.table))
            lines = [
                f"{r.database}.{r.table}: readonly={str(r.is_readonly).lower()}, session "
                f"expired={str(r.is_session_expired).lower()}, absolute_delay "
                f"{r.absolute_delay} s, queue {r.queue_size}"
                for r in rows
            ]
            symptoms.append(
                self.symptom(
                    SymptomType.REPLICATION_LAG,
                    cause,
                    f"pod/{pod_name}",
                    reason,
                    lines,
                    pod=observation.pod(pod_name),
                    pod_name=pod_name,
                )
            )
        return symptoms

    def postgres_lag(self) -> list[Symptom]:
        observation, t = self.observation, self.t
        symptoms = []
        for lag in observation.postgres_lag:
            if observation.probes.reachable(Component.POSTGRES, lag.standby) is False:
                continue
            over_time = lag.seconds is not None and lag.seconds > t.postgres_lag_seconds
            over_bytes = lag.bytes is not None and lag.bytes > t.postgres_lag_bytes
            if not (over_time or over_bytes):
                continue
            symptoms.append(
                self.symptom(
                    SymptomType.REPLICATION_LAG,
                    Cause.WAL_LAG,
                    f"pod/{lag.standby}",
                    f"PostgreSQL standby {lag.standby} is {_lag_text(lag)} behind the primary",
                    [f"replication lag: {lag.bytes} bytes, {lag.seconds} s"],
                    pod=observation.pod(lag.standby),
                    pod_name=lag.standby,
                    component=Component.POSTGRES,
                )
            )
        return symptoms

    def drift(self) -> list[Symptom]:
        symptoms = []
        for drift in self.observation.drift:
            what = "; ".join(drift.differences) or "differs from what Duet renders"
            symptoms.append(
                Symptom(
                    key=symptom_key(SymptomType.DRIFT, drift.object),
                    type=SymptomType.DRIFT,
                    cause=Cause.DRIFTED,
                    object=clip(drift.object, MAX_OBJECT_CHARS),
                    reason=clip(f"{drift.kind} {drift.name} {what}", MAX_REASON_CHARS),
                    evidence=bounded(drift.differences),
                    first_seen=self.now,
                    statefulset=drift.name if drift.kind == "StatefulSet" else None,
                )
            )
        return symptoms

    # -- assembly ----------------------------------------------------------------------------------

    def symptom(
        self,
        type_: SymptomType,
        cause: Cause,
        object_: str,
        reason: str,
        lines: list[str],
        *,
        since: datetime | None = None,
        pod: PodObservation | None = None,
        pod_name: str | None = None,
        container: str | None = None,
        claim: str | None = None,
        component: Component | None = None,
    ) -> Symptom:
        name = pod.name if pod else pod_name
        component = component or (pod.component if pod else Component.CLICKHOUSE)
        objects = {object_} | ({f"pod/{name}"} if name else set())
        events = event_lines(
            self.observation.events, objects, self.now, self.t.event_window, self.t.max_events
        ) + log_lines(self.observation.logs, name, container, self.t.max_log_lines)
        # Each part keeps its place: a long list of our own lines (500 lagging tables) is
        # cut short before it can push out the events, logs and notes.
        notes = _probe_notes(self.observation, component, name)
        room = MAX_EVIDENCE_LINES - len(events) - len(notes)
        return Symptom(
            key=symptom_key(type_, object_),
            type=type_,
            cause=cause,
            object=clip(object_, MAX_OBJECT_CHARS),
            reason=clip(reason, MAX_REASON_CHARS),
            evidence=[*bounded(lines, room), *bounded(events), *notes],
            first_seen=min(since or self.now, self.now),
            component=component,
            pod=name,
            container=container,
            statefulset=pod.statefulset if pod else None,
            claim=claim,
        )


def _which(pod: PodObservation, container: ContainerObservation) -> str:
    kind = "sidecar container" if pod.is_sidecar(container.name) else "container"
    return f"{kind} {container.name}"


def _container_line(c: ContainerObservation) -> str:
    parts = [f"container {c.name}: ready={str(c.ready).lower()}, restartCount {c.restart_count}"]
    if c.waiting_reason:
        parts.append(f"waiting {c.waiting_reason}")
    if c.last_terminated_reason:
        parts.append(
            f"last terminated {c.last_terminated_reason} exit code {c.last_terminated_exit_code}"
            f" at {when(c.last_terminated_at)}"
        )
    if c.memory_limit:
        parts.append(f"memory limit {c.memory_limit}")
    return "; ".join(parts)


def _lag_text(lag: PostgresLag) -> str:
    parts = []
    if lag.bytes is not None:
        parts.append(_size(lag.bytes))
    if lag.seconds is not None:
        parts.append(f"{lag.seconds:.0f} s")
    return " / ".join(parts)


def _probe_notes(observation: Observation, component: Component, pod: str | None) -> list[str]:
    if observation.probes.reachable(component, pod) is not False:
        return []
    database = "PostgreSQL" if component is Component.POSTGRES else "ClickHouse"
    error = observation.probes.error(component) or "no answer"
    return [clip(f"{database} could not be probed ({error}): replication and disk state unknown")]


def _size(value: int) -> str:
    if value >= GiB:
        return f"{value / GiB:.1f} GiB"
    return format_bytes(value) if value else "0"
