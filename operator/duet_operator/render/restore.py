"""Restore at provisioning as Kubernetes objects: the Job `<platform>-restore` that gives a new
platform's ClickHouse the databases of a backup (spec.restoreFrom). PostgreSQL's part is a
step of its own StatefulSet (render/postgres.py, `with_restore`).

The Job is the backup Job's pod turned around: clickhouse-client, in the platform's ClickHouse
image, sends `RESTORE ALL EXCEPT DATABASES ... FROM <the backup's destination>` to the new
servers, which read the backup themselves, so they must reach it as they reach their own
backups (spec.backup.target: the named collection for S3, the claim at /backups). `ON
CLUSTER` as for the backup; with several shards and no Keeper, one step per shard against
its first replica, from `clickhouse/shard-N`. Each step writes `{"component", "location"}` as
its termination message; a failing one leaves its log's tail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duet_agents.backup import clickhouse as chb
from duet_agents.backup.layout import Component
from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.render import clickhouse as ch
from duet_operator.render import objects as o
from duet_operator.render.backup import APP, BACKUP_UID, BackupConfig, clickhouse_step_plan
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import CLUSTER_NAME, Names, labels

# app.kubernetes.io/component of the restore Job (its name is the backups', so the backup
# handler's watch of Jobs sees it too and hands it to the platform).
RESTORE = "restore"


def restore_job_name(platform: str) -> str:
    # A platform's name fits 63 characters less the longest suffix its StatefulSets take.
    return f"{platform}-restore"


@dataclass(frozen=True)
class ClickHouseRestore:
    """Where the backup's ClickHouse part is, as the new servers reach it: the location
    parameter of `restore_statement` (a path under /backups for a claim, a key prefix under
    the named collection for S3) without the `/shard-N` a per-shard backup adds."""

    location: str
    s3: bool


def build_restore_job(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    source: ClickHouseRestore,
    backup_config: BackupConfig,
) -> o.Manifest:
    """The Job that restores every database of the backup into the platform's ClickHouse;
    owned by the platform. No TTL: its outcome stays readable, and a failed one is retried
    only by deleting it."""
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    meta_labels = labels(names.platform, APP, RESTORE)
    steps = [
        step
        | {
            "resources": backup_config.resources,
            "securityContext": o.CONTAINER_SECURITY,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        for step in _steps(names, design, config, source)
    ]
    pod = {
        "restartPolicy": "Never",
        "securityContext": o.POD_SECURITY | {"runAsUser": BACKUP_UID, "runAsGroup": BACKUP_UID},
        "initContainers": steps[:-1],
        "containers": steps[-1:],
    }
    if not pod["initContainers"]:
        del pod["initContainers"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": o.metadata(platform, restore_job_name(names.platform), meta_labels),
        "spec": {
            "backoffLimit": backup_config.backoff_limit,
            "activeDeadlineSeconds": backup_config.active_deadline_seconds,
            "template": {"metadata": {"labels": meta_labels}, "spec": pod},
        },
    }


def _steps(
    names: Names, design: PlatformDesign, config: RenderConfig, source: ClickHouseRestore
) -> list[dict[str, Any]]:
    """As the backup's steps: one for the cluster, or one per shard (`clickhouse_step_plan`)."""
    design_ch = design.clickhouse
    destination: chb.Destination = chb.S3Destination() if source.s3 else chb.FileDestination()
    script = (
        "set -eu\n"
        'clickhouse-client --host="$CLICKHOUSE_HOST" --receive_timeout=86400'
        ' --param_location="$LOCATION" --query="$RESTORE_SQL"\n'
        f'printf \'{{"component":"{Component.CLICKHOUSE.value}","location":"%s"}}\\n\''
        ' "$LOCATION" > /dev/termination-log\n'
    )
    credentials = names.clickhouse_credentials
    return [
        {
            "name": container,
            "image": f"{config.clickhouse_image}:{design_ch.version}",
            "command": ["/bin/sh", "-c", script],
            "env": [
                {"name": "CLICKHOUSE_HOST", "value": host},
                {"name": "CLICKHOUSE_USER", "value": ch.ADMIN_USER},
                o.secret_env("CLICKHOUSE_PASSWORD", credentials, ch.ADMIN_PASSWORD_KEY),
                {"name": "LOCATION", "value": f"{source.location}{suffix}"},
                {
                    "name": "RESTORE_SQL",
                    "value": chb.restore_statement(
                        destination, on_cluster=CLUSTER_NAME if clustered else None
                    ),
                },
            ],
        }
        for container, host, suffix, clustered in clickhouse_step_plan(names, design)
    ]
