"""The built-in rules: which action each symptom gets, when the rules escalate, and the words."""

from __future__ import annotations

from datetime import timedelta

from duet_agents.healer.actions import ActionType, Limits
from duet_agents.healer.diagnosis import (
    MAX_DIAGNOSIS_CHARS,
    Diagnosis,
    applicable_plans,
    diagnose,
    diagnose_symptom,
)
from duet_agents.healer.history import AutonomyMode, DecisionPhase, PastDecision
from duet_agents.healer.observations import (
    ClickHouseReplica,
    DriftObservation,
    Observation,
    PostgresLag,
)
from duet_agents.healer.symptoms import SymptomType, Thresholds, detect
from duet_operator.models.remediation import RemediationSpec
from tests.unit.test_healer_playbook import GiB, full, postgres, shard
from tests.unit.test_healer_readings import (
    NOW,
    crash_loop,
    kwok_claim,
    kwok_pod,
    kwok_statefulset,
    not_ready,
    observation,
)

QUICK = Thresholds(not_ready_after=timedelta(seconds=5))


def one(
    seen: Observation,
    type_: SymptomType,
    *,
    history: list[PastDecision] | None = None,
    limits: Limits | None = None,
    thresholds: Thresholds = QUICK,
) -> Diagnosis:
    symptom = next(s for s in detect(seen, NOW, thresholds) if s.type is type_)
    return diagnose_symptom(
        seen, symptom, now=NOW, thresholds=thresholds, limits=limits, history=history or []
    )


def restarted(pod: str, minutes_ago: int = 10) -> PastDecision:
    at = NOW - timedelta(minutes=minutes_ago)
    return PastDecision(
        symptom_key=f"CrashLoop/pod/{pod}",
        action=ActionType.RESTART_POD,
        target=f"pod/{pod}",
        phase=DecisionPhase.VERIFIED,
        mode=AutonomyMode.AUTO,
        decided_at=at,
        applied_at=at,
    )


def test_a_crash_loop_gets_a_restart_and_after_a_failed_restart_a_rebuild() -> None:
    first = one(shard("ok", "crash"), SymptomType.CRASH_LOOP)
    assert first.action is ActionType.RESTART_POD
    assert first.decided_by == "rules"
    assert first.text.startswith("container clickhouse keeps failing")
    assert "Proposed: restartPod" in first.text
    again = one(
        shard("ok", "crash"), SymptomType.CRASH_LOOP, history=[restarted("web-clickhouse-0-1")]
    )
    assert again.action is ActionType.REPLACE_REPLICA
    assert "did not cure it" in again.text
    long_ago = one(
        shard("ok", "crash"), SymptomType.CRASH_LOOP, history=[restarted("web-clickhouse-0-1", 120)]
    )
    assert long_ago.action is ActionType.RESTART_POD


def test_without_an_applicable_action_the_diagnosis_says_why_and_proposes_nothing() -> None:
    alone = one(shard("crash"), SymptomType.CRASH_LOOP, history=[restarted("web-clickhouse-0-0")])
    assert alone.action is None
    assert alone.parameters == {}
    assert (
        "No playbook action applies (replaceReplica: no other replica of web-clickhouse-0 is Ready"
        in alone.text
    )
    assert alone.text.endswith("a person should look at it.")


def test_oom_raises_memory_then_scales_out_at_the_maximum() -> None:
    assert one(shard("ok", "oom"), SymptomType.OOM_KILLED).action is ActionType.RAISE_MEMORY
    at_max = one(shard("ok", "oom", memory="512Gi"), SymptomType.OOM_KILLED)
    assert at_max.action is ActionType.SCALE_OUT
    assert "Ruled out: raiseMemory: container clickhouse already has 512Gi" in at_max.text
    pods = [kwok_pod("web-keeper", 0, component="keeper", memory="16Gi")]
    pods[0]["status"] = crash_loop(pods[0], restarts=2, at=NOW, reason="OOMKilled")
    keeper = observation(
        pods,
        statefulsets=[
            kwok_statefulset("web-keeper", component="keeper", replicas=1, memory="16Gi")
        ],
    )
    assert one(keeper, SymptomType.OOM_KILLED).action is None


def test_unschedulable_pods_need_room_or_a_new_volume() -> None:
    stuck = one(shard("ok", "pending"), SymptomType.UNSCHEDULABLE)
    assert stuck.action is ActionType.REPLACE_REPLICA
    assert "volume lives on a node" in stuck.text
    base = shard("ok", "pending")
    pods = [
        p.model_copy(
            update={"unschedulable_message": "0/3 nodes are available: 3 Insufficient cpu."}
        )
        for p in base.pods
    ]
    no_room = one(base.model_copy(update={"pods": pods}), SymptomType.UNSCHEDULABLE)
    assert no_room.action is None
    assert "add nodes" in no_room.text


def test_a_not_ready_replica_is_restarted_and_once_lost_rebuilt() -> None:
    assert (
        one(shard("ok", "notready"), SymptomType.REPLICA_NOT_READY).action is ActionType.RESTART_POD
    )
    lost = Thresholds(
        not_ready_after=timedelta(seconds=5), replica_lost_after=timedelta(seconds=30)
    )
    rebuilt = one(shard("ok", "notready"), SymptomType.REPLICA_NOT_READY, thresholds=lost)
    assert rebuilt.action is ActionType.REPLACE_REPLICA
    assert "counts as lost" in rebuilt.text


def test_a_lost_postgres_primary_is_failed_over_to_a_standby() -> None:
    lag = [PostgresLag(standby="web-postgres-1", bytes=1024)]
    diagnosis = one(postgres("notready", "ok", lag=lag), SymptomType.REPLICA_NOT_READY)
    assert diagnosis.action is ActionType.PROMOTE_POSTGRES_REPLICA
    assert diagnosis.parameters["to"] == "web-postgres-1"
    assert "The PostgreSQL primary has been out of service since" in diagnosis.text
    no_standby = one(postgres("notready"), SymptomType.REPLICA_NOT_READY)
    assert no_standby.action is ActionType.RESTART_POD


def test_full_disks_expand_where_the_class_allows_and_otherwise_scale_out() -> None:
    seen = full(shard("ok", "ok"), free=GiB)
    assert one(seen, SymptomType.VOLUME_NEARLY_FULL).action is ActionType.EXPAND_STORAGE
    fixed = seen.model_copy(
        update={"claims": [c.model_copy(update={"allows_expansion": False}) for c in seen.claims]}
    )
    assert one(fixed, SymptomType.VOLUME_NEARLY_FULL).action is ActionType.SCALE_OUT


def test_replication_lag_rules() -> None:
    def lagging(**row: object) -> Observation:
        rows = [ClickHouseReplica(pod="web-clickhouse-0-1", database="d", table="t", **row)]
        return shard("ok", "ok").model_copy(update={"clickhouse_replicas": rows})

    assert (
        one(lagging(is_readonly=True), SymptomType.REPLICATION_LAG).action is ActionType.RESTART_POD
    )
    still = one(
        lagging(is_readonly=True),
        SymptomType.REPLICATION_LAG,
        history=[restarted("web-clickhouse-0-1")],
    )
    assert still.action is ActionType.REPLACE_REPLICA
    catching_up = one(lagging(absolute_delay=3600), SymptomType.REPLICATION_LAG)
    assert catching_up.action is None
    assert "usually resolves itself" in catching_up.text
    standby = postgres("ok", "ok", lag=[PostgresLag(standby="web-postgres-1", seconds=900)])
    assert one(standby, SymptomType.REPLICATION_LAG).action is ActionType.REPLACE_REPLICA


def test_drift_is_reapplied() -> None:
    seen = observation(
        drift=[DriftObservation(kind="StatefulSet", name="web-clickhouse-0", differences=["x"])]
    )
    diagnosis = one(seen, SymptomType.DRIFT)
    assert diagnosis.action is ActionType.REAPPLY
    assert diagnosis.target == "statefulset/web-clickhouse-0"


def test_diagnose_keeps_the_order_and_fits_the_remediation_resource() -> None:
    seen = shard("ok", "crash", "oom")
    symptoms = detect(seen, NOW, QUICK)
    diagnoses = diagnose(seen, symptoms, now=NOW, thresholds=QUICK)
    assert [d.symptom for d in diagnoses] == symptoms
    for d in diagnoses:
        assert d.action is not None
        assert len(d.text) <= MAX_DIAGNOSIS_CHARS
        RemediationSpec.model_validate(
            {
                "platformRef": {"name": "web"},
                "symptom": d.symptom.record(),
                "diagnosis": d.text,
                "action": {"type": d.action.value, "parameters": d.parameters},
                "mode": "auto",
            }
        )


def test_applicable_plans_offer_every_action_whose_precondition_holds() -> None:
    seen = shard("ok", "notready")
    symptom = next(s for s in detect(seen, NOW, QUICK) if s.type is SymptomType.REPLICA_NOT_READY)
    assert [p.action for p in applicable_plans(seen, symptom)] == [
        ActionType.RESTART_POD,
        ActionType.REPLACE_REPLICA,
    ]
    claims = [kwok_claim("web-clickhouse-0-0")]
    pod = kwok_pod(index=0)
    pod["status"] = not_ready(pod, since=NOW - timedelta(minutes=1))
    bare = observation([pod], claims=claims)  # no StatefulSet observed
    symptom = next(iter(detect(bare, NOW, QUICK)))
    assert [p.action for p in applicable_plans(bare, symptom)] == [ActionType.RESTART_POD]
