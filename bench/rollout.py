"""Rollout benchmark: a ClickHouse version change rolled host by host through the operator.

For each layout (shards x replicas, spec.rollout.maxUnavailable), a Ready platform gets a new
ClickHouse version; printed: the time from the spec change until every ClickHouse pod runs the
new template and is Ready, and each host's restart-to-Ready time (its old pod marked for
deletion -> its new pod Ready). Set beside its baseline, measured in the same run on the same
control plane: the same StatefulSets rendered by `duet render`, applied straight with
`updateStrategy: RollingUpdate`, and rolled by the StatefulSet controller itself (one pod at a
time per StatefulSet, shards in parallel, no wait for replication). The ratio is what waiting
on the operator's passes (and its catch-up probes) costs over the controller's own pace.

    python bench/rollout.py [--layouts 3x2:1 3x2:2 3x3:1 3x3:2] [--probes chdb|off] [--keep]

Starts its own local control plane (hack/testenv, name `bench-rollout`) and operator. kwok
pods run no server: with `--probes chdb` (the default) the operator's catch-up probes read
each restarted host's `system.replicas` from one chDB directory (real ClickHouse, no
replicated tables), so the probe round is paid as in a cluster; `off` counts Ready alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from duet_agents.planner import capacity  # noqa: E402
from duet_operator import credentials  # noqa: E402
from duet_operator.models import GROUP, VERSION, DataPlatform  # noqa: E402
from duet_operator.render.config import RenderConfig  # noqa: E402
from duet_operator.render.platform import build_platform  # noqa: E402
from tests.support import testenv_module  # noqa: E402
from tests.support.cluster import kubectl, start_testenv, stop_testenv  # noqa: E402
from tests.support.operator import OperatorProcess  # noqa: E402
from tests.support.pod_events import pod_events  # noqa: E402

ENV = "bench-rollout"
OLD, NEW = "25.8", "25.9"
PLATFORM_LABEL = "duet.aidatalabs.ai/platform"
CLICKHOUSE = "app.kubernetes.io/name=clickhouse"
REVISION_LABEL = "controller-revision-hash"
TIMEOUT = 600


@dataclass(frozen=True)
class Layout:
    shards: int
    replicas: int
    max_unavailable: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        hosts, _, unavailable = text.partition(":")
        shards, replicas = hosts.split("x")
        return cls(int(shards), int(replicas), int(unavailable or 1))

    @property
    def name(self) -> str:
        return f"r{self.shards}x{self.replicas}u{self.max_unavailable}"

    def pods(self) -> list[str]:
        return [
            f"{self.name}-clickhouse-{s}-{r}"
            for s in range(self.shards)
            for r in range(self.replicas)
        ]

    def __str__(self) -> str:
        return f"{self.shards}x{self.replicas} maxUnavailable {self.max_unavailable}"


def platform_doc(layout: Layout, namespace: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": layout.name, "namespace": namespace},
        "spec": {
            "requirements": {"dataVolume": "100Gi"},
            "clickhouse": {
                "version": version,
                "shards": layout.shards,
                "replicas": layout.replicas,
            },
            "postgres": {"enabled": False},
            "autonomy": {"mode": "observe"},
            "rollout": {"maxUnavailable": layout.max_unavailable},
        },
    }


def wait_for(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not done after {timeout}s")


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def rolled_out(apps: Any, core: Any, namespace: str, layout: Layout) -> bool:
    """Every ClickHouse pod Ready on its StatefulSet's newest template."""
    for shard in range(layout.shards):
        sts = apps.read_namespaced_stateful_set(f"{layout.name}-clickhouse-{shard}", namespace)
        if (sts.status.observed_generation or 0) < sts.metadata.generation:
            return False
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"{PLATFORM_LABEL}={layout.name},{CLICKHOUSE}"
        ).items
        mine = [p for p in pods if p.metadata.name.startswith(f"{sts.metadata.name}-")]
        if len(mine) != layout.replicas:
            return False
        for pod in mine:
            revision = (pod.metadata.labels or {}).get(REVISION_LABEL)
            if revision != sts.status.update_revision or pod.metadata.deletion_timestamp:
                return False
            if not is_ready(pod):
                return False
    return True


@dataclass
class Timeline:
    """When each ClickHouse pod was marked for deletion, and when each new one became Ready."""

    first_uid: dict[str, str] = field(default_factory=dict)
    deleting: dict[str, float] = field(default_factory=dict)  # old pod's name -> when
    ready: dict[str, float] = field(default_factory=dict)  # pod name -> its new pod Ready
    lock: threading.Lock = field(default_factory=threading.Lock)

    def see(self, kind: str, pod: Any, now: float) -> None:
        meta = pod.metadata
        with self.lock:
            first = self.first_uid.setdefault(meta.name, meta.uid)
            if meta.uid == first:
                if meta.deletion_timestamp is not None or kind == "DELETED":
                    self.deleting.setdefault(meta.name, now)
            elif is_ready(pod) and meta.deletion_timestamp is None:
                self.ready.setdefault(meta.name, now)


def follow(
    core: Any, namespace: str, layout: Layout, timeline: Timeline
) -> contextlib.AbstractContextManager[None]:
    """`layout`'s pods into `timeline`, while the context lasts."""
    selector = f"{PLATFORM_LABEL}={layout.name},{CLICKHOUSE}"
    return pod_events(
        core, namespace, selector, lambda kind, pod: timeline.see(kind, pod, time.monotonic())
    )


@dataclass(frozen=True)
class Result:
    seconds: float
    restart_to_ready: list[float]


def timed_rollout(
    core: Any, apps: Any, namespace: str, layout: Layout, change: Callable[[], None]
) -> Result:
    timeline = Timeline()
    with follow(core, namespace, layout, timeline):
        started = time.monotonic()
        change()
        wait_for(lambda: rolled_out(apps, core, namespace, layout), f"{layout} rolled out")
        # The watch can trail the poll that saw the end by an event or two.
        wait_for(lambda: len(timeline.ready) == len(layout.pods()), "the watch", timeout=30)
    restart = [timeline.ready[p] - timeline.deleting[p] for p in layout.pods()]
    return Result(max(timeline.ready.values()) - started, restart)


def via_operator(core: Any, apps: Any, custom: Any, kubeconfig: Path, layout: Layout) -> Result:
    namespace = f"bench-roll-op-{layout.name}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    doc = platform_doc(layout, namespace, OLD)
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(doc))

    def ready() -> bool:
        found = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatforms", layout.name
        )
        return bool(found.get("status", {}).get("phase") == "Ready")

    wait_for(ready, f"{layout.name} Ready")

    def change() -> None:
        patch = {"spec": {"clickhouse": {"version": NEW}}}
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "dataplatforms", layout.name, patch
        )

    return timed_rollout(core, apps, namespace, layout, change)


def rendered(layout: Layout, namespace: str, version: str) -> str:
    """The platform as `duet render` gives it, its shards left to the StatefulSet controller."""
    platform = DataPlatform.model_validate(platform_doc(layout, namespace, version))
    design = capacity.plan(platform.spec.plan_request())
    manifests = build_platform(platform, design, RenderConfig(), credentials.fill())
    for manifest in manifests:
        if manifest["kind"] == "StatefulSet":
            manifest["spec"].pop("updateStrategy", None)
    return yaml.safe_dump_all(manifests)


def by_controller(core: Any, apps: Any, kubeconfig: Path, layout: Layout) -> Result:
    namespace = f"bench-roll-raw-{layout.name}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=rendered(layout, namespace, OLD))
    wait_for(lambda: rolled_out(apps, core, namespace, layout), f"{layout} applied straight")
    # The passwords differ between renders: the Secret changes too, which no pod reads again.
    new = rendered(layout, namespace, NEW)

    def change() -> None:
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=new)

    return timed_rollout(core, apps, namespace, layout, change)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--layouts", nargs="+", default=["3x2:1", "3x2:2", "3x3:1", "3x3:2"],
        help="SHARDSxREPLICAS:MAXUNAVAILABLE",
    )  # fmt: skip
    parser.add_argument("--probes", choices=["chdb", "off"], default="chdb")
    parser.add_argument("--keep", action="store_true", help="leave the control plane running")
    args = parser.parse_args()
    layouts = [Layout.parse(text) for text in args.layouts]

    kubeconfig = start_testenv(ENV)
    os.environ["DUET_KUBECTL"] = str(testenv_module.load().Binaries.build().kubectl)
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds"))
    work = Path(tempfile.mkdtemp(prefix="duet-bench-rollout-"))
    env = {"DUET_PROBE_ENABLED": "false"}
    if args.probes == "chdb":
        (work / "chdb").mkdir()
        urls = {pod: f"chdb://{work / 'chdb'}" for layout in layouts for pod in layout.pods()}
        env = {"DUET_PROBE_ENABLED": "true", "DUET_PROBE_URLS": json.dumps(urls)}
    operator = OperatorProcess(
        kubeconfig, work / "operator.log", resync_seconds=60, namespaces="bench-roll-op-*", env=env
    ).start()
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    results: dict[Layout, tuple[Result, Result]] = {}
    try:
        for layout in layouts:
            mine = via_operator(core, apps, custom, kubeconfig, layout)
            theirs = by_controller(core, apps, kubeconfig, layout)
            results[layout] = (mine, theirs)
            print(
                f"{layout}: rolled in {mine.seconds:.1f}s via the operator, "
                f"{theirs.seconds:.1f}s by the StatefulSet controller "
                f"(x{mine.seconds / theirs.seconds:.2f}); restart to Ready p50 "
                f"{statistics.median(mine.restart_to_ready):.1f}s max "
                f"{max(mine.restart_to_ready):.1f}s (controller p50 "
                f"{statistics.median(theirs.restart_to_ready):.1f}s)",
                flush=True,
            )
    finally:
        operator.stop()
        api.close()
        if not args.keep:
            stop_testenv(ENV)
    first = layouts[0]
    mine, theirs = results[first]
    faster = next(
        (
            layout
            for layout in layouts
            if layout.max_unavailable > 1 and layout.replicas > 2
            and Layout(layout.shards, layout.replicas, 1) in results
        ),
        None,
    )  # fmt: skip
    extra = ""
    if faster is not None:
        one = results[Layout(faster.shards, faster.replicas, 1)][0].seconds
        extra = (
            f"; {faster.shards}x{faster.replicas} with maxUnavailable {faster.max_unavailable} "
            f"{results[faster][0].seconds:.0f}s vs {one:.0f}s at 1"
        )
    print(
        f"rollout: {first.shards} shards x {first.replicas} replicas rolled host by host in "
        f"{mine.seconds:.0f}s (StatefulSet controller alone {theirs.seconds:.0f}s, "
        f"x{mine.seconds / theirs.seconds:.2f}); restart to Ready p50 "
        f"{statistics.median(mine.restart_to_ready):.1f}s{extra}; probes {args.probes}; "
        f"{os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
