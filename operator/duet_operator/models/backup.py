"""Backups: `DataPlatform.spec.backup` (a schedule, a retention count and a target),
`spec.restoreFrom`, and the DataPlatformBackup resource, one backup run with its outcome.

A target is a volume claim or an S3-compatible bucket. Duet writes each run under
`<prefix>/<platform>/<UTC stamp>/<component>` there (duet_agents.backup.layout); the status
of a DataPlatformBackup says where, how big, and how long it took.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, model_validator

from duet_agents.backup.layout import Component
from duet_agents.backup.schedule import CRON_PATTERN, check_cron
from duet_agents.schema import CamelModel, ObjectName, Quantity
from duet_operator.models.common import API_VERSION, Condition, ObjectMeta, cel, validated_by

CronSchedule = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=CRON_PATTERN),
    AfterValidator(check_cron),
]
# Keys S3 accepts without escaping, in segments; no leading or trailing slash.
S3_PREFIX_PATTERN = r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$"
S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class PvcTarget(CamelModel):
    """A volume: an existing claim, or one Duet makes of `size`. ClickHouse servers write
    their part of a backup to it themselves, so with more than one ClickHouse pod it needs
    ReadWriteMany (see docs/backup.md)."""

    model_config = validated_by(
        cel(
            "has(self.claimName) != has(self.size)",
            "set exactly one of claimName (an existing claim) and size (a claim Duet makes)",
        ),
        cel(
            "has(self.size) || !has(self.storageClass)",
            "storageClass applies only to a claim Duet makes (with size)",
            ".storageClass",
        ),
    )

    claim_name: ObjectName | None = None
    size: Quantity | None = None
    storage_class: ObjectName | None = Field(
        default=None, description="The cluster default when unset."
    )


class S3SecretRef(CamelModel):
    """A Secret holding the access key pair, under the keys named here."""

    name: ObjectName
    access_key_id_key: SecretKey = "access-key-id"
    secret_access_key_key: SecretKey = "secret-access-key"  # noqa: S105 - a key's name


class S3Target(CamelModel):
    endpoint: str = Field(
        max_length=2048,
        pattern=r"^https?://[^/?#]+/?$",
        description="The service's base URL, e.g. https://s3.eu-west-1.amazonaws.com or"
        " http://minio.storage:9000; the bucket is addressed path-style under it.",
    )
    bucket: str = Field(pattern=S3_BUCKET_PATTERN, max_length=63)
    prefix: str | None = Field(
        default=None, max_length=512, pattern=S3_PREFIX_PATTERN, description="Key prefix."
    )
    region: str = Field(default="us-east-1", max_length=64, pattern=r"^[a-z0-9-]+$")
    secret_ref: S3SecretRef


class BackupTarget(CamelModel):
    model_config = validated_by(
        cel("has(self.pvc) != has(self.s3)", "set exactly one of pvc and s3"),
    )

    pvc: PvcTarget | None = None
    s3: S3Target | None = None


class BackupSpec(CamelModel):
    """Scheduled backups of the platform's ClickHouse and PostgreSQL."""

    schedule: CronSchedule = Field(
        description="When, in cron form (`0 2 * * *`: 02:00 every day, in the controller"
        " manager's time zone) or a descriptor (`@daily`)."
    )
    retention: int = Field(
        default=7, ge=1, le=1000, description="Completed scheduled backups to keep."
    )
    target: BackupTarget


RESTORE_FROM_FIXED = (
    "restoreFrom cannot change after creation: the platform's databases were made from it;"
    " create a new platform to restore another backup"
)


class PostgresRecovery(enum.StrEnum):
    """How far a restore takes PostgreSQL past its base backup."""

    LATEST = "Latest"
    BACKUP = "Backup"
    TIME = "Time"


RECOVERY_TARGET_TIME_ONLY_WITH_TIME = (
    "recoveryTargetTime is required with postgresRecovery Time, and allowed only with it"
)


class RestoreFrom(CamelModel):
    """Create the platform's databases from a backup instead of empty. Read while the
    platform is made; once its condition Restored is True, ignored."""

    model_config = validated_by(
        cel("self == oldSelf", RESTORE_FROM_FIXED),
        cel(
            "(has(self.postgresRecovery) && self.postgresRecovery == 'Time')"
            " == has(self.recoveryTargetTime)",
            RECOVERY_TARGET_TIME_ONLY_WITH_TIME,
            ".recoveryTargetTime",
        ),
    )

    backup: ObjectName = Field(
        description="A Completed DataPlatformBackup in the same namespace, written to the"
        " target this platform's spec.backup.target names (its servers read it from there)."
    )
    postgres_recovery: PostgresRecovery = Field(
        default=PostgresRecovery.LATEST,
        description="Latest: PostgreSQL replays the WAL archived since the backup, to the end"
        " of the archive (the least loss, as CloudNativePG does). Backup: it stops where the"
        " base backup ends, the moment ClickHouse's part is restored to (to undo a change"
        " made since). Without an archive both are the backup's moment. Time: it replays the"
        " archive up to recoveryTargetTime (point-in-time recovery); a time before the"
        " backup's end or past the archive's end fails the restore.",
    )
    recovery_target_time: AwareDatetime | None = Field(
        default=None,
        description="With postgresRecovery Time (and only then): the moment PostgreSQL is"
        " restored to, an RFC 3339 timestamp with its offset (2025-03-01T14:30:00Z);"
        " transactions committed at exactly that moment are included. ClickHouse's part is"
        " still the backup's moment.",
    )

    @model_validator(mode="after")
    def _target_time_with_time(self) -> RestoreFrom:
        if (self.postgres_recovery is PostgresRecovery.TIME) != (
            self.recovery_target_time is not None
        ):
            raise ValueError(RECOVERY_TARGET_TIME_ONLY_WITH_TIME)
        return self


# -- DataPlatformBackup --------------------------------------------------------------------


class BackupPlatformRef(CamelModel):
    name: ObjectName


BackupComponent = Component


class BackupDeletionPolicy(enum.StrEnum):
    """What deleting a DataPlatformBackup does to the data its run wrote."""

    RETAIN = "Retain"
    DELETE = "Delete"


DELETION_POLICY_FIXED = (
    "deletionPolicy cannot change after creation: it was chosen with the backup (Delete puts a"
    " finalizer on it); to let a stuck deletion go, remove the finalizer (docs/backup.md)"
)


class DataPlatformBackupSpec(CamelModel):
    model_config = validated_by(
        cel("self == oldSelf", "a backup's spec cannot change; create a new backup instead"),
        # Said apart, naming the field: the rule above also refuses it, in general words.
        # Both sides are defaulted (Retain), so an object stored before the field has it.
        cel(
            "self.deletionPolicy == oldSelf.deletionPolicy",
            DELETION_POLICY_FIXED,
            ".deletionPolicy",
        ),
    )

    platform_ref: BackupPlatformRef
    target: BackupTarget | None = Field(
        default=None, description="Where to write; the platform's spec.backup.target if unset."
    )
    components: list[BackupComponent] = Field(
        default=[BackupComponent.CLICKHOUSE, BackupComponent.POSTGRES],
        min_length=1,
        max_length=2,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    deletion_policy: BackupDeletionPolicy = Field(
        default=BackupDeletionPolicy.RETAIN,
        description="Retain: deleting this backup removes the record (and its Job) and keeps"
        " the data it wrote. Delete: the data is deleted first, by a Job, and the record goes"
        " once that completes (a finalizer holds it until then; docs/backup.md). Set at"
        " creation only.",
    )


class BackupPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class DataPlatformBackupStatus(CamelModel):
    phase: BackupPhase | None = None
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(default_factory=list)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    duration_seconds: float | None = Field(default=None, ge=0)
    location: str | None = Field(
        default=None,
        max_length=4096,
        description="Where the backup is: the claim and path, or the s3:// URL of its prefix.",
    )
    message: str | None = Field(default=None, max_length=4096)


class DataPlatformBackup(CamelModel):
    api_version: Literal["duet.aidatalabs.ai/v1alpha1"] = API_VERSION
    kind: Literal["DataPlatformBackup"] = "DataPlatformBackup"
    metadata: ObjectMeta
    spec: DataPlatformBackupSpec
    status: DataPlatformBackupStatus = Field(default_factory=DataPlatformBackupStatus)
