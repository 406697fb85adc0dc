"""The platform memory's whole loop through a real operator on the local control plane: a
platform is OOM-killed (injected as the kubelet reports it), the healer raises its memory and
verifies the repair, and the memory learns from it: a new platform with similar requirements is
designed with more memory and its rationale names the first; a dissimilar one gets the plain
design. The loop runs twice, on each store: SQLite in the test's own directory, and a database
of its own on the real PostgreSQL server (tests/support/postgres.py), where the records are
then read back with psycopg."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duet_agents.planner import capacity
from duet_agents.units import parse_quantity
from duet_operator.models import GROUP, VERSION, DataPlatform
from tests.integration.postgres_fixtures import postgres_server
from tests.support.crds import create_custom_object
from tests.support.failures import Failure, inject_failure
from tests.support.operator import OperatorProcess, serving
from tests.support.postgres import PostgresServer
from tests.support.wait import WaitTimeoutError, wait_until

pytestmark = pytest.mark.integration

READY = 120
HEALED = 180
PATTERN = "OOMKilled/clickhouse/raiseMemory"
# The session's server fixture, imported so pytest finds it in this module.
__all__ = ["postgres_server"]


@dataclass(frozen=True)
class Memory:
    """The store the operator under test keeps its memory in, and its namespaces' prefix:
    each store's operator has namespaces of its own, so one never records the other's
    platforms (those of the first run are still going while the second starts)."""

    url: str
    prefix: str

    def rows(self, query: str, *parameters: str) -> list[tuple[Any, ...]]:
        """The rows of `query` (parameters as `%s`), read straight from the database."""
        if self.url.startswith("sqlite:///"):
            database = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                return database.execute(query.replace("%s", "?"), parameters).fetchall()
            finally:
                database.close()
        with psycopg.connect(self.url) as conn:
            return conn.execute(query, parameters).fetchall()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def memory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Memory]:
    if request.param == "sqlite":
        yield Memory(f"sqlite:///{tmp_path_factory.mktemp('memory') / 'memory.db'}", "memsq")
        return
    # Only here: the SQLite run needs no PostgreSQL server.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"memory_loop_{uuid.uuid4().hex[:10]}"
    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield Memory(server.url(db=name), "mempg")
    with server.admin() as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def operator(
    kubeconfig: Path, crds: list[str], tmp_path_factory: pytest.TempPathFactory, memory: Memory
) -> Iterator[OperatorProcess]:
    """An operator of this module's own (`<prefix>-*`), healing every 2 s, its memory in a
    store of the test's: nothing learnt here reaches another test, nor anything of theirs
    this one."""
    log = tmp_path_factory.mktemp("memory-operator") / "operator.log"
    env = {"DUET_HEAL_INTERVAL_SECONDS": "2", "DUET_MEMORY__URL": memory.url}
    namespaces = f"{memory.prefix}-*"
    with serving(
        OperatorProcess(kubeconfig, log, resync_seconds=60, namespaces=namespaces, env=env)
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
    memory: Memory,
) -> None:
    first, second = make_namespace(memory.prefix), make_namespace(memory.prefix)
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

    # What the store holds, read from the database itself: every platform's design, how A
    # fared from the reconcile's side (its first Ready) and the healer's (the OOM kill), and
    # the remediation with its sizes and result.
    platforms = memory.rows("SELECT DISTINCT platform FROM designs")
    assert {f"{first}/a", f"{second}/b", f"{second}/c"} <= {row[0] for row in platforms}
    outcomes = memory.rows(
        "SELECT o.time_to_ready_seconds, o.symptom, o.component, o.oom_kills FROM outcomes o"
        " JOIN designs d ON o.design_id = d.id WHERE d.platform = %s",
        f"{first}/a",
    )
    assert any(seconds is not None and seconds > 0 for seconds, *_ in outcomes), outcomes
    assert ("OOMKilled", "clickhouse", 1) in [tuple(row[1:]) for row in outcomes], outcomes
    remediations = memory.rows(
        "SELECT r.name, r.action, r.before, r.after, r.phase FROM remediations r"
        " JOIN designs d ON r.design_id = d.id WHERE d.platform = %s",
        f"{first}/a",
    )
    assert (
        verified["metadata"]["name"],
        "raiseMemory",
        action["parameters"]["from"],
        action["parameters"]["to"],
        "Verified",
    ) in remediations, remediations

    # What the operator learnt is what `duet memory` shows.
    listed = subprocess.run(
        [sys.executable, "-m", "duet_operator.cli", "memory", "list"],
        env=os.environ | {"DUET_MEMORY__URL": memory.url},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith(PATTERN)]
    assert row[1:3] == ["1", "1"]  # one platform, verified once


def _gib(quantity: str) -> int:
    return int(parse_quantity(quantity)) // 2**30
