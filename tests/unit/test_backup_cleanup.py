"""Retention's cleanup, the pure parts: which paths may be deleted (a record's location is
user-editable), the plan of a retention pass, and the cleanup Job as rendered."""

from __future__ import annotations

from typing import Any

import pytest

from duet_agents.backup.cleanup import PVC_SCRIPT, S3_SCRIPT, SCRIPT_NAME
from duet_agents.backup.layout import run_directory
from duet_operator.models import DataPlatform, DataPlatformBackup
from duet_operator.models.backup import BackupTarget
from duet_operator.render.backup import (
    CLEANUP,
    EXPIRED_ANNOTATION,
    ExpiredRun,
    build_backup_job,
    build_cleanup_job,
    cleanup_job_name,
    describe_location,
    expired_records,
    run_path,
)
from duet_operator.render.config import RenderConfig
from duet_operator.retention import (
    MAX_CLEANUP_RUNS,
    cleanup_ended,
    owner_platform,
    retention_plan,
)
from tests.support.platforms import design, platform

CONFIG = RenderConfig()
S3 = {
    "endpoint": "https://s3.eu-west-1.amazonaws.com",
    "bucket": "duet-backups",
    "prefix": "prod/team",
    "secretRef": {"name": "s3-keys"},
}
PVC_CLAIM = {"pvc": {"claimName": "shared-backups"}}
PVC_SIZE = {"pvc": {"size": "500Gi"}}
RUN = "20250301T020000Z"
RUNS = [ExpiredRun("clicks-backup-1", f"clicks/{RUN}"), ExpiredRun("clicks-backup-2", "clicks/x")]


def with_backup(target: dict[str, Any], retention: int = 2, **extra: Any) -> DataPlatform:
    spec = {"schedule": "0 2 * * *", "retention": retention, "target": target}
    return platform(backup=spec, **extra)


def target(body: dict[str, Any]) -> BackupTarget:
    return BackupTarget.model_validate(body)


# -- which paths may go ------------------------------------------------------------------------


def test_a_run_directory_is_the_platform_directory_and_a_stamp() -> None:
    assert run_directory(f"clicks/{RUN}", "clicks") == f"clicks/{RUN}"
    assert run_directory(f"prod/team/clicks/{RUN}", "prod/team/clicks") == f"prod/team/clicks/{RUN}"


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "../../",
        "clicks",
        "clicks/",
        f"/clicks/{RUN}",
        f"/backups/clicks/{RUN}",
        "/etc/passwd",
        f"clicks/../../{RUN}",
        f"clicks/{RUN}/..",
        f"clicks/{RUN}/clickhouse",
        f"other/{RUN}",
        f"clicks//{RUN}",
        f"clicks/./{RUN}",
        f"x/clicks/{RUN}",
        "clicks/..",
        "clicks/*",
        "clicks/20250301T020000",  # no Z
        "clicks/2025031T020000Z",  # strptime takes it; `stamp` never writes it
        f"clicks/{RUN} ",
        f"clicks/{RUN}\n/etc",
    ],
)
def test_anything_but_one_run_of_the_platform_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="run"):
        run_directory(path, "clicks")


@pytest.mark.parametrize("platform_dir", ["", "/", "a//clicks", "../clicks", "a/../clicks", "."])
def test_a_platform_directory_that_could_climb_is_refused(platform_dir: str) -> None:
    with pytest.raises(ValueError, match="not a platform's backup directory"):
        run_directory(f"{platform_dir}/{RUN}", platform_dir)


@pytest.mark.parametrize("body", [PVC_CLAIM, PVC_SIZE, {"s3": S3}])
def test_a_location_as_status_says_it_is_the_run_path(body: dict[str, Any]) -> None:
    where = target(body)
    expected = f"prod/team/clicks/{RUN}" if "s3" in body else f"clicks/{RUN}"
    assert run_path("clicks", where, describe_location("clicks", where, RUN)) == expected


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (PVC_CLAIM, f"pvc://other-claim/clicks/{RUN}"),
        (PVC_CLAIM, f"pvc://shared-backups/other/{RUN}"),
        (PVC_CLAIM, f"pvc://shared-backups/clicks/../../{RUN}"),
        (PVC_CLAIM, "pvc://shared-backups/../../"),
        (PVC_CLAIM, "pvc://shared-backups/"),
        (PVC_CLAIM, f"pvc://shared-backups//clicks/{RUN}"),
        (PVC_CLAIM, f"/backups/clicks/{RUN}"),
        (PVC_CLAIM, f"s3://shared-backups/clicks/{RUN}"),
        (PVC_SIZE, f"pvc://shared-backups/clicks/{RUN}"),
        (PVC_CLAIM, ""),
        ({"s3": S3}, f"s3://duet-backups/clicks/{RUN}"),  # not under the prefix
        ({"s3": S3}, f"s3://other-bucket/prod/team/clicks/{RUN}"),
        ({"s3": S3}, f"s3://duet-backups/prod/team/clicks/{RUN}/postgres"),
        ({"s3": S3}, f"pvc://duet-backups/prod/team/clicks/{RUN}"),
    ],
)
def test_a_location_elsewhere_is_refused(body: dict[str, Any], location: str) -> None:
    with pytest.raises(ValueError, match=r"backup target|run"):
        run_path("clicks", target(body), location)


# -- the plan of a pass ------------------------------------------------------------------------


def scheduled(name: str, day: int, *, phase: str = "Completed", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": f"2025-03-{day:02d}T02:00:00Z"},
        "status": {"phase": phase, "startedAt": f"2025-03-{day:02d}T02:00:00Z"} | status,
    }


def at(day: int) -> str:
    return f"pvc://shared-backups/clicks/202503{day:02d}T020000Z"


def test_the_oldest_runs_past_retention_are_cleaned_the_newest_kept() -> None:
    found = [scheduled(f"clicks-backup-{d}", d, location=at(d)) for d in (1, 2, 3, 4)]
    plan = retention_plan(found, "clicks", target(PVC_CLAIM), keep=2)
    assert plan.clean == [
        ExpiredRun("clicks-backup-1", "clicks/20250301T020000Z"),
        ExpiredRun("clicks-backup-2", "clicks/20250302T020000Z"),
    ]
    assert plan.forget == []
    assert plan.refused == []


def test_no_location_is_forgotten_a_hostile_one_refused_a_deleted_one_skipped() -> None:
    found = [
        scheduled("failed-early", 1, phase="Failed"),
        scheduled("edited", 2, location="pvc://shared-backups/../../etc"),
        scheduled("going", 3, location=at(3)) | {"metadata": {
            "name": "going", "deletionTimestamp": "2025-03-09T00:00:00Z",
            "creationTimestamp": "2025-03-03T02:00:00Z",
        }},
        scheduled("old", 4, location=at(4)),
        *(scheduled(f"new-{d}", d, location=at(d)) for d in (5, 6)),
        scheduled("running", 7, phase="Running"),
    ]  # fmt: skip
    plan = retention_plan(found, "clicks", target(PVC_CLAIM), keep=2)
    assert plan.clean == [ExpiredRun("old", "clicks/20250304T020000Z")]
    assert plan.forget == ["failed-early"]
    assert [name for name, _ in plan.refused] == ["edited"]
    assert "not a run directory" in plan.refused[0][1]


def test_a_pass_cleans_a_bounded_number_of_runs_oldest_first() -> None:
    found = []
    for i in range(MAX_CLEANUP_RUNS + 10):
        minute, second = divmod(i, 60)
        run = f"20250301T02{minute:02d}{second:02d}Z"
        body = scheduled(f"b-{i:03d}", 1, location=f"pvc://shared-backups/clicks/{run}")
        body["status"]["startedAt"] = f"2025-03-01T02:{minute:02d}:{second:02d}Z"
        found.append(body)
    plan = retention_plan(found, "clicks", target(PVC_CLAIM), keep=1)
    assert len(plan.clean) == MAX_CLEANUP_RUNS
    assert plan.clean[0] == ExpiredRun("b-000", "clicks/20250301T020000Z")


# -- the Job ---------------------------------------------------------------------------------


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_pvc_cleanup_mounts_the_claim_and_passes_each_run_as_an_argument() -> None:
    owner = with_backup(PVC_CLAIM)
    job = build_cleanup_job(owner, design(), CONFIG, runs=RUNS, trigger="clicks-backup-9")
    assert job["kind"] == "Job"
    assert job["metadata"]["name"].startswith("clicks-backup-cleanup-")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "DataPlatform"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == CLEANUP
    assert job["metadata"]["annotations"][EXPIRED_ANNOTATION] == "clicks-backup-1,clicks-backup-2"
    assert expired_records(job) == ["clicks-backup-1", "clicks-backup-2"]
    pod = pod_of(job)
    (step,) = pod["containers"]
    assert step["image"] == "clickhouse/clickhouse-server:25.8"
    assert step["command"] == [
        "/bin/sh",
        "-c",
        PVC_SCRIPT,
        SCRIPT_NAME,
        f"clicks/{RUN}",
        "clicks/x",
    ]
    assert env_of(step) == {"BACKUP_ROOT": "/backups"}
    assert {"name": "backups", "mountPath": "/backups"} in step["volumeMounts"]
    assert pod["volumes"] == [
        {"name": "backups", "persistentVolumeClaim": {"claimName": "shared-backups"}}
    ]
    assert step["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # Nothing of a run's path is spliced into the script.
    assert "clicks" not in PVC_SCRIPT


def test_the_cleanup_runs_as_the_backup_job_does() -> None:
    owner = with_backup(PVC_CLAIM)
    backup = DataPlatformBackup.model_validate(
        {
            "metadata": {"name": "b", "namespace": "analytics"},
            "spec": {"platformRef": {"name": "clicks"}},
        }
    )
    backup_pod = pod_of(build_backup_job(backup, owner, design(), CONFIG))
    pod = pod_of(build_cleanup_job(owner, design(), CONFIG, runs=RUNS, trigger="t"))
    assert pod["securityContext"] == backup_pod["securityContext"]
    assert pod["restartPolicy"] == "Never"
    (step,) = pod["containers"]
    first = backup_pod["initContainers"][0]
    for key in ("image", "securityContext", "resources"):
        assert step[key] == first[key], key


def test_an_s3_cleanup_uses_the_uploaders_cli_with_keys_by_reference() -> None:
    job = build_cleanup_job(with_backup({"s3": S3}), design(), CONFIG, runs=RUNS[:1], trigger="t")
    (step,) = pod_of(job)["containers"]
    assert step["image"].startswith("amazon/aws-cli:")
    assert step["command"][2] == S3_SCRIPT
    assert step["command"][4:] == [f"clicks/{RUN}"]
    env = env_of(step)
    assert env["BUCKET"] == "duet-backups"
    assert env["AWS_ENDPOINT_URL"] == S3["endpoint"]
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-keys", "key": "access-key-id"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "secret-access-key"}
    }
    assert not any("s3-keys" in arg or "secret" in arg.lower() for arg in step["command"][3:])
    assert {"name": "HOME", "value": "/work"} in step["env"]


def test_a_pass_has_one_name_a_later_pass_another_all_within_63() -> None:
    first = cleanup_job_name("clicks", RUNS, "clicks-backup-9")
    assert first == cleanup_job_name("clicks", RUNS[::-1], "clicks-backup-9")
    assert first != cleanup_job_name("clicks", RUNS, "clicks-backup-10")
    assert first != cleanup_job_name("clicks", RUNS[:1], "clicks-backup-9")
    long = cleanup_job_name("p" * 63, RUNS, "t")
    assert len(long) <= 63


def test_nothing_to_clean_is_refused() -> None:
    with pytest.raises(ValueError, match="no expired runs"):
        build_cleanup_job(with_backup(PVC_CLAIM), design(), CONFIG, runs=[], trigger="t")
    with pytest.raises(ValueError, match="no expired runs"):
        build_cleanup_job(platform(), design(), CONFIG, runs=RUNS, trigger="t")


# -- reading a cleanup Job -----------------------------------------------------------------------


def test_a_cleanup_job_ends_complete_or_failed() -> None:
    def job(*conditions: tuple[str, str]) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}

    assert cleanup_ended(job()) is None
    assert cleanup_ended(job(("Complete", "True"))) is True
    assert cleanup_ended(job(("FailureTarget", "True"), ("Failed", "True"))) is False
    assert cleanup_ended(job(("Failed", "False"))) is None


def test_events_go_to_the_platform_that_owns_the_job() -> None:
    job = build_cleanup_job(with_backup(PVC_CLAIM), design(), CONFIG, runs=RUNS, trigger="t")
    ref = owner_platform(job)
    assert ref is not None
    assert ref["kind"] == "DataPlatform"
    assert ref["metadata"] == {
        "name": "clicks",
        "namespace": "analytics",
        "uid": "0b5c7a1e-0000-4000-8000-000000000001",
    }
    assert owner_platform({"metadata": {}}) is None
