"""What the renderers are told besides the platform and its design: images and secrets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderConfig:
    """Operator-wide settings (chart values); the renderers read nothing else."""

    clickhouse_image: str = "clickhouse/clickhouse-server"
    keeper_image: str = "clickhouse/clickhouse-keeper"
    postgres_image: str = "postgres"
    postgres_exporter_image: str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
    # The operator's own image also runs the query server (`duet query serve`).
    duet_image: str = "ghcr.io/aidatalabs/duet:latest"
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class PlatformSecrets:
    """Generated once per platform and kept in its Secrets; the handler reads them back on every
    reconcile so that re-rendering never rotates a password by accident."""

    clickhouse_admin_password: str
    clickhouse_readonly_password: str
    clickhouse_cluster_secret: str
    postgres_superuser_password: str
    postgres_readonly_password: str
    postgres_replication_password: str
