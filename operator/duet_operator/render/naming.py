"""Every object name, label and selector of a platform, from one place.

Names are derived from the platform's name only, so the operator finds what it made without
listing anything, and a user can guess them: `<platform>-clickhouse-<shard>` is shard N's
StatefulSet, `<platform>-clickhouse` the client Service, `<platform>-postgres-rw` PostgreSQL's
read-write Service.
"""

from __future__ import annotations

from dataclasses import dataclass

from duet_operator.models import GROUP

PLATFORM_LABEL = f"{GROUP}/platform"
SHARD_LABEL = f"{GROUP}/shard"
CLUSTER_NAME = "default"  # the ClickHouse cluster name in remote_servers and ON CLUSTER DDL


@dataclass(frozen=True)
class Names:
    platform: str
    namespace: str
    cluster_domain: str = "cluster.local"

    # -- ClickHouse ------------------------------------------------------------------------
    @property
    def clickhouse(self) -> str:
        return f"{self.platform}-clickhouse"

    @property
    def clickhouse_headless(self) -> str:
        return f"{self.platform}-clickhouse-headless"

    @property
    def clickhouse_config(self) -> str:
        return f"{self.platform}-clickhouse-config"

    @property
    def clickhouse_credentials(self) -> str:
        return f"{self.platform}-clickhouse-credentials"

    def shard(self, index: int) -> str:
        return f"{self.platform}-clickhouse-{index}"

    def clickhouse_host(self, shard: int, replica: int) -> str:
        return self.fqdn(f"{self.shard(shard)}-{replica}", self.clickhouse_headless)

    # -- Keeper ----------------------------------------------------------------------------
    @property
    def keeper(self) -> str:
        return f"{self.platform}-keeper"

    @property
    def keeper_headless(self) -> str:
        return f"{self.platform}-keeper-headless"

    @property
    def keeper_config(self) -> str:
        return f"{self.platform}-keeper-config"

    def keeper_host(self, index: int) -> str:
        return self.fqdn(f"{self.keeper}-{index}", self.keeper_headless)

    # -- PostgreSQL ------------------------------------------------------------------------
    @property
    def postgres(self) -> str:
        return f"{self.platform}-postgres"

    @property
    def postgres_headless(self) -> str:
        return f"{self.platform}-postgres-headless"

    @property
    def postgres_rw(self) -> str:
        return f"{self.platform}-postgres-rw"

    @property
    def postgres_ro(self) -> str:
        return f"{self.platform}-postgres-ro"

    @property
    def postgres_config(self) -> str:
        return f"{self.platform}-postgres-config"

    @property
    def postgres_credentials(self) -> str:
        return f"{self.platform}-postgres-credentials"

    def fqdn(self, pod: str, service: str) -> str:
        return f"{pod}.{service}.{self.namespace}.svc.{self.cluster_domain}"

    def service_host(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc.{self.cluster_domain}"


MANAGED_BY, MANAGER = "app.kubernetes.io/managed-by", "duet"
# What the operator's watches of its children select on the server: every object Duet makes
# (platforms', agents', backups') carries it, and its pod templates too.
MANAGED_BY_DUET = f"{MANAGED_BY}={MANAGER}"


def labels(platform: str, name: str, component: str, version: str | None = None) -> dict[str, str]:
    """The labels of every object: the recommended app.kubernetes.io set plus our platform label."""
    result = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": platform,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "duet",
        MANAGED_BY: MANAGER,
        PLATFORM_LABEL: platform,
    }
    if version:
        result["app.kubernetes.io/version"] = version
    return result


def selector(platform: str, name: str) -> dict[str, str]:
    """The immutable subset of labels that StatefulSets and Services select on."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": platform}


def claim_labels(platform: str, name: str) -> dict[str, str]:
    """Labels of volume claims: immutable in a StatefulSet, so nothing that changes (no version)."""
    return selector(platform, name) | {PLATFORM_LABEL: platform}
