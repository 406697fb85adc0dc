"""Running backups: a DataPlatformBackup's Job, its outcome in status, and what the platform's
schedule needs beside its reconcile.

Pure parts first (what status a Job and its pods say, what each step reported), then
`BackupRunner`, which makes the kube calls. One run is one Job:
- on demand, a DataPlatformBackup whose Job the operator renders (`build_backup_job`), owned
  by it, and applies once: a Job's pod template is immutable and a run is a one-off, so a Job
  is never re-rendered against a later design (that apply would be refused);
- scheduled, a Job the platform's CronJob makes, which the operator *adopts*: it records the
  run as a DataPlatformBackup named as the Job and labelled `scheduled-by: <platform>`, then
  labels the Job with that record's name. One kind of object then shows every backup, with
  the same status, whoever started it; and the Job needs no API access of its own (the other
  way, a pod that creates its own record, would need a token able to write
  DataPlatformBackups in every backup pod). The label on the Job also says the run was
  recorded: a record deleted later (by retention, or by hand) is not made again.

Each step of a run writes `{"component", "location", "bytes"}` as its termination message
(render/backup.py); the operator reads them from the Job's pod when the Job completes.

Retention and the cleanup of what expired runs wrote are retention.py's; the deletion of an
on-demand run's data with its record (deletionPolicy Delete) is backup_deletion.py's.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from duet_agents.backup.layout import parse_stamp, stamp
from duet_operator.backup_deletion import BackupDeletion
from duet_operator.job_pods import (
    JOB_UID_LABEL,
    any_step_started,
    failure_detail,
    job_condition,
    newest,
    statuses,
    terminated,
)
from duet_operator.kube.client import Kube, KubeError
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.backup import (
    BackupPhase,
    BackupTarget,
    DataPlatformBackup,
    DataPlatformBackupStatus,
)
from duet_operator.models.dataplatform import Phase
from duet_operator.reconcile import Event
from duet_operator.render.backup import (
    BACKUP_LABEL,
    BackupConfig,
    backup_job_name,
    build_backup_claim,
    build_backup_job,
    build_scheduled_record,
    cronjob_name,
    describe_location,
    is_scheduled,
    job_label,
    target_of,
)
from duet_operator.render.naming import PLATFORM_LABEL
from duet_operator.retention import Retention, job_of, timestamp
from duet_operator.settings import OperatorSettings

log = logging.getLogger("duet.backups")
KIND = "DataPlatformBackup"
# A platform being made usually is within a minute; look again then.
WAIT_SECONDS = 15
TERMINAL = (BackupPhase.COMPLETED, BackupPhase.FAILED)


class BackupReason(enum.StrEnum):
    """The reasons of a backup's Events, one per phase it enters."""

    PENDING = "BackupPending"
    RUNNING = "BackupRunning"
    COMPLETED = "BackupCompleted"
    FAILED = "BackupFailed"
    SCHEDULE_REMOVED = "BackupScheduleRemoved"


_REASONS = {
    BackupPhase.PENDING: BackupReason.PENDING,
    BackupPhase.RUNNING: BackupReason.RUNNING,
    BackupPhase.COMPLETED: BackupReason.COMPLETED,
    BackupPhase.FAILED: BackupReason.FAILED,
}


# -- what the pods said --------------------------------------------------------------------


@dataclass(frozen=True)
class StepReport:
    """One step's termination message."""

    container: str
    component: str
    location: str
    bytes: int | None


def step_reports(pods: Iterable[Mapping[str, Any]]) -> list[StepReport]:
    """The reports of the run's succeeded pod, in step order. A message that is not a report
    (an older image, a step that wrote nothing) is skipped: size is then only what was said."""
    pod = newest(pods, "Succeeded")
    if pod is None:
        return []
    reports = []
    for container in statuses(pod):
        message = terminated(container).get("message")
        if not message:
            continue
        try:
            data = json.loads(message)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("location"), str):
            continue
        size = data.get("bytes")
        reports.append(
            StepReport(
                container=str(container.get("name", "")),
                component=str(data.get("component", "")),
                location=data["location"],
                bytes=size if isinstance(size, int) and size >= 0 else None,
            )
        )
    return reports


def _stamp_index(location: str) -> int | None:
    parts = location.split("/")
    for index, part in enumerate(parts):
        try:
            parse_stamp(part)
        except ValueError:
            continue
        return index
    return None


def run_stamp(reports: Iterable[StepReport]) -> str | None:
    """The run's stamp, from the directory its steps wrote (a scheduled run picks it when it
    starts)."""
    for report in reports:
        index = _stamp_index(report.location)
        if index is not None:
            return report.location.split("/")[index]
    return None


def backup_size(reports: Iterable[StepReport]) -> int | None:
    """The sum of each piece's bytes. A piece copied on (PostgreSQL's base backup written to
    scratch space, then uploaded) is reported twice under the same `<stamp>/<component>`
    path: counted once, as its last report says. None when no step said its size."""
    pieces: dict[str, int | None] = {}
    for report in reports:
        index = _stamp_index(report.location)
        key = "/".join(report.location.split("/")[index:]) if index is not None else report.location
        pieces[key] = report.bytes
    sizes = [size for size in pieces.values() if size is not None]
    return sum(sizes) if sizes else None


# -- status ----------------------------------------------------------------------------------


def job_status(
    backup: DataPlatformBackup,
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    target: BackupTarget | None,
    now: datetime,
) -> DataPlatformBackupStatus:
    """The status a run's Job and its pods say: a pure function of what was read. `target`
    (None when its platform is gone) says where the run is; an on-demand run's directory is
    known before it runs (its stamp is the backup's creation time), a scheduled run's is
    read from its steps' reports."""
    old = backup.status
    state = job.get("status") or {}
    started = timestamp(state.get("startTime")) or old.started_at
    reports = step_reports(pods)
    location = run_location(backup, target, reports)
    completed_at = None
    size = old.size_bytes
    if (complete := job_condition(job, "Complete")) is not None:
        phase = BackupPhase.COMPLETED
        completed_at = (
            timestamp(state.get("completionTime"))
            or timestamp(complete.get("lastTransitionTime"))
            or now
        )
        size = backup_size(reports)
        pieces = ", ".join(sorted({r.component for r in reports})) or "the platform"
        amount = f"{size} bytes" if size is not None else "size unknown"
        message = f"backed up {pieces} ({amount})" + (f" to {location}" if location else "")
    elif (failed := job_condition(job, "Failed")) is not None:
        phase = BackupPhase.FAILED
        completed_at = timestamp(failed.get("lastTransitionTime")) or now
        why = failed.get("message") or failed.get("reason") or "the Job failed"
        detail = failure_detail(pods)
        message = f"the backup Job failed: {why}" + (f"; {detail}" if detail else "")
    elif any_step_started(pods):
        phase, message = BackupPhase.RUNNING, f"Job {job_of(job)} is running"
    else:
        phase, message = BackupPhase.PENDING, f"Job {job_of(job)} is waiting for its pod to start"
    duration = (completed_at - started).total_seconds() if completed_at and started else None
    return DataPlatformBackupStatus(
        phase=phase,
        observed_generation=backup.metadata.generation,
        started_at=started,
        completed_at=completed_at,
        size_bytes=size,
        duration_seconds=max(duration, 0.0) if duration is not None else None,
        location=location or old.location,
        message=message,
    )


def run_location(
    backup: DataPlatformBackup, target: BackupTarget | None, reports: list[StepReport]
) -> str | None:
    """`pvc://claim/...` or `s3://...` of the run's directory; without a target, the
    directory as its first step wrote it; None while unknown."""
    created = backup.metadata.creation_timestamp
    run = run_stamp(reports) if is_scheduled(backup) or created is None else stamp(created)
    if target is not None and run is not None:
        return describe_location(backup.spec.platform_ref.name, target, run)
    for report in reports:
        index = _stamp_index(report.location)
        if index is not None:
            return "/".join(report.location.split("/")[: index + 1])
    return None


def problem_status(
    backup: DataPlatformBackup, phase: BackupPhase, message: str, *, now: datetime
) -> DataPlatformBackupStatus:
    """A run that cannot start (yet), or whose Job went missing."""
    old = backup.status
    finished = phase in TERMINAL
    return old.model_copy(
        update={
            "phase": phase,
            "observed_generation": backup.metadata.generation,
            "message": message,
            "completed_at": (old.completed_at or now) if finished else old.completed_at,
        }
    )


def phase_events(old: DataPlatformBackupStatus, new: DataPlatformBackupStatus) -> list[Event]:
    """One Event per phase entered."""
    if new.phase is None or new.phase == old.phase:
        return []
    kind = "Warning" if new.phase == BackupPhase.FAILED else "Normal"
    return [Event(kind, _REASONS[new.phase], new.message or str(new.phase))]


# -- the kube calls --------------------------------------------------------------------------


@dataclass
class BackupOutcome:
    status: DataPlatformBackupStatus
    events: list[Event] = field(default_factory=list)
    # Seconds until the run should be looked at again (the platform is not there yet).
    retry: float | None = None
    # Set on the reconcile that saw the run end (for metrics and retention).
    finished: BackupPhase | None = None
    platform: DataPlatform | None = None


class BackupRunner:
    def __init__(
        self, kube: Kube, settings: OperatorSettings, config: BackupConfig | None = None
    ) -> None:
        self.kube = kube
        self.render_config = settings.render_config()
        self.config = config or settings.backup_config()
        self.retention = Retention(kube, self.render_config, self.config)
        self.deletion = BackupDeletion(kube, self.render_config, self.config)

    async def reconcile(self, backup: DataPlatformBackup, *, now: datetime) -> BackupOutcome:
        """Start the run if it has no Job yet, then report what its Job says."""
        old = backup.status
        if old.phase in TERMINAL:
            return BackupOutcome(old)
        namespace = backup.metadata.namespace or "default"
        platform, problem = await self._platform(backup.spec.platform_ref.name, namespace)
        job = await self.kube.get("batch/v1", "Job", backup_job_name(backup), namespace)
        retry = None
        if job is None and (old.phase == BackupPhase.RUNNING or is_scheduled(backup)):
            # A run seen running, or a CronJob's run, has no Job to make again: its outcome
            # is lost with its Job.
            status = problem_status(
                backup,
                BackupPhase.FAILED,
                f"Job {backup_job_name(backup)} was deleted before its outcome was seen",
                now=now,
            )
        elif job is None:
            status, job, retry = await self._start(backup, platform, problem, now=now)
        if job is not None:
            pods = await self.kube.list_objects(
                "v1", "Pod", namespace, f"{JOB_UID_LABEL}={job['metadata'].get('uid', '')}"
            )
            target = target_of(backup, platform)
            status = job_status(backup, job, pods, target=target, now=now)
        if status.wire() != old.wire():
            await self.kube.patch_status(
                API_VERSION, KIND, backup.metadata.name, namespace, status.wire()
            )
        finished = status.phase if status.phase in TERMINAL else None
        return BackupOutcome(status, phase_events(old, status), retry, finished, platform)

    async def _platform(self, name: str, namespace: str) -> tuple[DataPlatform | None, str | None]:
        body = await self.kube.get(API_VERSION, "DataPlatform", name, namespace)
        if body is None:
            return None, f"DataPlatform {name} not found in {namespace}"
        try:
            platform = DataPlatform.model_validate(body)
        except ValidationError:
            return None, f"DataPlatform {name} cannot be read (see its status)"
        if platform.status.design is None or platform.status.phase in (
            None,
            Phase.PLANNING,
            Phase.PROVISIONING,
        ):
            return platform, f"waiting for DataPlatform {name} to be provisioned"
        return platform, None

    async def _start(
        self,
        backup: DataPlatformBackup,
        platform: DataPlatform | None,
        problem: str | None,
        *,
        now: datetime,
    ) -> tuple[DataPlatformBackupStatus, dict[str, Any] | None, float | None]:
        """The run's Job, applied; or why not, and when to look again."""
        if problem is not None or platform is None or platform.status.design is None:
            message = problem or "the platform has no design yet"
            return problem_status(backup, BackupPhase.PENDING, message, now=now), None, WAIT_SECONDS
        try:
            manifest = build_backup_job(
                backup, platform, platform.status.design, self.render_config, self.config
            )
        except ValueError as e:
            # The spec cannot change and the platform's target is not the backup's to fix.
            failed = problem_status(backup, BackupPhase.FAILED, str(e), now=now)
            return failed, None, None
        try:
            job = await self.kube.apply(manifest)
        except KubeError as e:
            message = f"creating the backup Job failed: {e}"
        else:
            return problem_status(backup, BackupPhase.PENDING, "", now=now), job, None
        return problem_status(backup, BackupPhase.PENDING, message, now=now), None, WAIT_SECONDS

    # -- scheduled runs ----------------------------------------------------------------------

    async def adopt(self, namespace: str, job: str, platform: str) -> str:
        """Record a run of the platform's CronJob as a DataPlatformBackup named as its Job,
        then label the Job with it. In this order: a crash between the two leaves a Job
        without the label, which the next event of the Job adopts again (apply is
        idempotent); the other order could lose the run."""
        await self.kube.apply(build_scheduled_record(platform, namespace, job))
        await self.kube.apply(job_label(namespace, job, job))
        log.info("%s/%s: recorded the scheduled backup run of %s", namespace, job, platform)
        return job

    async def sync_schedule(self, platform: DataPlatform) -> list[Event]:
        """What the platform's reconcile does not do for spec.backup: make the claim of a
        target given by size (not owned by the platform, so not among its children), and
        delete the CronJob once spec.backup is gone (the reconcile applies what is rendered
        but deletes nothing that no longer is)."""
        namespace = platform.metadata.namespace or "default"
        if platform.spec.backup is not None:
            await self.kube.apply_all(build_backup_claim(platform))
            return []
        name = cronjob_name(platform.metadata.name)
        cronjob = await self.kube.get("batch/v1", "CronJob", name, namespace)
        labels = ((cronjob or {}).get("metadata") or {}).get("labels") or {}
        if cronjob is None or labels.get(PLATFORM_LABEL) != platform.metadata.name:
            return []
        await self.kube.delete("batch/v1", "CronJob", name, namespace)
        return [
            Event("Normal", BackupReason.SCHEDULE_REMOVED, f"spec.backup removed: deleted {name}")
        ]


__all__ = [
    "BACKUP_LABEL",
    "KIND",
    "BackupOutcome",
    "BackupReason",
    "BackupRunner",
    "StepReport",
    "backup_job_name",
    "backup_size",
    "failure_detail",
    "is_scheduled",
    "job_status",
    "phase_events",
    "problem_status",
    "run_stamp",
    "step_reports",
    "target_of",
]
