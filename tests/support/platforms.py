"""Reference platforms and designs for tests, built through the models."""

from __future__ import annotations

from typing import Any

from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.render.config import PlatformSecrets


def platform(name: str = "clicks", namespace: str = "analytics", **spec: Any) -> DataPlatform:
    body = {
        "apiVersion": "duet.aidatalabs.ai/v1alpha1",
        "kind": "DataPlatform",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "0b5c7a1e-0000-4000-8000-000000000001",
        },
        "spec": {"requirements": {"dataVolume": "2Ti", "availability": "high"}} | spec,
    }
    return DataPlatform.model_validate(body)


S3_ENDPOINT = "http://minio.storage:9000"


def s3_target(**fields: Any) -> dict[str, Any]:
    """The S3 target (`spec.backup.target.s3`) tests back up to; `fields` replace its own, and
    one given as None is left out (`s3_target(prefix=None)`: the bucket's root)."""
    target = {
        "endpoint": S3_ENDPOINT,
        "bucket": "duet-backups",
        "prefix": "prod",
        "secretRef": {"name": "s3-keys"},
    } | fields
    return {key: value for key, value in target.items() if value is not None}


def design(
    shards: int = 2, replicas: int = 2, keeper: int = 3, postgres_instances: int = 2
) -> PlatformDesign:
    return PlatformDesign.model_validate(
        {
            "clickhouse": {
                "version": "25.8",
                "shards": shards,
                "replicas": replicas,
                "resources": {"cpu": "4", "memory": "16Gi"},
                "storage": {"size": "1400Gi"},
                "keeper": {
                    "replicas": keeper,
                    "resources": {"cpu": "1", "memory": "2Gi"},
                    "storage": {"size": "10Gi"},
                },
            },
            "postgres": {
                "enabled": postgres_instances > 0,
                "version": "17",
                "instances": postgres_instances,
                "resources": {"cpu": "1", "memory": "2Gi"},
                "storage": {"size": "20Gi"},
            },
            "estimatedMonthlyCostUSD": 1234.5,
            "rationale": ["test design"],
            "planner": {"provider": "builtin"},
        }
    )


SECRETS = PlatformSecrets(
    clickhouse_admin_password="admin-pw",
    clickhouse_readonly_password="readonly-pw",
    clickhouse_cluster_secret="cluster-secret",
    postgres_superuser_password="pg-super-pw",
    postgres_readonly_password="pg-readonly-pw",
    postgres_replication_password="pg-repl-pw",
)
