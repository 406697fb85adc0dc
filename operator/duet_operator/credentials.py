"""A platform's passwords: kept once generated, generated only where missing."""

from __future__ import annotations

import secrets

from duet_operator.render import clickhouse, postgres
from duet_operator.render.config import PlatformSecrets


def fill(
    clickhouse_data: dict[str, str] | None = None, postgres_data: dict[str, str] | None = None
) -> PlatformSecrets:
    """The passwords in the two credentials Secrets' data, with fresh ones for any missing
    (all of them for a new platform, or for `duet render`)."""
    ch, pg = clickhouse_data or {}, postgres_data or {}

    def keep(data: dict[str, str], key: str) -> str:
        return data.get(key) or secrets.token_urlsafe(24)

    return PlatformSecrets(
        clickhouse_admin_password=keep(ch, clickhouse.ADMIN_PASSWORD_KEY),
        clickhouse_readonly_password=keep(ch, clickhouse.READONLY_PASSWORD_KEY),
        clickhouse_cluster_secret=keep(ch, clickhouse.CLUSTER_SECRET_KEY),
        postgres_superuser_password=keep(pg, postgres.SUPERUSER_PASSWORD_KEY),
        postgres_readonly_password=keep(pg, postgres.READONLY_PASSWORD_KEY),
        postgres_replication_password=keep(pg, postgres.REPLICATION_PASSWORD_KEY),
    )
