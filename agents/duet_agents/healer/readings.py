"""Observations read from Kubernetes objects as the API returns them (JSON as dicts).

The operator passes what it listed (pods, StatefulSets, claims, events of one platform) and
gets the healer's models back; nothing here talks to the API. Objects without a component
label the renderers set (a query agent's pods) are the caller's to filter out with
`has_component`: such a pod raises ValueError rather than being guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from duet_agents.healer.observations import (
    ClaimObservation,
    Component,
    ContainerObservation,
    ContainerTemplate,
    EventObservation,
    PodObservation,
    PostgresRole,
    StatefulSetObservation,
)

Obj = Mapping[str, Any]

# The labels Duet's renderers put on every pod and StatefulSet (operator render/naming.py).
NAME_LABEL = "app.kubernetes.io/name"
SHARD_LABEL = "duet.aidatalabs.ai/shard"
# Set by the StatefulSet controller (Kubernetes 1.28+); older clusters: the name's suffix.
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
COMPONENTS = {
    "clickhouse": Component.CLICKHOUSE,
    "clickhouse-keeper": Component.KEEPER,
    "postgres": Component.POSTGRES,
}


def has_component(obj: Obj) -> bool:
    """Whether `obj` is one of the platform's database workloads (not, say, a query agent)."""
    return _labels(obj).get(NAME_LABEL, "") in COMPONENTS


def component_of(obj: Obj) -> Component:
    name = _labels(obj).get(NAME_LABEL, "")
    if name not in COMPONENTS:
        raise ValueError(
            f"{obj.get('kind', 'object')} {_meta(obj).get('name')!r} has no Duet component "
            f"label ({NAME_LABEL}={name!r})"
        )
    return COMPONENTS[name]


def pod_observation(pod: Obj, *, postgres_primary: str | None = None) -> PodObservation:
    """A pod as the healer sees it. `postgres_primary` names the pod the operator treats as
    PostgreSQL's primary (the read-write Service's); the others are standbys."""
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    component = component_of(pod)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    scheduled = conditions.get("PodScheduled") or {}
    index = _index(pod)
    role = None
    if component is Component.POSTGRES:
        primary = postgres_primary if postgres_primary is not None else _ordinal_name(pod, 0)
        role = PostgresRole.PRIMARY if meta.get("name") == primary else PostgresRole.STANDBY
    unscheduled = scheduled.get("status") == "False"
    return PodObservation(
        name=meta["name"],
        uid=meta.get("uid", ""),
        component=component,
        statefulset=_owner(pod, "StatefulSet"),
        shard=_int(_labels(pod).get(SHARD_LABEL)),
        index=index,
        postgres_role=role,
        phase=status.get("phase") or "Pending",
        ready=ready.get("status") == "True",
        not_ready_since=ready.get("lastTransitionTime") if ready.get("status") == "False" else None,
        unschedulable_reason=scheduled.get("reason") if unscheduled else None,
        unschedulable_message=scheduled.get("message") if unscheduled else None,
        unschedulable_since=scheduled.get("lastTransitionTime") if unscheduled else None,
        node=spec.get("nodeName"),
        created_at=meta.get("creationTimestamp"),
        deleting=meta.get("deletionTimestamp") is not None,
        containers=_containers(spec.get("containers") or [], status.get("containerStatuses")),
    )


def statefulset_observation(sts: Obj) -> StatefulSetObservation:
    meta, spec, status = _meta(sts), sts.get("spec") or {}, sts.get("status") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return StatefulSetObservation(
        name=meta["name"],
        component=component_of(sts),
        shard=_int(_labels(sts).get(SHARD_LABEL)),
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        generation=int(meta.get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        current_revision=status.get("currentRevision"),
        update_revision=status.get("updateRevision"),
        on_delete=(spec.get("updateStrategy") or {}).get("type") == "OnDelete",
        containers=[
            ContainerTemplate(
                name=c["name"],
                memory_limit=_memory(c, "limits"),
                memory_request=_memory(c, "requests"),
            )
            for c in template.get("containers") or []
        ],
    )


def claim_observation(
    claim: Obj, *, storage_classes: Mapping[str, Obj] | None = None
) -> ClaimObservation:
    """A claim of a StatefulSet's volume template (`<template>-<statefulset>-<ordinal>`, so
    `data-web-clickhouse-0-1` belongs to pod `web-clickhouse-0-1`)."""
    meta, spec, status = _meta(claim), claim.get("spec") or {}, claim.get("status") or {}
    class_name = spec.get("storageClassName")
    storage_class = (storage_classes or {}).get(class_name or "")
    name = meta["name"]
    pod = name.split("-", 1)[1] if "-" in name else None
    return ClaimObservation(
        name=name,
        uid=meta.get("uid", ""),
        pod=pod,
        requested=((spec.get("resources") or {}).get("requests") or {}).get("storage"),
        capacity=(status.get("capacity") or {}).get("storage"),
        storage_class=class_name,
        allows_expansion=(
            bool(storage_class.get("allowVolumeExpansion", False))
            if storage_class is not None
            else None
        ),
        phase=status.get("phase") or "Pending",
        created_at=meta.get("creationTimestamp"),
    )


def event_observation(event: Obj) -> EventObservation:
    """A core/v1 Event, or an events.k8s.io/v1 one (`regarding`, `note`, `series`)."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    series = event.get("series") or {}
    last_seen = (
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("deprecatedLastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _meta(event).get("creationTimestamp")
    )
    count = event.get("count") or series.get("count") or event.get("deprecatedCount") or 1
    return EventObservation(
        kind=involved.get("kind", ""),
        name=involved.get("name", ""),
        type=event.get("type") or "Normal",
        reason=event.get("reason") or "",
        message=event.get("message") or event.get("note") or "",
        count=max(1, int(count)),
        last_seen=last_seen,
    )


# -- helpers ---------------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _labels(obj: Obj) -> Obj:
    labels: Obj = _meta(obj).get("labels") or {}
    return labels


def _owner(obj: Obj, kind: str) -> str | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _index(pod: Obj) -> int | None:
    from_label = _int(_labels(pod).get(POD_INDEX_LABEL))
    if from_label is not None:
        return from_label
    if _owner(pod, "StatefulSet") is None:
        return None
    return _int(str(_meta(pod).get("name", "")).rsplit("-", 1)[-1])


def _ordinal_name(pod: Obj, ordinal: int) -> str | None:
    owner = _owner(pod, "StatefulSet")
    return f"{owner}-{ordinal}" if owner else None


def _memory(container: Obj, kind: str) -> str | None:
    value = ((container.get("resources") or {}).get(kind) or {}).get("memory")
    return None if value is None else str(value)


def _containers(specs: list[Obj], statuses: list[Obj] | None) -> list[ContainerObservation]:
    by_name = {s.get("name"): s for s in statuses or []}
    result = []
    for spec in specs:
        status = by_name.get(spec["name"]) or {}
        state = status.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        last = (status.get("lastState") or {}).get("terminated") or {}
        result.append(
            ContainerObservation(
                name=spec["name"],
                ready=bool(status.get("ready", False)),
                started=status.get("started"),
                restart_count=int(status.get("restartCount", 0)),
                waiting_reason=waiting.get("reason"),
                waiting_message=waiting.get("message"),
                terminated_reason=terminated.get("reason"),
                last_terminated_reason=last.get("reason"),
                last_terminated_exit_code=last.get("exitCode"),
                last_terminated_at=last.get("finishedAt"),
                memory_limit=_memory(spec, "limits"),
                memory_request=_memory(spec, "requests"),
            )
        )
    return result
