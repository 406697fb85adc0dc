"""Observations read from Kubernetes objects shaped as the local control plane writes them.

The pod statuses below are what kwok's stages in hack/testenv/stages/ produce for the
`duet.aidatalabs.ai/inject` label (CrashLoop, OOMKilled, NotReady) and what the scheduler
writes for a pod it cannot place. The other healer tests build their observations from these
builders, so a symptom test starts from the same JSON the operator will read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duet_agents.healer.observations import Component, Observation, PostgresRole
from duet_agents.healer.readings import (
    claim_observation,
    event_observation,
    has_component,
    pod_observation,
    statefulset_observation,
)

NOW = datetime(2025, 11, 23, 21, 0, 0, tzinfo=UTC)
PLATFORM = "web"
APPS = {"clickhouse": "clickhouse", "keeper": "clickhouse-keeper", "postgres": "postgres"}
CONTAINERS = {"clickhouse": "clickhouse", "keeper": "keeper", "postgres": "postgres"}

Obj = dict[str, Any]


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def kwok_pod(
    statefulset: str = "web-clickhouse-0",
    index: int = 1,
    *,
    component: str = "clickhouse",
    status: Obj | None = None,
    memory: str = "8Gi",
    uid: str | None = None,
    created: datetime = NOW - timedelta(hours=1),
    deleting: bool = False,
) -> Obj:
    """A pod of one of Duet's StatefulSets, with the labels the renderers set."""
    name = f"{statefulset}-{index}"
    labels = {
        "app.kubernetes.io/name": APPS[component],
        "app.kubernetes.io/instance": PLATFORM,
        "duet.aidatalabs.ai/platform": PLATFORM,
        "apps.kubernetes.io/pod-index": str(index),
    }
    if component == "clickhouse":
        labels["duet.aidatalabs.ai/shard"] = statefulset.rsplit("-", 1)[-1]
    containers = [
        {
            "name": CONTAINERS[component],
            "image": "example/server:1",
            "resources": {"requests": {"memory": memory}, "limits": {"memory": memory}},
        }
    ]
    if component == "postgres":
        containers.append({"name": "exporter", "image": "example/exporter:1"})
    metadata: Obj = {
        "name": name,
        "namespace": "default",
        "uid": uid or f"uid-{name}",
        "labels": labels,
        "creationTimestamp": ts(created),
        "ownerReferences": [{"kind": "StatefulSet", "name": statefulset, "apiVersion": "apps/v1"}],
    }
    if deleting:
        metadata["deletionTimestamp"] = ts(NOW)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": containers, "nodeName": "kwok-node-0"},
    }
    pod["status"] = status if status is not None else healthy(pod)
    return pod


def _names(pod: Obj) -> list[str]:
    return [c["name"] for c in pod["spec"]["containers"]]


def _conditions(ready: bool, at: datetime) -> list[Obj]:
    value = "True" if ready else "False"
    extra = (
        {}
        if ready
        else {"reason": "ContainersNotReady", "message": "containers with unready status"}
    )
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(at)},
        {"type": "Ready", "status": value, "lastTransitionTime": ts(at)} | extra,
        {"type": "ContainersReady", "status": value, "lastTransitionTime": ts(at)} | extra,
    ]


def healthy(pod: Obj, *, restarts: int = 0, since: datetime = NOW - timedelta(hours=1)) -> Obj:
    return {
        "phase": "Running",
        "conditions": _conditions(True, since),
        "containerStatuses": [
            {
                "name": n,
                "ready": True,
                "started": True,
                "restartCount": restarts,
                "state": {"running": {"startedAt": ts(since)}},
            }
            for n in _names(pod)
        ],
    }


def crash_loop(pod: Obj, *, restarts: int, at: datetime, reason: str = "Error") -> Obj:
    """inject=CrashLoop (and, with reason OOMKilled, inject=OOMKilled): duet-inject-*.yaml."""
    code = 137 if reason == "OOMKilled" else 1
    return {
        "phase": "Running",
        "conditions": _conditions(False, at),
        "containerStatuses": [
            {
                "name": n,
                "image": "example/server:1",
                "ready": False,
                "started": False,
                "restartCount": restarts,
                "lastState": {
                    "terminated": {
                        "exitCode": code,
                        "reason": reason,
                        "startedAt": ts(at),
                        "finishedAt": ts(at),
                    }
                },
                "state": {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 10s restarting failed container={n}",
                    }
                },
            }
            for n in _names(pod)
        ],
    }


def not_ready(pod: Obj, *, since: datetime, started: bool = True) -> Obj:
    """inject=NotReady: Running, the container up, Ready=False (duet-inject-notready)."""
    return {
        "phase": "Running",
        "conditions": _conditions(False, since),
        "containerStatuses": [
            {
                "name": n,
                "ready": False,
                "started": started,
                "restartCount": 0,
                "state": {"running": {"startedAt": ts(since - timedelta(hours=1))}},
            }
            for n in _names(pod)
        ],
    }


def unschedulable(message: str, *, since: datetime) -> Obj:
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": ts(since),
            }
        ],
    }


def kwok_statefulset(
    name: str = "web-clickhouse-0",
    *,
    component: str = "clickhouse",
    replicas: int = 2,
    ready: int | None = None,
    memory: str = "8Gi",
    generation: int = 3,
    observed: int | None = None,
    revision: str = "rev-a",
    update_revision: str | None = None,
) -> Obj:
    labels = {"app.kubernetes.io/name": APPS[component], "app.kubernetes.io/instance": PLATFORM}
    if component == "clickhouse":
        labels["duet.aidatalabs.ai/shard"] = name.rsplit("-", 1)[-1]
    container = {
        "name": CONTAINERS[component],
        "image": "example/server:1",
        "resources": {"requests": {"memory": memory}, "limits": {"memory": memory}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "generation": generation, "labels": labels},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}},
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas if ready is None else ready,
            "updatedReplicas": replicas,
            "observedGeneration": generation if observed is None else observed,
            "currentRevision": revision,
            "updateRevision": update_revision or revision,
        },
    }


def kwok_claim(
    pod: str = "web-clickhouse-0-1",
    *,
    size: str = "100Gi",
    capacity: str | None = None,
    storage_class: str = "kwok-volume",
    uid: str | None = None,
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"data-{pod}",
            "uid": uid or f"uid-data-{pod}",
            "creationTimestamp": ts(NOW - timedelta(days=1)),
        },
        "spec": {"storageClassName": storage_class, "resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound", "capacity": {"storage": capacity or size}},
    }


def storage_class(name: str = "kwok-volume", *, expandable: bool = True) -> Obj:
    return {"metadata": {"name": name}, "allowVolumeExpansion": expandable}


def kwok_event(pod: str, reason: str, message: str, *, count: int = 1, at: datetime = NOW) -> Obj:
    return {
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": "default"},
        "type": "Warning" if reason in ("BackOff", "Unhealthy", "FailedScheduling") else "Normal",
        "reason": reason,
        "message": message,
        "count": count,
        "lastTimestamp": ts(at),
    }


def observation(
    pods: Sequence[Obj] = (),
    *,
    statefulsets: Sequence[Obj] = (),
    claims: Sequence[Obj] = (),
    expandable: bool | None = True,
    events: Sequence[Obj] = (),
    postgres_primary: str | None = None,
    **databases: Any,
) -> Observation:
    """An observation of platform `web` from raw objects, as the operator will build it."""
    classes = {} if expandable is None else {"kwok-volume": storage_class(expandable=expandable)}
    return Observation(
        platform=PLATFORM,
        pods=[pod_observation(p, postgres_primary=postgres_primary) for p in pods],
        statefulsets=[statefulset_observation(s) for s in statefulsets],
        claims=[claim_observation(c, storage_classes=classes) for c in claims],
        events=[event_observation(e) for e in events],
        **databases,
    )


# -- tests -----------------------------------------------------------------------------------------


def test_a_healthy_clickhouse_pod_reads_as_ready_with_its_place_in_the_cluster() -> None:
    pod = pod_observation(kwok_pod("web-clickhouse-1", 0))
    assert (pod.name, pod.component, pod.statefulset, pod.shard, pod.index) == (
        "web-clickhouse-1-0",
        Component.CLICKHOUSE,
        "web-clickhouse-1",
        1,
        0,
    )
    assert pod.ready
    assert pod.phase == "Running"
    assert pod.node == "kwok-node-0"
    assert pod.not_ready_since is None
    assert pod.postgres_role is None
    [container] = pod.containers
    assert (container.name, container.memory_limit, container.restart_count) == (
        "clickhouse",
        "8Gi",
        0,
    )


def test_the_crash_loop_injection_reads_as_waiting_with_the_last_error() -> None:
    raw = kwok_pod()
    raw["status"] = crash_loop(raw, restarts=4, at=NOW - timedelta(seconds=5))
    pod = pod_observation(raw)
    [c] = pod.containers
    assert not pod.ready
    assert pod.not_ready_since == NOW - timedelta(seconds=5)
    assert (c.waiting_reason, c.restart_count, c.started) == ("CrashLoopBackOff", 4, False)
    assert (c.last_terminated_reason, c.last_terminated_exit_code) == ("Error", 1)
    assert not c.oom_killed


def test_the_oom_injection_reads_as_oom_killed_with_exit_code_137() -> None:
    raw = kwok_pod()
    raw["status"] = crash_loop(raw, restarts=1, at=NOW, reason="OOMKilled")
    [c] = pod_observation(raw).containers
    assert c.oom_killed
    assert c.last_terminated_exit_code == 137
    assert c.last_terminated_at == NOW


def test_an_unschedulable_pod_reads_with_the_schedulers_reason_and_since_when() -> None:
    raw = kwok_pod(
        status=unschedulable(
            "0/3 nodes are available: 3 Insufficient memory.", since=NOW - timedelta(minutes=3)
        )
    )
    pod = pod_observation(raw)
    assert pod.phase == "Pending"
    assert pod.unschedulable_reason == "Unschedulable"
    assert pod.unschedulable_since == NOW - timedelta(minutes=3)
    assert "Insufficient memory" in (pod.unschedulable_message or "")
    assert pod.containers[0].restart_count == 0  # no status yet: defaults


def test_postgres_pod_zero_is_the_primary_unless_the_operator_says_otherwise() -> None:
    primary = pod_observation(kwok_pod("web-postgres", 0, component="postgres"))
    standby = pod_observation(kwok_pod("web-postgres", 1, component="postgres"))
    assert (primary.postgres_role, standby.postgres_role) == (
        PostgresRole.PRIMARY,
        PostgresRole.STANDBY,
    )
    promoted = pod_observation(
        kwok_pod("web-postgres", 1, component="postgres"), postgres_primary="web-postgres-1"
    )
    assert promoted.postgres_role is PostgresRole.PRIMARY
    assert [c.name for c in primary.containers] == ["postgres", "exporter"]
    assert primary.containers[1].memory_limit is None


def test_keeper_pods_and_the_ordinal_from_the_name_when_the_label_is_missing() -> None:
    raw = kwok_pod("web-keeper", 2, component="keeper")
    del raw["metadata"]["labels"]["apps.kubernetes.io/pod-index"]
    pod = pod_observation(raw)
    assert (pod.component, pod.index, pod.shard) == (Component.KEEPER, 2, None)


def test_a_pod_without_a_duet_component_is_refused_not_guessed() -> None:
    raw = kwok_pod()
    raw["metadata"]["labels"]["app.kubernetes.io/name"] = "nginx"
    assert not has_component(raw)
    assert has_component(kwok_pod())
    with pytest.raises(ValueError, match="no Duet component label"):
        pod_observation(raw)


def test_a_terminating_pod_reads_as_deleting() -> None:
    assert pod_observation(kwok_pod(deleting=True)).deleting


def test_statefulset_rollout_state_and_template_memory() -> None:
    settled = statefulset_observation(kwok_statefulset())
    assert settled.settled
    assert not settled.rolling
    assert settled.container("clickhouse") is not None
    assert settled.containers[0].memory_limit == "8Gi"
    assert settled.shard == 0
    rolling = statefulset_observation(kwok_statefulset(update_revision="rev-b"))
    unseen = statefulset_observation(kwok_statefulset(observed=2))
    assert rolling.rolling
    assert unseen.rolling
    assert not rolling.settled


def test_claims_know_their_pod_and_whether_their_class_expands() -> None:
    classes = {"kwok-volume": storage_class(expandable=True)}
    claim = claim_observation(kwok_claim(), storage_classes=classes)
    assert (claim.name, claim.pod, claim.requested, claim.capacity) == (
        "data-web-clickhouse-0-1",
        "web-clickhouse-0-1",
        "100Gi",
        "100Gi",
    )
    assert claim.allows_expansion is True
    assert not claim.resizing
    fixed = claim_observation(
        kwok_claim(), storage_classes={"kwok-volume": storage_class(expandable=False)}
    )
    unknown = claim_observation(kwok_claim())
    assert fixed.allows_expansion is False
    assert unknown.allows_expansion is None
    resizing = claim_observation(kwok_claim(size="150Gi", capacity="100Gi"))
    assert resizing.resizing


def test_events_of_both_apis_read_alike() -> None:
    core = event_observation(
        kwok_event("web-clickhouse-0-1", "BackOff", "Back-off restarting", count=7)
    )
    new = event_observation(
        {
            "regarding": {"kind": "Pod", "name": "web-clickhouse-0-1"},
            "type": "Warning",
            "reason": "BackOff",
            "note": "Back-off restarting",
            "series": {"count": 7, "lastObservedTime": ts(NOW)},
            "eventTime": ts(NOW - timedelta(minutes=5)),
        }
    )
    assert core == new
    assert core.object == "pod/web-clickhouse-0-1"
    assert core.last_seen == NOW


def test_an_on_delete_statefulset_is_settled_once_every_pod_runs_its_template() -> None:
    # The operator rolls ClickHouse shards itself (updateStrategy OnDelete); the controller
    # then never moves currentRevision, which must not leave a remedy unverified for good.
    sts = {
        "metadata": {"name": "web-clickhouse-0", "generation": 2,
                     "labels": {"app.kubernetes.io/name": "clickhouse"}},
        "spec": {"replicas": 2, "updateStrategy": {"type": "OnDelete"}},
        "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                   "updatedReplicas": 2, "currentRevision": "r1", "updateRevision": "r2"},
    }  # fmt: skip
    assert statefulset_observation(sts).settled
    rolling = sts | {"spec": {"replicas": 2}}
    assert not statefulset_observation(rolling).settled, "a RollingUpdate one is still rolling"
