"""Retention of scheduled backups, and the cleanup Jobs that delete what runs wrote.

A retention pass (when a scheduled run completes) chooses the expired runs
(duet_agents.backup.retention), checks each record's location against the platform's
target, and applies one cleanup Job for those that pass (render/backup_cleanup.py). The
records go when that Job completes (`Retention.settle`, on the Job's events). A failed
cleanup keeps the records, so the data is never left without one; the next pass tries
again. A location that is not a run of the platform on its target (edited, or from an older
target) is refused and its record kept.

The same Job prunes PostgreSQL's WAL archive before the oldest base backup still kept
(`wal_keep_from`): every backup of the platform counts, on-demand ones too, since a restore
from any of them replays the archive from its start.

Pure parts first (the plan of a pass, what a cleanup Job says), then `Retention`, which makes
the kube calls.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from duet_agents.backup.layout import Component, parse_stamp
from duet_agents.backup.retention import BackupRecord, expired
from duet_operator.job_pods import JOB_UID_LABEL, failure_detail, job_condition
from duet_operator.kube.client import Kube
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.backup import BackupTarget
from duet_operator.reconcile import Event
from duet_operator.render.backup import COMPONENT_LABEL, SCHEDULED_LABEL
from duet_operator.render.backup_cleanup import (
    CLEANUP,
    ExpiredRun,
    build_cleanup_job,
    expired_records,
    run_path,
)
from duet_operator.render.backup_pod import BackupConfig
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import PLATFORM_LABEL

log = logging.getLogger("duet.backups")
KIND = "DataPlatformBackup"
# A pass deletes at most this many runs' data (a retention cut from hundreds to a few); the
# rest expire again on the next pass.
MAX_CLEANUP_RUNS = 50


class CleanupReason(enum.StrEnum):
    """The reasons of the Events about deleting backups' data."""

    EXPIRED = "BackupsExpired"
    STARTED = "BackupCleanupStarted"
    FAILED = "BackupCleanupFailed"
    REFUSED = "BackupCleanupRefused"


def timestamp(value: Any) -> datetime | None:
    """A time as the API writes it; None for anything else."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def job_of(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("name", ""))


# -- the plan of a pass ------------------------------------------------------------------------


def retention_records(backups: Iterable[Mapping[str, Any]]) -> list[BackupRecord]:
    """Scheduled backups as retention sees them: started when their run started (or, not
    started yet, when they were recorded); succeeded True, False, or None while running."""
    records = []
    for body in backups:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        started = timestamp(status.get("startedAt")) or timestamp(meta.get("creationTimestamp"))
        if started is None:
            continue
        succeeded = {"Completed": True, "Failed": False}.get(str(status.get("phase")))
        name = str(meta.get("name"))
        records.append(BackupRecord(name=name, started=started, succeeded=succeeded))
    return records


@dataclass(frozen=True)
class RetentionPlan:
    """What one retention pass does with the expired runs, oldest first."""

    # Their data is deleted by a cleanup Job; their records once it completes.
    clean: list[ExpiredRun] = field(default_factory=list)
    # No location recorded (a run that failed before its steps reported one): nothing Duet
    # knows to delete, so the record goes at once.
    forget: list[str] = field(default_factory=list)
    # (record, why): a location that is not one run of the platform on its target; the
    # record is kept, and the data left alone.
    refused: list[tuple[str, str]] = field(default_factory=list)


def retention_plan(
    backups: Sequence[Mapping[str, Any]], platform: str, target: BackupTarget, keep: int
) -> RetentionPlan:
    """Which of a platform's scheduled backups expire, and how each is let go."""
    locations = {
        str((body.get("metadata") or {}).get("name")): (body.get("status") or {}).get("location")
        for body in backups
        if not (body.get("metadata") or {}).get("deletionTimestamp")
    }
    live = [b for b in backups if str((b.get("metadata") or {}).get("name")) in locations]
    plan = RetentionPlan()
    for record in expired(retention_records(live), keep):
        location = locations.get(record.name)
        if not location:
            plan.forget.append(record.name)
            continue
        try:
            path = run_path(platform, target, str(location))
        except ValueError as e:
            plan.refused.append((record.name, str(e)))
            continue
        if len(plan.clean) < MAX_CLEANUP_RUNS:
            plan.clean.append(ExpiredRun(record.name, path))
    return plan


def platform_backups(
    backups: Iterable[Mapping[str, Any]], platform: str
) -> list[Mapping[str, Any]]:
    """The backups of `platform` among a namespace's: its scheduled runs and the on-demand
    ones that name it."""
    found = []
    for body in backups:
        labels = (body.get("metadata") or {}).get("labels") or {}
        ref = ((body.get("spec") or {}).get("platformRef") or {}).get("name")
        if labels.get(SCHEDULED_LABEL) == platform or ref == platform:
            found.append(body)
    return found


def scheduled_backups(
    backups: Iterable[Mapping[str, Any]], platform: str
) -> list[Mapping[str, Any]]:
    return [
        b
        for b in backups
        if ((b.get("metadata") or {}).get("labels") or {}).get(SCHEDULED_LABEL) == platform
    ]


def wal_keep_from(
    backups: Sequence[Mapping[str, Any]], plan: RetentionPlan, platform: str, target: BackupTarget
) -> tuple[str | None, str]:
    """The run before whose start the WAL archive may be pruned once `plan` is carried out,
    and why; (None, why not) when no such run is known. `backups` are all of the platform's
    (`platform_backups`): those the plan lets go do not count, nor do failed ones (not
    restorable), ones being deleted, ones without PostgreSQL, or ones elsewhere than on
    `target` (another archive). The oldest of the rest, by its run's stamp, must have
    completed: an older one still running needs the WAL from its own start."""
    gone = {run.record for run in plan.clean} | set(plan.forget)
    kept: list[tuple[str, str]] = []  # (stamp, run path)
    running: list[tuple[datetime, str]] = []
    for record in backups:
        meta = record.get("metadata") or {}
        name = str(meta.get("name"))
        components = (record.get("spec") or {}).get("components") or [Component.POSTGRES]
        if name in gone or meta.get("deletionTimestamp") or Component.POSTGRES not in components:
            continue
        status = record.get("status") or {}
        phase = status.get("phase")
        if phase == "Completed":
            try:
                path = run_path(platform, target, str(status.get("location") or ""))
            except ValueError:
                continue
            kept.append((path.rpartition("/")[2], path))
        elif phase != "Failed":
            started = timestamp(status.get("startedAt")) or timestamp(meta.get("creationTimestamp"))
            if started is not None:
                running.append((started, name))
    if not kept:
        return None, "no completed backup with PostgreSQL is kept on the target"
    stamp, oldest = min(kept)
    older = sorted(name for started, name in running if started <= parse_stamp(stamp))
    if older:
        return None, f"{older[0]}, older than the oldest backup kept, is still running"
    return oldest, "the oldest backup kept"


# -- what a cleanup Job says -------------------------------------------------------------------


def cleanup_ended(job: Mapping[str, Any]) -> bool | None:
    """True when the cleanup Job completed, False when it failed, None while it runs."""
    if job_condition(job, "Complete") is not None:
        return True
    if job_condition(job, "Failed") is not None:
        return False
    return None


def cleanup_failure(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> str:
    """Why a cleanup Job failed: its failed step's words, else the Job's own."""
    failed = job_condition(job, "Failed") or {}
    return failure_detail(pods) or failed.get("message") or failed.get("reason") or "failed"


def owner_platform(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """A reference to the platform that owns `job`, enough to post Events about it."""
    meta = job.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "DataPlatform":
            return {
                "apiVersion": owner.get("apiVersion", API_VERSION),
                "kind": "DataPlatform",
                "metadata": {
                    "name": owner.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": owner.get("uid"),
                },
            }
    return None


def platform_reference(platform: DataPlatform) -> dict[str, Any]:
    meta = platform.metadata
    return {
        "apiVersion": API_VERSION,
        "kind": "DataPlatform",
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
    }


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


# -- the kube calls --------------------------------------------------------------------------


@dataclass
class RetentionReport:
    """What a retention pass, or the end of a cleanup Job, did: Events about the platform
    (`platform`, a reference to post them on) and runs counted by outcome (`deleted`,
    `failed`, `refused`) for the metrics."""

    platform: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)


class Retention:
    def __init__(self, kube: Kube, render_config: RenderConfig, config: BackupConfig) -> None:
        self.kube = kube
        self.render_config = render_config
        self.config = config
        # The uids of failed cleanup Jobs already reported: a Job's status changes a few
        # times after it fails, and each change is an event.
        self._failed_cleanups: set[str] = set()

    async def apply(self, platform: DataPlatform, *, trigger: str) -> RetentionReport:
        """One retention pass over the scheduled backups of `platform`, started by the
        completion of the run `trigger`: records without a location go now; the data of the
        others is deleted by a cleanup Job, and their records when it completes (`settle`).
        No Job while another cleanup of the platform still runs: its runs could overlap, and
        the next pass takes them."""
        report = RetentionReport(platform_reference(platform))
        backup, design = platform.spec.backup, platform.status.design
        if backup is None or design is None:
            return report
        name = platform.metadata.name
        namespace = platform.metadata.namespace or "default"
        # Every backup in the namespace: the on-demand ones of the platform keep WAL too.
        everything = await self.kube.list_objects(API_VERSION, KIND, namespace, "")
        found = scheduled_backups(everything, name)
        plan = retention_plan(found, name, backup.target, backup.retention)
        forgotten = [
            n for n in plan.forget if await self.kube.delete(API_VERSION, KIND, n, namespace)
        ]
        if forgotten:
            message = (
                f"retention deleted {_names(forgotten)} (no location recorded, no data to delete)"
            )
            report.events.append(Event("Normal", CleanupReason.EXPIRED, message))
        for record, why in plan.refused:
            message = f"retention kept {record}: its data is not deleted, {why}"
            report.events.append(Event("Warning", CleanupReason.REFUSED, message))
        if plan.refused:
            report.runs["refused"] = len(plan.refused)
        if not plan.clean:
            return report
        selector = f"{PLATFORM_LABEL}={name},{COMPONENT_LABEL}={CLEANUP}"
        jobs = await self.kube.list_objects("batch/v1", "Job", namespace, selector)
        running = [job_of(j) for j in jobs if cleanup_ended(j) is None]
        if running:
            log.info("%s/%s: cleanup %s still runs; retention waits", namespace, name, running[0])
            return report
        keep_from, why = None, "the platform has no PostgreSQL"
        if design.postgres.enabled:
            keep_from, why = wal_keep_from(
                platform_backups(everything, name), plan, name, backup.target
            )
        manifest = build_cleanup_job(
            platform,
            design,
            self.render_config,
            self.config,
            runs=plan.clean,
            trigger=trigger,
            keep_wal_from=keep_from,
        )
        await self.kube.apply(manifest)
        records = _names([run.record for run in plan.clean])
        wal = (
            f"; it prunes the WAL archived before the start of {keep_from}, {why}"
            if keep_from
            else f"; the WAL archive is not pruned: {why}"
        )
        if keep_from is None:
            log.info("%s/%s: WAL archive not pruned: %s", namespace, name, why)
        message = (
            f"Job {job_of(manifest)} deletes the data of {records};"
            f" the records go once it completes{wal}"
        )
        report.events.append(Event("Normal", CleanupReason.STARTED, message))
        return report

    async def settle(self, namespace: str, name: str) -> RetentionReport | None:
        """A cleanup Job changed: once it completed, its records are deleted; once it failed,
        a Warning says why (once per Job and process) and the records stay for the next
        pass. None while it runs, or when there is nothing (left) to report."""
        job = await self.kube.get("batch/v1", "Job", name, namespace)
        if job is None or (ended := cleanup_ended(job)) is None:
            return None
        report = RetentionReport(owner_platform(job))
        records = expired_records(job)
        if ended:
            # Deleting is idempotent: a Job seen again reports only what it deleted now.
            deleted = [
                r for r in records if await self.kube.delete(API_VERSION, KIND, r, namespace)
            ]
            if not deleted:
                return None
            message = f"retention deleted {_names(deleted)} and their data (Job {name})"
            report.events.append(Event("Normal", CleanupReason.EXPIRED, message))
            report.runs["deleted"] = len(deleted)
            return report
        uid = str((job.get("metadata") or {}).get("uid", ""))
        if uid in self._failed_cleanups:
            return None
        self._failed_cleanups.add(uid)
        pods = await self.kube.list_objects("v1", "Pod", namespace, f"{JOB_UID_LABEL}={uid}")
        message = (
            f"Job {name} could not delete the data of {_names(records)}:"
            f" {cleanup_failure(job, pods)}."
            " Their records are kept; the next retention pass tries again"
        )
        report.events.append(Event("Warning", CleanupReason.FAILED, message))
        report.runs["failed"] = len(records)
        return report


__all__ = [
    "KIND",
    "MAX_CLEANUP_RUNS",
    "CleanupReason",
    "Retention",
    "RetentionPlan",
    "RetentionReport",
    "cleanup_ended",
    "cleanup_failure",
    "job_of",
    "owner_platform",
    "platform_backups",
    "platform_reference",
    "retention_plan",
    "retention_records",
    "scheduled_backups",
    "timestamp",
    "wal_keep_from",
]
