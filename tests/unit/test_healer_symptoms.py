"""Symptom detection: each kind from the shapes the failure injection produces, thresholds,
dedupe keys, evidence bounds, and unreachable databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duet_agents.healer.evidence import MAX_EVIDENCE_LINES, MAX_LINE_CHARS, redact
from duet_agents.healer.observations import (
    ClickHouseReplica,
    DriftObservation,
    LogExcerpt,
    PostgresLag,
    ProbesReachable,
    VolumeUsage,
)
from duet_agents.healer.symptoms import Cause, Symptom, SymptomType, Thresholds, detect
from duet_operator.models.remediation import Symptom as RemediationSymptom
from duet_operator.models.remediation import SymptomType as RemediationSymptomType
from tests.unit.test_healer_readings import (
    NOW,
    crash_loop,
    healthy,
    kwok_claim,
    kwok_event,
    kwok_pod,
    kwok_statefulset,
    not_ready,
    observation,
    unschedulable,
)

GiB = 2**30


def crashing_pod(restarts: int = 3, reason: str = "Error", **kw: Any) -> dict[str, Any]:
    pod = kwok_pod(**kw)
    pod["status"] = crash_loop(pod, restarts=restarts, at=NOW - timedelta(seconds=3), reason=reason)
    return pod


def only(symptoms: list[Symptom]) -> Symptom:
    assert len(symptoms) == 1, [s.key for s in symptoms]
    return symptoms[0]


def test_a_healthy_platform_has_no_symptoms() -> None:
    pods = [kwok_pod("web-clickhouse-0", i) for i in range(2)]
    seen = observation(pods, statefulsets=[kwok_statefulset()], claims=[kwok_claim()])
    assert detect(seen, NOW) == []


def test_the_crash_loop_injection_is_one_crash_loop_symptom_with_evidence() -> None:
    pod = crashing_pod(restarts=3)
    events = [
        kwok_event("web-clickhouse-0-1", "BackOff", "Back-off restarting failed container", count=3)
    ]
    symptom = only(detect(observation([pod], events=events), NOW))
    assert symptom.type is SymptomType.CRASH_LOOP
    assert symptom.key == "CrashLoop/pod/web-clickhouse-0-1"
    assert symptom.object == "pod/web-clickhouse-0-1"
    assert (symptom.pod, symptom.container, symptom.statefulset) == (
        "web-clickhouse-0-1",
        "clickhouse",
        "web-clickhouse-0",
    )
    assert "3 restarts" in symptom.reason
    assert "Error" in symptom.reason
    assert any("waiting CrashLoopBackOff" in line for line in symptom.evidence)
    assert any(line.startswith("event Warning BackOff x3") for line in symptom.evidence)
    assert symptom.first_seen == NOW - timedelta(seconds=3)


def test_one_crash_is_the_kubelets_to_restart_the_second_is_a_symptom() -> None:
    assert detect(observation([crashing_pod(restarts=1)]), NOW) == []
    assert only(detect(observation([crashing_pod(restarts=2)]), NOW)).type is SymptomType.CRASH_LOOP
    lenient = Thresholds(crash_loop_restarts=5)
    assert detect(observation([crashing_pod(restarts=4)]), NOW, lenient) == []


def test_an_oom_killed_crash_loop_is_one_oom_symptom_not_two() -> None:
    pod = crashing_pod(restarts=5, reason="OOMKilled")
    symptom = only(detect(observation([pod]), NOW))
    assert symptom.type is SymptomType.OOM_KILLED
    assert symptom.cause is Cause.OOM
    assert symptom.key == "OOMKilled/pod/web-clickhouse-0-1"
    assert "8Gi memory limit" in symptom.reason
    assert "exit code 137" in symptom.reason


def test_the_first_oom_kill_is_a_symptom_at_once() -> None:
    assert only(detect(observation([crashing_pod(restarts=1, reason="OOMKilled")]), NOW))


def test_an_old_oom_kill_of_a_container_that_runs_again_is_history() -> None:
    pod = kwok_pod()
    pod["status"] = healthy(pod, restarts=1)
    last = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": ""}}
    for minutes, expected in ((5, 1), (60, 0)):
        at = NOW - timedelta(minutes=minutes)
        last["terminated"]["finishedAt"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        pod["status"]["containerStatuses"][0]["lastState"] = last
        assert len(detect(observation([pod]), NOW)) == expected, minutes


def test_not_ready_becomes_a_symptom_only_after_the_threshold() -> None:
    pod = kwok_pod()
    pod["status"] = not_ready(pod, since=NOW - timedelta(seconds=20))
    assert detect(observation([pod]), NOW) == []
    later = detect(observation([pod]), NOW + timedelta(seconds=15))
    symptom = only(later)
    assert symptom.type is SymptomType.REPLICA_NOT_READY
    assert symptom.cause is Cause.NOT_READY
    assert symptom.key == "ReplicaNotReady/pod/web-clickhouse-0-1"
    assert "35s" in symptom.reason
    quick = Thresholds(not_ready_after=timedelta(seconds=5))
    assert only(detect(observation([pod]), NOW, quick)).first_seen == NOW - timedelta(seconds=20)


def test_a_pod_still_in_its_startup_probe_gets_the_startup_grace() -> None:
    pod = kwok_pod()
    pod["status"] = not_ready(pod, since=NOW - timedelta(minutes=5), started=False)
    assert detect(observation([pod]), NOW) == []
    symptom = only(detect(observation([pod]), NOW + timedelta(minutes=6)))
    assert symptom.cause is Cause.NOT_STARTED


def test_a_pod_on_a_node_that_stopped_reporting_is_not_ready_with_that_cause() -> None:
    pod = kwok_pod()
    pod["status"] = not_ready(pod, since=NOW - timedelta(minutes=2))
    pod["status"]["phase"] = "Unknown"
    assert only(detect(observation([pod]), NOW)).cause is Cause.NODE_LOST


def test_unschedulable_after_the_threshold_with_the_schedulers_reason() -> None:
    message = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available"
    pod = kwok_pod(status=unschedulable(message, since=NOW - timedelta(seconds=90)))
    events = [kwok_event("web-clickhouse-0-1", "FailedScheduling", message, count=4)]
    assert detect(observation([pod], events=events), NOW) == []
    symptom = only(detect(observation([pod], events=events), NOW + timedelta(seconds=40)))
    assert symptom.type is SymptomType.UNSCHEDULABLE
    assert symptom.cause is Cause.INSUFFICIENT_RESOURCES
    assert any("Insufficient memory" in line for line in symptom.evidence)
    assert any("FailedScheduling x4" in line for line in symptom.evidence)


def test_a_volume_bound_to_a_lost_node_is_its_own_cause() -> None:
    message = "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
    pod = kwok_pod(status=unschedulable(message, since=NOW - timedelta(minutes=5)))
    assert only(detect(observation([pod]), NOW)).cause is Cause.VOLUME_NODE_AFFINITY


def test_terminating_pods_show_nothing() -> None:
    assert detect(observation([crashing_pod(deleting=True)]), NOW) == []


def test_a_nearly_full_disk_is_a_symptom_of_its_claim() -> None:
    volumes = [
        VolumeUsage(
            pod="web-clickhouse-0-1", disk="default", free_bytes=10 * GiB, total_bytes=100 * GiB
        ),
        VolumeUsage(
            pod="web-clickhouse-0-0", disk="default", free_bytes=50 * GiB, total_bytes=100 * GiB
        ),
    ]
    pods = [kwok_pod("web-clickhouse-0", i) for i in range(2)]
    claims = [kwok_claim(f"web-clickhouse-0-{i}") for i in range(2)]
    symptom = only(detect(observation(pods, claims=claims, volumes=volumes), NOW))
    assert symptom.type is SymptomType.VOLUME_NEARLY_FULL
    assert symptom.key == "VolumeNearlyFull/persistentvolumeclaim/data-web-clickhouse-0-1"
    assert symptom.claim == "data-web-clickhouse-0-1"
    assert "10.0% free" in symptom.reason
    assert any("allows expansion" in line for line in symptom.evidence)
    assert (
        detect(
            observation(pods, claims=claims, volumes=volumes),
            NOW,
            Thresholds(volume_free_fraction=0.05),
        )
        == []
    )


def test_a_disk_without_a_known_claim_is_named_by_its_pod() -> None:
    volumes = [VolumeUsage(pod="web-clickhouse-0-1", free_bytes=1, total_bytes=100)]
    assert (
        only(detect(observation([kwok_pod()], volumes=volumes), NOW)).object
        == "pod/web-clickhouse-0-1"
    )


def test_replication_delay_and_read_only_replicas_are_lag_symptoms_per_server() -> None:
    rows = [
        ClickHouseReplica(pod="web-clickhouse-0-1", database="db", table=f"t{i}", absolute_delay=d)
        for i, d in enumerate((10, 400, 900))
    ] + [
        ClickHouseReplica(pod="web-clickhouse-0-0", database="db", table="t0", is_readonly=True),
        ClickHouseReplica(pod="web-clickhouse-0-0", database="db", table="t1"),
    ]
    pods = [kwok_pod("web-clickhouse-0", i) for i in range(2)]
    symptoms = detect(observation(pods, clickhouse_replicas=rows), NOW)
    assert [(s.key, s.cause) for s in symptoms] == [
        ("ReplicationLag/pod/web-clickhouse-0-0", Cause.READ_ONLY),
        ("ReplicationLag/pod/web-clickhouse-0-1", Cause.DELAY),
    ]
    assert "1 of 2 replicated tables are read-only" in symptoms[0].reason
    assert "2 of 3" in symptoms[1].reason
    assert "900 s (db.t2)" in symptoms[1].reason
    assert symptoms[1].evidence[0].startswith("db.t2:")


def test_postgres_standby_lag_in_bytes_or_seconds() -> None:
    pods = [kwok_pod("web-postgres", i, component="postgres") for i in range(3)]
    lag = [
        PostgresLag(standby="web-postgres-1", bytes=2 * GiB, seconds=3),
        PostgresLag(standby="web-postgres-2", bytes=1024, seconds=10),
    ]
    symptom = only(detect(observation(pods, postgres_lag=lag), NOW))
    assert symptom.key == "ReplicationLag/pod/web-postgres-1"
    assert symptom.cause is Cause.WAL_LAG
    assert "2.0 GiB" in symptom.reason
    slow = [PostgresLag(standby="web-postgres-2", seconds=600)]
    assert only(detect(observation(pods, postgres_lag=slow), NOW)).pod == "web-postgres-2"


def test_drift_is_one_symptom_per_object() -> None:
    drift = [
        DriftObservation(
            kind="StatefulSet", name="web-clickhouse-0", differences=["spec.replicas: 1, wants 2"]
        ),
        DriftObservation(kind="Service", name="web-clickhouse", differences=[]),
    ]
    symptoms = detect(observation(drift=drift), NOW)
    assert [s.key for s in symptoms] == [
        "Drift/service/web-clickhouse",
        "Drift/statefulset/web-clickhouse-0",
    ]
    assert symptoms[1].statefulset == "web-clickhouse-0"
    assert symptoms[1].evidence == ["spec.replicas: 1, wants 2"]


def test_an_unreachable_database_invents_nothing_and_says_so() -> None:
    rows = [ClickHouseReplica(pod="web-clickhouse-0-1", database="db", table="t", is_readonly=True)]
    volumes = [VolumeUsage(pod="web-clickhouse-0-1", free_bytes=1, total_bytes=100)]
    probes = ProbesReachable(clickhouse=False, clickhouse_error="connection refused")
    down = observation([crashing_pod()], clickhouse_replicas=rows, volumes=volumes, probes=probes)
    symptom = only(detect(down, NOW))
    assert symptom.type is SymptomType.CRASH_LOOP
    assert symptom.evidence[-1] == (
        "ClickHouse could not be probed (connection refused): replication and disk state unknown"
    )
    one_pod = ProbesReachable(clickhouse=True, unreachable_pods=["web-clickhouse-0-1"])
    assert [s.type for s in detect(down.model_copy(update={"probes": one_pod}), NOW)] == [
        SymptomType.CRASH_LOOP
    ]
    postgres_down = observation(
        postgres_lag=[PostgresLag(standby="web-postgres-1", bytes=10 * GiB)],
        probes=ProbesReachable(postgres=False),
    )
    assert detect(postgres_down, NOW) == []


def test_keys_are_stable_and_sorted_across_observations() -> None:
    pods = [crashing_pod(index=1), crashing_pod(index=0, reason="OOMKilled")]
    first = [s.key for s in detect(observation(pods), NOW)]
    again = [s.key for s in detect(observation(list(reversed(pods))), NOW + timedelta(seconds=5))]
    assert (
        first == again == ["CrashLoop/pod/web-clickhouse-0-1", "OOMKilled/pod/web-clickhouse-0-0"]
    )


def test_evidence_stays_bounded_under_an_event_storm_and_huge_messages() -> None:
    events = [
        kwok_event("web-clickhouse-0-1", "BackOff", f"message {i} " + "x" * 5000, count=i + 1)
        for i in range(200)
    ]
    rows = [
        ClickHouseReplica(
            pod="web-clickhouse-0-1", database="db", table=f"t{i}", absolute_delay=1000
        )
        for i in range(500)
    ]
    seen = observation([crashing_pod()], events=events, clickhouse_replicas=rows)
    for symptom in detect(seen, NOW, Thresholds(max_events=4)):
        assert len(symptom.evidence) <= MAX_EVIDENCE_LINES
        assert all(len(line) <= MAX_LINE_CHARS for line in symptom.evidence)
        RemediationSymptom.model_validate(symptom.record())
    lag = next(s for s in detect(seen, NOW) if s.type is SymptomType.REPLICATION_LAG)
    rows_kept = MAX_EVIDENCE_LINES - 5 - 1  # five events, and the line that counts the rest
    assert lag.evidence[rows_kept] == f"... and {500 - rows_kept} more"
    assert [line.split(":")[0] for line in lag.evidence[-5:]] == [
        f"event Warning BackOff x{200 - i} on pod/web-clickhouse-0-1, last 2025-11-23T21"
        for i in range(5)
    ]


def test_only_recent_events_of_the_symptoms_object_are_evidence() -> None:
    events = [
        kwok_event("web-clickhouse-0-1", "BackOff", "recent"),
        kwok_event("web-clickhouse-0-1", "BackOff", "stale", at=NOW - timedelta(hours=2)),
        kwok_event("web-clickhouse-0-0", "BackOff", "another pod"),
    ]
    symptom = only(detect(observation([crashing_pod()], events=events), NOW))
    text = "\n".join(symptom.evidence)
    assert "recent" in text
    assert "stale" not in text
    assert "another pod" not in text


def test_the_vocabulary_matches_the_remediation_resource() -> None:
    assert {t.value for t in SymptomType} == {t.value for t in RemediationSymptomType}
    record = only(detect(observation([crashing_pod()]), NOW)).record()
    assert set(record) == {"type", "object", "reason", "evidence", "firstSeen"}
    assert RemediationSymptom.model_validate(record).type is RemediationSymptomType.CRASH_LOOP


@settings(max_examples=60, deadline=None)
@given(
    restarts=st.integers(min_value=0, max_value=1000),
    seconds=st.integers(min_value=0, max_value=7200),
    reason=st.sampled_from(["Error", "OOMKilled", "Completed"]),
)
def test_a_pod_shows_at_most_one_symptom(restarts: int, seconds: int, reason: str) -> None:
    pod = kwok_pod()
    pod["status"] = crash_loop(
        pod, restarts=restarts, at=NOW - timedelta(seconds=seconds), reason=reason
    )
    symptoms = detect(observation([pod]), NOW)
    assert len(symptoms) <= 1
    assert [s.first_seen <= NOW for s in symptoms] == [True] * len(symptoms)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pods_are_not_not_ready(phase: str) -> None:
    pod = kwok_pod()
    pod["status"] = not_ready(pod, since=NOW - timedelta(hours=1))
    pod["status"]["phase"] = phase
    assert detect(observation([pod]), NOW) == []


def test_the_last_log_lines_are_evidence_with_credentials_redacted() -> None:
    logs = [
        LogExcerpt(
            pod="web-clickhouse-0-1",
            container="clickhouse",
            lines=[
                "starting",
                "connecting with password=hunter2 to keeper",
                'config {"token": "abc123"} loaded',
                "Authorization: Bearer sekrit-value",
                "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space",
            ],
        ),
        LogExcerpt(pod="web-clickhouse-0-0", container="clickhouse", lines=["other pod"]),
    ]
    symptom = only(detect(observation([crashing_pod()], logs=logs), NOW))
    logged = [line for line in symptom.evidence if line.startswith("log ")]
    assert logged == [
        'log clickhouse: config {"token": ***} loaded',
        "log clickhouse: Authorization: ***",
        "log clickhouse: Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space",
    ]
    assert "hunter2" not in " ".join(symptom.evidence)
    assert redact("PASSWORD: 'x y'") == "PASSWORD: *** y'"
