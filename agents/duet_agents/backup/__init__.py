"""Backups of a platform's databases, decided without touching Kubernetes: what a cron
schedule may say, where a backup lives, which statements and commands take and restore it,
which old backups retention lets go, and how their data is deleted (cleanup).

    location(platform_prefix("team/dp", "clicks"), stamp(now), Component.CLICKHOUSE)
    backup_statement(S3Destination(BACKUP_COLLECTION))   # the location is a query parameter
    basebackup_args(host=..., port=5432, user="replicator", directory="/work/postgres")
    expired(records, keep=7)
    run_directory("team/dp/clicks/20250301T020000Z", "team/dp/clicks")  # or ValueError
    wal_directory("team/dp/clicks")  # PostgreSQL's WAL archive (backup/wal.py)
    backup_wal(manifest).cutoff()     # the first archived WAL file a backup needs (wal_prune.py)

The operator renders these into Jobs and CronJobs (duet_operator/render/backup.py); see
docs/backup.md.
"""

from duet_agents.backup.clickhouse import (
    BACKUP_COLLECTION,
    LOCATION_PARAMETER,
    SYSTEM_DATABASES,
    Destination,
    DiskDestination,
    FileDestination,
    S3Destination,
    backup_statement,
    restore_statement,
    size_query,
)
from duet_agents.backup.layout import (
    STAMP_FORMAT,
    Component,
    location,
    parse_stamp,
    platform_prefix,
    run_directory,
    stamp,
    wal_directory,
)
from duet_agents.backup.postgres import basebackup_args, restore_script
from duet_agents.backup.retention import BackupRecord, expired
from duet_agents.backup.schedule import CRON_PATTERN, check_cron

__all__ = [
    "BACKUP_COLLECTION",
    "CRON_PATTERN",
    "LOCATION_PARAMETER",
    "STAMP_FORMAT",
    "SYSTEM_DATABASES",
    "BackupRecord",
    "Component",
    "Destination",
    "DiskDestination",
    "FileDestination",
    "S3Destination",
    "backup_statement",
    "basebackup_args",
    "check_cron",
    "expired",
    "location",
    "parse_stamp",
    "platform_prefix",
    "restore_script",
    "restore_statement",
    "run_directory",
    "size_query",
    "stamp",
    "wal_directory",
]
