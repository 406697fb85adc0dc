"""kopf handlers of backups: a DataPlatformBackup's run, the Jobs that carry runs out, and
what spec.backup needs beside the platform's reconcile.

- A DataPlatformBackup created (or found at start): its Job is made and its status reported.
- A Job of Duet's backups changed: its record's status follows (event-driven, as a
  platform's readiness follows its StatefulSets); a new Job of a platform's CronJob is first
  recorded as a DataPlatformBackup (adopted). A completed scheduled run applies retention,
  whose cleanup Job, when it ends, deletes the expired records (or warns and keeps them).
- A platform's spec.backup changed (or the operator started): the claim of a target given by
  size is made, and the CronJob deleted when spec.backup is gone.
- A platform's restore Job (spec.restoreFrom) changed: the platform's condition Restored
  follows (restore.py), as its readiness follows its StatefulSets.
- A DataPlatformBackup with deletionPolicy Delete deleted: its data first, by a cleanup Job,
  then its record (backup_deletion.py). Only those records get kopf's finalizer: the delete
  handler is filtered on the policy, and kopf adds a finalizer only for a delete handler that
  matches the object. Retain records (the default) are deleted at once.
Everything else lives in backups.py, retention.py and backup_deletion.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from duet_operator import metrics
from duet_operator.backups import KIND, BackupOutcome, BackupRunner, is_scheduled
from duet_operator.handlers.dataplatform import lock, refresh_platform_of
from duet_operator.handlers.events import post_events
from duet_operator.manifests import field_errors
from duet_operator.models import API_VERSION, GROUP, VERSION, DataPlatform, DataPlatformBackup
from duet_operator.models.backup import BackupDeletionPolicy, BackupPhase
from duet_operator.render.backup import APP, BACKUP_LABEL, CLEANUP, COMPONENT_LABEL, SCHEDULED
from duet_operator.render.naming import PLATFORM_LABEL
from duet_operator.render.restore import RESTORE
from duet_operator.retention import RetentionReport

log = logging.getLogger("duet.backups")
PLURAL = "dataplatformbackups"
NAME_LABEL = "app.kubernetes.io/name"


async def _run(memo: Any, namespace: str, name: str) -> BackupOutcome | None:
    """One look at a backup, under its lock: start it, or report its Job. None when there is
    no such backup (any more)."""
    runner: BackupRunner = memo.backups
    async with lock(memo, namespace, f"dpb/{name}"):
        body = await runner.kube.get(API_VERSION, KIND, name, namespace)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        try:
            backup = DataPlatformBackup.model_validate(body)
        except ValidationError as e:
            # Only with a CRD older than the operator; nothing a retry can fix.
            raise kopf.PermanentError(f"cannot read this {KIND}: {field_errors(e)}") from e
        with metrics.reconcile_timer(KIND):
            outcome = await runner.reconcile(backup, now=datetime.now(UTC))
    post_events(body, outcome.events, log)
    if outcome.finished is not None:
        await _finished(memo, backup, outcome)
    return outcome


async def _finished(memo: Any, backup: DataPlatformBackup, outcome: BackupOutcome) -> None:
    """Counted once per process, on the look that saw the run end; a completed scheduled run
    then lets retention go over its platform's scheduled runs."""
    namespace = backup.metadata.namespace or "default"
    platform = backup.spec.platform_ref.name
    assert outcome.finished is not None
    metrics.BACKUPS_TOTAL.labels(namespace, platform, outcome.finished.value.lower()).inc()
    if outcome.status.duration_seconds is not None:
        metrics.BACKUP_DURATION.observe(outcome.status.duration_seconds)
    if (
        outcome.finished is BackupPhase.COMPLETED
        and is_scheduled(backup)
        and outcome.platform is not None
    ):
        runner: BackupRunner = memo.backups
        # One pass per platform at a time: two would each see no cleanup running.
        async with lock(memo, namespace, f"retention/{platform}"):
            report = await runner.retention.apply(outcome.platform, trigger=backup.metadata.name)
        _reported(namespace, platform, report)


def _reported(namespace: str, platform: str, report: RetentionReport | None) -> None:
    """Retention's Events go on the platform, its runs into the metrics."""
    if report is None:
        return
    if report.platform is not None:
        post_events(report.platform, report.events, log)
    for outcome, runs in report.runs.items():
        metrics.BACKUP_CLEANUPS_TOTAL.labels(namespace, platform, outcome, "retention").inc(runs)


async def reconcile_backup(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """create and resume (the spec cannot change)."""
    outcome = await _run(memo, namespace or "default", name)
    if outcome is not None and outcome.retry is not None:
        raise kopf.TemporaryError(outcome.status.message or "waiting", delay=outcome.retry)


async def job_changed(
    type: str | None, name: str, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A Job of a backup changed: its record follows. A CronJob's new Job is recorded first.
    A platform's restore Job: the platform's status follows."""
    if not namespace:
        return
    record = labels.get(BACKUP_LABEL)
    if record is None:
        platform = labels.get(PLATFORM_LABEL)
        if labels.get(COMPONENT_LABEL) == RESTORE and platform:
            await refresh_platform_of(labels=labels, namespace=namespace, memo=memo)
            return
        if labels.get(COMPONENT_LABEL) == CLEANUP and platform:
            if type != "DELETED":
                async with lock(memo, namespace, f"cleanup/{name}"):
                    report = await memo.backups.retention.settle(namespace, name)
                _reported(namespace, platform, report)
            return
        if type == "DELETED" or labels.get(COMPONENT_LABEL) != SCHEDULED or not platform:
            return
        runner: BackupRunner = memo.backups
        async with lock(memo, namespace, f"dpb/{name}"):
            record = await runner.adopt(namespace, name, platform)
    await _run(memo, namespace, record)


async def sync_schedule(body: kopf.Body, reason: str, memo: Any, **_: Any) -> None:
    """A platform's spec.backup changed, or the platform was made, or the operator started."""
    if body.meta.get("deletionTimestamp"):
        return
    if reason == kopf.Reason.CREATE and not body.spec.get("backup"):
        return  # no claim to make and no CronJob yet to delete
    runner: BackupRunner = memo.backups
    try:
        platform = DataPlatform.model_validate(dict(body))
    except ValidationError:
        return  # the platform's own handlers report it
    post_events(body, await runner.sync_schedule(platform), log)


def deletes_data(spec: kopf.Spec, **_: Any) -> bool:
    """deletionPolicy Delete, as the raw spec says (anything else keeps the data). The policy
    cannot change (CEL), so a record's finalizer is added once and never taken back early."""
    return bool(spec.get("deletionPolicy") == BackupDeletionPolicy.DELETE)


async def delete_backup_data(
    body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    """A Delete record is being deleted: one step of deleting its data. Returning lets kopf
    remove the finalizer; a TemporaryError keeps it, and kopf looks again after its delay."""
    runner: BackupRunner = memo.backups
    namespace = namespace or "default"
    async with lock(memo, namespace, f"dpb/{name}"):
        try:
            backup = DataPlatformBackup.model_validate(dict(body))
        except ValidationError as e:
            # Only with a CRD older than the operator. A record the operator cannot read must
            # still be deletable; its data is not touched.
            log.warning("%s/%s deleted unread, its data kept: %s", namespace, name, field_errors(e))
            return
        step = await runner.deletion.look(backup)
    post_events(body, step.events, log)
    if step.outcome is not None:
        platform = backup.spec.platform_ref.name
        metrics.BACKUP_CLEANUPS_TOTAL.labels(namespace, platform, step.outcome, "deletion").inc()
    if step.delay is not None:
        raise kopf.TemporaryError(step.message, delay=step.delay)
    log.info("%s/%s: %s", namespace, name, step.message)


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, PLURAL)
    for decorator in (kopf.on.resume, kopf.on.create):
        decorator(*resource, registry=registry)(reconcile_backup)
    kopf.on.delete(*resource, registry=registry, when=deletes_data)(delete_backup_data)
    platforms = (GROUP, VERSION, "dataplatforms")
    for decorator in (kopf.on.resume, kopf.on.create):
        decorator(*platforms, registry=registry)(sync_schedule)
    kopf.on.update(*platforms, registry=registry, field="spec.backup")(sync_schedule)
    kopf.on.event(
        "batch",
        "v1",
        "jobs",
        registry=registry,
        labels={PLATFORM_LABEL: kopf.PRESENT, NAME_LABEL: APP},
    )(job_changed)
