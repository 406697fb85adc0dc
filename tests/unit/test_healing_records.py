"""The healer's records in the operator, without a cluster: names that make a second pass
find the first pass's record, the Remediation a decision becomes, where each starts, and how
the autonomy policy reads the records back on the next pass."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from duet_agents.healer import (
    ActionType,
    AutonomyMode,
    DecisionPhase,
    Outcome,
    decide,
    detect,
    diagnose,
)
from duet_agents.healer.policy import Decision
from duet_operator.healing import (
    NOT_EXECUTABLE,
    OBSERVE_MESSAGE,
    SYMPTOM_LABEL,
    autonomy_of,
    first_phase,
    is_stale,
    past_decision,
    remediation_body,
    remediation_name,
    symptom_hash,
)
from duet_operator.models.remediation import Remediation, RemediationPhase
from duet_operator.render.naming import PLATFORM_LABEL
from tests.support.platforms import platform
from tests.unit.test_healer_readings import (
    NOW,
    crash_loop,
    kwok_pod,
    kwok_statefulset,
    observation,
)

KEY = "CrashLoop/pod/web-clickhouse-0-1"
LABEL_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def web(mode: str = "auto", **autonomy: Any) -> Any:
    return platform("web", "analytics", autonomy={"mode": mode} | autonomy)


def crash_decision(mode: str = "auto") -> Decision:
    """What the library decides for a crash-looping ClickHouse replica of platform web."""
    pod = kwok_pod(status=None)
    pod["status"] = crash_loop(pod, restarts=3, at=NOW - timedelta(seconds=20))
    seen = observation([pod], statefulsets=[kwok_statefulset()])
    symptoms = detect(seen, NOW)
    diagnoses = diagnose(seen, symptoms, now=NOW)
    (decision,) = decide(diagnoses, autonomy=autonomy_of(web(mode)), history=[], now=NOW)
    return decision


def stored(body: dict[str, Any], phase: str | None = None, **status: Any) -> Remediation:
    """The body as the API server would hand it back, created a minute before NOW."""
    meta = body["metadata"] | {"creationTimestamp": (NOW - timedelta(minutes=1)).isoformat()}
    return Remediation.model_validate(
        body | {"metadata": meta, "status": ({"phase": phase} if phase else {}) | status}
    )


def record(name: str, key: str = KEY, phase: str | None = None) -> Remediation:
    body = remediation_body(web(), crash_decision(), name, autonomy_of(web()).mode)
    body["metadata"]["labels"][SYMPTOM_LABEL] = symptom_hash(key)
    return stored(body, phase)


# -- names -----------------------------------------------------------------------------------------


def test_the_symptom_hash_is_a_stable_label_value() -> None:
    assert symptom_hash(KEY) == symptom_hash(KEY)
    assert symptom_hash(KEY) != symptom_hash("CrashLoop/pod/web-clickhouse-0-0")
    assert LABEL_VALUE.match(symptom_hash(KEY))
    assert len(symptom_hash(KEY)) <= 63


def test_a_symptom_keeps_its_name_while_its_record_is_open() -> None:
    first = remediation_name("web", KEY, [])
    assert first == f"web-{symptom_hash(KEY)}-1"
    for phase in (None, "Pending", "Approved", "Applied"):
        assert remediation_name("web", KEY, [record(first, phase=phase)]) == first, phase


@pytest.mark.parametrize("phase", ["Verified", "Failed", "Rejected", "Expired"])
def test_a_symptom_that_comes_back_after_its_record_closed_gets_the_next_name(phase: str) -> None:
    closed = record(f"web-{symptom_hash(KEY)}-1", phase=phase)
    assert remediation_name("web", KEY, [closed]) == f"web-{symptom_hash(KEY)}-2"


def test_names_never_reuse_a_closed_record_even_after_an_older_one_is_deleted() -> None:
    # Records 1 and 2 closed; someone deleted 1. The next is 3, not 2 (which still exists).
    digest = symptom_hash(KEY)
    assert remediation_name("web", KEY, [record(f"web-{digest}-2", phase="Verified")]) == (
        f"web-{digest}-3"
    )


def test_other_symptoms_do_not_count() -> None:
    other = "CrashLoop/pod/web-clickhouse-0-0"
    closed = record(f"web-{symptom_hash(other)}-4", key=other, phase="Verified")
    assert remediation_name("web", KEY, [closed]) == f"web-{symptom_hash(KEY)}-1"


# -- the body --------------------------------------------------------------------------------------


def test_a_decision_becomes_a_remediation_owned_by_its_platform() -> None:
    decision = crash_decision()
    owner = web()
    body = remediation_body(owner, decision, "web-abc-1", autonomy_of(owner).mode)
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("web-abc-1", "analytics")
    assert meta["labels"][PLATFORM_LABEL] == "web"
    assert meta["labels"][SYMPTOM_LABEL] == symptom_hash(KEY)
    assert all(LABEL_VALUE.match(v) for v in meta["labels"].values())
    (ref,) = meta["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("DataPlatform", "web", owner.metadata.uid)
    spec = body["spec"]
    assert spec["platformRef"] == {"name": "web"}
    assert spec["symptom"]["type"] == "CrashLoop"
    assert spec["symptom"]["object"] == "pod/web-clickhouse-0-1"
    assert any("CrashLoopBackOff" in line for line in spec["symptom"]["evidence"])
    assert spec["action"] == {
        "type": "restartPod",
        "parameters": {
            "target": "pod/web-clickhouse-0-1",
            "pod": "web-clickhouse-0-1",
            "uid": "uid-web-clickhouse-0-1",
            "container": "clickhouse",
        },
    }
    assert spec["diagnosis"] == decision.diagnosis.text
    assert spec["mode"] == "auto"
    # The approval is the person's field: never part of what the operator applies.
    assert "approved" not in spec
    assert "status" not in body
    # And the CRD's model reads it.
    assert stored(body).spec.action.parameters["pod"] == "web-clickhouse-0-1"


@pytest.mark.parametrize(
    ("mode", "listed", "phase", "message"),
    [
        ("auto", ["restartPod"], RemediationPhase.APPROVED, "auto mode: restartPod is allowed"),
        ("auto", ["reapply"], RemediationPhase.PENDING, "not in spec.autonomy.actions"),
        ("recommend", ["restartPod"], RemediationPhase.PENDING, "recommend mode"),
        ("observe", ["restartPod"], RemediationPhase.REJECTED, OBSERVE_MESSAGE),
    ],
)
def test_where_a_new_record_starts_follows_the_policy(
    mode: str, listed: list[str], phase: RemediationPhase, message: str
) -> None:
    owner = web(mode, actions=listed)
    seen = crash_decision(mode)
    (decision,) = decide([seen.diagnosis], autonomy=autonomy_of(owner), history=[], now=NOW)
    started = first_phase(
        stored(remediation_body(owner, decision, "web-abc-1", autonomy_of(owner).mode))
    )
    assert started[0] is phase
    assert message in started[1]


# -- read back -------------------------------------------------------------------------------------


def test_the_policy_reads_a_record_back_and_does_not_decide_it_twice() -> None:
    body = remediation_body(web(), crash_decision(), "web-abc-1", autonomy_of(web()).mode)
    for phase in ("Pending", "Approved", "Applied", None):
        history = [past_decision(stored(body, phase))]
        assert history[0].symptom_key == KEY
        assert history[0].target == "pod/web-clickhouse-0-1"
        again = decide(
            [crash_decision().diagnosis], autonomy=autonomy_of(web()), history=history, now=NOW
        )
        assert again[0].outcome is Outcome.SUPPRESSED, phase


def test_a_record_without_a_status_yet_counts_as_pending() -> None:
    body = remediation_body(web(), crash_decision(), "web-abc-1", autonomy_of(web()).mode)
    past = past_decision(stored(body))
    assert past.phase is DecisionPhase.PENDING
    assert past.mode is AutonomyMode.AUTO
    assert past.action is ActionType.RESTART_POD
    assert past.decided_at == NOW - timedelta(minutes=1)


def test_an_action_this_version_cannot_execute_cools_down_instead_of_coming_back() -> None:
    body = remediation_body(web(), crash_decision(), "web-abc-1", autonomy_of(web()).mode)
    condition = {
        "type": "Applied",
        "status": "False",
        "reason": NOT_EXECUTABLE,
        "message": "cannot execute",
        "lastTransitionTime": NOW.isoformat(),
    }
    past = past_decision(stored(body, "Failed", conditions=[condition]))
    assert past.phase is DecisionPhase.REJECTED
    again = decide(
        [crash_decision().diagnosis], autonomy=autonomy_of(web()), history=[past], now=NOW
    )
    assert again[0].outcome is Outcome.SUPPRESSED
    assert "cooldown" in again[0].reason
    # A remedy that was applied and failed keeps its own phase and applied time.
    applied = stored(body, "Failed", appliedAt=NOW.isoformat())
    assert past_decision(applied).phase is DecisionPhase.FAILED
    assert past_decision(applied).applied_at == NOW


def test_the_platforms_autonomy_in_the_policys_words() -> None:
    autonomy = autonomy_of(web("recommend", maxActionsPerHour=2, actions=["restartPod"]))
    assert autonomy.mode is AutonomyMode.RECOMMEND
    assert autonomy.max_actions_per_hour == 2
    assert autonomy.actions == frozenset({ActionType.RESTART_POD})


def test_only_unapproved_pending_records_go_stale() -> None:
    body = remediation_body(web(), crash_decision(), "web-abc-1", autonomy_of(web()).mode)
    ttl = timedelta(seconds=30)
    assert is_stale(stored(body, "Pending"), NOW, ttl)
    assert not is_stale(stored(body, "Pending"), NOW, timedelta(hours=1))
    assert not is_stale(stored(body, "Applied"), NOW, ttl)
    approved = body | {"spec": body["spec"] | {"approved": True}}
    assert not is_stale(stored(approved, "Pending"), NOW, ttl)
