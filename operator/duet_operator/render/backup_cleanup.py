"""The Jobs that delete what backup runs wrote, owned by the platform: retention's, for the
runs it let go (`build_cleanup_job`), and the one of a DataPlatformBackup deleted under
deletionPolicy Delete, for its own run (`build_deletion_cleanup_job`).

It runs one step in the pod the backup Job runs in (same security context, uid and
resources): on a volume, the ClickHouse image with the claim mounted, removing each run's
directory; on S3, the uploader image, removing each run's prefix with the AWS CLI. Its runs
are paths checked against the layout (`run_path`: a record's status.location, which users
can edit, must name exactly one run of the platform on the target), passed as arguments to
a fixed script (duet_agents.backup.cleanup), never spliced into it.

Retention's Job also prunes PostgreSQL's WAL archive when it is given the oldest run still
kept (`keep_wal_from`, a run path checked as the others): the same step then deletes the
archived files before that run's base backup starts (duet_agents.backup.wal_prune), the run
passed by environment, never spliced into the script either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from duet_agents.backup.cleanup import PVC_SCRIPT, S3_SCRIPT, cleanup_command
from duet_agents.backup.layout import platform_prefix, run_directory
from duet_agents.backup.wal_prune import PVC_PRUNE_SCRIPT, S3_PRUNE_SCRIPT
from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.models.backup import BackupTarget
from duet_operator.render import objects as o
from duet_operator.render.backup_pod import (
    APP,
    DEFAULT_CONFIG,
    MOUNT,
    WORK,
    BackupConfig,
    aws_env,
    bounded_name,
    pod_security,
    target_claim,
)
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import labels

# app.kubernetes.io/component of retention's cleanup Jobs, and of a deleted backup's: apart, so
# that neither is taken for the other (retention deletes records when its Job completes).
CLEANUP = "backup-cleanup"
DELETION_CLEANUP = "backup-deletion"
# On a deleted backup's cleanup Job: the DataPlatformBackup it deletes the data of.
DELETED_ANNOTATION = "duet.aidatalabs.ai/deleted-backup"
# On a cleanup Job: the records of the runs it deletes, comma-separated; they are deleted
# once it completes.
EXPIRED_ANNOTATION = "duet.aidatalabs.ai/expired-backups"
# The cleanup step's variable naming the oldest run kept, `<platform dir>/<stamp>`: the WAL
# archived before its base backup's start is pruned.
KEEP_FROM_ENV = "KEEP_FROM"


@dataclass(frozen=True)
class ExpiredRun:
    """A run retention let go: its record, and its directory or key prefix (`run_path`)."""

    record: str
    path: str


def run_path(platform: str, target: BackupTarget, location: str) -> str:
    """The inverse of render.backup's `describe_location`, checked: the run's directory under
    the claim's root, or its key prefix in the bucket. Raises ValueError for anything that is
    not one run of `platform` on `target` (another claim or bucket, a path above or beside a
    run): the location comes from a record's status, which users can edit."""
    if target.s3:
        head = f"s3://{target.s3.bucket}/"
    else:
        assert target.pvc is not None
        head = f"pvc://{target_claim(platform, target.pvc)}/"
    platform_dir = _platform_dir(platform, target)
    if not location.startswith(head):
        raise ValueError(f"{location!r} is not on the platform's backup target ({head})")
    return run_directory(location.removeprefix(head), platform_dir)


def _platform_dir(platform: str, target: BackupTarget) -> str:
    """The platform's directory on the target: under the bucket's prefix, or the claim's root."""
    return platform_prefix(target.s3.prefix or "", platform) if target.s3 else platform


def cleanup_job_name(platform: str, runs: Sequence[ExpiredRun], trigger: str) -> str:
    """One name per retention pass: the runs and the run whose completion started the pass,
    so a pass made again (after a restart) applies the same Job, and a later pass retries
    a failed one under a new name."""
    digest = o.content_hash(trigger, sorted((r.record, r.path) for r in runs))[:8]
    return f"{bounded_name(f'{platform}-backup-cleanup', 63 - 9)}-{digest}"


def expired_records(job: o.Manifest) -> list[str]:
    """The records a cleanup Job deletes once it completes."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return [name for name in str(annotations.get(EXPIRED_ANNOTATION, "")).split(",") if name]


def build_cleanup_job(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig = DEFAULT_CONFIG,
    *,
    runs: Sequence[ExpiredRun],
    trigger: str,
    keep_wal_from: str | None = None,
) -> o.Manifest:
    """The Job that deletes what `runs` wrote on the platform's backup target, owned by the
    platform, and with `keep_wal_from` (the oldest run kept, as `run_path` gives it) prunes
    the WAL archive before that run's start. Raises ValueError without spec.backup or runs
    (nothing it could delete), or with a `keep_wal_from` that is not a run of the platform."""
    if platform.spec.backup is None or not runs:
        raise ValueError(f"platform {platform.metadata.name} has no expired runs to clean up")
    target = platform.spec.backup.target
    if keep_wal_from is not None:
        run_directory(keep_wal_from, _platform_dir(platform.metadata.name, target))
    job = _cleanup_job(
        platform,
        design,
        config,
        backup_config,
        target=target,
        paths=[run.path for run in runs],
        name=cleanup_job_name(platform.metadata.name, runs, trigger),
        component=CLEANUP,
        keep_wal_from=keep_wal_from,
    )
    job["metadata"]["annotations"] = {EXPIRED_ANNOTATION: ",".join(run.record for run in runs)}
    return job


def deletion_cleanup_job_name(backup: str, path: str) -> str:
    """One name per record and path: looked for again on each look at the record, and a path
    corrected since (a fixed target) gets a Job of its own rather than the old one's outcome."""
    digest = o.content_hash(backup, path)[:8]
    return f"{bounded_name(f'{backup}-cleanup', 63 - 9)}-{digest}"


def build_deletion_cleanup_job(
    backup: str,
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig = DEFAULT_CONFIG,
    *,
    target: BackupTarget,
    path: str,
) -> o.Manifest:
    """The Job that deletes the run of the DataPlatformBackup `backup` at `path` on `target`
    (its own, or the platform's), for deletionPolicy Delete. Owned by the platform, not by the
    record: the record is being deleted, and the Job's outcome stays readable (for its TTL)
    once the record is gone."""
    job = _cleanup_job(
        platform,
        design,
        config,
        backup_config,
        target=target,
        paths=[path],
        name=deletion_cleanup_job_name(backup, path),
        component=DELETION_CLEANUP,
    )
    job["metadata"]["annotations"] = {DELETED_ANNOTATION: backup}
    return job


def _cleanup_job(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig,
    *,
    target: BackupTarget,
    paths: list[str],
    name: str,
    component: str,
    keep_wal_from: str | None = None,
) -> o.Manifest:
    """A Job, owned by the platform, whose one step deletes `paths` on `target`, then prunes
    the WAL archive before `keep_wal_from` when given."""
    platform_name = platform.metadata.name
    meta_labels = labels(platform_name, APP, component)
    volumes: list[dict[str, Any]]
    if target.s3:
        image = backup_config.uploader_image
        command = cleanup_command(S3_SCRIPT + (S3_PRUNE_SCRIPT if keep_wal_from else ""), paths)
        env = [{"name": "BUCKET", "value": target.s3.bucket}, *aws_env(target.s3)]
        volumes = [{"name": "work", "emptyDir": {}}]
        mounts = [{"name": "work", "mountPath": WORK}]
    else:
        assert target.pvc is not None
        image = f"{config.clickhouse_image}:{design.clickhouse.version}"
        command = cleanup_command(PVC_SCRIPT + (PVC_PRUNE_SCRIPT if keep_wal_from else ""), paths)
        env = [{"name": "BACKUP_ROOT", "value": MOUNT}]
        claim = target_claim(platform_name, target.pvc)
        volumes = [{"name": "backups", "persistentVolumeClaim": {"claimName": claim}}]
        mounts = [{"name": "backups", "mountPath": MOUNT}]
    if keep_wal_from:
        env.append({"name": KEEP_FROM_ENV, "value": keep_wal_from})
    container = {
        "name": "cleanup",
        "image": image,
        "command": command,
        "env": env,
        "resources": backup_config.resources,
        "securityContext": o.CONTAINER_SECURITY,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": o.metadata(platform, name, meta_labels),
        "spec": {
            "backoffLimit": backup_config.backoff_limit,
            "activeDeadlineSeconds": backup_config.active_deadline_seconds,
            # Kept a while after it ends, so its outcome (and a failure's words) can be read.
            "ttlSecondsAfterFinished": backup_config.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": meta_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
