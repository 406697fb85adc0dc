"""Restore at provisioning: a new platform made from a DataPlatformBackup (spec.restoreFrom),
and the condition Restored that says how far it got.

`restore_step` is pure: from the platform, its design, its StatefulSets and what was read of
the restore (the backup's record, the restore Job and its pods, PostgreSQL's instance 0) to
the condition, the objects to apply now and instance 0's restore step. `RestoreReader` does the
reads. The reconcile runs them before it renders (reconcile.py), Ready waits while Restored is
False, and once Restored is True it is kept and spec.restoreFrom is not read again:

1. The backup must exist, be Completed and lie where the platform's servers read backups
   (its spec.backup.target); until then Restored is False (BackupNotFound,
   BackupNotCompleted) and no StatefulSet is applied: databases started empty could not be
   restored into afterwards.
2. PostgreSQL: instance 0's StatefulSet restores the base backup before the server starts
   (render/postgres.py, `with_restore`); its part is done when instance 0 is Ready with that
   step behind it.
3. ClickHouse: once its StatefulSets (and Keeper) are Ready, the Job `<platform>-restore`
   (render/restore.py) restores every database; its part is done when the Job completes.
A failed step or Job makes Restored False, RestoreFailed, quoting its last words.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from duet_agents.backup.layout import Component
from duet_agents.planner.models import PlatformDesign
from duet_operator.job_pods import (
    JOB_UID_LABEL,
    failed_step,
    failure_detail,
    job_condition,
    statuses,
    terminated,
)
from duet_operator.kube.client import Kube
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.backup import BackupPhase, DataPlatformBackup, PostgresRecovery
from duet_operator.observe import (
    expected_statefulsets,
    pod_ready,
    readiness,
    statefulset_components,
)
from duet_operator.render import postgres
from duet_operator.render.backup import MOUNT, BackupConfig, target_claim
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names
from duet_operator.render.restore import ClickHouseRestore, build_restore_job, restore_job_name
from duet_operator.status import ConditionType, Reason, is_true

Manifest = dict[str, Any]
BACKUP_KIND = "DataPlatformBackup"


@dataclass(frozen=True)
class RestoreState:
    """The condition Restored (`restored`, `reason`, `message`) and what goes with it."""

    restored: bool
    reason: Reason
    message: str
    # To apply now: the restore Job, on the look that finds ClickHouse Ready without one.
    manifests: list[Manifest] = field(default_factory=list)
    # Instance 0's restore step, rendered while PostgreSQL's part is not done.
    postgres: postgres.PostgresRestore | None = None
    # The backup cannot be read (yet): no StatefulSet is applied.
    withhold: bool = False
    # Worth a look soon: nothing the operator watches says when the backup is there.
    recheck: bool = False

    def rerender(self, statefulsets: Sequence[Manifest]) -> bool:
        """PostgreSQL's StatefulSet as stored carries the restore step and should not (the
        restore is done), or lacks it and should: a full reconcile renders it anew."""
        if self.withhold:
            return False
        carries = any(postgres.restoring(s) for s in statefulsets)
        return carries != (self.postgres is not None)


@dataclass(frozen=True)
class RestoreReading:
    """What was read for one look: each None when absent."""

    backup: DataPlatformBackup | None
    job: Mapping[str, Any] | None = None
    job_pods: Sequence[Mapping[str, Any]] = ()
    # PostgreSQL's instance 0, the one that restores.
    postgres_pod: Mapping[str, Any] | None = None


def wanted(platform: DataPlatform) -> bool:
    """Restoring is the platform's business until Restored is True, then never again."""
    return platform.spec.restore_from is not None and not is_true(
        platform.status.conditions, ConditionType.RESTORED
    )


@dataclass(frozen=True)
class _Source:
    clickhouse: ClickHouseRestore
    postgres: postgres.PostgresRestore


def _source(
    platform: DataPlatform, backup: DataPlatformBackup, location: str, backup_config: BackupConfig
) -> _Source | str:
    """Where the backup's parts are, as the platform reaches them; or why it cannot."""
    name = backup.metadata.name
    target = platform.spec.backup.target if platform.spec.backup is not None else None
    asked = platform.spec.restore_from
    replay = asked is None or asked.postgres_recovery is not PostgresRecovery.BACKUP
    target_time = asked.recovery_target_time if asked is not None else None
    hint = (
        f"backup {name} is at {location}, and the platform reads backups only where its"
        " spec.backup.target says (its ClickHouse servers are configured for it):"
    )
    if target is None:
        return f"{hint} set it to the target the backup was written to"
    if target.pvc is not None:
        claim = target_claim(platform.metadata.name, target.pvc)
        base = f"pvc://{claim}/"
        if not location.startswith(base):
            return f"{hint} that is the claim {claim}"
        run = location[len(base) :].strip("/")
        return _Source(
            ClickHouseRestore(posixpath.join(MOUNT, run, Component.CLICKHOUSE.value), s3=False),
            postgres.PostgresRestore(
                location=location,
                directory=f"{run}/{Component.POSTGRES.value}",
                claim=claim,
                replay_archive=replay,
                recovery_target_time=target_time,
            ),
        )
    assert target.s3 is not None
    s3 = target.s3
    keys = f"{s3.bucket}/{s3.prefix}/" if s3.prefix else f"{s3.bucket}/"
    own = backup.spec.target.s3 if backup.spec.target is not None else None
    elsewhere = own is not None and own.endpoint.rstrip("/") != s3.endpoint.rstrip("/")
    if not location.startswith(f"s3://{keys}") or elsewhere:
        return f"{hint} that is s3://{keys} at {s3.endpoint}"
    run = location[len(f"s3://{keys}") :].strip("/")
    return _Source(
        ClickHouseRestore(f"{run}/{Component.CLICKHOUSE.value}", s3=True),
        postgres.PostgresRestore(
            location=location,
            directory=f"{keys}{run}/{Component.POSTGRES.value}",
            s3=s3,
            downloader_image=backup_config.uploader_image,
            replay_archive=replay,
            recovery_target_time=target_time,
        ),
    )


def _postgres_part(pod: Mapping[str, Any] | None) -> tuple[bool, str | None]:
    """(done, failure) of instance 0's restore: done once it is Ready having run the step."""
    if pod is None:
        return False, None
    steps = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []}
    if postgres.RESTORE_STEP not in steps:
        return False, None  # a pod of an older template, or not made yet
    for container in statuses(pod):
        if container.get("name") not in (postgres.RESTORE_STEP, postgres.DOWNLOAD_STEP):
            continue
        ending = terminated(container)
        if ending and ending.get("exitCode", 0) == 0:
            continue
        # Restarted by the kubelet after failing: its last run says why.
        last = ending or (container.get("lastState") or {}).get("terminated") or {}
        if last and last.get("exitCode", 0) != 0:
            return False, failed_step(container, last)
    return pod_ready(dict(pod)), None


def _clickhouse_ready(names: Names, design: PlatformDesign, statefulsets: list[Manifest]) -> bool:
    components = statefulset_components(names, design)
    expected = {
        name: n
        for name, n in expected_statefulsets(names, design).items()
        if components[name] != "postgres"
    }
    return readiness(expected, statefulsets).ready


def _readable(
    platform: DataPlatform, reading: RestoreReading, backup_config: BackupConfig
) -> _Source | RestoreState:
    """Where the named backup is, or the condition saying why it cannot be read (yet)."""
    assert platform.spec.restore_from is not None
    name = platform.spec.restore_from.backup
    backup = reading.backup
    if backup is None:
        namespace = platform.metadata.namespace or "default"
        message = f"DataPlatformBackup {name} not found in {namespace}; waiting for it"
        return RestoreState(False, Reason.BACKUP_NOT_FOUND, message, withhold=True, recheck=True)
    phase = backup.status.phase
    if phase != BackupPhase.COMPLETED:
        failed = phase == BackupPhase.FAILED
        message = f"backup {name} is {phase or 'not started'}" + (
            ": it will never complete; restoreFrom cannot change, so make a new platform"
            " from another backup"
            if failed
            else "; waiting for it to complete"
        )
        return RestoreState(
            False, Reason.BACKUP_NOT_COMPLETED, message, withhold=True, recheck=not failed
        )
    if not backup.status.location:
        message = f"backup {name} is Completed but its status says no location"
        return RestoreState(False, Reason.BACKUP_NOT_FOUND, message, withhold=True)
    source = _source(platform, backup, backup.status.location, backup_config)
    if isinstance(source, str):
        return RestoreState(False, Reason.BACKUP_NOT_FOUND, source, withhold=True)
    return source


def _clickhouse_part(
    platform: DataPlatform,
    design: PlatformDesign,
    statefulsets: list[Manifest],
    reading: RestoreReading,
    source: ClickHouseRestore,
    *,
    config: RenderConfig,
    backup_config: BackupConfig,
) -> tuple[str | None, str | None, list[Manifest]]:
    """(pending, failure, to apply) of ClickHouse's restore; both None once done."""
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    job = reading.job
    job_name = restore_job_name(names.platform)
    if job is None and _clickhouse_ready(names, design, statefulsets):
        manifest = build_restore_job(platform, design, config, source, backup_config)
        return f"ClickHouse: Job {job_name} started", None, [manifest]
    if job is None:
        return "ClickHouse: waiting for its servers to be Ready", None, []
    if (failed := job_condition(job, "Failed")) is not None:
        why = failed.get("message") or failed.get("reason") or "failed"
        detail = failure_detail(reading.job_pods)
        failure = (
            f"ClickHouse's restore Job {job_name} failed: {why}"
            + (f"; {detail}" if detail else "")
            + " (delete the Job to try again)"
        )
        return None, failure, []
    if job_condition(job, "Complete") is None:
        return f"ClickHouse: Job {job_name} running", None, []
    return None, None, []


def restore_step(
    platform: DataPlatform,
    design: PlatformDesign,
    statefulsets: list[Manifest],
    reading: RestoreReading,
    *,
    config: RenderConfig,
    backup_config: BackupConfig,
) -> RestoreState:
    """The condition Restored for what was read, with what to apply and render for it. Call
    only while `wanted(platform)`."""
    source = _readable(platform, reading, backup_config)
    if isinstance(source, RestoreState):
        return source
    assert reading.backup is not None
    assert platform.spec.restore_from is not None
    name = platform.spec.restore_from.backup
    location = reading.backup.status.location
    with_postgres = design.postgres.enabled and design.postgres.instances > 0
    parts = set(reading.backup.spec.components)
    pending: list[str] = []
    failures: list[str] = []
    manifests: list[Manifest] = []
    pg_step = None
    if Component.POSTGRES in parts and with_postgres:
        done, failure = _postgres_part(reading.postgres_pod)
        if failure:
            failures.append(f"PostgreSQL's restore failed: {failure}")
        elif not done:
            pending.append("PostgreSQL: instance 0 restoring the base backup")
        if not done:
            pg_step = source.postgres
    if Component.CLICKHOUSE in parts:
        waiting, failure, manifests = _clickhouse_part(
            platform, design, statefulsets, reading, source.clickhouse,
            config=config, backup_config=backup_config,
        )  # fmt: skip
        pending += [waiting] if waiting else []
        failures += [failure] if failure else []
    if failures:
        return RestoreState(False, Reason.RESTORE_FAILED, "; ".join(failures), manifests, pg_step)
    if pending:
        message = f"restoring from backup {name} ({location}): " + "; ".join(pending)
        return RestoreState(False, Reason.RESTORING, message, manifests, pg_step)
    restored = sorted(str(p) for p in parts if p is Component.CLICKHOUSE or with_postgres)
    message = f"restored {', '.join(restored)} from backup {name} ({location})"
    return RestoreState(True, Reason.RESTORE_DONE, message)


class RestoreReader:
    """The reads `restore_step` needs, for one platform."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def read(self, platform: DataPlatform, names: Names) -> RestoreReading:
        assert platform.spec.restore_from is not None
        namespace = names.namespace
        body = await self.kube.get(
            API_VERSION, BACKUP_KIND, platform.spec.restore_from.backup, namespace
        )
        try:
            backup = DataPlatformBackup.model_validate(body) if body is not None else None
        except ValidationError:
            backup = None
        if backup is None or backup.status.phase != BackupPhase.COMPLETED:
            return RestoreReading(backup)
        job = await self.kube.get("batch/v1", "Job", restore_job_name(names.platform), namespace)
        pods: list[dict[str, Any]] = []
        if job is not None and job_condition(job, "Failed") is not None:
            uid = (job.get("metadata") or {}).get("uid", "")
            pods = await self.kube.list_objects("v1", "Pod", namespace, f"{JOB_UID_LABEL}={uid}")
        pod = await self.kube.get("v1", "Pod", f"{names.postgres}-0", namespace)
        return RestoreReading(backup, job, pods, pod)
