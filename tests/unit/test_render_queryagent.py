"""A QueryAgent's Deployment: read-only credentials by reference, the server's own settings
contract, a locked-down pod."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from duet_agents.query.settings import QueryServerSettings
from duet_operator.models import QueryAgent
from duet_operator.query_agents import Problem, agent_events, next_agent_status
from duet_operator.render.config import RenderConfig
from duet_operator.render.queryagent import build_query_agent
from duet_operator.status import Reason

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def agent(**spec: Any) -> QueryAgent:
    return QueryAgent.model_validate(
        {
            "metadata": {"name": "ask", "namespace": "analytics", "uid": "u-1", "generation": 2},
            "spec": {"platformRef": {"name": "clicks"}} | spec,
        }
    )


def by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


def env_of(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployment = by_kind(manifests)["Deployment"]
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def settings_from(env: list[dict[str, Any]], secrets: dict[tuple[str, str], str]) -> Any:
    """What the server would read in the pod: values as given, Secret references resolved."""
    resolved = {}
    for item in env:
        if "value" in item:
            resolved[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            resolved[item["name"]] = secrets[(ref["name"], ref["key"])]
    return resolved


def test_the_rendered_env_is_what_the_server_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = build_query_agent(
        agent(limits={"maxRows": 50}, tables={"deny": ["*.secrets"]}), RenderConfig()
    )
    resolved = settings_from(
        env_of(manifests), {("clicks-clickhouse-credentials", "readonly-password"): "pw"}
    )
    for name, value in resolved.items():
        monkeypatch.setenv(name, value)
    settings = QueryServerSettings()
    assert settings.database_url == (
        "clickhouse://readonly@clicks-clickhouse.analytics.svc.cluster.local:8123/default"
    )
    assert settings.database_password is not None
    assert settings.database_password.get_secret_value() == "pw"
    assert settings.max_rows == 50
    assert settings.tables_deny == ["*.secrets"]
    assert settings.engine == "builtin"


def test_passwords_and_keys_are_referenced_never_copied() -> None:
    manifests = build_query_agent(
        agent(engine="anthropic", model="claude-x", secretRef={"name": "llm", "key": "api-key"}),
        RenderConfig(),
    )
    env = {item["name"]: item for item in env_of(manifests)}
    assert env["DUET_QUERY_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "clicks-clickhouse-credentials",
        "key": "readonly-password",
    }
    assert env["DUET_QUERY_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm",
        "key": "api-key",
    }
    assert all("value" not in e for n, e in env.items() if "PASSWORD" in n or "KEY" in n)


def test_postgres_backend_uses_the_read_only_service_and_role() -> None:
    manifests = build_query_agent(
        agent(platformRef={"name": "clicks", "backend": "postgres"}), RenderConfig()
    )
    env = {item["name"]: item for item in env_of(manifests)}
    assert env["DUET_QUERY_DATABASE_URL"]["value"] == (
        "postgresql://readonly@clicks-postgres-ro.analytics.svc.cluster.local:5432/postgres"
    )
    assert env["DUET_QUERY_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "clicks-postgres-credentials"
    )


def test_a_connection_secret_is_passed_as_it_stands() -> None:
    spec = {"platformRef": None, "connectionSecretRef": {"name": "warehouse", "key": "url"}}
    qa = QueryAgent.model_validate(
        {"metadata": {"name": "ask", "namespace": "analytics"}, "spec": spec}
    )
    env = {item["name"]: item for item in env_of(build_query_agent(qa, RenderConfig()))}
    assert env["DUET_QUERY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "warehouse",
        "key": "url",
    }
    assert "DUET_QUERY_DATABASE_PASSWORD" not in env


def test_memory_patterns_are_served_only_when_asked_from_the_agents_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "DUET_QUERY_MEMORY_URL" not in {
        e["name"] for e in env_of(build_query_agent(agent(), RenderConfig()))
    }
    asked = agent(memory={"urlSecretRef": {"name": "duet-memory-reader", "key": "url"}})
    env = env_of(build_query_agent(asked, RenderConfig()))
    (memory,) = [e for e in env if e["name"] == "DUET_QUERY_MEMORY_URL"]
    # The URL holds a password: a reference to the Secret, never its value.
    assert memory == {
        "name": "DUET_QUERY_MEMORY_URL",
        "valueFrom": {"secretKeyRef": {"name": "duet-memory-reader", "key": "url"}},
    }
    url = "postgresql://reader:pw@duet-memory.duet-system.svc:5432/duet"
    secrets = {
        ("clicks-clickhouse-credentials", "readonly-password"): "pw",
        ("duet-memory-reader", "url"): url,
    }
    for name, value in settings_from(env, secrets).items():
        monkeypatch.setenv(name, value)
    settings = QueryServerSettings()
    assert settings.memory_url is not None
    assert settings.memory_url.get_secret_value() == url


def test_the_pod_is_locked_down_and_owned_by_the_agent() -> None:
    manifests = by_kind(build_query_agent(agent(), RenderConfig(duet_image="duet:9")))
    deployment = manifests["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "duet:9"
    assert container["args"] == ["query", "serve"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("QueryAgent", "ask", "u-1")
    service = manifests["Service"]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert "PodDisruptionBudget" not in manifests
    assert "PodDisruptionBudget" in by_kind(build_query_agent(agent(replicas=3), RenderConfig()))


def deployment_state(ready: int, updated: int, generation: int = 1, observed: int = 1) -> Any:
    return {
        "metadata": {"generation": generation},
        "status": {
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "observedGeneration": observed,
        },
    }


def test_status_follows_the_deployment() -> None:
    qa = agent(replicas=2)
    status = next_agent_status(
        qa, None, deployment_state(1, 2), cluster_domain="cluster.local", now=T0
    )
    assert status.phase == "Pending"
    assert status.ready_replicas == 1
    assert status.endpoint == "http://ask-query.analytics.svc.cluster.local:8080"
    assert [(e.type, e.reason) for e in agent_events(qa.status, status)] == [
        ("Normal", "ReplicasNotReady")
    ]

    qa = qa.model_copy(update={"status": status})
    ready = next_agent_status(
        qa, None, deployment_state(2, 2), cluster_domain="cluster.local", now=T0
    )
    assert ready.phase == "Ready"
    assert [(e.type, e.reason) for e in agent_events(status, ready)] == [
        ("Normal", "AllReplicasReady")
    ]

    qa = qa.model_copy(update={"status": ready})
    rolling = next_agent_status(
        qa, None, deployment_state(2, 2, generation=2), cluster_domain="cluster.local", now=T0
    )
    assert rolling.phase == "Degraded", "a template the controller has not seen is not ready"


def test_a_missing_source_is_named_and_keeps_the_agent_pending() -> None:
    qa = agent()
    problem = Problem(Reason.PLATFORM_NOT_FOUND, "DataPlatform clicks not found in analytics")
    status = next_agent_status(qa, problem, None, cluster_domain="cluster.local", now=T0)
    assert status.phase == "Pending"
    assert status.endpoint is None
    (ready,) = status.conditions
    assert (ready.status, ready.reason) == ("False", "PlatformNotFound")
    assert "clicks" in ready.message
