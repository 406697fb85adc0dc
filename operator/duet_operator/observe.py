"""What the platform's workloads say about its health: pure readings of StatefulSet status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from duet_agents.planner.models import PlatformDesign
from duet_operator.render import clickhouse
from duet_operator.render.naming import PLATFORM_LABEL, Names


@dataclass(frozen=True)
class Replicas:
    desired: int = 0
    ready: int = 0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    rolling: bool
    message: str
    # A StatefulSet of the design is missing or asks for other replicas than the design:
    # someone deleted or scaled it, and only a full reconcile puts it back.
    drifted: bool = False
    # Per component (clickhouse, keeper, postgres): what the design wants and what is ready.
    replicas: Mapping[str, Replicas] = field(default_factory=dict)


def expected_statefulsets(names: Names, design: PlatformDesign) -> dict[str, int]:
    """StatefulSet name -> the replicas the design wants of it."""
    return {name: wanted for name, (_, wanted) in _components(names, design).items()}


def statefulset_components(names: Names, design: PlatformDesign) -> dict[str, str]:
    """StatefulSet name -> the component it runs: clickhouse, keeper or postgres."""
    return {name: component for name, (component, _) in _components(names, design).items()}


def _components(names: Names, design: PlatformDesign) -> dict[str, tuple[str, int]]:
    ch = design.clickhouse
    expected = {names.shard(i): ("clickhouse", ch.replicas) for i in range(ch.shards)}
    if ch.keeper.replicas:
        expected[names.keeper] = ("keeper", ch.keeper.replicas)
    if design.postgres.enabled and design.postgres.instances:
        expected[names.postgres] = ("postgres", design.postgres.instances)
    return expected


def clickhouse_shards(
    names: Names, design: PlatformDesign, statefulsets: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The design's shard StatefulSets among `statefulsets`, by name."""
    wanted = {names.shard(i) for i in range(design.clickhouse.shards)}
    found = [s for s in statefulsets if s.get("metadata", {}).get("name") in wanted]
    return sorted(found, key=lambda s: str(s["metadata"]["name"]))


def clickhouse_pods(names: Names) -> str:
    """The label selector of the platform's ClickHouse pods."""
    return f"{PLATFORM_LABEL}={names.platform},app.kubernetes.io/name={clickhouse.APP}"


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def statefulset_progress(sts: dict[str, Any], wanted: int) -> tuple[int, bool]:
    """(ready replicas, still rolling out) of one StatefulSet that should have `wanted`."""
    status = sts.get("status") or {}
    generation = sts.get("metadata", {}).get("generation", 0)
    # Under OnDelete the controller never moves currentRevision to updateRevision, even once
    # every pod runs it (seen on v1.34): there, updatedReplicas alone says the roll is done.
    on_delete = (sts.get("spec", {}).get("updateStrategy") or {}).get("type") == "OnDelete"
    rolling = (
        int(sts.get("spec", {}).get("replicas", 1)) != wanted
        or status.get("observedGeneration", 0) < generation
        or status.get("updatedReplicas", 0) < wanted
        or (not on_delete and status.get("currentRevision") != status.get("updateRevision"))
    )
    return int(status.get("readyReplicas", 0)), rolling


def readiness(
    expected: Mapping[str, int],
    statefulsets: list[dict[str, Any]],
    components: Mapping[str, str] | None = None,
) -> Readiness:
    """Ready when every StatefulSet the design wants exists, runs the replicas the design
    wants (not merely the ones its own spec says), all updated and Ready. With `components`
    (StatefulSet name -> component), the replicas are also counted per component."""
    by_name = {s["metadata"]["name"]: s for s in statefulsets}
    missing = [name for name in expected if name not in by_name]
    wanted_total = 0
    rolling: list[str] = []
    lagging: list[str] = []
    counts: dict[str, Replicas] = {}
    drifted = bool(missing)
    for name, wanted in expected.items():
        ready = 0
        if name not in missing:
            drifted |= int(by_name[name].get("spec", {}).get("replicas", 1)) != wanted
            ready, is_rolling = statefulset_progress(by_name[name], wanted)
            wanted_total += wanted
            if is_rolling:
                rolling.append(name)
            if ready < wanted:
                lagging.append(f"{name} {ready}/{wanted}")
        if components is not None and name in components:
            so_far = counts.get(components[name], Replicas())
            # A StatefulSet scaled past the design by hand has no more *wanted* replicas.
            counts[components[name]] = Replicas(
                so_far.desired + wanted, so_far.ready + min(ready, wanted)
            )
    if missing:
        message = f"waiting for {', '.join(missing)} to be created"
        return Readiness(False, False, message, drifted, counts)
    if lagging:
        message = f"replicas not ready: {', '.join(lagging)}"
        return Readiness(False, bool(rolling), message, drifted, counts)
    if rolling:
        return Readiness(False, True, f"rolling out: {', '.join(rolling)}", drifted, counts)
    return Readiness(True, False, f"all {wanted_total} replicas ready", replicas=counts)
