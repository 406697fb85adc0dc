"""deletionPolicy Delete: a DataPlatformBackup's data is deleted before its record goes.

Opt-in, per backup: kopf puts its finalizer only on records whose spec.deletionPolicy is
Delete (the delete handler is filtered on it, handlers/backup.py), so deleting a Retain
record, the default, is never held up by the operator. For a Delete record, each look at it
once it is being deleted takes one step (`BackupDeletion.look`), and the finalizer goes when
a step says so:
1. No `status.location`: the run wrote nothing Duet knows of. Released at once.
2. Its backup Job still runs: wait for it, or what it writes after the cleanup would stay.
3. Its platform is gone: the target cannot be checked (nor a Job owned), so the record is
   released with the Warning `BackupDataKept` naming what stays.
4. The location must be exactly one run of the platform on the target the backup wrote to
   (its own spec.target, else the platform's current spec.backup.target), the check
   retention makes (`run_path`). Anything else is refused (`BackupCleanupRefused`, again on
   each look) and the finalizer kept, until the target is put back or the finalizer is
   removed by hand.
5. The cleanup Job of that one run is applied (render/backup_cleanup.py, the step retention
   runs), then followed: completed, the record is released (`BackupDataDeleted`); failed,
   a Warning quotes the step (`BackupCleanupFailed`, once per Job) and the record stays.
   The failed Job is tried again once it is gone: deleted by hand, or by its TTL (a day).

Pure steps first (`plan_deletion`, `cleanup_progress`), then the kube calls.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from duet_agents.planner.models import PlatformDesign
from duet_operator.job_pods import JOB_UID_LABEL
from duet_operator.kube.client import Kube, KubeError
from duet_operator.models import API_VERSION, DataPlatform, DataPlatformBackup
from duet_operator.models.backup import BackupTarget
from duet_operator.reconcile import Event
from duet_operator.render.backup import backup_job_name, target_of
from duet_operator.render.backup_cleanup import (
    build_deletion_cleanup_job,
    deletion_cleanup_job_name,
    run_path,
)
from duet_operator.render.backup_pod import BackupConfig
from duet_operator.render.config import RenderConfig
from duet_operator.retention import CleanupReason, cleanup_ended, cleanup_failure, job_of

# Seconds between looks while a Job runs (the backup's, or the cleanup's).
POLL_SECONDS = 10.0
# ... after a failed cleanup (waiting for its Job to be deleted), or while the platform has
# no design yet.
RETRY_SECONDS = 30.0
# ... while the location is refused: each look warns again, so not too often.
REFUSED_SECONDS = 300.0
HOW_TO_GIVE_UP = "remove the finalizer to delete the record and keep the data (docs/backup.md)"


class DeletionReason(enum.StrEnum):
    DELETED = "BackupDataDeleted"
    KEPT = "BackupDataKept"


@dataclass(frozen=True)
class DeletionStep:
    """What one look decided: release the record (`delay` None: the finalizer goes), or look
    again after `delay` seconds; with the Events to post about the record, and the `outcome`
    to count in duet_backup_cleanups_total (deleted, failed, refused), if any."""

    message: str
    events: tuple[Event, ...] = ()
    delay: float | None = None
    outcome: str | None = None

    @property
    def released(self) -> bool:
        return self.delay is None


@dataclass(frozen=True)
class Clean:
    """The record's run, `path` on `target`, is to be deleted by a cleanup Job."""

    platform: DataPlatform
    design: PlatformDesign
    target: BackupTarget
    path: str


def release(message: str, *events: Event, outcome: str | None = None) -> DeletionStep:
    return DeletionStep(message, events, outcome=outcome)


def wait(message: str, delay: float, *events: Event, outcome: str | None = None) -> DeletionStep:
    return DeletionStep(message, events, delay, outcome)


def plan_deletion(
    backup: DataPlatformBackup,
    platform: DataPlatform | None,
    backup_job: Mapping[str, Any] | None,
) -> DeletionStep | Clean:
    """What to do about a Delete record being deleted, before any cleanup Job: release it,
    wait, or clean its run. `platform` is None when it is gone, `backup_job` when its run's
    Job is."""
    name = backup.metadata.name
    location = backup.status.location
    if not location:
        return release(f"{name} recorded no location: there is no data Duet knows to delete")
    if backup_job is not None and cleanup_ended(backup_job) is None:
        return wait(
            f"waiting for Job {job_of(backup_job)} to end before deleting what it wrote",
            POLL_SECONDS,
        )
    platform_name = backup.spec.platform_ref.name
    if platform is None:
        message = (
            f"DataPlatform {platform_name} is gone, so {location} cannot be checked against its"
            f" backup target: the data of {name} is kept there; delete it by hand"
            " (docs/backup.md)"
        )
        return release(message, Event("Warning", DeletionReason.KEPT, message))
    target = target_of(backup, platform)
    if target is None:
        return _refused(name, f"DataPlatform {platform_name} has no spec.backup.target")
    try:
        path = run_path(platform_name, target, location)
    except ValueError as e:
        return _refused(name, str(e))
    design = platform.status.design
    if design is None:
        return wait(f"waiting for DataPlatform {platform_name} to have a design", RETRY_SECONDS)
    return Clean(platform, design, target, path)


def _refused(name: str, why: str) -> DeletionStep:
    message = (
        f"the data of {name} is not deleted: {why}. The record is kept (its finalizer) until"
        f" the platform's backup target is where the backup is, or {HOW_TO_GIVE_UP}"
    )
    event = Event("Warning", CleanupReason.REFUSED, message)
    return wait(message, REFUSED_SECONDS, event, outcome="refused")


def cleanup_progress(
    backup: DataPlatformBackup, job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> DeletionStep:
    """What the cleanup Job of a deleted record says: wait while it runs; release once it
    completed; warn and keep the record once it failed."""
    name, location, job_name = backup.metadata.name, backup.status.location, job_of(job)
    ended = cleanup_ended(job)
    if ended is None:
        return wait(f"Job {job_name} is deleting {location}", POLL_SECONDS)
    if ended:
        message = f"deleted the data of {name} at {location} (Job {job_name})"
        return release(message, Event("Normal", DeletionReason.DELETED, message), outcome="deleted")
    message = (
        f"Job {job_name} could not delete the data of {name} at {location}:"
        f" {cleanup_failure(job, pods)}. The record is kept; delete the Job to try again"
        f" (its TTL does after a day), or {HOW_TO_GIVE_UP}"
    )
    event = Event("Warning", CleanupReason.FAILED, message)
    return wait(message, RETRY_SECONDS, event, outcome="failed")


def namespace_terminating(error: KubeError) -> bool:
    """The API server makes nothing new in a namespace being deleted."""
    return error.code == 403 and "being terminated" in str(error)


class BackupDeletion:
    def __init__(self, kube: Kube, render_config: RenderConfig, config: BackupConfig) -> None:
        self.kube = kube
        self.render_config = render_config
        self.config = config
        # Failed cleanup Jobs already warned about (by uid): each look at the record sees it.
        self._warned: set[str] = set()

    async def look(self, backup: DataPlatformBackup) -> DeletionStep:
        """One step of the deletion of a Delete record: its cleanup Job applied or read."""
        namespace = backup.metadata.namespace or "default"
        backup_job = None
        if backup.status.location:
            backup_job = await self.kube.get("batch/v1", "Job", backup_job_name(backup), namespace)
        platform_name = backup.spec.platform_ref.name
        body = await self.kube.get(API_VERSION, "DataPlatform", platform_name, namespace)
        try:
            platform = DataPlatform.model_validate(body) if body is not None else None
        except ValidationError:
            message = f"DataPlatform {platform_name} cannot be read (see its status)"
            return wait(message, REFUSED_SECONDS)
        planned = plan_deletion(backup, platform, backup_job)
        if isinstance(planned, DeletionStep):
            return planned
        name = deletion_cleanup_job_name(backup.metadata.name, planned.path)
        job = await self.kube.get("batch/v1", "Job", name, namespace)
        if job is None:
            return await self._start(backup, planned)
        uid = str((job.get("metadata") or {}).get("uid", ""))
        pods: list[dict[str, Any]] = []
        if cleanup_ended(job) is False:
            pods = await self.kube.list_objects("v1", "Pod", namespace, f"{JOB_UID_LABEL}={uid}")
        step = cleanup_progress(backup, job, pods)
        if cleanup_ended(job) is False:
            if uid in self._warned:  # warned and counted once per Job
                step = replace(step, events=(), outcome=None)
            self._warned.add(uid)
        return step

    async def _start(self, backup: DataPlatformBackup, clean: Clean) -> DeletionStep:
        manifest = build_deletion_cleanup_job(
            backup.metadata.name,
            clean.platform,
            clean.design,
            self.render_config,
            self.config,
            target=clean.target,
            path=clean.path,
        )
        location = backup.status.location
        try:
            await self.kube.apply(manifest)
        except KubeError as e:
            if namespace_terminating(e):
                message = (
                    f"the namespace is being deleted, so no Job can delete {location}:"
                    f" the data of {backup.metadata.name} is kept there; delete it by hand"
                    " (docs/backup.md)"
                )
                return release(message, Event("Warning", DeletionReason.KEPT, message))
            return wait(f"creating the cleanup Job failed: {e}", POLL_SECONDS)
        message = f"Job {job_of(manifest)} deletes {location}; the record goes once it completes"
        return wait(message, POLL_SECONDS, Event("Normal", CleanupReason.STARTED, message))


__all__ = [
    "BackupDeletion",
    "Clean",
    "DeletionReason",
    "DeletionStep",
    "cleanup_progress",
    "namespace_terminating",
    "plan_deletion",
]
