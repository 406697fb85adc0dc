"""The API server enforces the generated CRDs: defaults filled in, invalid objects refused
with a message that names the field and says what to fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException

from duet_operator.models import GROUP, VERSION, DataPlatform, QueryAgent
from tests.support.cluster import REPO
from tests.support.crds import create_custom_object

pytestmark = pytest.mark.integration


def create(custom: Any, namespace: str, spec: dict[str, Any], name: str = "p") -> Any:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": spec,
    }
    return create_custom_object(custom, namespace, body)


def test_minimal_platform_is_accepted_with_defaults_filled_in(custom: Any, namespace: str) -> None:
    created = create(custom, namespace, {"requirements": {"dataVolume": "500Gi"}})
    spec = created["spec"]
    assert spec["requirements"]["availability"] == "standard"
    assert spec["requirements"]["queryLatencyP95"] == "1s"
    assert spec["deletionPolicy"] == "Retain"
    assert spec["planner"] == {"provider": "builtin"}
    # The mode is left unset: the operator's default (the chart's autonomy.defaultMode) applies.
    assert "mode" not in spec["autonomy"]
    assert spec["autonomy"]["maxActionsPerHour"] == 6
    assert spec["postgres"] == {"enabled": True}
    # What the API server stored parses as the operator's model.
    platform = DataPlatform.model_validate(created)
    assert platform.spec.requirements.data_bytes == 500 * 2**30


def test_quantities_may_be_written_as_numbers(custom: Any, namespace: str) -> None:
    spec = {"requirements": {"dataVolume": "1Ti"}, "clickhouse": {"resources": {"cpu": 4}}}
    created = create(custom, namespace, spec)
    assert DataPlatform.model_validate(created).spec.clickhouse.resources.cpu == "4"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"requirements": {}}, "spec.requirements.dataVolume: Required value"),
        ({"requirements": {"dataVolume": "lots"}}, "spec.requirements.dataVolume: Invalid value"),
        (
            {"requirements": {"dataVolume": "1Ti", "availability": "gold"}},
            'spec.requirements.availability: Unsupported value: "gold"',
        ),
        (
            {"requirements": {"dataVolume": "1Ti", "queryLatencyP95": "fast"}},
            "spec.requirements.queryLatencyP95: Invalid value",
        ),
        (
            {
                "requirements": {"dataVolume": "1Ti", "availability": "high"},
                "clickhouse": {"replicas": 1},
            },
            'spec.clickhouse.replicas: Invalid value: "object": availability high needs at least'
            " 2 ClickHouse replicas",
        ),
        (
            {
                "requirements": {"dataVolume": "1Ti"},
                "clickhouse": {"replicas": 2, "keeper": {"replicas": 1}},
            },
            'spec.clickhouse.keeper.replicas: Invalid value: "object": replicated ClickHouse needs'
            " a Keeper quorum",
        ),
        (
            {"requirements": {"dataVolume": "1Ti"}, "budget": {"monthlyUSD": 0}},
            "spec.budget.monthlyUSD: Invalid value: 0",
        ),
        (
            {"requirements": {"dataVolume": "1Ti"}, "autonomy": {"actions": ["scaleOut"]}},
            'spec.autonomy.actions: Invalid value: "object": scaleOut always needs approval',
        ),
        (
            {"requirements": {"dataVolume": "1Ti"}, "planner": {"model": "gpt-5"}},
            'spec.planner: Invalid value: "object": model and secretRef apply to the anthropic',
        ),
        (
            {"requirements": {"dataVolume": "1Ti"}, "deletionPolicy": "Shred"},
            'spec.deletionPolicy: Unsupported value: "Shred"',
        ),
    ],
    ids=[
        "missing-volume",
        "bad-quantity",
        "bad-enum",
        "bad-duration",
        "ha-with-one-replica",
        "replicated-without-quorum",
        "zero-budget",
        "auto-scale-out",
        "model-for-builtin",
        "bad-deletion-policy",
    ],
)
def test_invalid_platforms_are_refused_naming_the_field(
    custom: Any, namespace: str, spec: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ApiException) as refused:
        create(custom, namespace, spec)
    assert refused.value.status == 422
    assert expected in json.loads(refused.value.body)["message"]


def test_remediation_approval_cannot_be_withdrawn(custom: Any, namespace: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Remediation",
        "metadata": {"name": "r1"},
        "spec": {
            "platformRef": {"name": "p"},
            "symptom": {"type": "CrashLoop", "object": "Pod/p-0"},
            "diagnosis": "the server exits at start",
            "action": {"type": "restartPod", "parameters": {"pod": "p-0"}},
            "mode": "recommend",
            "approved": True,
        },
    }
    create_custom_object(custom, namespace, body)
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "remediations", "r1", {"spec": {"approved": False}}
        )
    assert "an approval cannot be withdrawn" in json.loads(refused.value.body)["message"]


def create_agent(custom: Any, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QueryAgent",
        "metadata": {"name": "qa1"},
        "spec": spec,
    }
    created: dict[str, Any] = create_custom_object(custom, namespace, body)
    return created


def test_a_query_agent_gets_safe_defaults(custom: Any, namespace: str) -> None:
    created = create_agent(custom, namespace, {"platformRef": {"name": "clicks"}})
    agent = QueryAgent.model_validate(created)
    assert agent.spec.platform_ref is not None
    assert agent.spec.platform_ref.backend == "clickhouse"
    assert agent.spec.engine == "builtin"
    assert agent.spec.limits.max_rows == 1000
    assert agent.spec.tables.allow == ["*"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, "set exactly one of platformRef"),
        (
            {
                "platformRef": {"name": "clicks"},
                "connectionSecretRef": {"name": "db", "key": "url"},
            },
            "set exactly one of platformRef",
        ),
        (
            {"platformRef": {"name": "clicks"}, "model": "gpt-5"},
            "model and secretRef apply to the anthropic and openai engines only",
        ),
        (
            {"platformRef": {"name": "clicks"}, "limits": {"maxRows": 0}},
            "spec.limits.maxRows: Invalid value: 0",
        ),
        (
            {"platformRef": {"name": "clicks", "backend": "mysql"}},
            'spec.platformRef.backend: Unsupported value: "mysql"',
        ),
        (
            {"platformRef": {"name": "clicks"}, "tables": {"deny": [""]}},
            "spec.tables.deny[0]: Invalid value",
        ),
    ],
    ids=["no-source", "two-sources", "model-for-builtin", "zero-rows", "bad-backend", "empty-glob"],
)
def test_invalid_query_agents_are_refused_naming_the_field(
    custom: Any, namespace: str, spec: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ApiException) as refused:
        create_agent(custom, namespace, spec)
    assert refused.value.status == 422
    assert expected in json.loads(refused.value.body)["message"]


def test_every_example_is_admitted(custom: Any, namespace: str) -> None:
    for path in sorted((REPO / "manifests" / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            created = create_custom_object(custom, namespace, document)
            assert created["metadata"]["name"] == document["metadata"]["name"], path.name
