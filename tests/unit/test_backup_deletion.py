"""deletionPolicy Delete, the pure parts: what a look at a deleted record decides (release,
wait, refuse, clean), what its cleanup Job says, the Job as rendered, the field in the model
and the CRD, and the filter that gives only Delete records kopf's finalizer."""

from __future__ import annotations

from typing import Any

import pytest

from duet_agents.backup.cleanup import PVC_SCRIPT, S3_SCRIPT
from duet_operator.backup_deletion import (
    Clean,
    DeletionReason,
    DeletionStep,
    cleanup_progress,
    namespace_terminating,
    plan_deletion,
)
from duet_operator.crdgen import KINDS, build_crd
from duet_operator.handlers.backup import deletes_data
from duet_operator.kube.client import KubeError
from duet_operator.models import DataPlatform, DataPlatformBackup
from duet_operator.models.backup import DELETION_POLICY_FIXED, BackupDeletionPolicy
from duet_operator.render.backup_cleanup import (
    CLEANUP,
    DELETED_ANNOTATION,
    DELETION_CLEANUP,
    build_deletion_cleanup_job,
    deletion_cleanup_job_name,
)
from duet_operator.render.config import RenderConfig
from duet_operator.retention import CleanupReason
from tests.support.platforms import design, platform, s3_target

RUN = "20250301T020005Z"
S3 = s3_target()
ON_CLAIM = f"pvc://clicks-backups/clicks/{RUN}"
CLAIM_BACKUP = {"schedule": "0 2 * * *", "target": {"pvc": {"size": "1Ti"}}}


def provisioned(**spec: Any) -> DataPlatform:
    """The platform `clicks`, with a design, backing up to the claim Duet makes."""
    spec.setdefault("backup", CLAIM_BACKUP)
    found = platform(**spec)
    return found.model_copy(update={"status": found.status.model_copy(update={"design": design()})})


def deleted(location: str | None = ON_CLAIM, **spec: Any) -> DataPlatformBackup:
    return DataPlatformBackup.model_validate(
        {
            "metadata": {
                "name": "before-migration",
                "namespace": "analytics",
                "creationTimestamp": "2025-03-01T02:00:05Z",
                "deletionTimestamp": "2025-03-09T00:00:00Z",
            },
            "spec": {"platformRef": {"name": "clicks"}, "deletionPolicy": "Delete"} | spec,
            "status": {"phase": "Completed", "location": location} if location else {},
        }
    )


def job(*conditions: str, name: str = "j", uid: str = "u-1") -> dict[str, Any]:
    found = [{"type": c, "status": "True"} for c in conditions]
    return {"metadata": {"name": name, "uid": uid}, "status": {"conditions": found}}


def reasons(step: DeletionStep) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in step.events]


# -- before any cleanup Job --------------------------------------------------------------------


def test_a_backup_that_recorded_no_location_is_released_at_once() -> None:
    step = plan_deletion(deleted(location=None), provisioned(), None)
    assert isinstance(step, DeletionStep)
    assert step.released
    assert step.events == ()
    assert "no location" in step.message


def test_a_run_still_in_progress_is_waited_for() -> None:
    step = plan_deletion(deleted(), provisioned(), job(name="before-migration-backup"))
    assert isinstance(step, DeletionStep)
    assert not step.released
    assert "before-migration-backup" in step.message


@pytest.mark.parametrize("ended", ["Complete", "Failed"])
def test_an_ended_run_on_the_platforms_target_is_cleaned(ended: str) -> None:
    owner = provisioned()
    planned = plan_deletion(deleted(), owner, job(ended))
    assert isinstance(planned, Clean)
    assert planned.path == f"clicks/{RUN}"
    assert planned.target == owner.spec.backup.target  # type: ignore[union-attr]
    assert planned.platform is owner


def test_a_backup_with_a_target_of_its_own_is_cleaned_there() -> None:
    location = f"s3://duet-backups/prod/clicks/{RUN}"
    planned = plan_deletion(deleted(location, target={"s3": S3}), provisioned(), None)
    assert isinstance(planned, Clean)
    assert planned.target.s3 is not None
    assert planned.path == f"prod/clicks/{RUN}"


def test_with_the_platform_gone_the_record_goes_and_a_warning_says_the_data_stays() -> None:
    step = plan_deletion(deleted(), None, None)
    assert isinstance(step, DeletionStep)
    assert step.released
    assert reasons(step) == [("Warning", DeletionReason.KEPT)]
    assert ON_CLAIM in step.events[0].message
    assert "by hand" in step.events[0].message
    assert step.outcome is None  # nothing was tried: not a cleanup to count


@pytest.mark.parametrize(
    "location",
    [
        "pvc://clicks-backups/../../etc",
        "pvc://clicks-backups/",
        f"pvc://clicks-backups/clicks/{RUN}/..",
        f"pvc://clicks-backups/other/{RUN}",
        f"pvc://another-claim/clicks/{RUN}",  # a target changed since
        f"s3://duet-backups/clicks/{RUN}",
        f"/backups/clicks/{RUN}",
        "pvc://clicks-backups/clicks",
    ],
)
def test_a_location_that_is_not_one_run_on_the_target_is_refused_and_kept(location: str) -> None:
    step = plan_deletion(deleted(location), provisioned(), None)
    assert isinstance(step, DeletionStep)
    assert not step.released
    assert reasons(step) == [("Warning", CleanupReason.REFUSED)]
    assert "remove the finalizer" in step.message
    assert step.outcome == "refused"


def test_no_target_to_check_against_is_refused() -> None:
    step = plan_deletion(deleted(), provisioned(backup=None), None)
    assert isinstance(step, DeletionStep)
    assert not step.released
    assert "has no spec.backup.target" in step.message


def test_a_platform_without_a_design_is_waited_for() -> None:
    step = plan_deletion(deleted(), platform(backup=CLAIM_BACKUP), None)
    assert isinstance(step, DeletionStep)
    assert not step.released
    assert step.events == ()


# -- the cleanup Job's outcome -----------------------------------------------------------------


def failed_pod() -> dict[str, Any]:
    ending = {"exitCode": 1, "reason": "Error", "message": "refusing to delete: a symbolic link"}
    return {
        "metadata": {"creationTimestamp": "2025-03-09T00:00:01Z"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"name": "cleanup", "state": {"terminated": ending}}],
        },
    }


def test_while_the_cleanup_runs_the_record_waits() -> None:
    step = cleanup_progress(deleted(), job(name="c"), [])
    assert not step.released
    assert step.events == ()
    assert step.outcome is None


def test_a_completed_cleanup_releases_the_record() -> None:
    step = cleanup_progress(deleted(), job("Complete", name="c"), [])
    assert step.released
    assert reasons(step) == [("Normal", DeletionReason.DELETED)]
    assert ON_CLAIM in step.message
    assert step.outcome == "deleted"


def test_a_failed_cleanup_keeps_the_record_and_quotes_the_step() -> None:
    step = cleanup_progress(deleted(), job("Failed", name="c"), [failed_pod()])
    assert not step.released
    assert reasons(step) == [("Warning", CleanupReason.FAILED)]
    message = step.events[0].message
    assert "step cleanup exited with code 1" in message
    assert "a symbolic link" in message
    assert "delete the Job to try again" in message
    assert step.outcome == "failed"


def test_a_namespace_being_deleted_is_told_from_other_refusals() -> None:
    terminating = "unable to create new content in namespace x because it is being terminated"
    assert namespace_terminating(KubeError(403, "Forbidden", terminating))
    assert not namespace_terminating(KubeError(403, "Forbidden", "jobs.batch is forbidden"))
    assert not namespace_terminating(KubeError(409, "Conflict", terminating))


# -- the Job -------------------------------------------------------------------------------------


def test_the_deletion_cleanup_is_one_run_owned_by_the_platform_and_apart_from_retention() -> None:
    owner = provisioned()
    assert owner.spec.backup is not None
    built = build_deletion_cleanup_job(
        "before-migration",
        owner,
        design(),
        RenderConfig(),
        target=owner.spec.backup.target,
        path=f"clicks/{RUN}",
    )
    meta = built["metadata"]
    assert meta["name"] == deletion_cleanup_job_name("before-migration", f"clicks/{RUN}")
    assert meta["ownerReferences"][0]["kind"] == "DataPlatform"
    assert meta["labels"]["app.kubernetes.io/component"] == DELETION_CLEANUP != CLEANUP
    assert meta["annotations"] == {DELETED_ANNOTATION: "before-migration"}
    (step,) = built["spec"]["template"]["spec"]["containers"]
    assert step["command"][2] == PVC_SCRIPT
    assert step["command"][4:] == [f"clicks/{RUN}"]
    (volume,) = built["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "clicks-backups"


def test_a_backups_own_s3_target_is_cleaned_with_its_own_keys() -> None:
    own = deleted(f"s3://duet-backups/prod/clicks/{RUN}", target={"s3": S3})
    assert own.spec.target is not None
    built = build_deletion_cleanup_job(
        own.metadata.name, provisioned(), design(), RenderConfig(),
        target=own.spec.target, path=f"prod/clicks/{RUN}",
    )  # fmt: skip
    (step,) = built["spec"]["template"]["spec"]["containers"]
    assert step["command"][2] == S3_SCRIPT
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in step["env"]}
    assert env["BUCKET"] == "duet-backups"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "secret-access-key"}
    }


def test_a_deletion_job_has_one_name_per_record_and_path_within_63() -> None:
    name = deletion_cleanup_job_name("before-migration", f"clicks/{RUN}")
    assert name == deletion_cleanup_job_name("before-migration", f"clicks/{RUN}")
    assert name != deletion_cleanup_job_name("before-migration", f"other/{RUN}")
    assert name.startswith("before-migration-cleanup-")
    assert len(deletion_cleanup_job_name("b" * 253, f"clicks/{RUN}")) <= 63


# -- the field, the CRD and the finalizer's filter ----------------------------------------------


def test_deletion_policy_defaults_to_retain() -> None:
    backup = DataPlatformBackup.model_validate(
        {"metadata": {"name": "b"}, "spec": {"platformRef": {"name": "clicks"}}}
    )
    assert backup.spec.deletion_policy is BackupDeletionPolicy.RETAIN
    assert deleted().spec.deletion_policy is BackupDeletionPolicy.DELETE


def test_the_crd_fixes_the_deletion_policy_naming_it() -> None:
    kind = next(k for k in KINDS if k.kind == "DataPlatformBackup")
    schema = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert spec["properties"]["deletionPolicy"]["enum"] == ["Retain", "Delete"]
    assert spec["properties"]["deletionPolicy"]["default"] == "Retain"
    rule = next(
        r for r in spec["x-kubernetes-validations"] if r.get("fieldPath") == ".deletionPolicy"
    )
    assert rule["message"] == DELETION_POLICY_FIXED
    assert "oldSelf.deletionPolicy" in rule["rule"]


@pytest.mark.parametrize(
    ("spec", "finalized"),
    [({"deletionPolicy": "Delete"}, True), ({"deletionPolicy": "Retain"}, False), ({}, False)],
)
def test_only_delete_records_match_the_delete_handler(
    spec: dict[str, Any], finalized: bool
) -> None:
    assert deletes_data(spec=spec) is finalized  # type: ignore[arg-type]
