"""Everything a platform consists of, in the order it is applied."""

from __future__ import annotations

from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.render import clickhouse, postgres
from duet_operator.render.backup import build_backup_cronjob, clickhouse_server_backup
from duet_operator.render.backup_pod import DEFAULT_CONFIG, BackupConfig
from duet_operator.render.config import PlatformSecrets, RenderConfig
from duet_operator.render.keeper import build_keeper
from duet_operator.render.naming import Names
from duet_operator.render.objects import Manifest

# Secrets and configuration before the workloads that mount them; Keeper before the servers
# that connect to it. Server-side apply is idempotent, so the order only shortens start-up.
_KIND_ORDER = {
    "Secret": 0,
    "ConfigMap": 1,
    "Service": 2,
    "StatefulSet": 3,
    "PodDisruptionBudget": 4,
    "CronJob": 5,
}


def build_platform(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    secrets: PlatformSecrets,
    *,
    keeper_members: int | None = None,
    keeper_joining: int | None = None,
    backup_config: BackupConfig = DEFAULT_CONFIG,
) -> list[Manifest]:
    """The platform's objects for `design`; Keeper with `keeper_members` servers while its
    membership steps towards the design's (membership.py). `backup_config`: the images and
    limits of the WAL archiver and the scheduled backup (the operator's settings)."""
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    manifests = [
        clickhouse.credentials_secret(
            platform,
            names,
            secrets.clickhouse_admin_password,
            secrets.clickhouse_readonly_password,
            secrets.clickhouse_cluster_secret,
        )
    ]
    manifests += build_keeper(platform, design, config, keeper_members, keeper_joining)
    manifests += clickhouse.build_clickhouse(
        platform, design, config, clickhouse_server_backup(platform)
    )
    postgres_manifests = postgres.build_postgres(platform, design, config, backup_config)
    if postgres_manifests:
        manifests.append(
            postgres.credentials_secret(
                platform,
                names,
                secrets.postgres_superuser_password,
                secrets.postgres_readonly_password,
                secrets.postgres_replication_password,
            )
        )
        manifests += postgres_manifests
    # spec.backup's schedule; its claim, not owned by the platform, is applied apart
    # (backups.BackupRunner.sync_schedule).
    manifests += build_backup_cronjob(platform, design, config, backup_config)
    # A stable sort keeps Keeper's objects ahead of the servers' within each kind.
    return sorted(manifests, key=lambda m: _KIND_ORDER.get(m["kind"], len(_KIND_ORDER)))
