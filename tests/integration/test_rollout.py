"""Host-by-host rollout of ClickHouse on the local control plane, with the real operator: a
version change restarts one replica per shard at a time (shards in parallel), each restarted
host Ready and caught up before the next; `spec.rollout.maxUnavailable` 2 restarts two of
three; an operator killed mid-rollout resumes it when it comes back.

"Caught up" is read from each restarted host's `system.replicas`: kwok pods run no server, so
the operator's probe URLs send each pod to chDB (real ClickHouse, no replicated tables: caught
up as soon as it answers), or nowhere (the rollout then waits and says why)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess, serving
from tests.support.pod_events import pod_events
from tests.support.wait import WaitTimeoutError, wait_until

pytestmark = pytest.mark.integration

READY = 120
PLATFORM_LABEL = "duet.aidatalabs.ai/platform"
SHARD_LABEL = "duet.aidatalabs.ai/shard"
REVISION_LABEL = "controller-revision-hash"
# Platforms whose pods the probing operator sends to chDB.
CHDB_PLATFORMS = {"web": (3, 2), "wide": (2, 3)}


def pod_names(platform: str, shards: int, replicas: int) -> list[str]:
    return [f"{platform}-clickhouse-{s}-{r}" for s in range(shards) for r in range(replicas)]


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="module")
def probing_operator(
    kubeconfig: Path, crds: list[str], chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator serving `roll-*`, whose probes read every pod of CHDB_PLATFORMS from chDB."""
    urls = {
        pod: f"chdb://{chdb_dir}"
        for platform, (shards, replicas) in CHDB_PLATFORMS.items()
        for pod in pod_names(platform, shards, replicas)
    }
    log = tmp_path_factory.mktemp("rollout") / "operator.log"
    env = {
        "DUET_PROBE_ENABLED": "true",
        "DUET_PROBE_URLS": json.dumps(urls),
        "DUET_PROBE_TIMEOUT_SECONDS": "10",
    }
    with serving(
        OperatorProcess(kubeconfig, log, resync_seconds=60, namespaces="roll-*", env=env)
    ) as process:
        yield process


def platform_body(
    name: str, version: str, shards: int, replicas: int, max_unavailable: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {
            "requirements": {"dataVolume": "100Gi"},
            "clickhouse": {"version": version, "shards": shards, "replicas": replicas},
            "postgres": {"enabled": False},
            # The healer records only: no restart of its own during the rollout.
            "autonomy": {"mode": "observe"},
            "rollout": {"maxUnavailable": max_unavailable},
        },
    }


def get_platform(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", name
    )
    return found


def ready_condition(platform: dict[str, Any]) -> dict[str, Any]:
    conditions = platform.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def wait_ready(custom: Any, namespace: str, name: str, version: str) -> None:
    seen: dict[str, Any] = {}

    def ready() -> bool:
        status = get_platform(custom, namespace, name).get("status", {})
        seen["status"] = (status.get("phase"), ready_condition({"status": status}).get("message"))
        design = (status.get("design") or {}).get("clickhouse", {})
        return bool(status.get("phase") == "Ready" and design.get("version") == version)

    try:
        wait_until(ready, timeout=READY, what=f"{name} Ready on ClickHouse {version}")
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; last status: {seen.get('status')}") from None


def set_version(custom: Any, namespace: str, name: str, version: str) -> None:
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", name,
        {"spec": {"clickhouse": {"version": version}}},
    )  # fmt: skip


@dataclass
class PodWatch:
    """Every change of a platform's ClickHouse pods, in the API server's order; after each,
    how many replicas of each shard were not serving (absent, being deleted, or not Ready)."""

    replicas: int
    # name -> (shard, serving, uid)
    pods: dict[str, tuple[str, bool, str]] = field(default_factory=dict)
    most_down: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    uids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, kind: str, pod: Any) -> None:
        meta = pod.metadata
        with self.lock:
            if kind == "DELETED":
                self.pods.pop(meta.name, None)
            else:
                ready = any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                )
                serving_ = ready and meta.deletion_timestamp is None
                self.pods[meta.name] = (
                    (meta.labels or {}).get(SHARD_LABEL, ""),
                    serving_,
                    meta.uid,
                )
                self.uids[meta.name].add(meta.uid)
            for shard in {shard for shard, _, _ in self.pods.values()}:
                up = sum(1 for s, serving_, _ in self.pods.values() if s == shard and serving_)
                self.most_down[shard] = max(self.most_down[shard], self.replicas - up)

    def restarts(self) -> dict[str, int]:
        """Times each pod was made anew since the watch began."""
        with self.lock:
            return {name: len(uids) - 1 for name, uids in self.uids.items()}


@contextlib.contextmanager
def watching(core: Any, namespace: str, platform: str, replicas: int) -> Iterator[PodWatch]:
    selector = f"{PLATFORM_LABEL}={platform},app.kubernetes.io/name=clickhouse"
    seen = PodWatch(replicas)
    with pod_events(core, namespace, selector, seen.apply):
        yield seen


def rolled_out(apps: Any, core: Any, namespace: str, name: str, shards: int, replicas: int) -> bool:
    """Every pod of every shard Ready on its StatefulSet's newest template."""
    for shard in range(shards):
        sts = apps.read_namespaced_stateful_set(f"{name}-clickhouse-{shard}", namespace)
        if (sts.status.observed_generation or 0) < sts.metadata.generation:
            return False
        selector = (
            f"{PLATFORM_LABEL}={name},{SHARD_LABEL}={shard},app.kubernetes.io/name=clickhouse"
        )
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if len(pods) != replicas:
            return False
        for pod in pods:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            revision = (pod.metadata.labels or {}).get(REVISION_LABEL)
            if (
                revision != sts.status.update_revision
                or pod.metadata.deletion_timestamp
                or not ready
            ):
                return False
    return True


def images(core: Any, namespace: str, name: str) -> set[str]:
    selector = f"{PLATFORM_LABEL}={name},app.kubernetes.io/name=clickhouse"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return {p.spec.containers[0].image.rsplit(":", 1)[-1] for p in pods}


def restart_events(core: Any, namespace: str, name: str) -> list[str]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=DataPlatform,involvedObject.name={name}"
    )
    return sorted(e.message for e in found.items if e.reason == "RollingRestart")


def roll_version(
    custom: Any, apps: Any, core: Any, namespace: str, name: str, shards: int, replicas: int
) -> PodWatch:
    """Change the platform's ClickHouse version and watch its pods until all run it."""
    with watching(core, namespace, name, replicas) as seen:
        set_version(custom, namespace, name, "25.9")
        wait_until(
            lambda: rolled_out(apps, core, namespace, name, shards, replicas),
            timeout=READY,
            what=f"every pod of {name} on the new template",
        )
        wait_ready(custom, namespace, name, "25.9")
    return seen


def test_a_version_change_restarts_one_replica_per_shard_at_a_time(
    probing_operator: OperatorProcess,
    custom: Any,
    core: Any,
    apps: Any,
    make_namespace: Callable[[str], str],
) -> None:
    namespace = make_namespace("roll")
    create_custom_object(custom, namespace, platform_body("web", "25.8", 3, 2))
    wait_ready(custom, namespace, "web", "25.8")

    seen = roll_version(custom, apps, core, namespace, "web", 3, 2)

    assert images(core, namespace, "web") == {"25.9"}
    # Shards rolled, each with one replica down at a time, never two.
    assert dict(seen.most_down) == {"0": 1, "1": 1, "2": 1}
    assert seen.restarts() == dict.fromkeys(pod_names("web", 3, 2), 1)
    assert restart_events(core, namespace, "web") == sorted(
        f"deleted pod {pod}: it restarts on the new template" for pod in pod_names("web", 3, 2)
    )


def test_max_unavailable_two_restarts_two_of_three_replicas_at_once(
    probing_operator: OperatorProcess,
    custom: Any,
    core: Any,
    apps: Any,
    make_namespace: Callable[[str], str],
) -> None:
    namespace = make_namespace("roll")
    create_custom_object(custom, namespace, platform_body("wide", "25.8", 2, 3, max_unavailable=2))
    wait_ready(custom, namespace, "wide", "25.8")

    seen = roll_version(custom, apps, core, namespace, "wide", 2, 3)

    assert images(core, namespace, "wide") == {"25.9"}
    # Two of a shard's three replicas restarted together; the third always served.
    assert dict(seen.most_down) == {"0": 2, "1": 2}
    assert seen.restarts() == dict.fromkeys(pod_names("wide", 2, 3), 1)


def test_an_interrupted_rollout_resumes_after_an_operator_restart(
    kubeconfig: Path,
    crds: list[str],
    custom: Any,
    core: Any,
    apps: Any,
    make_namespace: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """The first operator probes hosts it cannot reach: it restarts one replica per shard and
    waits, saying why. Killed there, and replaced by one that probes nothing (Ready alone
    counts), the rollout finishes where it stopped: no host is restarted twice."""
    namespace = make_namespace("rollk")

    def operator(log: str, env: dict[str, str]) -> OperatorProcess:
        return OperatorProcess(
            kubeconfig, tmp_path / log, resync_seconds=60, namespaces="rollk-*", env=env
        )

    first = operator(
        "first.log", {"DUET_PROBE_ENABLED": "true", "DUET_PROBE_TIMEOUT_SECONDS": "2"}
    ).start()
    second: OperatorProcess | None = None
    try:
        create_custom_object(custom, namespace, platform_body("web", "25.8", 3, 2))
        wait_ready(custom, namespace, "web", "25.8")
        with watching(core, namespace, "web", 2) as seen:
            set_version(custom, namespace, "web", "25.9")

            def stalled() -> str | None:
                message = str(
                    ready_condition(get_platform(custom, namespace, "web")).get("message")
                )
                stuck = "3/6 hosts updated" in message and "cannot read its replication" in message
                return message if stuck else None

            message = wait_until(stalled, timeout=READY, what="the rollout to wait on probes")
            restarted_first = {name for name, n in seen.restarts().items() if n}
            assert restarted_first == {f"web-clickhouse-{s}-1" for s in range(3)}, message
            first.kill()

            second = operator("second.log", {"DUET_PROBE_ENABLED": "false"}).start()
            wait_until(
                lambda: rolled_out(apps, core, namespace, "web", 3, 2),
                timeout=READY,
                what="the rollout to finish under the new operator",
            )
            wait_ready(custom, namespace, "web", "25.9")
        assert dict(seen.most_down) == {"0": 1, "1": 1, "2": 1}
        assert seen.restarts() == dict.fromkeys(pod_names("web", 3, 2), 1)
        assert images(core, namespace, "web") == {"25.9"}
    finally:
        first.stop()
        if second is not None:
            second.stop()
