"""The order in which a reconcile sends a platform's objects, against the real API server: no
workload is stored before the Secrets and ConfigMaps its pods mount. (That the Services do
not wait is a matter of latency, measured by bench/reconcile.py, not asserted here.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from duet_operator import credentials
from duet_operator.kube.client import Kube
from duet_operator.reconcile import Reconciler
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from duet_operator.settings import OperatorSettings
from tests.support.platforms import design, platform, s3_target

pytestmark = pytest.mark.integration


def created_at(stored: dict[str, Any]) -> int:
    """The revision the object was created at: etcd's, which the API server hands out in
    the order it stores (the value is opaque to clients, but a test may look)."""
    return int(stored["metadata"]["resourceVersion"])


def test_workloads_are_stored_after_what_they_mount(kubeconfig: Path, namespace: str) -> None:
    backup = {"schedule": "0 3 * * *", "target": {"s3": s3_target()}}
    owner = platform(namespace=namespace, backup=backup)
    manifests = build_platform(
        owner, design(shards=2, replicas=2, keeper=3), RenderConfig(), credentials.fill()
    )
    kinds = {m["kind"] for m in manifests}
    assert {"Secret", "ConfigMap", "Service", "StatefulSet", "CronJob"} <= kinds

    async def scenario() -> tuple[list[dict[str, Any]], str | None]:
        async with await Kube.connect(str(kubeconfig)) as kube:
            # Owned by a platform that does not exist: only what is stored is looked at,
            # before the garbage collector gets to it.
            return await Reconciler(kube, OperatorSettings()).apply(manifests)

    applied, error = asyncio.run(scenario())

    assert error is None
    assert sorted((o["kind"], o["metadata"]["name"]) for o in applied) == sorted(
        (m["kind"], m["metadata"]["name"]) for m in manifests
    )
    mounted = [created_at(o) for o in applied if o["kind"] in ("Secret", "ConfigMap")]
    workloads = [created_at(o) for o in applied if o["kind"] in ("StatefulSet", "CronJob")]
    assert min(workloads) > max(mounted)
