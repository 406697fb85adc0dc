"""Every manifest the renderers produce is admitted by the real API server (server-side
dry-run apply under the field manager the operator uses)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.dynamic import DynamicClient

from duet_agents.planner import capacity
from duet_operator import credentials
from duet_operator.models import QueryAgent
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from duet_operator.render.queryagent import build_query_agent
from tests.support.admission import dry_run_apply
from tests.support.platforms import design, platform

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "shape",
    [
        {"shards": 2, "replicas": 2, "keeper": 3, "postgres_instances": 2},
        {"shards": 1, "replicas": 1, "keeper": 0, "postgres_instances": 1},
        {"shards": 3, "replicas": 1, "keeper": 1, "postgres_instances": 0},
    ],
    ids=["ha-2x2", "single-node", "3-shards"],
)
def test_rendered_manifests_are_admitted(
    dynamic: DynamicClient, namespace: str, shape: dict[str, int]
) -> None:
    owner = platform(namespace=namespace)
    manifests = build_platform(owner, design(**shape), RenderConfig(), credentials.fill())
    for manifest in manifests:
        admitted = dry_run_apply(dynamic, manifest)
        assert admitted.metadata.name == manifest["metadata"]["name"]
        assert admitted.metadata.managedFields[0].manager == "duet"


def test_a_planned_example_renders_admissible_manifests(
    dynamic: DynamicClient, namespace: str
) -> None:
    owner = platform(
        namespace=namespace, requirements={"dataVolume": "6Ti", "availability": "high"}
    )
    built = capacity.plan(owner.spec.plan_request())
    for manifest in build_platform(owner, built, RenderConfig(), credentials.fill()):
        dry_run_apply(dynamic, manifest)


@pytest.mark.parametrize(
    "spec",
    [
        {"platformRef": {"name": "clicks"}},
        {
            "platformRef": {"name": "clicks", "backend": "postgres"},
            "replicas": 3,
            "engine": "openai",
            "model": "gpt-x",
            "baseURL": "http://vllm:8000/v1",
            "secretRef": {"name": "llm", "key": "api-key"},
            "resources": {"cpu": "1", "memory": "1Gi"},
        },
        {"connectionSecretRef": {"name": "warehouse", "key": "url"}},
    ],
    ids=["clickhouse", "postgres-ha-model", "connection-secret"],
)
def test_query_agent_manifests_are_admitted(
    dynamic: DynamicClient, namespace: str, spec: dict[str, Any]
) -> None:
    agent = QueryAgent.model_validate(
        {"metadata": {"name": "ask", "namespace": namespace, "uid": "u-1"}, "spec": spec}
    )
    for manifest in build_query_agent(agent, RenderConfig()):
        admitted = dry_run_apply(dynamic, manifest)
        assert admitted.metadata.name == manifest["metadata"]["name"]
