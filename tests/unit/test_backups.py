"""Running backups, the pure parts: a run's status from its Job and pods, the size from the
steps' termination messages, the Events, retention's choice among scheduled runs, and the
CronJob rendered with the platform's other objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duet_agents.backup.retention import expired
from duet_operator.backups import (
    StepReport,
    backup_size,
    failure_detail,
    job_status,
    phase_events,
    problem_status,
    run_stamp,
    step_reports,
)
from duet_operator.models import DataPlatformBackup
from duet_operator.models.backup import BackupPhase, BackupTarget, DataPlatformBackupStatus
from duet_operator.render.backup import (
    BACKUP_LABEL,
    SCHEDULED_LABEL,
    build_scheduled_record,
    job_label,
)
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from duet_operator.retention import retention_records
from tests.support.platforms import SECRETS, design, platform

NOW = datetime(2025, 3, 1, 2, 10, tzinfo=UTC)
STAMP = "20250301T020005Z"
S3: dict[str, Any] = {
    "endpoint": "http://minio:9000",
    "bucket": "duet-backups",
    "secretRef": {"name": "k"},
}

TARGET = BackupTarget.model_validate({"s3": S3})


def backup(**status: Any) -> DataPlatformBackup:
    return DataPlatformBackup.model_validate(
        {
            "metadata": {
                "name": "nightly-1",
                "namespace": "analytics",
                "generation": 1,
                "creationTimestamp": "2025-03-01T02:00:05Z",
            },
            "spec": {"platformRef": {"name": "clicks"}},
            "status": status,
        }
    )


def report(component: str, location: str, size: int) -> str:
    return json.dumps({"component": component, "location": location, "bytes": size})


def terminated(name: str, code: int = 0, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
    if message is not None:
        state["message"] = message
    return {"name": name, "state": {"terminated": state}}


def pod(
    phase: str, init: list[dict[str, Any]], main: list[dict[str, Any]], created: str = "a"
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pod-{created}", "creationTimestamp": created},
        "status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": main},
    }


def job(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly-1-backup", "uid": "u1"},
        "status": {"startTime": "2025-03-01T02:00:10Z", "conditions": list(conditions)} | status,
    }


COMPLETE = {"type": "Complete", "status": "True", "lastTransitionTime": "2025-03-01T02:02:10Z"}
FAILED = {
    "type": "Failed",
    "status": "True",
    "reason": "BackoffLimitExceeded",
    "message": "Job has reached the specified backoff limit",
    "lastTransitionTime": "2025-03-01T02:03:00Z",
}
SUCCEEDED_POD = pod(
    "Succeeded",
    [terminated("clickhouse", message=report("clickhouse", f"clicks/{STAMP}/clickhouse", 1000))],
    [terminated("postgres", message=report("postgres", f"/backups/clicks/{STAMP}/postgres", 234))],
)


# -- what the steps said ---------------------------------------------------------------------


def test_reports_are_read_from_the_succeeded_pod_in_step_order() -> None:
    failed_first = pod("Failed", [terminated("clickhouse", 1, "boom")], [], created="0")
    reports = step_reports([failed_first, SUCCEEDED_POD])
    assert [(r.container, r.component, r.bytes) for r in reports] == [
        ("clickhouse", "clickhouse", 1000),
        ("postgres", "postgres", 234),
    ]
    assert run_stamp(reports) == STAMP
    assert backup_size(reports) == 1234


def test_messages_that_are_not_reports_are_skipped() -> None:
    odd = pod(
        "Succeeded",
        [terminated("a", message="not json"), terminated("b", message='["a list"]')],
        [terminated("c", message=json.dumps({"component": "x", "location": "l", "bytes": -1}))],
    )
    reports = step_reports([odd])
    assert [r.container for r in reports] == ["c"]
    assert backup_size(reports) is None
    assert step_reports([pod("Running", [], [])]) == []


def test_an_uploaded_piece_is_counted_once_and_shards_each() -> None:
    reports = [
        StepReport("clickhouse-shard-0", "clickhouse", f"c/{STAMP}/clickhouse/shard-0", 10),
        StepReport("clickhouse-shard-1", "clickhouse", f"c/{STAMP}/clickhouse/shard-1", 20),
        StepReport("postgres", "postgres", f"/work/c/{STAMP}/postgres", 300),
        StepReport("upload", "postgres", f"s3://b/p/c/{STAMP}/postgres", 300),
    ]
    assert backup_size(reports) == 330


def test_a_failed_step_is_named_with_its_last_words() -> None:
    pods = [
        pod(
            "Failed",
            [terminated("clickhouse", 0, "{}")],
            [terminated("postgres", 2, "x" * 2000 + "refused")],
        )
    ]
    detail = failure_detail(pods)
    assert detail.startswith("step postgres exited with code 2 (Error): ")
    assert detail.endswith("refused")
    assert len(detail) < 700
    assert failure_detail([]) == ""


# -- status ----------------------------------------------------------------------------------


def test_a_job_whose_pod_has_not_started_is_pending() -> None:
    waiting = pod("Pending", [{"name": "clickhouse", "state": {"waiting": {}}}], [])
    status = job_status(backup(), job(), [waiting], target=TARGET, now=NOW)
    assert status.phase == BackupPhase.PENDING
    # An on-demand run's directory is named by its creation time: known before it runs.
    assert status.location == "s3://duet-backups/clicks/20250301T020005Z"
    assert status.started_at == datetime(2025, 3, 1, 2, 0, 10, tzinfo=UTC)
    assert status.completed_at is None


def test_a_running_init_step_makes_the_run_running() -> None:
    running = pod("Pending", [{"name": "clickhouse", "state": {"running": {}}}], [])
    status = job_status(backup(), job(active=1), [running], target=None, now=NOW)
    assert status.phase == BackupPhase.RUNNING


def test_a_complete_job_gives_size_duration_and_location() -> None:
    done = job(COMPLETE, completionTime="2025-03-01T02:02:10Z", succeeded=1)
    status = job_status(backup(phase="Running"), done, [SUCCEEDED_POD], target=None, now=NOW)
    assert status.phase == BackupPhase.COMPLETED
    assert status.size_bytes == 1234
    assert status.duration_seconds == 120
    assert status.completed_at == datetime(2025, 3, 1, 2, 2, 10, tzinfo=UTC)
    # Without a target to describe it (its platform gone), where its first step wrote.
    assert status.location == f"clicks/{STAMP}"
    assert "1234 bytes" in (status.message or "")


def test_a_scheduled_run_is_located_by_the_stamp_it_wrote_under() -> None:
    scheduled = backup().model_copy(deep=True)
    scheduled.metadata.labels[SCHEDULED_LABEL] = "clicks"
    pvc = BackupTarget.model_validate({"pvc": {"size": "1Ti"}})
    done = job(COMPLETE)
    running = job_status(scheduled, job(), [], target=pvc, now=NOW)
    assert running.location is None
    status = job_status(scheduled, done, [SUCCEEDED_POD], target=pvc, now=NOW)
    assert status.location == f"pvc://clicks-backups/clicks/{STAMP}"


def test_a_complete_job_without_reports_has_an_unknown_size() -> None:
    silent = pod("Succeeded", [], [terminated("postgres")])
    status = job_status(backup(), job(COMPLETE), [silent], target=TARGET, now=NOW)
    assert status.phase == BackupPhase.COMPLETED
    assert status.size_bytes is None
    assert "size unknown" in (status.message or "")


def test_a_failed_job_says_why_and_which_step() -> None:
    failed_pod = pod("Failed", [terminated("clickhouse", 1, "Code: 210. Connection refused")], [])
    status = job_status(backup(), job(FAILED), [failed_pod], target=None, now=NOW)
    assert status.phase == BackupPhase.FAILED
    assert status.duration_seconds == 170
    assert "backoff limit" in (status.message or "")
    assert "step clickhouse exited with code 1" in (status.message or "")
    assert "Connection refused" in (status.message or "")


def test_problems_keep_what_was_known_and_end_a_failed_run() -> None:
    old = backup(phase="Running", startedAt="2025-03-01T02:00:10Z", location="pvc://c/p")
    status = problem_status(old, BackupPhase.FAILED, "Job gone", now=NOW)
    assert (status.phase, status.message, status.location) == (
        BackupPhase.FAILED,
        "Job gone",
        "pvc://c/p",
    )
    assert status.completed_at == NOW
    pending = problem_status(backup(), BackupPhase.PENDING, "waiting", now=NOW)
    assert pending.completed_at is None


def test_one_event_per_phase_entered() -> None:
    pending = DataPlatformBackupStatus(phase=BackupPhase.PENDING, message="a")
    running = DataPlatformBackupStatus(phase=BackupPhase.RUNNING, message="b")
    failed = DataPlatformBackupStatus(phase=BackupPhase.FAILED, message="no")
    assert [e.reason for e in phase_events(DataPlatformBackupStatus(), pending)] == [
        "BackupPending"
    ]
    assert phase_events(pending, pending.model_copy(update={"message": "c"})) == []
    assert [(e.type, e.reason) for e in phase_events(running, failed)] == [
        ("Warning", "BackupFailed")
    ]


# -- retention -------------------------------------------------------------------------------


def record(name: str, hours_ago: int, phase: str | None) -> dict[str, Any]:
    started = (NOW - timedelta(hours=hours_ago)).isoformat()
    status = {"startedAt": started} | ({"phase": phase} if phase else {})
    return {"metadata": {"name": name, "creationTimestamp": started}, "status": status}


def test_retention_keeps_the_newest_completed_and_never_a_running_one() -> None:
    found = [
        record("r5", 5, "Completed"),
        record("r4", 4, "Failed"),
        record("r3", 3, "Completed"),
        record("r2", 2, "Completed"),
        record("r1", 1, None),
        {"metadata": {"name": "unstarted"}, "status": {}},
    ]
    records = retention_records(found)
    assert [r.name for r in records] == ["r5", "r4", "r3", "r2", "r1"]
    assert [r.name for r in expired(records, keep=2)] == ["r5", "r4"]
    assert [r.name for r in expired(records, keep=3)] == []


# -- the schedule, with the platform ---------------------------------------------------------


def test_spec_backup_adds_the_cronjob_to_the_platform_and_nothing_without() -> None:
    config = RenderConfig()
    without = build_platform(platform(), design(), config, SECRETS)
    assert "CronJob" not in [m["kind"] for m in without]
    scheduled = platform(backup={"schedule": "@daily", "target": {"pvc": {"size": "1Ti"}}})
    manifests = build_platform(scheduled, design(), config, SECRETS)
    assert [m["kind"] for m in manifests][-1] == "CronJob"
    cronjob = manifests[-1]
    assert cronjob["spec"]["schedule"] == "@daily"
    assert cronjob["metadata"]["labels"]["duet.aidatalabs.ai/platform"] == "clicks"
    # The claim outlives the platform, so it is not one of its (owned) children.
    assert "PersistentVolumeClaim" not in [m["kind"] for m in manifests]


def test_a_scheduled_run_is_recorded_under_its_jobs_name() -> None:
    made = build_scheduled_record("clicks", "analytics", "clicks-backup-29012345")
    assert made["kind"] == "DataPlatformBackup"
    assert made["metadata"]["name"] == "clicks-backup-29012345"
    assert made["metadata"]["labels"][SCHEDULED_LABEL] == "clicks"
    assert "ownerReferences" not in made["metadata"]
    assert DataPlatformBackup.model_validate(made).spec.platform_ref.name == "clicks"
    label = job_label("analytics", "clicks-backup-29012345", "clicks-backup-29012345")
    assert label["metadata"]["labels"] == {BACKUP_LABEL: "clicks-backup-29012345"}
    assert set(label) == {"apiVersion", "kind", "metadata"}


@pytest.mark.parametrize("target", [{"s3": S3}, {"pvc": {"claimName": "shared"}}])
def test_every_step_leaves_its_log_when_it_fails(target: dict[str, Any]) -> None:
    scheduled = platform(backup={"schedule": "@daily", "target": target})
    cronjob = build_platform(scheduled, design(), RenderConfig(), SECRETS)[-1]
    pod_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for container in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize("target", [{"s3": S3}, {"pvc": {"claimName": "shared"}}])
def test_no_env_value_is_empty_so_the_stored_cronjob_is_not_drift(target: dict[str, Any]) -> None:
    # The API server drops an empty `value`; one rendered would differ from the stored
    # object at every resync, re-applied and reported to the healer as drift.
    scheduled = platform(backup={"schedule": "@daily", "target": target})
    cronjob = build_platform(scheduled, design(), RenderConfig(), SECRETS)[-1]
    pod_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for container in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        assert all(entry.get("value") != "" for entry in container["env"]), container["name"]
