"""The playbook: the only changes the healer can make, each bounded and verifiable.

| action                 | addresses                                   | approval            |
| ---------------------- | ------------------------------------------- | ------------------- |
| restartPod             | CrashLoop, ReplicaNotReady, read-only lag   | per autonomy policy |
| raiseMemory            | OOMKilled                                   | per autonomy policy |
| expandStorage          | VolumeNearlyFull                            | per autonomy policy |
| replaceReplica         | a broken replica (deletes its volume)       | always              |
| reapply                | Drift                                       | per autonomy policy |
| scaleOut               | VolumeNearlyFull, OOMKilled past the bounds | always              |
| promotePostgresReplica | the PostgreSQL primary lost                 | unless listed       |

docs/healer.md has the preconditions, bounds, verification and cooldowns, and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from duet_agents.healer.actions import (
    Action,
    ActionType,
    Limits,
    NotApplicableError,
    Verification,
)
from duet_agents.healer.observations import (
    ClaimObservation,
    Component,
    Observation,
    PodObservation,
    PostgresRole,
    StatefulSetObservation,
)
from duet_agents.healer.symptoms import Cause, Symptom, SymptomType
from duet_agents.units import GiB, format_bytes, parse_quantity

MiB = 2**20

POD_SYMPTOMS = frozenset(
    {
        SymptomType.CRASH_LOOP,
        SymptomType.OOM_KILLED,
        SymptomType.REPLICA_NOT_READY,
        SymptomType.UNSCHEDULABLE,
        SymptomType.REPLICATION_LAG,
    }
)


class RestartPod(Action):
    """Delete the pod; its StatefulSet creates it again, possibly on another node."""

    type = ActionType.RESTART_POD
    summary = "delete the pod so that its StatefulSet recreates it"
    addresses = frozenset(
        {SymptomType.CRASH_LOOP, SymptomType.REPLICA_NOT_READY, SymptomType.REPLICATION_LAG}
    )
    # A restart that did not help is not repeated at once: the rules escalate instead.
    cooldown = timedelta(minutes=10)
    # ClickHouse may take its whole startup probe (10 min) to attach tables.
    verify_within = timedelta(minutes=15)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        if symptom.type is SymptomType.REPLICATION_LAG and symptom.cause is not Cause.READ_ONLY:
            raise NotApplicableError("a restart does not make a lagging replica catch up")
        pod = _owned_pod(observation, symptom)
        # The failing container, so that the record says which (a sidecar, say) is restarted.
        culprit = {"container": symptom.container} if symptom.container else {}
        return {"target": pod.object, "pod": pod.name, "uid": pod.uid} | culprit

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        pod = later.pod(parameters["pod"])
        if pod is None or pod.deleting:
            return Verification.waiting(f"pod {parameters['pod']} is being recreated")
        if not _is_new(pod, parameters.get("uid", ""), applied_at):
            return Verification.waiting(f"pod {pod.name} has not been restarted yet")
        failing = _failing(pod, applied_at)
        if failing:
            return Verification.failed(f"the new pod {pod.name} fails again: {failing}")
        if pod.ready:
            return Verification.verified(f"pod {pod.name} was recreated and is Ready")
        return Verification.waiting(f"the new pod {pod.name} is not Ready yet")


class RaiseMemory(Action):
    """Raise a container's memory (request and limit) in its StatefulSet; the pods roll."""

    type = ActionType.RAISE_MEMORY
    summary = "raise the container's memory by the step, up to the policy maximum; pods roll"
    addresses = frozenset({SymptomType.OOM_KILLED})
    # Let the rollout finish and the workload reach its new peak before raising again.
    cooldown = timedelta(minutes=30)
    verify_within = timedelta(minutes=30)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        pod = _owned_pod(observation, symptom)
        _not_a_sidecar(pod, symptom, "its memory is Duet's, not the design's")
        sts = _statefulset(observation, pod)
        container = symptom.container
        if container is None:
            raise NotApplicableError("the symptom does not name the container")
        if pod.component in limits.pinned_memory:
            raise NotApplicableError(
                f"the spec pins the memory of {pod.component}: raise it there if the diagnosis"
                " holds"
            )
        current = _memory(sts, pod, container)
        maximum = parse_quantity(limits.bounds(pod.component).max_memory)
        wanted = raised_memory(current, limits.memory_step, maximum)
        if wanted <= current:
            raise NotApplicableError(
                f"container {container} already has {format_bytes(int(current))} of memory, the"
                f" policy maximum for {pod.component} is {format_bytes(int(maximum))}"
            )
        return {
            "target": sts.object,
            "statefulset": sts.name,
            "container": container,
            "pod": pod.name,
            "from": format_bytes(int(current)),
            "to": format_bytes(wanted),
        }

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        name, container, wanted = (
            parameters["statefulset"],
            parameters["container"],
            parse_quantity(parameters["to"]),
        )
        sts = later.statefulset(name)
        if sts is None:
            return Verification.failed(f"StatefulSet {name} is gone")
        template = sts.container(container)
        if template and (template.memory_limit is None or _q(template.memory_limit) < wanted):
            return Verification.waiting(f"StatefulSet {name} does not have the new memory yet")
        pods = later.pods_of(name)
        for pod in pods:
            c = pod.container(container)
            if (
                c is not None
                and c.oom_killed
                and _has_memory(pod, container, wanted)
                and _after(c.last_terminated_at, applied_at)
            ):
                return Verification.failed(
                    f"container {container} of {pod.name} was OOMKilled again with "
                    f"{parameters['to']}"
                )
        if sts.rolling or not sts.settled:
            return Verification.waiting(
                f"StatefulSet {name} is rolling out ({sts.ready_replicas}/{sts.replicas} ready)"
            )
        if len(pods) < sts.replicas or not all(
            pod.ready and _has_memory(pod, container, wanted) for pod in pods
        ):
            return Verification.waiting(f"not every pod of {name} runs with the new memory yet")
        return Verification.verified(
            f"every pod of {name} runs {container} with {parameters['to']} and is Ready"
        )


class ExpandStorage(Action):
    """Grow a volume claim; the StorageClass must allow expansion."""

    type = ActionType.EXPAND_STORAGE
    summary = "grow the volume claim by the step, or enough to reach the free-space target"
    addresses = frozenset({SymptomType.VOLUME_NEARLY_FULL})
    # Cloud disks allow one modification per volume every 6 hours (AWS EBS).
    cooldown = timedelta(hours=6)
    verify_within = timedelta(hours=1)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        claim = observation.claim(symptom.claim)
        if claim is None:
            raise NotApplicableError("the volume claim of the full disk is not known")
        if claim.allows_expansion is not True:
            known = "does not" if claim.allows_expansion is False else "is not known to"
            raise NotApplicableError(
                f"StorageClass {claim.storage_class} {known} allow volume expansion"
            )
        if claim.resizing:
            raise NotApplicableError(f"claim {claim.name} is already being resized")
        if claim.capacity is None:
            raise NotApplicableError(f"claim {claim.name} has no capacity yet")
        pod = observation.pod(claim.pod)
        component = pod.component if pod else (symptom.component or Component.CLICKHOUSE)
        if component in limits.pinned_storage:
            raise NotApplicableError(
                f"the spec pins the storage size of {component}: grow it there if the"
                " diagnosis holds"
            )
        current = _q(claim.capacity)
        maximum = parse_quantity(limits.bounds(component).max_storage)
        wanted = expanded_storage(
            current,
            _used_fraction(observation, claim),
            step=limits.storage_step,
            free_target=limits.storage_free_target,
            maximum=maximum,
        )
        if wanted <= current:
            raise NotApplicableError(
                f"claim {claim.name} already has {claim.capacity}, the policy maximum for "
                f"{component} is {format_bytes(int(maximum))}"
            )
        return {
            "target": claim.object,
            "claim": claim.name,
            "pod": claim.pod or "",
            "from": format_bytes(int(current)),
            "to": format_bytes(wanted),
        }

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        claim = later.claim(parameters["claim"])
        wanted = parse_quantity(parameters["to"])
        if claim is None:
            return Verification.failed(f"claim {parameters['claim']} is gone")
        if claim.capacity is not None and _q(claim.capacity) >= wanted:
            return Verification.verified(f"claim {claim.name} has {claim.capacity}")
        if claim.requested is not None and _q(claim.requested) >= wanted:
            return Verification.waiting(
                f"claim {claim.name} is being resized to {claim.requested} (now {claim.capacity})"
            )
        return Verification.waiting(f"claim {claim.name} does not request {parameters['to']} yet")


class ReplaceReplica(Action):
    """Delete a broken replica's volume claim and pod: the StatefulSet recreates both and the
    replica copies its data back from its peers (ClickHouse replicas, a PostgreSQL standby
    cloning the primary, a Keeper follower catching up). Loses that replica's copy of the
    data, so it always needs approval, and only applies while the peers hold the data."""

    type = ActionType.REPLACE_REPLICA
    summary = "delete the replica's volume claim and pod; it is rebuilt from its peers"
    addresses = POD_SYMPTOMS - {SymptomType.OOM_KILLED}
    deletes_data = True
    always_needs_approval = True
    cooldown = timedelta(hours=1)
    # Refetching a large replica from its peers can take a long time.
    verify_within = timedelta(hours=2)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        if symptom.type is SymptomType.REPLICATION_LAG and symptom.cause is Cause.DELAY:
            raise NotApplicableError("a replica that is catching up is not broken")
        pod = _owned_pod(observation, symptom)
        _not_a_sidecar(pod, symptom, "the replica's data is not in question")
        sts = _statefulset(observation, pod)
        claims = observation.claims_of(pod.name)
        if not claims:
            raise NotApplicableError(f"the volume claim of {pod.name} is not known")
        _peers_hold_the_data(observation, pod, sts)
        claim = claims[0]
        return {
            "target": pod.object,
            "pod": pod.name,
            "uid": pod.uid,
            "statefulset": sts.name,
            "claim": claim.name,
            "claimUid": claim.uid,
        }

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        claim = later.claim(parameters["claim"])
        if claim is None or not _is_new(claim, parameters.get("claimUid", ""), applied_at):
            return Verification.waiting(f"claim {parameters['claim']} has not been recreated yet")
        pod = later.pod(parameters["pod"])
        if pod is None or pod.deleting or not _is_new(pod, parameters.get("uid", ""), applied_at):
            return Verification.waiting(f"pod {parameters['pod']} has not been recreated yet")
        failing = _failing(pod, applied_at)
        if failing:
            return Verification.failed(f"the rebuilt replica {pod.name} fails: {failing}")
        if not pod.ready:
            return Verification.waiting(f"the rebuilt replica {pod.name} is not Ready yet")
        readonly = [r for r in later.clickhouse_replicas if r.pod == pod.name and r.is_readonly]
        if readonly:
            return Verification.waiting(
                f"{len(readonly)} tables of {pod.name} are still read-only while it catches up"
            )
        return Verification.verified(f"replica {pod.name} was rebuilt on a new volume and is Ready")


class Reapply(Action):
    """Apply the rendered object again over a hand edit or a deletion."""

    type = ActionType.REAPPLY
    summary = "apply the object as Duet renders it again"
    addresses = frozenset({SymptomType.DRIFT})
    # Drift back within minutes means another controller or person owns the field: stop
    # fighting and let the next symptom reach a person.
    cooldown = timedelta(minutes=10)
    verify_within = timedelta(minutes=5)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        kind, _, name = symptom.object.partition("/")
        return {"target": symptom.object, "kind": kind, "name": name}

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        target = parameters["target"]
        if any(d.object == target for d in later.drift):
            return Verification.waiting(f"{target} still differs from what Duet renders")
        return Verification.verified(f"{target} matches what Duet renders")


class ScaleOut(Action):
    """Add a ClickHouse shard (the design's shard count + 1)."""

    type = ActionType.SCALE_OUT
    summary = "add a ClickHouse shard, spreading data, memory and disk over one more"
    addresses = frozenset({SymptomType.VOLUME_NEARLY_FULL, SymptomType.OOM_KILLED})
    always_needs_approval = True  # it costs money every month from now on
    cooldown = timedelta(hours=24)
    verify_within = timedelta(hours=1)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        if symptom.component is not Component.CLICKHOUSE:
            raise NotApplicableError(f"only ClickHouse scales out, not {symptom.component}")
        pod = observation.pod(symptom.pod)
        if pod is not None:
            _not_a_sidecar(pod, symptom, "more shards do not give it memory")
        shards = _shards(observation)
        if not shards:
            raise NotApplicableError("no ClickHouse shard StatefulSets were observed")
        if limits.pinned_shards:
            raise NotApplicableError("the spec pins the number of shards: change it there")
        if len(shards) >= limits.max_shards:
            raise NotApplicableError(f"the platform has the maximum of {limits.max_shards} shards")
        return {
            "target": f"dataplatform/{observation.platform}",
            "from": str(len(shards)),
            "to": str(len(shards) + 1),
        }

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        shards = _shards(later)
        wanted = int(parameters["to"])
        if len(shards) < wanted:
            return Verification.waiting(f"{len(shards)} of {wanted} shards exist")
        unsettled = [s.name for s in shards if not s.settled]
        if unsettled:
            return Verification.waiting(f"shards not Ready yet: {', '.join(unsettled)}")
        return Verification.verified(f"{len(shards)} shards run and are Ready")


class PromotePostgresReplica(Action):
    """Make a healthy standby the PostgreSQL primary when the primary is lost."""

    type = ActionType.PROMOTE_POSTGRES_REPLICA
    summary = "promote the healthiest PostgreSQL standby and point the read-write Service at it"
    addresses = frozenset(
        {
            SymptomType.REPLICA_NOT_READY,
            SymptomType.UNSCHEDULABLE,
            SymptomType.CRASH_LOOP,
            SymptomType.OOM_KILLED,
        }
    )
    cooldown = timedelta(hours=1)
    verify_within = timedelta(minutes=10)

    def _parameters(
        self, observation: Observation, symptom: Symptom, limits: Limits
    ) -> dict[str, str]:
        primary = observation.pod(symptom.pod)
        if primary is None or primary.postgres_role is not PostgresRole.PRIMARY:
            raise NotApplicableError("the symptom is not about the PostgreSQL primary")
        _not_a_sidecar(primary, symptom, "the primary itself is not failing")
        standby = _best_standby(observation, limits)
        return {"target": primary.object, "from": primary.name, "to": standby.name}

    def _check(
        self, later: Observation, parameters: Mapping[str, str], applied_at: datetime
    ) -> Verification:
        pod = later.pod(parameters["to"])
        if pod is None:
            return Verification.failed(f"the promoted standby {parameters['to']} is gone")
        if pod.postgres_role is not PostgresRole.PRIMARY:
            return Verification.waiting(f"{pod.name} is not the primary yet")
        if not pod.ready:
            return Verification.waiting(f"the new primary {pod.name} is not Ready yet")
        return Verification.verified(f"{pod.name} is the PostgreSQL primary and Ready")


PLAYBOOK: dict[ActionType, Action] = {
    action.type: action
    for action in (
        RestartPod(),
        RaiseMemory(),
        ExpandStorage(),
        ReplaceReplica(),
        Reapply(),
        ScaleOut(),
        PromotePostgresReplica(),
    )
}


# -- bounds ----------------------------------------------------------------------------------------


def raised_memory(current: Decimal, step: Decimal, maximum: Decimal) -> int:
    """`current` times `step`, rounded up to a whole MiB, at most `maximum` (never below
    `current`: a maximum already passed raises nothing)."""
    wanted = math.ceil(current * step / MiB) * MiB
    return int(max(current, min(Decimal(wanted), maximum)))


def expanded_storage(
    capacity: Decimal,
    used_fraction: Decimal | None,
    *,
    step: Decimal,
    free_target: Decimal,
    maximum: Decimal,
) -> int:
    """The larger of `capacity` times `step` and the size at which the used bytes leave
    `free_target` free, rounded up to a whole GiB, at most `maximum`, never below `capacity`."""
    wanted = capacity * step
    if used_fraction is not None:
        wanted = max(wanted, capacity * used_fraction / (1 - free_target))
    rounded = math.ceil(wanted / GiB) * GiB
    return int(max(capacity, min(Decimal(rounded), maximum)))


# -- helpers ---------------------------------------------------------------------------------------


def _q(quantity: str) -> Decimal:
    return parse_quantity(quantity)


def _owned_pod(observation: Observation, symptom: Symptom) -> PodObservation:
    pod = observation.pod(symptom.pod)
    if pod is None:
        raise NotApplicableError(f"pod {symptom.pod} was not observed")
    if pod.deleting:
        raise NotApplicableError(f"pod {pod.name} is already being deleted")
    if pod.statefulset is None:
        raise NotApplicableError(f"pod {pod.name} has no StatefulSet to recreate it")
    return pod


def _not_a_sidecar(pod: PodObservation, symptom: Symptom, why: str) -> None:
    """Actions on the database (its memory, its data, its role) are not remedies for a
    sidecar beside it failing."""
    if pod.is_sidecar(symptom.container):
        raise NotApplicableError(f"the failing container is the sidecar {symptom.container}: {why}")


def _statefulset(observation: Observation, pod: PodObservation) -> StatefulSetObservation:
    sts = observation.statefulset(pod.statefulset)
    if sts is None:
        raise NotApplicableError(f"StatefulSet {pod.statefulset} was not observed")
    return sts


def _memory(sts: StatefulSetObservation, pod: PodObservation, container: str) -> Decimal:
    if sts.rolling:
        raise NotApplicableError(f"StatefulSet {sts.name} is still rolling out a change")
    template, running = sts.container(container), pod.container(container)
    for source in (template, running):
        if source is not None and source.memory_limit is not None:
            return _q(source.memory_limit)
        if source is not None and source.memory_request is not None:
            return _q(source.memory_request)
    raise NotApplicableError(f"container {container} has no memory limit to raise")


def _has_memory(pod: PodObservation, container: str, wanted: Decimal) -> bool:
    c = pod.container(container)
    return c is not None and c.memory_limit is not None and _q(c.memory_limit) >= wanted


def _used_fraction(observation: Observation, claim: ClaimObservation) -> Decimal | None:
    fractions = [
        v.free_fraction
        for v in observation.volumes
        if v.pod == claim.pod and v.free_fraction is not None
    ]
    return 1 - min(f for f in fractions if f is not None) if fractions else None


def _is_new(obj: PodObservation | ClaimObservation, old_uid: str, applied_at: datetime) -> bool:
    if old_uid and obj.uid:
        return obj.uid != old_uid
    return obj.created_at is not None and obj.created_at >= applied_at


def _after(moment: datetime | None, applied_at: datetime) -> bool:
    return moment is not None and moment > applied_at


def _failing(pod: PodObservation, applied_at: datetime) -> str | None:
    for c in pod.containers:
        if c.oom_killed and _after(c.last_terminated_at, applied_at):
            return f"container {c.name} was OOMKilled"
        if c.waiting_reason == "CrashLoopBackOff":
            return f"container {c.name} is in CrashLoopBackOff"
    return None


def _peers_hold_the_data(
    observation: Observation, pod: PodObservation, sts: StatefulSetObservation
) -> None:
    peers = [p for p in observation.pods_of(sts.name) if p.name != pod.name]
    ready = [p for p in peers if p.ready and not p.deleting]
    if pod.component is Component.CLICKHOUSE and not ready:
        raise NotApplicableError(f"no other replica of {sts.name} is Ready to copy the data from")
    if pod.component is Component.KEEPER and len(ready) < sts.replicas // 2 + 1:
        raise NotApplicableError(
            f"only {len(ready)} other Keeper replicas are Ready: replacing {pod.name} could lose"
            f" the quorum of {sts.replicas // 2 + 1}"
        )
    if pod.component is Component.POSTGRES:
        primary = observation.postgres_primary()
        if pod.postgres_role is not PostgresRole.STANDBY:
            raise NotApplicableError("the PostgreSQL primary is never replaced; promote a standby")
        if primary is None or not primary.ready:
            raise NotApplicableError("no Ready PostgreSQL primary to clone the standby from")


def _shards(observation: Observation) -> list[StatefulSetObservation]:
    return sorted(
        (s for s in observation.statefulsets if s.component is Component.CLICKHOUSE),
        key=lambda s: s.name,
    )


def _best_standby(observation: Observation, limits: Limits) -> PodObservation:
    lag = {entry.standby: entry.bytes for entry in observation.postgres_lag}
    candidates = []
    for pod in observation.pods:
        if pod.postgres_role is not PostgresRole.STANDBY or pod.deleting or not pod.ready:
            continue
        behind = lag.get(pod.name)
        if behind is not None and behind > limits.promote_max_lag_bytes:
            continue
        # Known small lag first, then unknown lag, each by name for a stable choice.
        candidates.append((behind is None, behind or 0, pod.name, pod))
    if not candidates:
        raise NotApplicableError(
            "no Ready PostgreSQL standby within "
            f"{format_bytes(limits.promote_max_lag_bytes)} of the primary to promote"
        )
    return min(candidates, key=lambda c: c[:3])[3]
