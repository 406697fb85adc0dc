"""Backups as Kubernetes objects: the CronJob of `spec.backup`, the Job of one
DataPlatformBackup, the claim of a PVC target Duet makes, what ClickHouse's servers need
to write backups themselves.

One pod template serves both: its steps run in order (init containers, the last one the main
container), each in the image of the tool it runs:
1. `clickhouse`: clickhouse-client, in the platform's ClickHouse image, sends BACKUP to the
   servers, as the admin user (password from the platform's Secret, by environment).
   ClickHouse writes a backup from the server, not the client, so the target is one the
   servers reach: for S3, the named collection `duet_backups` in their configuration (keys
   from the target's Secret, by environment); for a volume, the claim mounted in every
   ClickHouse pod at /backups, hence ReadWriteMany when there is more than one pod
   (`clickhouse_server_backup`, which build_clickhouse adds to the StatefulSets).
2. `postgres`: pg_basebackup, in the platform's PostgreSQL image, as the replication user,
   into the volume or, for S3, into the pod's scratch space,
3. `upload` (S3 only): the AWS CLI copies that to the bucket.
Each step writes `{"component", "location", "bytes"}` as its termination message, which is how
the operator learns a backup's size without reading logs.

The run's directory, `<platform>/<UTC stamp>/<component>`, is fixed by the first step that
runs: a DataPlatformBackup's stamp is its creation time, passed in; a scheduled run takes the
time it starts (`date -u`, in the same format as duet_agents.backup.layout.STAMP_FORMAT).

What these pods share (settings, uid, how a target is reached) is in render/backup_pod.py;
the Jobs that delete what runs wrote are in render/backup_cleanup.py, whose public names are
re-exported here for the callers that knew them from this module.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, NamedTuple

from duet_agents.backup import clickhouse as chb
from duet_agents.backup.layout import (
    STAMP_FORMAT,
    Component,
    platform_prefix,
    stamp,
)
from duet_agents.backup.postgres import basebackup_args
from duet_agents.planner.models import PlatformDesign
from duet_operator.models import API_VERSION, DataPlatform
from duet_operator.models.backup import BackupTarget, DataPlatformBackup, S3Target
from duet_operator.render import clickhouse as ch
from duet_operator.render import objects as o
from duet_operator.render import postgres as pg
from duet_operator.render.backup_cleanup import (
    CLEANUP,
    DELETION_CLEANUP,
    EXPIRED_ANNOTATION,
    ExpiredRun,
    build_cleanup_job,
    cleanup_job_name,
    expired_records,
    run_path,
)
from duet_operator.render.backup_pod import (
    APP,
    BACKUP_UID,
    DEFAULT_CONFIG,
    MOUNT,
    WORK,
    BackupConfig,
    aws_env,
    bounded_name,
    claim_name,
    pod_security,
    s3_key_env,
    target_claim,
)
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import CLUSTER_NAME, Names, labels
from duet_operator.render.xml import from_env, to_xml

# On a backup Job: the DataPlatformBackup it runs for. On a DataPlatformBackup: the platform
# whose CronJob made the run (scheduled runs, the ones retention counts).
BACKUP_LABEL = "duet.aidatalabs.ai/backup"
SCHEDULED_LABEL = "duet.aidatalabs.ai/scheduled-by"
# app.kubernetes.io/component of an on-demand run's Job and of the CronJob and its Jobs.
ON_DEMAND = "backup"
SCHEDULED = "scheduled-backup"
COMPONENT_LABEL = "app.kubernetes.io/component"
# Environment of ClickHouse servers that write to S3: the named collection reads them.
S3_ACCESS_KEY_ENV = "DUET_BACKUP_S3_ACCESS_KEY_ID"
S3_SECRET_KEY_ENV = "DUET_BACKUP_S3_SECRET_ACCESS_KEY"

__all__ = [
    "APP",
    "BACKUP_LABEL",
    "BACKUP_UID",
    "CLEANUP",
    "COMPONENT_LABEL",
    "DELETION_CLEANUP",
    "EXPIRED_ANNOTATION",
    "MOUNT",
    "ON_DEMAND",
    "S3_ACCESS_KEY_ENV",
    "S3_SECRET_KEY_ENV",
    "SCHEDULED",
    "SCHEDULED_LABEL",
    "WORK",
    "BackupConfig",
    "ClickHouseStep",
    "ExpiredRun",
    "ServerBackup",
    "backup_job_name",
    "build_backup_claim",
    "build_backup_cronjob",
    "build_backup_job",
    "build_cleanup_job",
    "build_scheduled_record",
    "claim_name",
    "cleanup_job_name",
    "clickhouse_server_backup",
    "clickhouse_step_plan",
    "cronjob_name",
    "describe_location",
    "expired_records",
    "is_scheduled",
    "job_label",
    "job_name",
    "run_path",
    "target_claim",
    "target_of",
]


# -- names ---------------------------------------------------------------------------------


def cronjob_name(platform: str) -> str:
    return bounded_name(f"{platform}-backup", 52)


def job_name(backup: str) -> str:
    return bounded_name(f"{backup}-backup", 63)


def describe_location(platform: str, target: BackupTarget, run_stamp: str) -> str:
    """Where a run's components are, for status.location: `pvc://claim/path` or `s3://...`."""
    if target.s3:
        base = platform_prefix(target.s3.prefix or "", platform)
        return f"s3://{target.s3.bucket}/{base}/{run_stamp}"
    assert target.pvc is not None
    return f"pvc://{target_claim(platform, target.pvc)}/{platform}/{run_stamp}"


# -- what ClickHouse servers need ------------------------------------------------------------


@dataclass(frozen=True)
class ServerBackup:
    """Additions to the ClickHouse StatefulSets for a platform with backups: a config.d file,
    environment (the S3 keys, by reference), and the backup claim with its mount."""

    config_xml: str
    env: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


def clickhouse_server_backup(platform: DataPlatform) -> ServerBackup | None:
    """None when the platform has no spec.backup. (A DataPlatformBackup with a target of its
    own that the servers are not configured for fails with ClickHouse's own message.)"""
    if platform.spec.backup is None:
        return None
    target = platform.spec.backup.target
    if target.s3:
        return ServerBackup(
            config_xml=to_xml(
                {"named_collections": {chb.BACKUP_COLLECTION: _collection(target.s3)}}
            ),
            env=s3_key_env(target.s3, S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV),
            volumes=[],
            mounts=[],
        )
    assert target.pvc is not None
    claim = target_claim(platform.metadata.name, target.pvc)
    return ServerBackup(
        config_xml=to_xml({"backups": {"allowed_path": f"{MOUNT}/"}}),
        env=[],
        volumes=[{"name": "backups", "persistentVolumeClaim": {"claimName": claim}}],
        mounts=[{"name": "backups", "mountPath": MOUNT}],
    )


def _collection(s3: S3Target) -> dict[str, Any]:
    prefix = f"{s3.prefix}/" if s3.prefix else ""
    return {
        "url": f"{s3.endpoint.rstrip('/')}/{s3.bucket}/{prefix}",
        "access_key_id": from_env(S3_ACCESS_KEY_ENV),
        "secret_access_key": from_env(S3_SECRET_KEY_ENV),
    }


# -- a record's run -------------------------------------------------------------------------


def target_of(backup: DataPlatformBackup, platform: DataPlatform | None) -> BackupTarget | None:
    """Where a run writes: its backup's own target, else its platform's current one; None
    with neither (or no platform)."""
    if backup.spec.target is not None:
        return backup.spec.target
    if platform is not None and platform.spec.backup is not None:
        return platform.spec.backup.target
    return None


def is_scheduled(backup: DataPlatformBackup) -> bool:
    return SCHEDULED_LABEL in backup.metadata.labels


def backup_job_name(backup: DataPlatformBackup) -> str:
    """A scheduled record is named as the CronJob's Job it records."""
    return backup.metadata.name if is_scheduled(backup) else job_name(backup.metadata.name)


# -- the objects -------------------------------------------------------------------------------


def build_backup_claim(platform: DataPlatform) -> list[o.Manifest]:
    """The claim of a PVC target given by size. Not owned by the platform: backups are for
    when the platform is gone."""
    backup = platform.spec.backup
    if backup is None or backup.target.pvc is None or backup.target.pvc.size is None:
        return []
    pvc = backup.target.pvc
    name = platform.metadata.name
    spec: dict[str, Any] = {
        # Every ClickHouse pod and the backup Job mount it at once, on any node.
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": pvc.size}},
    }
    if pvc.storage_class:
        spec["storageClassName"] = pvc.storage_class
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": o.metadata(
                platform, claim_name(name), labels(name, APP, "storage"), owned=False
            ),
            "spec": spec,
        }
    ]


def build_backup_cronjob(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig = DEFAULT_CONFIG,
) -> list[o.Manifest]:
    """The CronJob of spec.backup; nothing without one. (The claim of a target given by size
    is `build_backup_claim`'s: it is not owned by the platform, and is applied apart.)"""
    backup = platform.spec.backup
    if backup is None:
        return []
    name = platform.metadata.name
    meta_labels = labels(name, APP, SCHEDULED)
    components = _components(design, (Component.CLICKHOUSE, Component.POSTGRES))
    job = _job_spec(
        platform,
        design,
        config,
        backup_config,
        target=backup.target,
        components=components,
        run_stamp=None,
        meta_labels=meta_labels,
    )
    del job["ttlSecondsAfterFinished"]  # the CronJob's history limits keep its Jobs in check
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": o.metadata(platform, cronjob_name(name), meta_labels),
        "spec": {
            "schedule": backup.schedule,
            # Two backups of one platform at once only slow each other down.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": backup_config.history_limit,
            "failedJobsHistoryLimit": backup_config.history_limit,
            "jobTemplate": {"metadata": {"labels": meta_labels}, "spec": job},
        },
    }
    return [cronjob]


def build_scheduled_record(platform: str, namespace: str, job: str) -> o.Manifest:
    """The DataPlatformBackup that records one run of a platform's CronJob, named as the Job.
    Not owned by the platform: a backup's record outlives it, as the backup does."""
    return {
        "apiVersion": API_VERSION,
        "kind": "DataPlatformBackup",
        "metadata": {
            "name": job,
            "namespace": namespace,
            "labels": labels(platform, APP, SCHEDULED) | {SCHEDULED_LABEL: platform},
        },
        "spec": {"platformRef": {"name": platform}},
    }


def job_label(namespace: str, job: str, backup: str) -> o.Manifest:
    """What the operator applies to a CronJob's Job it has recorded: only the label naming
    the record (server-side apply of this owns that label and nothing else of the Job)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job, "namespace": namespace, "labels": {BACKUP_LABEL: backup}},
    }


def build_backup_job(
    backup: DataPlatformBackup,
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig = DEFAULT_CONFIG,
) -> o.Manifest:
    """The Job of one DataPlatformBackup, owned by it. Raises ValueError when there is no
    target (neither the backup's nor the platform's)."""
    target = backup.spec.target or (platform.spec.backup.target if platform.spec.backup else None)
    if target is None:
        raise ValueError(
            f"backup {backup.metadata.name} has no target and platform"
            f" {platform.metadata.name} has no spec.backup.target"
        )
    run_stamp = (
        stamp(backup.metadata.creation_timestamp) if backup.metadata.creation_timestamp else None
    )
    meta_labels = labels(platform.metadata.name, APP, ON_DEMAND) | {
        BACKUP_LABEL: backup.metadata.name
    }
    components = _components(design, tuple(backup.spec.components))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": o.metadata(backup, job_name(backup.metadata.name), meta_labels),
        "spec": _job_spec(
            platform,
            design,
            config,
            backup_config,
            target=target,
            components=components,
            run_stamp=run_stamp,
            meta_labels=meta_labels,
        ),
    }


def _components(design: PlatformDesign, wanted: tuple[Component, ...]) -> tuple[Component, ...]:
    postgres_runs = design.postgres.enabled and design.postgres.instances > 0
    return tuple(c for c in wanted if c is Component.CLICKHOUSE or postgres_runs)


def _job_spec(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig,
    *,
    target: BackupTarget,
    components: tuple[Component, ...],
    run_stamp: str | None,
    meta_labels: dict[str, str],
) -> dict[str, Any]:
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    common_env = [
        {"name": "BACKUP_DIR", "value": platform_prefix("", names.platform)},
        # Empty for S3: written without a value, as the API server stores an empty one (a
        # stored object then holds every field rendered, and is not taken for drift).
        {"name": "BACKUP_ROOT"} | ({"value": f"{MOUNT}/"} if target.pvc else {}),
    ]
    if run_stamp:
        common_env.append({"name": "BACKUP_STAMP", "value": run_stamp})
    steps: list[dict[str, Any]] = []
    if Component.CLICKHOUSE in components:
        steps += _clickhouse_steps(names, design, config, target)
    if Component.POSTGRES in components:
        steps.append(_postgres_step(names, design, config, target))
        if target.s3:
            steps.append(_upload_step(target.s3, backup_config))
    containers = [
        step
        | {
            "env": common_env + step["env"],
            "resources": backup_config.resources,
            "securityContext": o.CONTAINER_SECURITY,
            # A step writes its report only when it succeeds; one that fails leaves the
            # kubelet its log's tail as the message, which is how status says why.
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        for step in steps
    ]
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {}}]
    if target.pvc:
        claim = target_claim(names.platform, target.pvc)
        volumes.append({"name": "backups", "persistentVolumeClaim": {"claimName": claim}})
    pod = {
        "restartPolicy": "Never",
        "securityContext": pod_security(),
        "initContainers": containers[:-1],
        "containers": containers[-1:],
        "volumes": volumes,
    }
    if not pod["initContainers"]:
        del pod["initContainers"]
    return {
        "backoffLimit": backup_config.backoff_limit,
        "activeDeadlineSeconds": backup_config.active_deadline_seconds,
        "ttlSecondsAfterFinished": backup_config.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": meta_labels}, "spec": pod},
    }


# -- the steps -------------------------------------------------------------------------------

# The first step fixes the run's stamp for the others. ($(...) is left alone by Kubernetes,
# which expands only $(NAME) of variables the container defines.)
_PREAMBLE = f"""set -eu
if [ ! -s {WORK}/stamp ]; then
  printf '%s' "${{BACKUP_STAMP:-$(date -u +{STAMP_FORMAT})}}" > {WORK}/stamp
fi
stamp="$(cat {WORK}/stamp)"
"""


def _report(component: Component, location: str, size: str) -> str:
    return (
        f'printf \'{{"component":"{component.value}","location":"%s","bytes":%s}}\\n\''
        f' "{location}" "{size}" > /dev/termination-log\n'
    )


def _work_mounts(target: BackupTarget) -> list[dict[str, Any]]:
    mounts = [{"name": "work", "mountPath": WORK}]
    if target.pvc:
        mounts.append({"name": "backups", "mountPath": MOUNT})
    return mounts


class ClickHouseStep(NamedTuple):
    container: str
    host: str  # the server the statement goes to
    suffix: str  # under the run's clickhouse directory: "" or "/shard-N"
    clustered: bool  # the statement runs ON CLUSTER


def clickhouse_step_plan(names: Names, design: PlatformDesign) -> list[ClickHouseStep]:
    """One step for the cluster; with several shards and no Keeper to coordinate ON CLUSTER,
    one per shard, each against its first replica, into `clickhouse/shard-N`. A restore runs
    the same plan, so that each of its steps reads what its twin wrote."""
    design_ch = design.clickhouse
    if design_ch.shards * design_ch.replicas == 1 or design_ch.keeper.replicas > 0:
        clustered = design_ch.shards * design_ch.replicas > 1
        return [ClickHouseStep("clickhouse", names.service_host(names.clickhouse), "", clustered)]
    return [
        ClickHouseStep(f"clickhouse-shard-{s}", names.clickhouse_host(s, 0), f"/shard-{s}", False)
        for s in range(design_ch.shards)
    ]


def _clickhouse_steps(
    names: Names, design: PlatformDesign, config: RenderConfig, target: BackupTarget
) -> list[dict[str, Any]]:
    """The backup's ClickHouse steps, as `clickhouse_step_plan` lays them out."""
    design_ch = design.clickhouse
    destination: chb.Destination = chb.S3Destination() if target.s3 else chb.FileDestination()
    credentials = names.clickhouse_credentials
    steps = []
    for container, host, suffix, clustered in clickhouse_step_plan(names, design):
        statement = chb.backup_statement(
            destination, on_cluster=CLUSTER_NAME if clustered else None
        )
        location = f"$BACKUP_ROOT$BACKUP_DIR/$stamp/{Component.CLICKHOUSE.value}{suffix}"
        script = (
            _PREAMBLE
            + f'location="{location}"\n'
            + 'size="$(clickhouse-client --host="$CLICKHOUSE_HOST" --receive_timeout=86400'
            ' --param_location="$location" --multiquery'
            ' --query="$BACKUP_SQL; $SIZE_SQL" | tail -n 1)"\n'
            + _report(Component.CLICKHOUSE, "$location", "${size:-0}")
        )
        steps.append(
            {
                "name": container,
                "image": f"{config.clickhouse_image}:{design_ch.version}",
                "command": ["/bin/sh", "-c", script],
                "env": [
                    {"name": "CLICKHOUSE_HOST", "value": host},
                    {"name": "CLICKHOUSE_USER", "value": ch.ADMIN_USER},
                    o.secret_env("CLICKHOUSE_PASSWORD", credentials, ch.ADMIN_PASSWORD_KEY),
                    {"name": "BACKUP_SQL", "value": statement},
                    {"name": "SIZE_SQL", "value": chb.size_query()},
                ],
                "volumeMounts": _work_mounts(target),
            }
        )
    return steps


def _postgres_step(
    names: Names, design: PlatformDesign, config: RenderConfig, target: BackupTarget
) -> dict[str, Any]:
    # Without the Job's volume the base backup waits in scratch space for the upload step.
    root = "$BACKUP_ROOT" if target.pvc else f"{WORK}/"
    command = shlex.join(
        basebackup_args(
            host=names.service_host(names.postgres_rw),
            port=pg.PORT,
            user=pg.REPLICATION_USER,
            directory=None,
        )
    )
    script = (
        _PREAMBLE
        + f'location="{root}$BACKUP_DIR/$stamp/{Component.POSTGRES.value}"\n'
        + 'mkdir -p "$(dirname "$location")"\n'
        + f'{command} --pgdata="$location"\n'
        # pg_basebackup writes its files for its own uid only (0600), and the restore step
        # reads them as the server's, another uid that fsGroup does not help (no group bit).
        + 'chmod -R a+rX "$location"\n'
        + 'size="$(du -sb "$location" | cut -f1)"\n'
        + _report(Component.POSTGRES, "$location", "$size")
    )
    return {
        "name": "postgres",
        "image": f"{config.postgres_image}:{design.postgres.version}",
        "command": ["/bin/sh", "-c", script],
        "env": [
            o.secret_env("PGPASSWORD", names.postgres_credentials, pg.REPLICATION_PASSWORD_KEY),
        ],
        "volumeMounts": _work_mounts(target),
    }


def _upload_step(s3: S3Target, backup_config: BackupConfig) -> dict[str, Any]:
    bucket_prefix = f"{s3.bucket}/{s3.prefix}/" if s3.prefix else f"{s3.bucket}/"
    script = (
        _PREAMBLE
        + f'location="$BACKUP_DIR/$stamp/{Component.POSTGRES.value}"\n'
        + f'aws s3 cp --recursive --only-show-errors "{WORK}/$location" "s3://$BUCKET_PREFIX$location"\n'
        + f'size="$(du -sb "{WORK}/$location" | cut -f1)"\n'
        + _report(Component.POSTGRES, "s3://$BUCKET_PREFIX$location", "$size")
    )
    return {
        "name": "upload",
        "image": backup_config.uploader_image,
        "command": ["/bin/sh", "-c", script],
        "env": [{"name": "BUCKET_PREFIX", "value": bucket_prefix}, *aws_env(s3)],
        "volumeMounts": [{"name": "work", "mountPath": WORK}],
    }
