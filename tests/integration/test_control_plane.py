"""The local control plane is a real Kubernetes: controllers, scheduler, validation, kubelets.

Everything Duet's integration tests rely on is proven here first, against the real API
server: pods of a StatefulSet scheduled onto kwok nodes and turning Running and Ready with
bound volumes, the controllers replacing what is deleted, CRD schemas and CEL rules enforced,
and failures injected the way the healer will see them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.crds import create_custom_object
from tests.support.failures import Failure, clear_failure, inject_failure
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

READY_TIMEOUT = 60


def statefulset(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "clickhouse/clickhouse-server:25.8",
                            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/clickhouse"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def ready_pods(core: Any, namespace: str, name: str, count: int) -> list[Any] | None:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}")
    ready = [p for p in pods.items if p.status.phase == "Running" and pod_ready(p)]
    return ready if len(ready) == count else None


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@pytest.fixture
def running_set(core: Any, apps: Any, namespace: str) -> list[Any]:
    """A three-replica StatefulSet with volume claims, all Running and Ready."""
    apps.create_namespaced_stateful_set(namespace, statefulset("db", 3))
    return wait_until(
        lambda: ready_pods(core, namespace, "db", 3),
        timeout=READY_TIMEOUT,
        what="three Running, Ready pods",
    )


def test_nodes_are_three_ready_kwok_nodes(core: Any) -> None:
    nodes = core.list_node(label_selector="type=kwok").items
    assert len(nodes) >= 3
    for node in nodes:
        assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True"


def test_statefulset_pods_run_on_kwok_nodes_with_bound_volumes(
    core: Any, apps: Any, namespace: str, running_set: list[Any]
) -> None:
    kwok_nodes = {n.metadata.name for n in core.list_node(label_selector="type=kwok").items}
    assert {p.spec.node_name for p in running_set} <= kwok_nodes
    claims = core.list_namespaced_persistent_volume_claim(namespace).items
    assert sorted(c.metadata.name for c in claims) == ["data-db-0", "data-db-1", "data-db-2"]
    assert {c.status.phase for c in claims} == {"Bound"}
    assert {c.spec.storage_class_name for c in claims} == {"kwok-volume"}
    status = wait_until(
        lambda: (
            (s := apps.read_namespaced_stateful_set_status("db", namespace).status)
            and s.ready_replicas == 3
            and s
        ),
        timeout=READY_TIMEOUT,
        what="the StatefulSet controller to count three ready replicas",
    )
    assert status.available_replicas == 3


def test_deleted_pod_is_recreated_by_the_controller(
    core: Any, namespace: str, running_set: list[Any]
) -> None:
    victim = next(p for p in running_set if p.metadata.name == "db-1")
    core.delete_namespaced_pod("db-1", namespace)

    def replaced() -> Any:
        try:
            pod = core.read_namespaced_pod("db-1", namespace)
        except ApiException as e:
            if e.status == 404:  # between the old pod going and the new one coming
                return None
            raise
        fresh = pod.metadata.uid != victim.metadata.uid
        return pod if fresh and pod.status.phase == "Running" and pod_ready(pod) else None

    pod = wait_until(replaced, timeout=READY_TIMEOUT, what="db-1 to be recreated and Ready")
    # The new pod reattaches the old pod's claim: data survives the pod.
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes["data"].persistent_volume_claim.claim_name == "data-db-1"


WIDGETS = "widgets.testenv.duet.aidatalabs.ai"


@pytest.fixture(scope="module")
def widget_crd(api_client: Any) -> Any:
    """A CRD with a structural schema and a CEL rule, established, removed afterwards."""
    ext = client.ApiextensionsV1Api(api_client)
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["minReplicas", "maxReplicas"],
                "properties": {
                    "minReplicas": {"type": "integer", "minimum": 1},
                    "maxReplicas": {"type": "integer"},
                    "tier": {"type": "string", "enum": ["standard", "high"]},
                },
                "x-kubernetes-validations": [
                    {
                        "rule": "self.minReplicas <= self.maxReplicas",
                        "message": "minReplicas must not exceed maxReplicas",
                        "fieldPath": ".minReplicas",
                    }
                ],
            }
        },
    }
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": WIDGETS},
            "spec": {
                "group": "testenv.duet.aidatalabs.ai",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": schema},
                    }
                ],
            },
        }
    )

    def established() -> bool:
        crd = ext.read_custom_resource_definition(WIDGETS)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_until(established, timeout=30, what="the Widget CRD to be established")
    yield client.CustomObjectsApi(api_client)
    ext.delete_custom_resource_definition(WIDGETS)


def create_widget(custom: Any, namespace: str, name: str, spec: dict[str, Any]) -> Any:
    body = {
        "apiVersion": "testenv.duet.aidatalabs.ai/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }
    return create_custom_object(custom, namespace, body)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"minReplicas": 3, "maxReplicas": 2},
            'spec.minReplicas: Invalid value: "object": minReplicas must not exceed maxReplicas',
        ),
        ({"minReplicas": 0, "maxReplicas": 2}, "spec.minReplicas: Invalid value: 0"),
        (
            {"minReplicas": 1, "maxReplicas": 2, "tier": "gold"},
            'spec.tier: Unsupported value: "gold"',
        ),
        ({"minReplicas": 1}, "spec.maxReplicas: Required value"),
    ],
    ids=["cel-rule", "minimum", "enum", "required"],
)
def test_crd_validation_rejects_invalid_objects_with_the_servers_message(
    widget_crd: Any, namespace: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        create_widget(widget_crd, namespace, "bad", spec)
    assert rejected.value.status == 422
    assert message in json.loads(rejected.value.body)["message"]


def test_crd_accepts_a_valid_object(widget_crd: Any, namespace: str) -> None:
    created = create_widget(widget_crd, namespace, "good", {"minReplicas": 1, "maxReplicas": 3})
    assert created["spec"] == {"minReplicas": 1, "maxReplicas": 3}


def container_status(core: Any, namespace: str, name: str) -> Any:
    return core.read_namespaced_pod(name, namespace).status.container_statuses[0]


@pytest.mark.parametrize(
    ("failure", "reason", "exit_code"),
    [(Failure.CRASH_LOOP, "Error", 1), (Failure.OOM_KILLED, "OOMKilled", 137)],
    ids=["CrashLoop", "OOMKilled"],
)
def test_injected_crash_shows_as_crash_loop_back_off_with_restarts_rising(
    core: Any,
    namespace: str,
    running_set: list[Any],
    failure: Failure,
    reason: str,
    exit_code: int,
) -> None:
    inject_failure(core, (namespace, "db-0"), failure)

    first = wait_until(
        lambda: (s := container_status(core, namespace, "db-0")).restart_count >= 1 and s,
        timeout=15,
        what=f"db-0 to show {failure}",
    )
    assert first.ready is False
    assert first.state.waiting.reason == "CrashLoopBackOff"
    assert first.last_state.terminated.reason == reason
    assert first.last_state.terminated.exit_code == exit_code
    pod = core.read_namespaced_pod("db-0", namespace)
    assert pod.status.phase == "Running"
    assert not pod_ready(pod)

    wait_until(
        lambda: container_status(core, namespace, "db-0").restart_count > first.restart_count,
        timeout=20,
        what="the restart count to rise",
    )
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=db-0,reason=BackOff"
    )
    assert events.items, "a BackOff event, as the kubelet would post"

    clear_failure(core, (namespace, "db-0"))
    healed = wait_until(
        lambda: (p := core.read_namespaced_pod("db-0", namespace)) and pod_ready(p) and p,
        timeout=15,
        what="db-0 to be Ready again once the label is gone",
    )
    status = healed.status.container_statuses[0]
    assert status.restart_count >= 2, "the kubelet keeps the restart count"
    assert status.last_state.terminated.reason == reason


def test_injected_not_ready_keeps_the_container_running(
    core: Any, namespace: str, running_set: list[Any]
) -> None:
    inject_failure(core, (namespace, "db-2"), Failure.NOT_READY)
    pod = wait_until(
        lambda: (p := core.read_namespaced_pod("db-2", namespace)) and not pod_ready(p) and p,
        timeout=15,
        what="db-2 to turn NotReady",
    )
    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Running"
    assert status.ready is False
    assert status.state.running is not None
    assert status.restart_count == 0
    # The other replicas are untouched.
    others = [
        p
        for p in core.list_namespaced_pod(namespace).items
        if p.metadata.name != "db-2" and pod_ready(p)
    ]
    assert len(others) == 2

    clear_failure(core, (namespace, "db-2"))
    wait_until(
        lambda: pod_ready(core.read_namespaced_pod("db-2", namespace)),
        timeout=15,
        what="db-2 to be Ready again",
    )
