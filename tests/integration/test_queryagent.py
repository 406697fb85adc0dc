"""The QueryAgent reconcile loop against the real API server: a Deployment and Service with
the platform's read-only credentials, a missing source named in status until it appears,
children repaired, and everything gone with the agent."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

READY = 90


def agent_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QueryAgent",
        "metadata": {"name": name},
        "spec": spec,
    }


def platform_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {"requirements": {"dataVolume": "50Gi"}},
    }


def agent_status(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "queryagents", name)
    status: dict[str, Any] = found.get("status", {})
    return status


def wait_agent(custom: Any, namespace: str, name: str, phase: str, reason: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = agent_status(custom, namespace, name)
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
        )
        return status if (status.get("phase"), ready.get("reason")) == (phase, reason) else None

    return wait_until(probe, timeout=READY, what=f"agent {name} {phase} ({reason})")


def reasons(core: Any, namespace: str, name: str) -> list[str]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=QueryAgent,involvedObject.name={name}"
    )
    return [e.reason for e in found.items]


def test_an_agent_waits_for_its_platform_then_serves_read_only(
    duet_operator: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    apps = client.AppsV1Api(core.api_client)
    create_custom_object(custom, namespace, agent_body("ask", platformRef={"name": "clicks"}))
    pending = wait_agent(custom, namespace, "ask", "Pending", "PlatformNotFound")
    assert "DataPlatform clicks not found" in pending["conditions"][0]["message"]
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("ask-query", namespace)

    create_custom_object(custom, namespace, platform_body("clicks"))
    status = wait_agent(custom, namespace, "ask", "Ready", "AllReplicasReady")
    assert status["endpoint"] == f"http://ask-query.{namespace}.svc.cluster.local:8080"
    assert status["readyReplicas"] == 1
    deployment = apps.read_namespaced_deployment("ask-query", namespace)
    env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
    assert env["DUET_QUERY_DATABASE_URL"].value.startswith("clickhouse://readonly@clicks-")
    password = env["DUET_QUERY_DATABASE_PASSWORD"].value_from.secret_key_ref
    assert (password.name, password.key) == ("clicks-clickhouse-credentials", "readonly-password")
    assert "PlatformNotFound" in reasons(core, namespace, "ask")
    assert "AllReplicasReady" in reasons(core, namespace, "ask")

    # A deleted Service comes back without waiting for a resync.
    core.delete_namespaced_service("ask-query", namespace)
    wait_until(
        lambda: core.read_namespaced_service("ask-query", namespace),
        timeout=30,
        what="the Service to be restored",
        ignore=(ApiException,),
    )

    # Scaling out is reported as it happens.
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "queryagents", "ask", {"spec": {"replicas": 2}}
    )
    wait_until(
        lambda: agent_status(custom, namespace, "ask").get("readyReplicas") == 2,
        timeout=READY,
        what="two ready replicas",
    )

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "queryagents", "ask")

    def collected() -> bool:
        try:
            apps.read_namespaced_deployment("ask-query", namespace)
        except ApiException as e:
            return bool(e.status == 404)
        return False

    wait_until(collected, timeout=30, what="the agent's Deployment to go with it")


def test_a_missing_connection_secret_is_named_until_it_exists(
    duet_operator: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    spec = {"connectionSecretRef": {"name": "warehouse", "key": "url"}}
    create_custom_object(custom, namespace, agent_body("wh", **spec))
    pending = wait_agent(custom, namespace, "wh", "Pending", "SecretNotFound")
    assert pending["conditions"][0]["message"] == "Secret warehouse with key url not found"

    url = "postgresql://reader:s3cret@db.example:5432/sales"
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="warehouse"), string_data={"url": url}),
    )
    status = wait_agent(custom, namespace, "wh", "Ready", "AllReplicasReady")
    assert "s3cret" not in str(status)
    assert all("s3cret" not in str(e.message) for e in core.list_namespaced_event(namespace).items)


def test_a_missing_memory_secret_is_named_too(
    duet_operator: OperatorProcess, custom: Any, core: Any, namespace: str
) -> None:
    url = "postgresql://reader:s3cret@db.example:5432/sales"
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="warehouse"), string_data={"url": url}),
    )
    spec = {
        "connectionSecretRef": {"name": "warehouse", "key": "url"},
        "memory": {"urlSecretRef": {"name": "duet-memory-reader", "key": "url"}},
    }
    create_custom_object(custom, namespace, agent_body("mem", **spec))
    pending = wait_agent(custom, namespace, "mem", "Pending", "SecretNotFound")
    assert pending["conditions"][0]["message"] == "Secret duet-memory-reader with key url not found"
