"""promotePostgresReplica carried out by the operator: a platform on the local control plane
whose PostgreSQL pods' databases are real servers, started by the pods' own entrypoint
(tests/support/postgres_pods.py) and reached through DUET_PROBE_URLS. The primary's server is
lost; an approved Remediation promotes the standby at once (`pg_promote()`), moves
`status.postgresPrimary`, and the read-write Service and the pod template follow."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess, serving
from tests.support.postgres import find_bin_dir
from tests.support.postgres_pods import PostgresPods, postgres_pods
from tests.support.wait import WaitTimeoutError, wait_until

BIN_DIR = find_bin_dir()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BIN_DIR is None, reason="PostgreSQL server binaries not found"),
]
PLATFORM = "db"


@pytest.fixture
def databases() -> Iterator[PostgresPods]:
    """A primary and a standby streaming from it, as the platform's two pods run them."""
    assert BIN_DIR is not None
    with postgres_pods(BIN_DIR, 2) as pods:
        pods.start(0, primary=0)
        pods.wait_accepting(0)
        pods.start(1, primary=0)
        pods.wait_accepting(1)
        yield pods


@pytest.fixture
def operator(
    kubeconfig: Path, crds: list[str], tmp_path: Path, databases: PostgresPods
) -> Iterator[OperatorProcess]:
    urls = {
        f"{PLATFORM}-postgres-{pod.ordinal}": databases.server(pod.ordinal).url()
        for pod in databases.pods
    }
    process = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        namespaces="promo-*",
        env={"DUET_HEAL_INTERVAL_SECONDS": "2", "DUET_PROBE_URLS": json.dumps(urls)},
    )
    with serving(process):
        yield process


def get(custom: Any, namespace: str, plural: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return found


def test_an_approved_promotion_makes_the_standby_the_primary(
    operator: OperatorProcess,
    databases: PostgresPods,
    custom: Any,
    core: Any,
    apps: Any,
    make_namespace: Callable[[str], str],
) -> None:
    namespace = make_namespace("promo")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": PLATFORM},
        "spec": {
            "requirements": {"dataVolume": "50Gi", "availability": "high"},
            "autonomy": {"mode": "recommend"},
        },
    }
    create_custom_object(custom, namespace, body)
    wait_until(
        lambda: (
            get(custom, namespace, "dataplatforms", PLATFORM).get("status", {}).get("phase")
            == "Ready"
        ),
        timeout=90,
        what="the platform to be Ready",
    )
    assert (
        get(custom, namespace, "dataplatforms", PLATFORM)["status"]["design"]["postgres"][
            "instances"
        ]
        == 2
    )

    # The primary's server is lost; a person approves the promotion of the standby.
    databases.stop(0, crash=True)
    remediation = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Remediation",
        "metadata": {"name": "promote-1", "labels": {"duet.aidatalabs.ai/platform": PLATFORM}},
        "spec": {
            "platformRef": {"name": PLATFORM},
            "symptom": {"type": "ReplicaNotReady", "object": f"pod/{PLATFORM}-postgres-0"},
            "diagnosis": "the PostgreSQL primary is lost",
            "action": {
                "type": "promotePostgresReplica",
                "parameters": {
                    "target": f"pod/{PLATFORM}-postgres-0",
                    "from": f"{PLATFORM}-postgres-0",
                    "to": f"{PLATFORM}-postgres-1",
                },
            },
            "mode": "recommend",
            "approved": True,
        },
    }
    create_custom_object(custom, namespace, remediation)

    def verified() -> bool:
        status = get(custom, namespace, "remediations", "promote-1").get("status") or {}
        seen["status"] = status
        return status.get("phase") == "Verified"

    seen: dict[str, Any] = {}
    try:
        wait_until(verified, timeout=60, what="the promotion to be verified")
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; the Remediation: {seen.get('status')}") from None
    assert seen["status"]["message"] == "db-postgres-1 is the PostgreSQL primary and Ready"

    def applied_event() -> str | None:
        events = core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={PLATFORM},reason=RemediationApplied"
        ).items
        return next((e.message for e in events), None)

    applied = wait_until(applied_event, timeout=30, what="the RemediationApplied Event")
    assert "db-postgres-1 promoted and is the primary" in applied

    # The database itself: the standby is a primary now, and takes writes.
    assert not databases.in_recovery(1)
    with databases.connect(1) as conn:
        conn.execute("CREATE TABLE after_failover (x int)")
    # What the cluster says: the primary moved, and the Service and pod template follow it.
    platform = get(custom, namespace, "dataplatforms", PLATFORM)
    assert platform["status"]["postgresPrimary"] == 1
    rw = core.read_namespaced_service(f"{PLATFORM}-postgres-rw", namespace)
    assert rw.spec.selector["apps.kubernetes.io/pod-index"] == "1"
    statefulset = apps.read_namespaced_stateful_set(f"{PLATFORM}-postgres", namespace)
    env = {e.name: e.value for e in statefulset.spec.template.spec.containers[0].env}
    assert env["PRIMARY_ORDINAL"] == "1"
