"""Host-by-host rolling changes of ClickHouse: which pods to restart, and when.

ClickHouse shards are StatefulSets with `updateStrategy: OnDelete`, so a new pod template
(a version, a configuration, resources) reaches a pod only when the pod is deleted. This
module deletes them: per shard, at most `spec.rollout.maxUnavailable` replicas restarting or
catching up at once (never all of a shard's replicas, unless it has one), and a restarted
replica Ready and caught up on replication before the next of its shard; shards in parallel.

Everything it decides from is in the cluster: the StatefulSets' revisions, the pods'
`controller-revision-hash` labels, their Ready condition and deletion, and the restarted
hosts' own `system.replicas`. An operator restarted mid-rollout picks up where it stopped.

- `decide(shards, max_unavailable, lags)`: pure; the pods to delete now and a summary.
- `caught_up(...)`: the probe of restarted hosts (`system.replicas`), bounded by a timeout.
- `roll(kube, names, design, statefulsets, platform)`: one pass (reads, probes, deletes),
  called by the reconcile after its observe step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from duet_agents.healer.evidence import clip
from duet_agents.healer.probes import ServerReading, probe_each
from duet_agents.planner.models import PlatformDesign
from duet_operator.kube.client import Kube, KubeError, Manifest
from duet_operator.models import DataPlatform
from duet_operator.observe import Readiness, clickhouse_pods, clickhouse_shards, pod_ready
from duet_operator.probes import DatabaseProbes, ProbeSettings, plan_targets
from duet_operator.render.naming import Names

REVISION_LABEL = "controller-revision-hash"
RESTART_REASON = "RollingRestart"
# A restarted replica is caught up when none of its replicated tables is read-only and each
# is at most this far behind (ClickHouse's own `absolute_delay`) with this few entries left in
# its replication queue: the next replica of the shard may then go without leaving the shard
# with only stale copies. Merges of a busy table keep a few entries queued at all times.
MAX_DELAY_SECONDS = 10
MAX_QUEUE_SIZE = 10
# A restarted host whose replication cannot be read (the operator cannot reach the pods: a
# network policy, or pods that run no server, as on the local control plane) holds its shard
# this long after it is Ready, then counts as caught up, and the status says so: a rollout
# must not stall for good on what the operator cannot see.
UNREADABLE_GRACE_SECONDS = 60
MAX_SUMMARY_CHARS = 600


@dataclass(frozen=True)
class Host:
    """One pod of a shard, as the rollout sees it."""

    name: str
    ordinal: int
    revision: str | None
    ready: bool
    deleting: bool = False
    ready_since: datetime | None = None  # its Ready condition's last transition


@dataclass(frozen=True)
class Shard:
    """One shard's StatefulSet and its pods. `update_revision` None: the StatefulSet
    controller has not yet seen the newest template (its status is of an older generation)."""

    name: str
    replicas: int
    update_revision: str | None
    hosts: tuple[Host, ...] = ()

    def updated(self, host: Host) -> bool:
        return self.update_revision is not None and host.revision == self.update_revision


@dataclass(frozen=True)
class Lag:
    """Whether a restarted host has caught up on replication, and if not, why (for status)."""

    caught_up: bool
    detail: str = ""
    unreadable: bool = False  # no reading at all (not reachable), rather than a bad one


@dataclass(frozen=True)
class Decision:
    delete: list[str]
    summary: str
    done: bool
    updated: int = 0
    total: int = 0
    # Some host is Ready but not (known to be) caught up.
    behind: bool = False


@dataclass(frozen=True)
class Rollout:
    """What one pass did: the pods it deleted, and where the rollout stands."""

    done: bool = True
    summary: str = ""
    restarted: list[str] = field(default_factory=list)
    # Waiting on something no Kubernetes event announces (a host catching up, a refused
    # delete): worth another pass soon.
    recheck: bool = False

    def readiness(self, observed: Readiness) -> Readiness:
        """`observed` as the Ready condition should say it: while pods are on an older
        template, not Ready, reason RollingOut, with the rollout's summary."""
        if self.done:
            return observed
        return replace(observed, ready=False, rolling=True, message=self.summary)

    def events(self) -> list[tuple[str, str, str]]:
        """(type, reason, message) of an Event per host restarted."""
        return [
            ("Normal", RESTART_REASON, f"deleted pod {pod}: it restarts on the new template")
            for pod in self.restarted
        ]


# -- pure --------------------------------------------------------------------------------------


def shard_needs_roll(sts: Manifest) -> bool:
    """Whether some pod of a shard's StatefulSet runs an older template: cheap, from its status
    alone (the pods it made outnumber its updated ones), so that a platform at rest, or being
    provisioned, lists no pods. A status older than the spec says nothing yet; the
    controller's next status follows at once, and with it another pass."""
    status = sts.get("status") or {}
    generation = int(sts.get("metadata", {}).get("generation", 0))
    if int(status.get("observedGeneration", 0)) < generation:
        return False
    return int(status.get("replicas", 0)) > int(status.get("updatedReplicas", 0))


def _ready_since(pod: Manifest) -> datetime | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("lastTransitionTime"):
            return datetime.fromisoformat(str(condition["lastTransitionTime"]))
    return None


def _owner(pod: Manifest) -> str | None:
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "StatefulSet":
            return str(ref.get("name"))
    return None


def shard_state(sts: Manifest, pods: Sequence[Manifest]) -> Shard:
    """A shard from its StatefulSet and the pods it owns (pods past its replicas, being
    scaled away, are left out)."""
    name = sts["metadata"]["name"]
    status = sts.get("status") or {}
    replicas = int(sts.get("spec", {}).get("replicas", 1))
    fresh = int(status.get("observedGeneration", 0)) >= int(sts["metadata"].get("generation", 0))
    hosts = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        pod_name = str(meta.get("name", ""))
        prefix, _, ordinal = pod_name.rpartition("-")
        if _owner(pod) != name or prefix != name or not ordinal.isdigit():
            continue
        if int(ordinal) >= replicas:
            continue
        hosts.append(
            Host(
                name=pod_name,
                ordinal=int(ordinal),
                revision=(meta.get("labels") or {}).get(REVISION_LABEL),
                ready=pod_ready(pod),
                deleting=meta.get("deletionTimestamp") is not None,
                ready_since=_ready_since(pod),
            )
        )
    update = status.get("updateRevision") if fresh else None
    return Shard(name, replicas, update, tuple(sorted(hosts, key=lambda h: h.ordinal)))


def allowed_unavailable(replicas: int, max_unavailable: int) -> int:
    """Replicas of one shard that may be down at once: never all of them, unless one is all."""
    if replicas <= 1:
        return 1
    return max(1, min(max_unavailable, replicas - 1))


def needs_reading(shards: Sequence[Shard]) -> list[str]:
    """The hosts whose replication must be read before deciding: restarted (updated), Ready
    hosts of shards that still have replicas to restart."""
    found = []
    for shard in shards:
        if shard.update_revision is None or all(shard.updated(h) for h in shard.hosts):
            continue
        found += [h.name for h in shard.hosts if shard.updated(h) and h.ready and not h.deleting]
    return found


def decide(
    shards: Sequence[Shard],
    max_unavailable: int,
    lags: Mapping[str, Lag] | None,
    now: datetime | None = None,
) -> Decision:
    """The pods to delete now, and a summary for status. `lags` None: probing is off, and a
    Ready host counts as caught up; a host missing from `lags` has no reading yet (waits).
    With `now`, a host whose replication cannot be read counts as caught up once it has been
    Ready for UNREADABLE_GRACE_SECONDS.

    A rollout is under way while a pod runs an older template than its StatefulSet's
    (a shard whose StatefulSet status is older than its spec waits, its revision unknown).
    Per shard: an old-template pod that is not Ready is restarted at once (it serves nothing
    already); then Ready old-template pods, highest ordinal first (as the StatefulSet
    controller would), while fewer than the allowed replicas are busy: absent, being deleted,
    not Ready, or restarted and not yet caught up.
    """
    total = sum(shard.replicas for shard in shards)
    updated = sum(1 for shard in shards for h in shard.hosts if shard.updated(h) and not h.deleting)
    active = any(
        not shard.updated(h) for shard in shards if shard.update_revision for h in shard.hosts
    )
    if not active:
        return Decision([], "", True, updated, total)
    delete: list[str] = []
    notes: list[str] = []
    behind = False
    for shard in shards:
        if shard.update_revision is None:
            notes.append(f"waiting for the StatefulSet controller to take {shard.name}'s template")
            continue
        chosen, shard_notes, shard_behind = _decide_shard(shard, max_unavailable, lags, now)
        delete += chosen
        notes += shard_notes
        behind |= shard_behind
    head = f"rolling out ClickHouse host by host: {updated}/{total} hosts updated"
    summary = clip("; ".join([head, *notes]), MAX_SUMMARY_CHARS)
    return Decision(delete, summary, False, updated, total, behind)


def _decide_shard(
    shard: Shard, max_unavailable: int, lags: Mapping[str, Lag] | None, now: datetime | None
) -> tuple[list[str], list[str], bool]:
    present = {h.ordinal for h in shard.hosts}
    restarting = [f"{shard.name}-{i}" for i in range(shard.replicas) if i not in present]
    busy = len(restarting)
    delete: list[str] = []
    not_ready: list[str] = []
    behind: list[str] = []
    assumed: list[str] = []
    old_ready: list[Host] = []
    # Catching up matters only while there is a next replica to restart.
    rolling = any(not shard.updated(h) for h in shard.hosts)
    for host in shard.hosts:
        if host.deleting:
            busy += 1
            restarting.append(host.name)
        elif not shard.updated(host):
            if host.ready:
                old_ready.append(host)
            else:
                delete.append(host.name)
                busy += 1
                restarting.append(host.name)
        elif not host.ready:
            busy += 1
            not_ready.append(host.name)
        elif lags is not None and rolling:
            lag = _lag(host, lags, now)
            if lag.caught_up and lag.unreadable:
                assumed.append(host.name)
            elif not lag.caught_up:
                busy += 1
                behind.append(f"{host.name} ({lag.detail})" if lag.detail else host.name)
    room = allowed_unavailable(shard.replicas, max_unavailable) - busy
    for host in sorted(old_ready, key=lambda h: -h.ordinal)[: max(0, room)]:
        delete.append(host.name)
        restarting.append(host.name)
    notes = _notes(restarting, not_ready, behind, assumed)
    return delete, notes, bool(behind)


def _notes(
    restarting: list[str], not_ready: list[str], behind: list[str], assumed: list[str]
) -> list[str]:
    notes = []
    if restarting:
        notes.append(f"restarting {', '.join(sorted(restarting))}")
    if not_ready:
        notes.append(f"waiting for {', '.join(not_ready)} to be Ready")
    if behind:
        notes.append(f"waiting for {', '.join(behind)} to catch up")
    if assumed:
        notes.append(
            f"taken as caught up: {', '.join(assumed)} (replication unreadable"
            f" {UNREADABLE_GRACE_SECONDS} s after Ready)"
        )
    return notes


def _lag(host: Host, lags: Mapping[str, Lag], now: datetime | None) -> Lag:
    """The host's lag as the decision takes it: unreadable past the grace, caught up (and
    still marked unreadable, for the summary)."""
    lag = lags.get(host.name, Lag(False, "no reading yet"))
    if lag.caught_up or not lag.unreadable or now is None or host.ready_since is None:
        return lag
    if (now - host.ready_since).total_seconds() < UNREADABLE_GRACE_SECONDS:
        return lag
    return Lag(True, lag.detail, unreadable=True)


def lag_of(reading: ServerReading) -> Lag:
    """A restarted host's `system.replicas` (or its probe's error) as caught up or not."""
    if reading.error is not None:
        return Lag(False, f"cannot read its replication: {reading.error}", unreadable=True)
    readonly = [f"{r.database}.{r.table}" for r in reading.replicas if r.is_readonly]
    expired = any(r.is_session_expired for r in reading.replicas)
    delay = max((r.absolute_delay for r in reading.replicas), default=0)
    queue = max((r.queue_size for r in reading.replicas), default=0)
    problems = []
    if expired:
        problems.append("its Keeper session expired")
    if readonly:
        problems.append(f"read-only: {', '.join(readonly[:3])}")
    if delay > MAX_DELAY_SECONDS:
        problems.append(f"{delay} s behind")
    if queue > MAX_QUEUE_SIZE:
        problems.append(f"{queue} entries queued")
    return Lag(not problems, ", ".join(problems))


# -- I/O ---------------------------------------------------------------------------------------


async def caught_up(
    kube: Kube,
    settings: ProbeSettings,
    names: Names,
    pods: Sequence[Manifest],
    hosts: Sequence[str],
) -> dict[str, Lag]:
    """Whether each of `hosts` (pods of `pods`) has caught up, from its own `system.replicas`,
    fresh (not the healer's kept readings). Never raises; bounded by twice the probe timeout
    (a credentials read, then one round of probes)."""
    wanted = set(hosts)
    chosen = [p for p in pods if p.get("metadata", {}).get("name") in wanted]
    if not chosen:
        return {}
    probes = DatabaseProbes(kube, settings, names.cluster_domain)
    try:
        async with asyncio.timeout(settings.timeout_seconds * 2):
            credentials = await probes.credentials(names, chosen)
            targets, failed = plan_targets(names, chosen, credentials, settings.urls)
            answered = await probe_each(
                targets, timeout=settings.timeout_seconds, concurrency=settings.concurrency
            )
    except TimeoutError:
        detail = f"cannot read its replication: no answer within {settings.timeout_seconds:g} s"
        return {name: Lag(False, detail, unreadable=True) for name in wanted}
    return {r.pod: lag_of(r) for r in [*failed, *answered]}


async def roll(
    kube: Kube,
    names: Names,
    design: PlatformDesign,
    statefulsets: Sequence[Manifest],
    platform: DataPlatform,
    *,
    probe_settings: ProbeSettings,
) -> Rollout:
    """One pass of the rollout over the platform's shard StatefulSets as just observed:
    deletes the pods `decide` chooses, reading restarted hosts with `probe_settings` (the
    reconcile's, DUET_PROBE_*). A platform at rest costs no request."""
    shards_sts = clickhouse_shards(names, design, statefulsets)
    if not any(shard_needs_roll(s) for s in shards_sts):
        return Rollout()
    pods = await kube.list_objects("v1", "Pod", names.namespace, clickhouse_pods(names))
    shards = [shard_state(s, pods) for s in shards_sts]
    lags = None
    if probe_settings.enabled:
        lags = await caught_up(kube, probe_settings, names, pods, needs_reading(shards))
    decision = decide(shards, platform.spec.rollout.max_unavailable, lags, datetime.now(UTC))
    restarted, refused = await _delete(kube, names.namespace, decision.delete)
    summary = decision.summary
    if refused:
        summary = clip(f"{summary}; cannot restart {'; '.join(refused)}", MAX_SUMMARY_CHARS)
    return Rollout(decision.done, summary, restarted, decision.behind or bool(refused))


async def _delete(kube: Kube, namespace: str, pods: Sequence[str]) -> tuple[list[str], list[str]]:
    """Delete each pod: the ones this pass deleted (one already gone is not counted), and the
    refusals, for status. A refused pod is chosen again on the next pass: the rollout's state
    is the cluster's, so nothing is lost."""

    async def one(name: str) -> tuple[str | None, str | None]:
        try:
            return (name if await kube.delete("v1", "Pod", name, namespace) else None), None
        except KubeError as e:
            return None, f"{name}: {e.code} {e.reason}"

    results = await asyncio.gather(*(one(p) for p in pods))
    return [d for d, _ in results if d is not None], [r for _, r in results if r is not None]
