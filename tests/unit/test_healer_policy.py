"""The autonomy policy: every mode, one action at a time, cooldowns, the rate limit under a
storm, data-deleting actions never automatic, and observe never acting."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duet_agents.healer.actions import ActionType
from duet_agents.healer.diagnosis import Diagnosis, diagnose
from duet_agents.healer.history import AutonomyMode, DecisionPhase, PastDecision
from duet_agents.healer.playbook import PLAYBOOK
from duet_agents.healer.policy import Autonomy, Decision, Outcome, approved_gate, decide
from duet_agents.healer.symptoms import Cause, Symptom, SymptomType, detect
from duet_operator.models.dataplatform import AutonomyMode as OperatorMode
from duet_operator.models.dataplatform import AutonomySpec
from duet_operator.models.remediation import RemediationPhase
from duet_operator.settings import OperatorSettings
from tests.unit.test_healer_readings import NOW, crash_loop, kwok_pod, kwok_statefulset, observation

A = ActionType
AUTO = Autonomy(mode=AutonomyMode.AUTO)
RECOMMEND = Autonomy(mode=AutonomyMode.RECOMMEND)
OBSERVE = Autonomy(mode=AutonomyMode.OBSERVE)


def proposal(
    action: ActionType | None,
    pod: str = "web-clickhouse-0-1",
    type_: SymptomType = SymptomType.CRASH_LOOP,
    first_seen: datetime = NOW,
) -> Diagnosis:
    symptom = Symptom(
        key=f"{type_}/pod/{pod}",
        type=type_,
        cause=Cause.CRASHING,
        object=f"pod/{pod}",
        reason="r",
        first_seen=first_seen,
        pod=pod,
    )
    params = {"target": f"pod/{pod}"} if action else {}
    return Diagnosis(symptom=symptom, text="t", action=action, parameters=params)


def past(
    action: ActionType = A.RESTART_POD,
    pod: str = "web-clickhouse-0-9",
    phase: DecisionPhase = DecisionPhase.VERIFIED,
    *,
    minutes_ago: float = 5,
    applied: bool = True,
    mode: AutonomyMode = AutonomyMode.AUTO,
    type_: SymptomType = SymptomType.CRASH_LOOP,
) -> PastDecision:
    at = NOW - timedelta(minutes=minutes_ago)
    return PastDecision(
        symptom_key=f"{type_}/pod/{pod}",
        action=action,
        target=f"pod/{pod}",
        phase=phase,
        mode=mode,
        decided_at=at,
        applied_at=at if applied else None,
    )


def outcomes(decisions: list[Decision]) -> list[Outcome]:
    return [d.outcome for d in decisions]


def test_the_vocabulary_matches_the_dataplatform_and_remediation_resources() -> None:
    assert {m.value for m in AutonomyMode} == {m.value for m in OperatorMode}
    assert {p.value for p in DecisionPhase} == {p.value for p in RemediationPhase}
    spec = AutonomySpec()
    assert spec.mode is None  # the operator's default: OperatorSettings().autonomy_default_mode
    mirrored = Autonomy(
        mode=OperatorSettings().autonomy_default_mode.value,
        max_actions_per_hour=spec.max_actions_per_hour,
        actions=[a.value for a in spec.actions],
    )
    assert mirrored == Autonomy()


def test_observe_records_everything_and_applies_nothing() -> None:
    diagnoses = [proposal(a, pod=f"p{i}") for i, a in enumerate(A)] + [proposal(None, pod="q")]
    decisions = decide(diagnoses, autonomy=OBSERVE, history=[], now=NOW)
    assert outcomes(decisions) == [Outcome.RECORD] * len(diagnoses)
    assert decisions[0].reason == "observe mode: recorded, nothing is applied"


def test_recommend_waits_for_approval_for_every_action() -> None:
    diagnoses = [proposal(a, pod=f"p{i}") for i, a in enumerate(A)]
    assert outcomes(decide(diagnoses, autonomy=RECOMMEND, history=[], now=NOW)) == [
        Outcome.PENDING
    ] * len(A)


def test_auto_applies_one_listed_action_and_leaves_the_others_pending() -> None:
    diagnoses = [
        proposal(A.RESTART_POD, pod="a"),
        proposal(A.PROMOTE_POSTGRES_REPLICA, pod="b"),
        proposal(A.REPLACE_REPLICA, pod="c"),
        proposal(A.SCALE_OUT, pod="d"),
        proposal(A.REAPPLY, pod="e", type_=SymptomType.DRIFT),
    ]
    decisions = decide(diagnoses, autonomy=AUTO, history=[], now=NOW)
    assert outcomes(decisions) == [
        Outcome.APPLY,
        Outcome.PENDING,
        Outcome.PENDING,
        Outcome.PENDING,
        Outcome.SUPPRESSED,
    ]
    assert (
        decisions[1].reason
        == "promotePostgresReplica is not in spec.autonomy.actions: waits for approval"
    )
    assert decisions[2].reason == "replaceReplica deletes data: it always needs approval"
    assert decisions[3].reason == "scaleOut always needs approval"
    assert decisions[4].reason == "one action at a time: restartPod on pod/a goes first"


def test_listing_an_action_lets_it_run_but_never_one_that_deletes_data_or_scales_out() -> None:
    everything = Autonomy(mode=AutonomyMode.AUTO, actions=frozenset(A))
    for action, expected in (
        (A.PROMOTE_POSTGRES_REPLICA, Outcome.APPLY),
        (A.REPLACE_REPLICA, Outcome.PENDING),
        (A.SCALE_OUT, Outcome.PENDING),
    ):
        [decision] = decide([proposal(action)], autonomy=everything, history=[], now=NOW)
        assert decision.outcome is expected, action


def test_the_most_urgent_symptom_gets_the_one_slot() -> None:
    diagnoses = [
        proposal(
            A.REAPPLY, pod="drift", type_=SymptomType.DRIFT, first_seen=NOW - timedelta(hours=1)
        ),
        proposal(A.RESTART_POD, pod="late", first_seen=NOW),
        proposal(A.RESTART_POD, pod="early", first_seen=NOW - timedelta(minutes=1)),
        proposal(A.RAISE_MEMORY, pod="oom", type_=SymptomType.OOM_KILLED, first_seen=NOW),
    ]
    decisions = decide(diagnoses, autonomy=AUTO, history=[], now=NOW)
    assert outcomes(decisions) == [
        Outcome.SUPPRESSED,
        Outcome.SUPPRESSED,
        Outcome.SUPPRESSED,
        Outcome.APPLY,
    ]
    decisions = decide(diagnoses[:3], autonomy=AUTO, history=[], now=NOW)
    assert outcomes(decisions) == [Outcome.SUPPRESSED, Outcome.SUPPRESSED, Outcome.APPLY]


@pytest.mark.parametrize("phase", [DecisionPhase.APPROVED, DecisionPhase.APPLIED])
def test_nothing_starts_while_an_action_is_in_flight(phase: DecisionPhase) -> None:
    running = past(A.RAISE_MEMORY, pod="x", phase=phase, applied=phase is DecisionPhase.APPLIED)
    decisions = decide(
        [proposal(A.RESTART_POD), proposal(A.REPLACE_REPLICA, pod="y")],
        autonomy=AUTO,
        history=[running],
        now=NOW,
    )
    assert outcomes(decisions) == [Outcome.SUPPRESSED, Outcome.PENDING]
    assert decisions[0].reason == "one action at a time: raiseMemory on pod/x is in flight"


def test_an_open_decision_for_the_same_symptom_is_not_made_twice() -> None:
    pending = past(
        pod="web-clickhouse-0-1",
        phase=DecisionPhase.PENDING,
        applied=False,
        mode=AutonomyMode.RECOMMEND,
    )
    [again] = decide([proposal(A.RESTART_POD)], autonomy=RECOMMEND, history=[pending], now=NOW)
    assert again.outcome is Outcome.SUPPRESSED
    assert again.reason == "already decided: restartPod on pod/web-clickhouse-0-1 is Pending"
    # A proposal left pending under recommend does not hold up auto mode once it is switched on.
    [now_auto] = decide([proposal(A.RESTART_POD)], autonomy=AUTO, history=[pending], now=NOW)
    assert now_auto.outcome is Outcome.APPLY


def test_cooldown_per_action_and_target() -> None:
    cooldown = PLAYBOOK[A.RESTART_POD].cooldown
    recent = past(pod="web-clickhouse-0-1", minutes_ago=cooldown.total_seconds() / 60 - 1)
    [cooling] = decide([proposal(A.RESTART_POD)], autonomy=AUTO, history=[recent], now=NOW)
    assert cooling.outcome is Outcome.SUPPRESSED
    assert cooling.reason.startswith("cooldown: restartPod on pod/web-clickhouse-0-1 at ")
    assert "not again for 10m" in cooling.reason
    other_pod = decide(
        [proposal(A.RESTART_POD, pod="other")], autonomy=AUTO, history=[recent], now=NOW
    )
    assert outcomes(other_pod) == [Outcome.APPLY]
    later = decide(
        [proposal(A.RESTART_POD)], autonomy=AUTO, history=[recent], now=NOW + timedelta(minutes=2)
    )
    assert outcomes(later) == [Outcome.APPLY]


def test_a_rejection_starts_a_cooldown_an_expiry_does_not() -> None:
    rejected = past(pod="web-clickhouse-0-1", phase=DecisionPhase.REJECTED, applied=False)
    expired = past(pod="web-clickhouse-0-1", phase=DecisionPhase.EXPIRED, applied=False)
    assert outcomes(
        decide([proposal(A.RESTART_POD)], autonomy=AUTO, history=[rejected], now=NOW)
    ) == [Outcome.SUPPRESSED]
    assert outcomes(
        decide([proposal(A.RESTART_POD)], autonomy=AUTO, history=[expired], now=NOW)
    ) == [Outcome.APPLY]


def test_the_rate_limit_counts_actions_applied_in_the_last_hour() -> None:
    limited = Autonomy(mode=AutonomyMode.AUTO, max_actions_per_hour=2)
    two = [past(pod=f"p{i}", minutes_ago=30 + i) for i in range(2)]
    [blocked] = decide([proposal(A.RESTART_POD)], autonomy=limited, history=two, now=NOW)
    assert blocked.outcome is Outcome.SUPPRESSED
    assert blocked.reason == "rate limit: 2 actions applied in the last hour, at most 2"
    old = [past(pod=f"p{i}", minutes_ago=61 + i) for i in range(2)]
    assert outcomes(decide([proposal(A.RESTART_POD)], autonomy=limited, history=old, now=NOW)) == [
        Outcome.APPLY
    ]
    zero = Autonomy(mode=AutonomyMode.AUTO, max_actions_per_hour=0)
    assert outcomes(decide([proposal(A.RESTART_POD)], autonomy=zero, history=[], now=NOW)) == [
        Outcome.SUPPRESSED
    ]


def test_a_storm_of_fifty_crash_loops_is_healed_one_at_a_time_within_the_rate_limit() -> None:
    """50 crash-looping pods; the operator reconciles every 15 s for 3 hours, applies what the
    policy says, and each restart is verified a minute after it was applied."""
    pods = []
    for shard in range(25):
        for replica in range(2):
            pod = kwok_pod(f"web-clickhouse-{shard}", replica)
            pod["status"] = crash_loop(pod, restarts=5, at=NOW - timedelta(seconds=10))
            pods.append(pod)
    statefulsets = [kwok_statefulset(f"web-clickhouse-{s}", ready=0) for s in range(25)]
    seen = observation(pods, statefulsets=statefulsets)
    symptoms = detect(seen, NOW)
    assert len(symptoms) == 50
    autonomy = Autonomy(mode=AutonomyMode.AUTO, max_actions_per_hour=6)
    history: list[PastDecision] = []
    applied_at: list[datetime] = []
    now = NOW
    while now < NOW + timedelta(hours=3):
        history = [
            h.model_copy(update={"phase": DecisionPhase.VERIFIED})
            if h.phase is DecisionPhase.APPLIED
            and h.applied_at
            and now - h.applied_at >= timedelta(minutes=1)
            else h
            for h in history
        ]
        healed = {h.symptom_key for h in history if h.phase is DecisionPhase.VERIFIED}
        open_symptoms = [s for s in symptoms if s.key not in healed]
        decisions = decide(
            diagnose(seen, open_symptoms, now=now), autonomy=autonomy, history=history, now=now
        )
        applying = [d for d in decisions if d.outcome is Outcome.APPLY]
        assert len(applying) <= 1
        assert sum(h.in_flight for h in history) + len(applying) <= 1
        assert {d.outcome for d in decisions} <= {Outcome.APPLY, Outcome.SUPPRESSED}
        for d in applying:
            assert d.diagnosis.action is A.RESTART_POD
            assert d.diagnosis.target is not None
            history.append(
                PastDecision(
                    symptom_key=d.diagnosis.symptom.key,
                    action=A.RESTART_POD,
                    target=d.diagnosis.target,
                    phase=DecisionPhase.APPLIED,
                    mode=AutonomyMode.AUTO,
                    decided_at=now,
                    applied_at=now,
                )
            )
            applied_at.append(now)
        now += timedelta(seconds=15)
    assert len(applied_at) == 18  # six an hour, for three hours
    for start in applied_at:
        assert sum(start <= t < start + timedelta(hours=1) for t in applied_at) <= 6
    assert len({h.symptom_key for h in history}) == 18  # never the same pod twice


def test_approved_decisions_start_one_at_a_time_and_never_in_observe_mode() -> None:
    first = past(pod="a", phase=DecisionPhase.APPROVED, applied=False, minutes_ago=3)
    second = past(pod="b", phase=DecisionPhase.APPROVED, applied=False, minutes_ago=2)
    history = [first, second]
    assert approved_gate(first, autonomy=RECOMMEND, history=history).allowed
    waiting = approved_gate(second, autonomy=RECOMMEND, history=history)
    assert not waiting.allowed
    assert waiting.reason == "restartPod on pod/a was approved first and goes first"
    applying = first.model_copy(update={"phase": DecisionPhase.APPLIED, "applied_at": NOW})
    blocked = approved_gate(second, autonomy=RECOMMEND, history=[applying, second])
    assert blocked.reason == "restartPod on pod/a is being applied"
    assert approved_gate(second, autonomy=RECOMMEND, history=[second]).allowed
    kill_switch = approved_gate(first, autonomy=OBSERVE, history=history)
    assert not kill_switch.allowed
    assert kill_switch.reason == "observe mode: nothing is applied, approved or not"
    pending = past(pod="c", phase=DecisionPhase.PENDING, applied=False)
    assert not approved_gate(pending, autonomy=AUTO, history=[pending]).allowed


decisions_strategy = st.lists(
    st.tuples(st.sampled_from([*A, None]), st.sampled_from(list(SymptomType)), st.integers(0, 5)),
    max_size=12,
)
history_strategy = st.lists(
    st.builds(
        past,
        action=st.sampled_from(list(A)),
        pod=st.sampled_from([f"p{i}" for i in range(6)]),
        phase=st.sampled_from(list(DecisionPhase)),
        minutes_ago=st.floats(min_value=0, max_value=600),
        applied=st.booleans(),
        mode=st.sampled_from(list(AutonomyMode)),
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(
    items=decisions_strategy,
    history=history_strategy,
    mode=st.sampled_from(list(AutonomyMode)),
    allowed=st.frozensets(st.sampled_from(list(A))),
    per_hour=st.integers(min_value=0, max_value=10),
)
def test_the_safety_rules_hold_whatever_the_inputs(
    items: list[tuple[ActionType | None, SymptomType, int]],
    history: list[PastDecision],
    mode: AutonomyMode,
    allowed: frozenset[ActionType],
    per_hour: int,
) -> None:
    diagnoses = [proposal(action, pod=f"p{pod}", type_=type_) for action, type_, pod in items]
    autonomy = Autonomy(mode=mode, actions=allowed, max_actions_per_hour=per_hour)
    decisions = decide(diagnoses, autonomy=autonomy, history=history, now=NOW)
    applying = [d for d in decisions if d.outcome is Outcome.APPLY]
    assert len(decisions) == len(diagnoses)
    assert len(applying) <= 1
    if mode is not AutonomyMode.AUTO or any(h.in_flight for h in history):
        assert applying == []
    recent = sum(1 for h in history if h.applied_at and NOW - h.applied_at < timedelta(hours=1))
    if recent >= per_hour:
        assert applying == []
    for d in applying:
        assert d.diagnosis.action is not None
        assert d.diagnosis.action in allowed
        assert not PLAYBOOK[d.diagnosis.action].deletes_data
        assert not PLAYBOOK[d.diagnosis.action].always_needs_approval
    for d in decisions:
        if d.diagnosis.action is None:
            assert d.outcome is Outcome.RECORD
