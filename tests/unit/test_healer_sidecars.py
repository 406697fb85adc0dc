"""A PostgreSQL pod runs sidecars beside its server (the exporter, and with spec.backup the
wal-archiver): the healer names the container that fails, and a failing sidecar is remedied
as itself, never by touching the database's memory, data or role."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from duet_agents.healer.actions import ActionType
from duet_agents.healer.diagnosis import applicable_plans, diagnose_symptom
from duet_agents.healer.history import AutonomyMode, DecisionPhase, PastDecision
from duet_agents.healer.observations import SERVER_CONTAINERS, Component, Observation
from duet_agents.healer.policy import decide
from duet_agents.healer.symptoms import Symptom, SymptomType, Thresholds, detect
from duet_operator.healing import autonomy_of, remediation_body
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from duet_operator.render.wal_archive import ARCHIVER
from tests.support.platforms import SECRETS, design, platform, s3_target
from tests.unit.test_healer_readings import (
    NOW,
    healthy,
    kwok_claim,
    kwok_pod,
    kwok_statefulset,
    observation,
    ts,
)

PRIMARY = "web-postgres-0"
QUICK = Thresholds(not_ready_after=timedelta(seconds=5))


def postgres_pod(index: int, **failing: str) -> dict[str, Any]:
    """A PostgreSQL pod with its server, the exporter and the wal-archiver; each container
    named in `failing` is in that state: `crash`, `oom` or `notready`."""
    pod = kwok_pod("web-postgres", index, component="postgres")
    pod["spec"]["containers"].append({"name": ARCHIVER, "image": "example/aws-cli:2"})
    status = healthy(pod)
    at = NOW - timedelta(minutes=3)
    for container in status["containerStatuses"]:
        state = failing.get(container["name"].replace("-", "_"))
        if state is None:
            continue
        container["ready"] = False
        if state == "notready":
            continue
        reason = "OOMKilled" if state == "oom" else "Error"
        container["restartCount"] = 4
        container["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
        container["lastState"] = {
            "terminated": {
                "exitCode": 137 if state == "oom" else 1,
                "reason": reason,
                "finishedAt": ts(at),
            }
        }
    if failing:
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        ready |= {"status": "False", "lastTransitionTime": ts(at)}
    pod["status"] = status
    return pod


def platform_with(*pods: dict[str, Any]) -> Observation:
    return observation(
        list(pods),
        statefulsets=[kwok_statefulset("web-postgres", component="postgres", replicas=len(pods))],
        claims=[kwok_claim(f"web-postgres-{i}") for i in range(len(pods))],
        postgres_primary=PRIMARY,
    )


def symptom_of(seen: Observation, type_: SymptomType) -> Symptom:
    (symptom,) = [s for s in detect(seen, NOW, QUICK) if s.type is type_]
    return symptom


def restarted(pod: str) -> PastDecision:
    at = NOW - timedelta(minutes=10)
    return PastDecision(
        symptom_key=f"CrashLoop/pod/{pod}",
        action=ActionType.RESTART_POD,
        target=f"pod/{pod}",
        phase=DecisionPhase.VERIFIED,
        mode=AutonomyMode.AUTO,
        decided_at=at,
        applied_at=at,
    )


def test_a_crash_looping_sidecar_is_the_culprit_not_the_server() -> None:
    seen = platform_with(postgres_pod(0, wal_archiver="crash"), postgres_pod(1))
    symptom = symptom_of(seen, SymptomType.CRASH_LOOP)
    assert (symptom.pod, symptom.container) == (PRIMARY, ARCHIVER)
    assert symptom.reason.startswith(f"sidecar container {ARCHIVER} keeps failing")


def test_the_server_is_named_first_when_it_fails_with_its_sidecars() -> None:
    # kwok's injection fails every container of the pod: the server is the one to name.
    seen = platform_with(postgres_pod(0, wal_archiver="crash", postgres="crash", exporter="crash"))
    symptom = symptom_of(seen, SymptomType.CRASH_LOOP)
    assert symptom.container == "postgres"
    assert symptom.reason.startswith("container postgres keeps failing")


def test_a_sidecar_crash_loop_gets_a_restart_that_names_it_in_the_remediation() -> None:
    seen = platform_with(postgres_pod(0, wal_archiver="crash"), postgres_pod(1))
    symptom = symptom_of(seen, SymptomType.CRASH_LOOP)
    diagnosis = diagnose_symptom(seen, symptom, now=NOW, thresholds=QUICK)
    assert diagnosis.action is ActionType.RESTART_POD
    assert diagnosis.parameters["container"] == ARCHIVER
    assert f"sidecar {ARCHIVER} fails, not the database server" in diagnosis.text
    owner = platform("web", "analytics", autonomy={"mode": "auto"})
    autonomy = autonomy_of(owner)
    (decision,) = decide([diagnosis], autonomy=autonomy, history=[], now=NOW)
    body = remediation_body(owner, decision, "web-abc-1", autonomy.mode)
    assert body["spec"]["action"]["parameters"]["container"] == ARCHIVER
    assert ARCHIVER in body["spec"]["symptom"]["reason"]


def test_a_sidecar_that_a_restart_did_not_cure_is_left_to_a_person() -> None:
    # Not a failover of the primary, not a rebuilt standby: the database is not failing.
    for index in (0, 1):
        pods = [
            postgres_pod(i, wal_archiver="crash") if i == index else postgres_pod(i) for i in (0, 1)
        ]
        seen = platform_with(*pods)
        symptom = symptom_of(seen, SymptomType.CRASH_LOOP)
        pod = f"web-postgres-{index}"
        diagnosis = diagnose_symptom(
            seen, symptom, now=NOW, thresholds=QUICK, history=[restarted(pod)]
        )
        assert diagnosis.action is None, diagnosis.text
        assert "wal-archiver" in diagnosis.text
        assert "a person should look at it" in diagnosis.text


def test_an_oom_killed_sidecar_does_not_raise_the_databases_memory() -> None:
    seen = platform_with(postgres_pod(0), postgres_pod(1, wal_archiver="oom"))
    symptom = symptom_of(seen, SymptomType.OOM_KILLED)
    assert symptom.container == ARCHIVER
    diagnosis = diagnose_symptom(seen, symptom, now=NOW, thresholds=QUICK)
    assert diagnosis.action is None
    assert "Duet sets a sidecar's memory" in diagnosis.text


def test_a_model_is_not_offered_actions_on_the_database_for_a_sidecar() -> None:
    crash = platform_with(postgres_pod(0, wal_archiver="crash"), postgres_pod(1))
    offered = {p.action for p in applicable_plans(crash, symptom_of(crash, SymptomType.CRASH_LOOP))}
    assert offered == {ActionType.RESTART_POD}
    oom = platform_with(postgres_pod(0, wal_archiver="oom"), postgres_pod(1))
    assert applicable_plans(oom, symptom_of(oom, SymptomType.OOM_KILLED)) == []
    # The same failure of the server itself still has its remedies.
    server = platform_with(postgres_pod(0, postgres="crash"), postgres_pod(1))
    offered = {
        p.action for p in applicable_plans(server, symptom_of(server, SymptomType.CRASH_LOOP))
    }
    assert {ActionType.RESTART_POD, ActionType.PROMOTE_POSTGRES_REPLICA} <= offered


def test_a_not_ready_pod_names_its_unready_container() -> None:
    seen = platform_with(postgres_pod(0), postgres_pod(1, wal_archiver="notready"))
    symptom = symptom_of(seen, SymptomType.REPLICA_NOT_READY)
    assert symptom.container == ARCHIVER
    assert f"(sidecar container {ARCHIVER})" in symptom.reason
    diagnosis = diagnose_symptom(seen, symptom, now=NOW, thresholds=QUICK)
    assert diagnosis.action is ActionType.RESTART_POD
    assert diagnosis.parameters["container"] == ARCHIVER


@pytest.mark.parametrize("component", list(Component))
def test_the_server_containers_are_the_rendered_ones(component: Component) -> None:
    backup = {"schedule": "0 2 * * *", "target": {"s3": s3_target()}}
    rendered = build_platform(platform(backup=backup), design(), RenderConfig(), SECRETS)
    app = {"clickhouse": "clickhouse", "keeper": "clickhouse-keeper", "postgres": "postgres"}
    (first,) = {
        tuple(c["name"] for c in m["spec"]["template"]["spec"]["containers"])
        for m in rendered
        if m["kind"] == "StatefulSet"
        and m["metadata"]["labels"]["app.kubernetes.io/name"] == app[component]
    }
    # The server is one of the pod's containers; every other one is a sidecar.
    assert SERVER_CONTAINERS[component] in first
    if component is Component.POSTGRES:
        assert set(first) - {SERVER_CONTAINERS[component]} == {"exporter", ARCHIVER}
