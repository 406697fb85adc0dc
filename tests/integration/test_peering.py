"""Two replicas of the operator with kopf peering (the chart's replicaCount > 1): exactly one
works, and when it stops the other takes over."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from duet_operator.models import GROUP, VERSION
from tests.support.cluster import REPO
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PEERING = "duet"


@pytest.fixture
def peered_namespace(api_client: Any, make_namespace: Callable[[str], str], crds: list[str]) -> str:
    """A namespace outside the session operator's `t-*`, with kopf's peering object in it."""
    name = make_namespace("peer")
    crd_file = REPO / "charts" / "duet" / "crds" / "kopf.dev_peerings.yaml"
    ext = client.ApiextensionsV1Api(api_client)
    for crd in yaml.safe_load_all(crd_file.read_text()):
        try:
            ext.create_custom_resource_definition(crd)
        except client.ApiException as e:
            if e.status != 409:
                raise
    custom = client.CustomObjectsApi(api_client)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    wait_until(
        lambda: custom.create_namespaced_custom_object(
            "kopf.dev", "v1", name, "kopfpeerings", peering
        ),
        timeout=30,
        what="the peering CRD to serve",
        ignore=(client.ApiException,),
    )
    return name


def replica(kubeconfig: Path, tmp_path: Path, namespace: str, index: int) -> OperatorProcess:
    return OperatorProcess(
        kubeconfig,
        tmp_path / f"replica-{index}.log",
        namespaces=namespace,
        env={"DUET_PEERING_NAME": PEERING, "POD_ID": f"replica-{index}"},
    ).start()


def designed(process: OperatorProcess) -> int:
    return process.log_path.read_text(errors="replace").count(" Designed: ")


def paused(process: OperatorProcess) -> bool:
    """kopf starts paused, resumes when no live peer outranks it, and pauses again when one
    appears: its last word on peering says where it stands."""
    said = [
        line
        for line in process.log_path.read_text(errors="replace").splitlines()
        if "Resuming operations" in line or "Pausing operations" in line
    ]
    return not said or "Pausing operations" in said[-1]


def test_one_replica_works_and_the_other_takes_over(
    kubeconfig: Path, tmp_path: Path, custom: Any, peered_namespace: str
) -> None:
    replicas = [replica(kubeconfig, tmp_path, peered_namespace, i) for i in (0, 1)]
    try:

        def settled() -> bool:
            peering = custom.get_namespaced_custom_object(
                "kopf.dev", "v1", peered_namespace, "kopfpeerings", PEERING
            )
            both_seen = len(peering.get("status") or {}) == 2
            return both_seen and sum(not paused(r) for r in replicas) == 1

        wait_until(settled, timeout=30, what="one replica to work and the other to stand by")
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DataPlatform",
            "metadata": {"name": "shared"},
            "spec": {"requirements": {"dataVolume": "50Gi"}},
        }
        create_custom_object(custom, peered_namespace, body)

        def phase() -> str | None:
            found = custom.get_namespaced_custom_object(
                GROUP, VERSION, peered_namespace, "dataplatforms", "shared"
            )
            value: str | None = found.get("status", {}).get("phase")
            return value

        wait_until(lambda: phase() == "Ready", timeout=90, what="the platform to be Ready")
        working = [r for r in replicas if designed(r)]
        assert len(working) == 1, [r.log_tail() for r in replicas]
        (active,) = working
        (standby,) = [r for r in replicas if r is not active]
        assert not paused(active)
        assert paused(standby)

        # A rolling update stops the active replica; the standby carries on.
        active.stop()
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, peered_namespace, "dataplatforms", "shared",
            {"spec": {"requirements": {"dataVolume": "3Ti"}}},
        )  # fmt: skip

        def rescaled() -> bool:
            found = custom.get_namespaced_custom_object(
                GROUP, VERSION, peered_namespace, "dataplatforms", "shared"
            )
            status = found.get("status", {})
            shards = status.get("design", {}).get("clickhouse", {}).get("shards")
            return bool(shards == 2 and status.get("phase") == "Ready")

        wait_until(rescaled, timeout=90, what="the standby to rescale the platform")
        assert not paused(standby)
        assert "AllReplicasReady" in standby.log_path.read_text(errors="replace")
    finally:
        for r in replicas:
            r.stop()
