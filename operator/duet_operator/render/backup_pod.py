"""What every pod that touches backups shares: the backup Job, the CronJob's Jobs, the
cleanup Jobs and the restore Job. The operator-wide settings of those pods (`BackupConfig`),
the uid they run as, how they reach a target (the claim mounted at /backups, or the AWS CLI's
environment with the keys by reference), and names bounded to fit a label.

Apart from render/backup.py so that render/backup_cleanup.py can use them without importing
the backup Job's builders (which re-export the cleanup's for their callers).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from duet_operator.models.backup import PvcTarget, S3Target
from duet_operator.render import objects as o

APP = "backup"
MOUNT = "/backups"
WORK = "/work"
# Every step runs as ClickHouse's user, the one its servers run as: they and the Job write
# into the same directories of a shared claim, and a volume's fsGroup is not honoured by
# every RWX driver (NFS), so one uid is what keeps both able to write.
BACKUP_UID = 101


@dataclass(frozen=True)
class BackupConfig:
    """Operator-wide settings of backup pods (chart values)."""

    uploader_image: str = "amazon/aws-cli:2.27.50"
    backoff_limit: int = 1
    active_deadline_seconds: int = 6 * 3600
    # Long enough for the operator to read the outcome, short enough not to pile up.
    ttl_seconds_after_finished: int = 24 * 3600
    history_limit: int = 3
    resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
    )


# The default of the builders' `backup_config` (one instance: it is frozen).
DEFAULT_CONFIG = BackupConfig()


def bounded_name(name: str, limit: int) -> str:
    """Names that become label values (a Job's name) must fit 63 characters, a CronJob's 52
    (it appends 11 for its Jobs); a long one keeps its start and gains a hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def claim_name(platform: str) -> str:
    """The claim Duet makes for a PVC target given by size."""
    return f"{platform}-backups"


def target_claim(platform: str, target: PvcTarget) -> str:
    return target.claim_name or claim_name(platform)


def s3_key_env(s3: S3Target, key_id_env: str, secret_env: str) -> list[dict[str, Any]]:
    ref = s3.secret_ref
    return [
        o.secret_env(key_id_env, ref.name, ref.access_key_id_key),
        o.secret_env(secret_env, ref.name, ref.secret_access_key_key),
    ]


def aws_env(s3: S3Target) -> list[dict[str, Any]]:
    """The AWS CLI's environment: the endpoint, the region and the keys (by reference)."""
    return [
        {"name": "AWS_ENDPOINT_URL", "value": s3.endpoint},
        {"name": "AWS_DEFAULT_REGION", "value": s3.region},
        # The CLI keeps a cache under HOME; the image's is root's.
        {"name": "HOME", "value": WORK},
        *s3_key_env(s3, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ]


def pod_security() -> dict[str, Any]:
    return o.POD_SECURITY | {
        "runAsUser": BACKUP_UID,
        "runAsGroup": BACKUP_UID,
        "fsGroup": BACKUP_UID,
    }
