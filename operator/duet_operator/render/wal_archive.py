"""WAL archiving of a platform's PostgreSQL to its backup target (spec.backup), so that a
restore recovers past its base backup: the additions to the PostgreSQL StatefulSet.

- postgresql.conf: `archive_mode = on`, `archive_timeout` (the longest a quiet server waits
  before it hands a partly filled WAL file over: with the sidecar's interval, the recovery
  point objective), `archive_command` running the ConfigMap's `archive-wal.sh`, which copies
  each file into a spool on the data volume beside PGDATA (duet_agents.backup.wal).
- `wal-archiver`, a sidecar in every pod (any instance can become the primary; only the
  primary fills its spool, and a former primary's spool is emptied whatever it is now), that
  moves spooled files to `<prefix>/<platform>/wal/<system identifier>/`:
  - S3: the uploader image (the AWS CLI), keys from the target's Secret by secretKeyRef, as
    the backup Job's upload step has them, HOME on a scratch volume;
  - a claim: the PostgreSQL image, the claim mounted at /backups (ReadWriteMany, as the
    ClickHouse pods mount it), as the backup uid (every writer of the claim is that uid; the
    pod's fsGroup lets it read and delete what the server spooled).
The spool is on the data volume so that nothing PostgreSQL counts as archived is lost when a
pod restarts before the sidecar has moved it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from duet_agents.backup.layout import platform_prefix, wal_directory
from duet_agents.backup.wal import (
    ARCHIVE_SCRIPT,
    PUSH_PVC_SCRIPT,
    PUSH_S3_SCRIPT,
    archive_command,
    sidecar_command,
)
from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.render import objects as o
from duet_operator.render.backup_pod import (
    BACKUP_UID,
    MOUNT,
    WORK,
    BackupConfig,
    aws_env,
    target_claim,
)
from duet_operator.render.config import RenderConfig

ARCHIVER: Final = "wal-archiver"
SCRIPT_FILE: Final = "archive-wal.sh"
SPOOL_NAME: Final = "duet-wal-spool"
# PostgreSQL hands over a WAL file when it is full or, with writes since, after this long.
ARCHIVE_TIMEOUT: Final = "60s"
# Between the sidecar's passes over the spool.
INTERVAL_SECONDS: Final = 10
RESOURCES: Final = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
# The claim's volume in the pod; the restore step reads the same one (render/postgres.py).
CLAIM_VOLUME: Final = "backups"
_SCRATCH_VOLUME: Final = "wal-archiver-work"


def spool_directory(data_dir: str) -> str:
    """Where the archive command spools WAL: on the data volume mounted at `data_dir`,
    beside PGDATA (render/postgres.py's WAL_SPOOL, which the operator's probe reads)."""
    return f"{data_dir}/{SPOOL_NAME}"


@dataclass(frozen=True)
class WalArchiving:
    """What a PostgreSQL StatefulSet gains: settings of postgresql.conf, files of its
    ConfigMap, the sidecar, and the volumes the sidecar needs beyond the pod's own."""

    settings: dict[str, str]
    files: dict[str, str]
    container: dict[str, Any]
    volumes: list[dict[str, Any]]


def postgres_wal_archiving(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup_config: BackupConfig,
    *,
    data_dir: str,
    config_dir: str,
    data_volume: str = "data",
) -> WalArchiving | None:
    """None without spec.backup. `data_dir` is where the pod mounts its data volume (the spool
    is there), `config_dir` where its ConfigMap is (the archive command's script)."""
    if platform.spec.backup is None:
        return None
    target = platform.spec.backup.target
    name = platform.metadata.name
    spool = spool_directory(data_dir)
    settings = {
        "archive_mode": "on",
        "archive_timeout": _conf_string(ARCHIVE_TIMEOUT),
        "archive_command": _conf_string(archive_command(f"{config_dir}/{SCRIPT_FILE}", spool)),
    }
    data_mount = {"name": data_volume, "mountPath": data_dir}
    common_env = [
        {"name": "SPOOL", "value": spool},
        {"name": "INTERVAL", "value": str(INTERVAL_SECONDS)},
    ]
    sidecar: dict[str, Any] = {
        "name": ARCHIVER,
        "resources": RESOURCES,
        "securityContext": o.CONTAINER_SECURITY,
    }
    if target.s3 is not None:
        s3 = target.s3
        container = sidecar | {
            "image": backup_config.uploader_image,
            "command": sidecar_command(PUSH_S3_SCRIPT),
            "env": [
                *common_env,
                {"name": "BUCKET", "value": s3.bucket},
                {"name": "WAL_DIR", "value": wal_directory(platform_prefix(s3.prefix or "", name))},
                *aws_env(s3),
            ],
            "volumeMounts": [data_mount, {"name": _SCRATCH_VOLUME, "mountPath": WORK}],
        }
        volumes: list[dict[str, Any]] = [{"name": _SCRATCH_VOLUME, "emptyDir": {}}]
    else:
        assert target.pvc is not None
        claim = target_claim(name, target.pvc)
        container = sidecar | {
            "image": f"{config.postgres_image}:{design.postgres.version}",
            "command": sidecar_command(PUSH_PVC_SCRIPT),
            "env": [
                *common_env,
                {"name": "WAL_DIR", "value": f"{MOUNT}/{wal_directory(platform_prefix('', name))}"},
            ],
            "securityContext": o.CONTAINER_SECURITY
            | {"runAsUser": BACKUP_UID, "runAsGroup": BACKUP_UID},
            "volumeMounts": [data_mount, {"name": CLAIM_VOLUME, "mountPath": MOUNT}],
        }
        volumes = [{"name": CLAIM_VOLUME, "persistentVolumeClaim": {"claimName": claim}}]
    return WalArchiving(
        settings=settings,
        files={SCRIPT_FILE: ARCHIVE_SCRIPT},
        container=container,
        volumes=volumes,
    )


def _conf_string(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("'", "''") + "'"
