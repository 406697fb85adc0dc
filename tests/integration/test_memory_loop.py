"""The platform memory's whole loop through a real operator on the local control plane: a
platform is OOM-killed (injected as the kubelet reports it), the healer raises its memory and
verifies the repair, and the memory (SQLite in the test's own directory) learns from it: a new
platform with similar requirements is designed with more memory and its rationale names the
first; a dissimilar one gets the plain design."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duet_agents.planner import capacity
from duet_agents.units import parse_quantity
from duet_operator.models import GROUP, VERSION, DataPlatform
from tests.support.crds import create_custom_object
from tests.support.failures import Failure, inject_failure
from tests.support.operator import OperatorProcess, serving
from tests.support.wait import WaitTimeoutError, wait_until

pytestmark = pytest.mark.integration

READY = 120
HEALED = 180
PATTERN = "OOMKilled/clickhouse/raiseMemory"


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('memory') / 'memory.db'}"


@pytest.fixture(scope="module")
def operator(
    kubeconfig: Path, crds: list[str], tmp_path_factory: pytest.TempPathFactory, memory_url: str
) -> Iterator[OperatorProcess]:
    """An operator of this module's own (`mem-*`), healing every 2 s, its memory in a file of
    the test's: nothing learnt here reaches another test, nor anything of theirs this one."""
    log = tmp_path_factory.mktemp("memory-operator") / "operator.log"
    env = {"DUET_HEAL_INTERVAL_SECONDS": "2", "DUET_MEMORY__URL": memory_url}
    with serving(
        OperatorProcess(kubeconfig, log, resync_seconds=60, namespaces="mem-*", env=env)
    ) as process:
        yield process


def body(name: str, requirements: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {"requirements": requirements, "postgres": {"enabled": False}} | spec,
    }


def get(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", name
    )
    return found


def wait_phase(custom: Any, namespace: str, name: str, phase: str) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (found := get(custom, namespace, name)).get("status", {}).get("phase") == phase
            and found
        ),
        timeout=READY,
        what=f"platform {namespace}/{name} to be {phase}",
    )


def wait_design(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    design: dict[str, Any] = wait_until(
        lambda: get(custom, namespace, name).get("status", {}).get("design"),
        timeout=READY,
        what=f"a design for {namespace}/{name}",
    )
    return design


def plain_design(created: dict[str, Any]) -> Any:
    """The built-in design of the platform's spec, as with no memory at all."""
    return capacity.plan(DataPlatform.model_validate(created).spec.plan_request())


def wait_verified(custom: Any, namespace: str, pod: str) -> dict[str, Any]:
    seen: list[Any] = []

    def probe() -> dict[str, Any] | None:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations")
        seen[:] = [(r["metadata"]["name"], r.get("status")) for r in found["items"]]
        return next(
            (
                r
                for r in found["items"]
                if r["spec"]["symptom"]["object"] == f"pod/{pod}"
                and (r.get("status") or {}).get("phase") == "Verified"
            ),
            None,
        )

    try:
        return wait_until(probe, timeout=HEALED, what=f"a Verified Remediation of {pod}")
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; remediations: {seen}") from None


def test_a_verified_memory_raise_teaches_the_design_of_a_similar_platform(
    operator: OperatorProcess,
    custom: Any,
    core: Any,
    make_namespace: Callable[[str], str],
    memory_url: str,
) -> None:
    first, second = make_namespace("mem"), make_namespace("mem")
    requirements = {"dataVolume": "100Gi", "ingestRowsPerSecond": 5000}
    autonomy = {"mode": "auto", "actions": ["restartPod", "raiseMemory"]}

    # A: designed plainly (nothing is learnt yet), then OOM-killed and healed.
    created_a = create_custom_object(custom, first, body("a", requirements, autonomy=autonomy))
    ready = wait_phase(custom, first, "a", "Ready")
    plain_a = plain_design(created_a)
    assert (
        ready["status"]["design"]["clickhouse"]["resources"]
        == plain_a.clickhouse.wire()["resources"]
    )
    assert not any(PATTERN in line for line in ready["status"]["design"]["rationale"])
    inject_failure(core, (first, "a-clickhouse-0-0"), Failure.OOM_KILLED)
    verified = wait_verified(custom, first, "a-clickhouse-0-0")
    action = verified["spec"]["action"]
    assert action["type"] == "raiseMemory"
    # Both raiseMemory and scaleOut apply; with nothing settled before, the rules' order.
    assert "No past results for these actions: the rules' order." in verified["spec"]["diagnosis"]

    # B: similar requirements, another namespace: more memory, and the rationale says why.
    similar = {"dataVolume": "120Gi", "ingestRowsPerSecond": 6000}
    created_b = create_custom_object(custom, second, body("b", similar))
    design_b = wait_design(custom, second, "b")
    plain_b = plain_design(created_b)
    assert design_b["clickhouse"]["resources"]["memory"] != plain_b.clickhouse.resources.memory
    assert _gib(design_b["clickhouse"]["resources"]["memory"]) > _gib(
        plain_b.clickhouse.resources.memory
    )
    (why,) = [line for line in design_b["rationale"] if PATTERN in line]
    assert why.startswith("memory per replica: ")
    assert f"{first}/a (similarity" in why
    assert f"{action['parameters']['from']} -> {action['parameters']['to']}" in why

    # C: far from A (a thousand times the data): the plain design, no lesson.
    far = {"dataVolume": "100Ti", "ingestRowsPerSecond": 5_000_000}
    created_c = create_custom_object(custom, second, body("c", far))
    design_c = wait_design(custom, second, "c")
    plain_c = plain_design(created_c)
    assert design_c["clickhouse"]["resources"] == plain_c.clickhouse.wire()["resources"]
    assert not any("lesson" in line for line in design_c["rationale"])

    # How A fared, from the reconcile's side (its first Ready) and the healer's (the OOM kill).
    database = sqlite3.connect(memory_url.removeprefix("sqlite:///"))
    try:
        outcomes = database.execute(
            "SELECT o.time_to_ready_seconds, o.symptom, o.component, o.oom_kills FROM outcomes o"
            " JOIN designs d ON o.design_id = d.id WHERE d.platform = ?",
            (f"{first}/a",),
        ).fetchall()
    finally:
        database.close()
    assert any(seconds is not None and seconds > 0 for seconds, *_ in outcomes), outcomes
    assert ("OOMKilled", "clickhouse", 1) in [tuple(row[1:]) for row in outcomes], outcomes

    # What the operator learnt is what `duet memory` shows.
    listed = subprocess.run(
        [sys.executable, "-m", "duet_operator.cli", "memory", "list"],
        env=os.environ | {"DUET_MEMORY__URL": memory_url},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith(PATTERN)]
    assert row[1:3] == ["1", "1"]  # one platform, verified once


def _gib(quantity: str) -> int:
    return int(parse_quantity(quantity)) // 2**30
