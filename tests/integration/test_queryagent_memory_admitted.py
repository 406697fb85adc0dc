"""A QueryAgent that serves the platform memory's patterns, as the API server admits it: the
resource with `spec.memory` (the CRD's schema), and the Deployment rendered from it with the
memory's URL from the agent's Secret (dry run: nothing is stored)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.dynamic import DynamicClient

from duet_operator.models import GROUP, VERSION, QueryAgent
from duet_operator.render.config import RenderConfig
from duet_operator.render.queryagent import build_query_agent
from tests.support.admission import dry_run_apply

pytestmark = pytest.mark.integration

MEMORY = {"urlSecretRef": {"name": "duet-memory-reader", "key": "url"}}


def test_a_query_agent_with_memory_and_its_deployment_are_admitted(
    dynamic: DynamicClient, crds: list[str], namespace: str
) -> None:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QueryAgent",
        "metadata": {"name": "ask", "namespace": namespace},
        "spec": {"platformRef": {"name": "clicks"}, "memory": MEMORY},
    }
    admitted = dry_run_apply(dynamic, body)
    # Kept, not pruned: the CRD's schema knows the field.
    assert admitted.spec.memory.urlSecretRef.to_dict() == MEMORY["urlSecretRef"]

    agent = QueryAgent.model_validate(body | {"metadata": body["metadata"] | {"uid": "u-1"}})
    (deployment,) = [
        m for m in build_query_agent(agent, RenderConfig()) if m["kind"] == "Deployment"
    ]
    stored = dry_run_apply(dynamic, deployment).to_dict()
    (container,) = stored["spec"]["template"]["spec"]["containers"]
    (memory,) = [e for e in container["env"] if e["name"] == "DUET_QUERY_MEMORY_URL"]
    assert memory["valueFrom"]["secretKeyRef"] == {"name": "duet-memory-reader", "key": "url"}


def test_a_memory_without_its_secret_is_refused(
    dynamic: DynamicClient, crds: list[str], namespace: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QueryAgent",
        "metadata": {"name": "ask", "namespace": namespace},
        "spec": {"platformRef": {"name": "clicks"}, "memory": {}},
    }
    with pytest.raises(Exception, match="urlSecretRef"):
        dry_run_apply(dynamic, body)
