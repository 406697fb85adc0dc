"""The model planner gets the platform memory's lessons, end to end: an operator process whose
memory holds a lesson (a similar platform, OOM-killed and fixed by raising its memory) plans a
platform with a scripted OpenAI-compatible server on loopback through the real SDK. The model
receives the lesson in its planning data (its figures and the platforms it came from, by
similarity and sizes, never by name), and the design the operator adopts is raised to the
lesson with a rationale line that names it and its platform."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from duet_agents.healer import ActionType, Component, DecisionPhase, SymptomType
from duet_agents.memory import MemoryStore, RemediationRecord
from duet_agents.planner import capacity, prompts
from duet_agents.planner.models import PlanRequest
from duet_agents.planner.policy import as_proposal
from duet_agents.units import parse_quantity
from duet_operator.models import GROUP, VERSION, DataPlatform
from tests.support.crds import create_custom_object
from tests.support.llm_servers import BackgroundLLMServer, Scripted, openai_tool_call
from tests.support.operator import OperatorProcess, serving
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

API_KEY = "sk-duet-memory-0123456789"
PATTERN = "OOMKilled/clickhouse/raiseMemory"
REQUIREMENTS = {"dataVolume": "100Gi", "concurrentQueries": 4}
TEACHER = "shop/clicks"


def platform_body(name: str, base_url: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {
            "description": "Dashboards for the sales team",
            "requirements": REQUIREMENTS,
            "postgres": {"enabled": False},
            "planner": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "baseURL": base_url,
                "secretRef": {"name": "llm", "key": "api-key"},
            },
        },
    }


def request_of(name: str, namespace: str) -> PlanRequest:
    body = platform_body(name, "http://unused")
    body["metadata"] |= {"namespace": namespace}
    return DataPlatform.model_validate(body).spec.plan_request()


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A memory that learnt one lesson: `shop/clicks`, with the same requirements, was
    OOM-killed and fixed by raising its memory x1.5."""
    url = f"sqlite:///{tmp_path_factory.mktemp('memory') / 'memory.db'}"
    request = request_of("clicks", "shop")
    design = capacity.plan(request)
    before = design.clickhouse.resources.memory
    after = f"{int(parse_quantity(before)) * 3 // 2 // 2**30}Gi"
    now = datetime.now(UTC)
    with MemoryStore.open(url) as store:
        store.record_design(TEACHER, request, design, recorded_at=now)
        store.record_remediation(
            TEACHER,
            RemediationRecord(
                name="clicks-oom-1",
                symptom=SymptomType.OOM_KILLED,
                component=Component.CLICKHOUSE,
                action=ActionType.RAISE_MEMORY,
                before=before,
                after=after,
                phase=DecisionPhase.VERIFIED,
                decided_at=now,
            ),
        )
    return url


@pytest.fixture(scope="module")
def operator(
    kubeconfig: Path, crds: list[str], tmp_path_factory: pytest.TempPathFactory, memory_url: str
) -> Iterator[OperatorProcess]:
    """An operator of this module's own (`mmodel-*`) with that memory."""
    log = tmp_path_factory.mktemp("memory-model-operator") / "operator.log"
    env = {"DUET_MEMORY__URL": memory_url}
    with serving(
        OperatorProcess(kubeconfig, log, resync_seconds=60, namespaces="mmodel-*", env=env)
    ) as process:
        yield process


def planning_data(request_body: Any) -> dict[str, Any]:
    """The JSON document of the first user turn, between its data tags."""
    (first, *_) = [m["content"] for m in request_body["messages"] if m["role"] == "user"]
    tag = prompts.DATA_TAG
    found = re.search(rf"<{tag}>\n(.*)\n</{tag}>", first, re.DOTALL)
    assert found is not None, first
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_model_is_told_the_lesson_and_the_design_names_it(
    operator: OperatorProcess, custom: Any, core: Any, make_namespace: Callable[[str], str]
) -> None:
    namespace = make_namespace("mmodel")
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="llm"), string_data={"api-key": API_KEY}),
    )
    plain = capacity.plan(request_of("sales", namespace))
    # The model agrees with the built-in design: the operator raises it to the lesson.
    answer = as_proposal(plain).wire()
    answer["rationale"] = ["one shard holds 100Gi with room to grow"]
    reply = openai_tool_call(prompts.TOOL_NAME, answer, prompt_tokens=2000, completion_tokens=300)
    with BackgroundLLMServer([Scripted(reply)]) as server:
        create_custom_object(custom, namespace, platform_body("sales", server.openai_url))
        design: dict[str, Any] = wait_until(
            lambda: (
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "dataplatforms", "sales"
                )
                .get("status", {})
                .get("design")
            ),
            timeout=90,
            what="a design for the model-planned platform",
        )
        (received,) = server.received

    before = plain.clickhouse.resources.memory
    after = f"{int(parse_quantity(before)) * 3 // 2 // 2**30}Gi"
    (lesson,) = planning_data(received.body)["lessons"]
    assert lesson["pattern"] == PATTERN
    assert lesson["grow"] == "clickhouse.memory"
    assert Decimal(lesson["factor"]) == Decimal("1.5")
    # The platform it came from, as how alike it is and what it needed.
    assert lesson["similarPlatforms"] == [{"similarity": 1.0, "before": before, "after": after}]
    assert lesson["failedOnSimilarPlatforms"] == 0
    # Another user's platform is never named to a model provider.
    assert TEACHER not in json.dumps(received.body)

    assert design["planner"] == {"provider": "openai", "model": "gpt-4.1-mini"}
    assert design["clickhouse"]["resources"]["memory"] == after
    assert design["rationale"][0] == "one shard holds 100Gi with room to grow"
    (why,) = [line for line in design["rationale"] if PATTERN in line]
    assert f"{TEACHER} (similarity 1.00, {before} -> {after})" in why
