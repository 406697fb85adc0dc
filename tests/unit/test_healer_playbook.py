"""The playbook: each action's precondition, parameters and bounds, and verification."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duet_agents.healer.actions import ActionType, Limits, NotApplicableError, VerificationState
from duet_agents.healer.observations import (
    ClickHouseReplica,
    DriftObservation,
    Observation,
    PostgresLag,
    VolumeUsage,
)
from duet_agents.healer.playbook import PLAYBOOK, expanded_storage, raised_memory
from duet_agents.healer.symptoms import Symptom, SymptomType, Thresholds, detect
from duet_agents.units import parse_quantity
from duet_operator.models.dataplatform import RemediationAction
from duet_operator.models.remediation import ActionSpec
from tests.unit.test_healer_readings import (
    NOW,
    crash_loop,
    kwok_claim,
    kwok_pod,
    kwok_statefulset,
    not_ready,
    observation,
    unschedulable,
)

GiB = 2**30
MiB = 2**20
APPLIED = NOW + timedelta(minutes=1)
QUICK = Thresholds(not_ready_after=timedelta(seconds=5))


def symptom_of(seen: Observation, type_: SymptomType, thresholds: Thresholds = QUICK) -> Symptom:
    return next(s for s in detect(seen, NOW, thresholds) if s.type is type_)


def shard(*states: str, memory: str = "8Gi", uids: str = "", **sts: Any) -> Observation:
    """Shard 0 of `web`, one pod per state: ok, crash, oom, notready, pending, deleting."""
    pods = []
    for index, state in enumerate(states):
        pod = kwok_pod(
            index=index, memory=memory, uid=f"{uids}uid-{index}", deleting=state == "deleting"
        )
        if state in ("crash", "oom"):
            reason = "OOMKilled" if state == "oom" else "Error"
            pod["status"] = crash_loop(
                pod, restarts=3, at=NOW - timedelta(seconds=5), reason=reason
            )
        elif state == "notready":
            pod["status"] = not_ready(pod, since=NOW - timedelta(minutes=1))
        elif state == "pending":
            message = "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
            pod["status"] = unschedulable(message, since=NOW - timedelta(minutes=5))
        pods.append(pod)
    sts.setdefault("replicas", len(states))
    sts.setdefault("ready", sum(s == "ok" for s in states))
    claims = [
        kwok_claim(f"web-clickhouse-0-{i}", uid=f"{uids}claim-{i}") for i in range(len(states))
    ]
    return observation(pods, statefulsets=[kwok_statefulset(memory=memory, **sts)], claims=claims)


def postgres(
    *states: str, lag: list[PostgresLag] | None = None, primary_index: int = 0
) -> Observation:
    pods = []
    for index, state in enumerate(states):
        pod = kwok_pod("web-postgres", index, component="postgres")
        if state == "notready":
            pod["status"] = not_ready(pod, since=NOW - timedelta(minutes=20))
        pods.append(pod)
    return observation(
        pods,
        statefulsets=[kwok_statefulset("web-postgres", component="postgres", replicas=len(states))],
        claims=[kwok_claim(f"web-postgres-{i}") for i in range(len(states))],
        postgres_lag=lag or [],
        postgres_primary=f"web-postgres-{primary_index}",
    )


def test_the_playbook_has_every_action_of_the_dataplatform_resource() -> None:
    assert {a.value for a in PLAYBOOK} == {a.value for a in RemediationAction}
    assert {a.value for a in ActionType} == {a.value for a in RemediationAction}
    assert [a.type for a in PLAYBOOK.values() if a.deletes_data] == [ActionType.REPLACE_REPLICA]
    assert {a.type for a in PLAYBOOK.values() if a.needs_approval} == {
        ActionType.REPLACE_REPLICA,
        ActionType.SCALE_OUT,
    }
    for action in PLAYBOOK.values():
        assert action.cooldown > timedelta(0)
        assert action.verify_within > timedelta(0)


# -- restartPod ------------------------------------------------------------------------------------


def test_restart_pod_names_the_pod_and_its_uid_and_fits_the_remediation_resource() -> None:
    seen = shard("ok", "crash")
    plan = PLAYBOOK[ActionType.RESTART_POD].plan(seen, symptom_of(seen, SymptomType.CRASH_LOOP))
    assert plan.parameters == {
        "target": "pod/web-clickhouse-0-1",
        "pod": "web-clickhouse-0-1",
        "uid": "uid-1",
        "container": "clickhouse",
    }
    ActionSpec.model_validate({"type": plan.action.value, "parameters": plan.parameters})


def test_restart_pod_preconditions() -> None:
    restart = PLAYBOOK[ActionType.RESTART_POD]
    seen = shard("ok", "crash")
    symptom = symptom_of(seen, SymptomType.CRASH_LOOP)
    orphan = seen.model_copy(
        update={"pods": [p.model_copy(update={"statefulset": None}) for p in seen.pods]}
    )
    assert (
        restart.precondition(orphan, symptom)
        == "pod web-clickhouse-0-1 has no StatefulSet to recreate it"
    )
    gone = seen.model_copy(update={"pods": seen.pods[:1]})
    assert restart.precondition(gone, symptom) == "pod web-clickhouse-0-1 was not observed"
    oom = shard("ok", "oom")
    assert restart.precondition(oom, symptom_of(oom, SymptomType.OOM_KILLED)) == (
        "restartPod does not address OOMKilled"
    )


def test_restart_pod_verification() -> None:
    restart = PLAYBOOK[ActionType.RESTART_POD]
    params = restart.parameters(
        shard("ok", "crash"), symptom_of(shard("ok", "crash"), SymptomType.CRASH_LOOP)
    )

    def verdict(later: Observation, minutes: int = 2) -> VerificationState:
        return restart.verify(
            later, params, applied_at=APPLIED, now=APPLIED + timedelta(minutes=minutes)
        ).state

    assert verdict(shard("ok", "crash")) is VerificationState.WAITING  # same uid: not yet restarted
    assert verdict(shard("ok", "deleting")) is VerificationState.WAITING
    assert verdict(shard("ok")) is VerificationState.WAITING  # gone, being recreated
    assert verdict(shard("ok", "notready", uids="new-")) is VerificationState.WAITING
    assert verdict(shard("ok", "ok", uids="new-")) is VerificationState.VERIFIED
    assert verdict(shard("ok", "crash", uids="new-")) is VerificationState.FAILED
    assert verdict(shard("ok", "notready", uids="new-"), minutes=16) is VerificationState.FAILED


# -- raiseMemory -----------------------------------------------------------------------------------


def test_raise_memory_adds_half_within_the_maximum() -> None:
    raise_memory = PLAYBOOK[ActionType.RAISE_MEMORY]
    seen = shard("ok", "oom")
    plan = raise_memory.plan(seen, symptom_of(seen, SymptomType.OOM_KILLED))
    assert plan.parameters == {
        "target": "statefulset/web-clickhouse-0",
        "statefulset": "web-clickhouse-0",
        "container": "clickhouse",
        "pod": "web-clickhouse-0-1",
        "from": "8Gi",
        "to": "12Gi",
    }
    near = shard("ok", "oom", memory="500Gi")
    assert raise_memory.parameters(near, symptom_of(near, SymptomType.OOM_KILLED))["to"] == "512Gi"
    at_max = shard("ok", "oom", memory="512Gi")
    assert raise_memory.precondition(at_max, symptom_of(at_max, SymptomType.OOM_KILLED)) == (
        "container clickhouse already has 512Gi of memory, the policy maximum for clickhouse"
        " is 512Gi"
    )
    tight = Limits(clickhouse={"maxMemory": "10Gi", "maxStorage": "1Ti"})
    assert (
        raise_memory.parameters(seen, symptom_of(seen, SymptomType.OOM_KILLED), tight)["to"]
        == "10Gi"
    )


def test_raise_memory_waits_for_a_rollout_in_progress() -> None:
    seen = shard("ok", "oom", update_revision="rev-b")
    reason = PLAYBOOK[ActionType.RAISE_MEMORY].precondition(
        seen, symptom_of(seen, SymptomType.OOM_KILLED)
    )
    assert reason == "StatefulSet web-clickhouse-0 is still rolling out a change"


def test_raise_memory_verification() -> None:
    action = PLAYBOOK[ActionType.RAISE_MEMORY]
    params = action.parameters(
        shard("ok", "oom"), symptom_of(shard("ok", "oom"), SymptomType.OOM_KILLED)
    )

    def verify(later: Observation, minutes: int = 5) -> tuple[VerificationState, str]:
        result = action.verify(
            later, params, applied_at=APPLIED, now=APPLIED + timedelta(minutes=minutes)
        )
        return result.state, result.message

    assert verify(shard("ok", "oom"))[0] is VerificationState.WAITING  # not patched yet
    rolling = shard("ok", "notready", memory="12Gi", uids="new-", update_revision="rev-b")
    assert verify(rolling) == (
        VerificationState.WAITING,
        "StatefulSet web-clickhouse-0 is rolling out (1/2 ready)",
    )
    assert verify(shard("ok", "ok", memory="12Gi", uids="new-")) == (
        VerificationState.VERIFIED,
        "every pod of web-clickhouse-0 runs clickhouse with 12Gi and is Ready",
    )
    again = shard("ok", "oom", memory="12Gi", uids="new-")
    again_later = again.model_copy(
        update={
            "pods": [
                p.model_copy(
                    update={
                        "containers": [
                            c.model_copy(
                                update={"last_terminated_at": APPLIED + timedelta(minutes=2)}
                            )
                            for c in p.containers
                        ]
                    }
                )
                for p in again.pods
            ]
        }
    )
    assert verify(again_later)[0] is VerificationState.FAILED
    assert verify(rolling, minutes=31)[0] is VerificationState.FAILED
    assert verify(observation())[0] is VerificationState.FAILED  # the StatefulSet is gone


@settings(max_examples=300, deadline=None)
@given(
    current=st.integers(min_value=1, max_value=2**42),
    step=st.decimals(min_value=Decimal("1.01"), max_value=4, places=2),
    maximum=st.integers(min_value=1, max_value=2**42),
)
def test_raised_memory_never_lowers_never_passes_the_maximum(
    current: int, step: Decimal, maximum: int
) -> None:
    wanted = raised_memory(Decimal(current), step, Decimal(maximum))
    assert wanted >= current
    assert wanted <= max(current, maximum)
    if current < maximum:
        assert wanted > current
        assert wanted == maximum or wanted % MiB == 0


@settings(max_examples=100, deadline=None)
@given(
    memory=st.integers(min_value=1, max_value=1024).map(lambda n: f"{n}Gi"),
    maximum=st.integers(min_value=1, max_value=1024).map(lambda n: f"{n}Gi"),
)
def test_raise_memory_parameters_stay_within_bounds(memory: str, maximum: str) -> None:
    seen = shard("ok", "oom", memory=memory)
    limits = Limits(clickhouse={"maxMemory": maximum, "maxStorage": "1Ti"})
    try:
        params = PLAYBOOK[ActionType.RAISE_MEMORY].parameters(
            seen, symptom_of(seen, SymptomType.OOM_KILLED), limits
        )
    except NotApplicableError:
        assert parse_quantity(memory) >= parse_quantity(maximum)
        return
    assert parse_quantity(memory) < parse_quantity(params["to"]) <= parse_quantity(maximum)
    assert parse_quantity(params["to"]) <= parse_quantity(memory) * Decimal("1.5") + MiB


# -- expandStorage ---------------------------------------------------------------------------------


def full(seen: Observation, free: int, total: int = 100 * GiB) -> Observation:
    return seen.model_copy(
        update={
            "volumes": [VolumeUsage(pod="web-clickhouse-0-1", free_bytes=free, total_bytes=total)]
        }
    )


def test_expand_storage_grows_by_half_or_to_the_free_space_target() -> None:
    expand = PLAYBOOK[ActionType.EXPAND_STORAGE]
    seen = full(shard("ok", "ok"), free=10 * GiB)
    plan = expand.plan(seen, symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL))
    assert plan.parameters == {
        "target": "persistentvolumeclaim/data-web-clickhouse-0-1",
        "claim": "data-web-clickhouse-0-1",
        "pod": "web-clickhouse-0-1",
        "from": "100Gi",
        "to": "150Gi",
    }
    # 99 GiB used: 150Gi would leave 34% free; 30% free needs 99/0.7 = 141.4 -> 150 still wins
    # at step 1.5, but a smaller step is overruled by the target.
    small_step = Limits(storage_step=Decimal("1.1"))
    nearly = full(shard("ok", "ok"), free=1 * GiB)
    assert (
        expand.parameters(nearly, symptom_of(nearly, SymptomType.VOLUME_NEARLY_FULL), small_step)[
            "to"
        ]
        == "142Gi"
    )
    capped = Limits(clickhouse={"maxMemory": "64Gi", "maxStorage": "120Gi"})
    assert (
        expand.parameters(seen, symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL), capped)["to"]
        == "120Gi"
    )


def test_expand_storage_only_where_the_storage_class_allows_it() -> None:
    expand = PLAYBOOK[ActionType.EXPAND_STORAGE]
    for expandable, reason in (
        (False, "StorageClass kwok-volume does not allow volume expansion"),
        (None, "StorageClass kwok-volume is not known to allow volume expansion"),
    ):
        base = shard("ok", "ok")
        claims = [c.model_copy(update={"allows_expansion": expandable}) for c in base.claims]
        seen = full(base.model_copy(update={"claims": claims}), free=GiB)
        assert expand.precondition(seen, symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL)) == reason


def test_expand_storage_not_while_resizing_nor_past_the_maximum() -> None:
    expand = PLAYBOOK[ActionType.EXPAND_STORAGE]
    base = shard("ok", "ok")
    resizing = [c.model_copy(update={"requested": "150Gi"}) for c in base.claims]
    seen = full(base.model_copy(update={"claims": resizing}), free=GiB)
    assert expand.precondition(seen, symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL)) == (
        "claim data-web-clickhouse-0-1 is already being resized"
    )
    huge = [c.model_copy(update={"requested": "16Ti", "capacity": "16Ti"}) for c in base.claims]
    seen = full(base.model_copy(update={"claims": huge}), free=GiB)
    assert "the policy maximum for clickhouse is 16Ti" in (
        expand.precondition(seen, symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL)) or ""
    )


def test_expand_storage_verification() -> None:
    expand = PLAYBOOK[ActionType.EXPAND_STORAGE]
    seen = full(shard("ok", "ok"), free=GiB)
    params = expand.parameters(seen, symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL))

    def state(requested: str, capacity: str, minutes: int = 5) -> VerificationState:
        claims = [
            c.model_copy(update={"requested": requested, "capacity": capacity}) for c in seen.claims
        ]
        later = seen.model_copy(update={"claims": claims})
        return expand.verify(
            later, params, applied_at=APPLIED, now=APPLIED + timedelta(minutes=minutes)
        ).state

    assert state("100Gi", "100Gi") is VerificationState.WAITING
    assert state("150Gi", "100Gi") is VerificationState.WAITING
    assert state("150Gi", "150Gi") is VerificationState.VERIFIED
    assert state("150Gi", "100Gi", minutes=61) is VerificationState.FAILED
    gone = seen.model_copy(update={"claims": []})
    assert (
        expand.verify(gone, params, applied_at=APPLIED, now=APPLIED).state
        is VerificationState.FAILED
    )


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=2**44),
    used=st.decimals(min_value=0, max_value=1, places=3),
    maximum=st.integers(min_value=1, max_value=2**44),
)
def test_expanded_storage_never_shrinks_never_passes_the_maximum(
    capacity: int, used: Decimal, maximum: int
) -> None:
    wanted = expanded_storage(
        Decimal(capacity),
        used,
        step=Decimal("1.5"),
        free_target=Decimal("0.3"),
        maximum=Decimal(maximum),
    )
    assert wanted >= capacity
    assert wanted <= max(capacity, maximum)
    if wanted < maximum:
        assert wanted % GiB == 0
        assert Decimal(capacity) * used / wanted <= Decimal("0.7")


# -- replaceReplica --------------------------------------------------------------------------------


def test_replace_replica_rebuilds_from_ready_peers_only() -> None:
    replace = PLAYBOOK[ActionType.REPLACE_REPLICA]
    seen = shard("ok", "notready")
    plan = replace.plan(seen, symptom_of(seen, SymptomType.REPLICA_NOT_READY))
    assert plan.parameters == {
        "target": "pod/web-clickhouse-0-1",
        "pod": "web-clickhouse-0-1",
        "uid": "uid-1",
        "statefulset": "web-clickhouse-0",
        "claim": "data-web-clickhouse-0-1",
        "claimUid": "claim-1",
    }
    assert replace.deletes_data
    assert replace.needs_approval
    alone = shard("crash", "notready")
    assert replace.precondition(alone, symptom_of(alone, SymptomType.REPLICA_NOT_READY)) == (
        "no other replica of web-clickhouse-0 is Ready to copy the data from"
    )
    pending = shard("ok", "pending")
    assert replace.precondition(pending, symptom_of(pending, SymptomType.UNSCHEDULABLE)) is None


def test_replace_replica_keeps_the_keeper_quorum_and_never_replaces_the_primary() -> None:
    replace = PLAYBOOK[ActionType.REPLACE_REPLICA]
    pods = []
    for index, state in enumerate(("ok", "notready", "notready")):
        pod = kwok_pod("web-keeper", index, component="keeper")
        if state == "notready":
            pod["status"] = not_ready(pod, since=NOW - timedelta(minutes=5))
        pods.append(pod)
    keeper = observation(
        pods,
        statefulsets=[kwok_statefulset("web-keeper", component="keeper", replicas=3)],
        claims=[kwok_claim(f"web-keeper-{i}") for i in range(3)],
    )
    symptom = next(s for s in detect(keeper, NOW) if s.pod == "web-keeper-1")
    assert replace.precondition(keeper, symptom) == (
        "only 1 other Keeper replicas are Ready: replacing web-keeper-1 could lose the quorum of 2"
    )
    lost_primary = postgres("notready", "ok")
    assert replace.precondition(
        lost_primary, symptom_of(lost_primary, SymptomType.REPLICA_NOT_READY)
    ) == ("the PostgreSQL primary is never replaced; promote a standby")
    lagging = postgres("ok", "ok", lag=[PostgresLag(standby="web-postgres-1", bytes=5 * GiB)])
    assert replace.precondition(lagging, symptom_of(lagging, SymptomType.REPLICATION_LAG)) is None


def test_a_replica_that_is_merely_catching_up_is_not_replaced() -> None:
    seen = shard("ok", "ok").model_copy(
        update={
            "clickhouse_replicas": [
                ClickHouseReplica(
                    pod="web-clickhouse-0-1", database="d", table="t", absolute_delay=900
                )
            ]
        }
    )
    assert PLAYBOOK[ActionType.REPLACE_REPLICA].precondition(
        seen, symptom_of(seen, SymptomType.REPLICATION_LAG)
    ) == ("a replica that is catching up is not broken")


def test_replace_replica_verification() -> None:
    replace = PLAYBOOK[ActionType.REPLACE_REPLICA]
    params = replace.parameters(
        shard("ok", "notready"), symptom_of(shard("ok", "notready"), SymptomType.REPLICA_NOT_READY)
    )

    def state(later: Observation, minutes: int = 10) -> VerificationState:
        return replace.verify(
            later, params, applied_at=APPLIED, now=APPLIED + timedelta(minutes=minutes)
        ).state

    assert state(shard("ok", "notready")) is VerificationState.WAITING
    assert state(shard("ok", "notready", uids="new-")) is VerificationState.WAITING
    rebuilt = shard("ok", "ok", uids="new-")
    readonly = rebuilt.model_copy(
        update={
            "clickhouse_replicas": [
                ClickHouseReplica(
                    pod="web-clickhouse-0-1", database="d", table="t", is_readonly=True
                )
            ]
        }
    )
    assert state(readonly) is VerificationState.WAITING
    assert state(rebuilt) is VerificationState.VERIFIED
    assert state(shard("ok", "crash", uids="new-")) is VerificationState.FAILED
    assert state(readonly, minutes=121) is VerificationState.FAILED


# -- reapply, scaleOut, promotePostgresReplica -----------------------------------------------------


def test_reapply_targets_the_drifted_object_and_verifies_when_it_matches() -> None:
    reapply = PLAYBOOK[ActionType.REAPPLY]
    drift = [
        DriftObservation(kind="StatefulSet", name="web-clickhouse-0", differences=["replicas"])
    ]
    seen = observation(drift=drift)
    params = reapply.parameters(seen, symptom_of(seen, SymptomType.DRIFT))
    assert params == {
        "target": "statefulset/web-clickhouse-0",
        "kind": "statefulset",
        "name": "web-clickhouse-0",
    }
    assert (
        reapply.verify(seen, params, applied_at=APPLIED, now=APPLIED).state
        is VerificationState.WAITING
    )
    assert (
        reapply.verify(observation(), params, applied_at=APPLIED, now=APPLIED).state
        is VerificationState.VERIFIED
    )


def test_scale_out_adds_one_shard_within_the_maximum_for_clickhouse_only() -> None:
    scale = PLAYBOOK[ActionType.SCALE_OUT]
    assert scale.always_needs_approval
    seen = full(shard("ok", "ok"), free=GiB)
    symptom = symptom_of(seen, SymptomType.VOLUME_NEARLY_FULL)
    assert scale.parameters(seen, symptom) == {"target": "dataplatform/web", "from": "1", "to": "2"}
    assert (
        scale.precondition(seen, symptom, Limits(max_shards=1))
        == "the platform has the maximum of 1 shards"
    )
    two = seen.model_copy(
        update={
            "statefulsets": [
                *seen.statefulsets,
                seen.statefulsets[0].model_copy(update={"name": "web-clickhouse-1"}),
            ]
        }
    )
    assert (
        scale.verify(
            two,
            {"target": "dataplatform/web", "from": "1", "to": "2"},
            applied_at=APPLIED,
            now=APPLIED,
        ).state
        is VerificationState.VERIFIED
    )
    assert (
        scale.verify(
            seen,
            {"target": "dataplatform/web", "from": "1", "to": "2"},
            applied_at=APPLIED,
            now=APPLIED,
        ).state
        is VerificationState.WAITING
    )
    pg = postgres("ok", "ok", lag=[PostgresLag(standby="web-postgres-1", bytes=5 * GiB)])
    assert (
        scale.precondition(pg, symptom_of(pg, SymptomType.REPLICATION_LAG))
        == "scaleOut does not address ReplicationLag"
    )


def test_promote_the_least_lagging_ready_standby_when_the_primary_is_lost() -> None:
    promote = PLAYBOOK[ActionType.PROMOTE_POSTGRES_REPLICA]
    lag = [
        PostgresLag(standby="web-postgres-1", bytes=5 * MiB),
        PostgresLag(standby="web-postgres-2", bytes=MiB),
    ]
    seen = postgres("notready", "ok", "ok", lag=lag)
    symptom = symptom_of(seen, SymptomType.REPLICA_NOT_READY)
    assert promote.parameters(seen, symptom) == {
        "target": "pod/web-postgres-0",
        "from": "web-postgres-0",
        "to": "web-postgres-2",
    }
    far = [PostgresLag(standby="web-postgres-1", bytes=GiB)]
    assert promote.precondition(postgres("notready", "ok", lag=far), symptom) == (
        "no Ready PostgreSQL standby within 64Mi of the primary to promote"
    )
    standby_down = postgres("ok", "notready")
    assert promote.precondition(
        standby_down, symptom_of(standby_down, SymptomType.REPLICA_NOT_READY)
    ) == ("the symptom is not about the PostgreSQL primary")


def test_promote_verification() -> None:
    promote = PLAYBOOK[ActionType.PROMOTE_POSTGRES_REPLICA]
    params = {"target": "pod/web-postgres-0", "from": "web-postgres-0", "to": "web-postgres-1"}

    def state(later: Observation) -> VerificationState:
        return promote.verify(
            later, params, applied_at=APPLIED, now=APPLIED + timedelta(minutes=1)
        ).state

    assert state(postgres("notready", "ok")) is VerificationState.WAITING
    assert state(postgres("notready", "ok", primary_index=1)) is VerificationState.VERIFIED
    assert state(postgres("notready")) is VerificationState.FAILED


@pytest.mark.parametrize("action", list(PLAYBOOK.values()), ids=lambda a: a.type)
def test_every_parameter_set_fits_the_remediation_resource(action: Any) -> None:
    cases = [
        shard("ok", "crash"),
        shard("ok", "oom"),
        shard("ok", "notready"),
        shard("ok", "pending"),
        full(shard("ok", "ok"), free=GiB),
        observation(drift=[DriftObservation(kind="Service", name="web-clickhouse")]),
        postgres("notready", "ok"),
    ]
    planned = 0
    for seen in cases:
        for symptom in detect(seen, NOW + timedelta(minutes=5), QUICK):
            try:
                plan = action.plan(seen, symptom)
            except NotApplicableError:
                continue
            planned += 1
            assert plan.target == plan.parameters["target"]
            ActionSpec.model_validate({"type": plan.action.value, "parameters": plan.parameters})
    assert planned
