"""The backup CronJob, Job and claim are admitted by the real API server (server-side
dry-run apply under the operator's field manager), and so are DataPlatformBackups and
platforms with spec.backup; the CRDs refuse what the models refuse."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from duet_operator import credentials
from duet_operator.models import DataPlatformBackup
from duet_operator.render.backup import build_backup_cronjob, build_backup_job
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from duet_operator.render.postgres import PostgresRestore, with_restore
from duet_operator.render.wal_archive import ARCHIVER
from tests.support.admission import dry_run_apply
from tests.support.platforms import design, platform, s3_target

pytestmark = pytest.mark.integration

S3 = s3_target()
TARGETS = {
    "s3": {"s3": S3},
    "pvc-size": {"pvc": {"size": "100Gi"}},
    "pvc-claim": {"pvc": {"claimName": "shared"}},
}


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
@pytest.mark.parametrize(
    "shape",
    [
        {"shards": 2, "replicas": 2, "keeper": 3, "postgres_instances": 2},
        {"shards": 3, "replicas": 1, "keeper": 0, "postgres_instances": 0},
    ],
    ids=["ha-2x2", "3-shards-no-keeper"],
)
def test_backup_cronjob_and_job_are_admitted(
    dynamic: DynamicClient, namespace: str, target: dict[str, Any], shape: dict[str, int]
) -> None:
    owner = platform(
        namespace=namespace, backup={"schedule": "30 1 * * *", "retention": 5, "target": target}
    )
    built = design(**shape)
    manifests = build_backup_cronjob(owner, built, RenderConfig())
    backup = DataPlatformBackup.model_validate(
        {
            "metadata": {
                "name": "on-demand",
                "namespace": namespace,
                "uid": "0b5c7a1e-0000-4000-8000-0000000000b2",
                "creationTimestamp": "2025-03-01T02:00:05Z",
            },
            "spec": {"platformRef": {"name": owner.metadata.name}},
        }
    )
    manifests.append(build_backup_job(backup, owner, built, RenderConfig()))
    for manifest in manifests:
        admitted = dry_run_apply(dynamic, manifest)
        assert admitted.metadata.name == manifest["metadata"]["name"]
        assert admitted.metadata.managedFields[0].manager == "duet"
    kinds = [m["kind"] for m in manifests]
    assert kinds.count("CronJob") == 1
    assert kinds.count("Job") == 1


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_a_platform_archiving_its_wal_is_admitted(
    dynamic: DynamicClient, namespace: str, target: dict[str, Any]
) -> None:
    """PostgreSQL's StatefulSet with the wal-archiver sidecar (and its volumes), and with the
    restore steps on top, which share the sidecar's claim rather than naming it twice."""
    owner = platform(
        namespace=namespace, backup={"schedule": "30 1 * * *", "retention": 5, "target": target}
    )
    built = design(shards=1, replicas=1, keeper=0, postgres_instances=2)
    manifests = build_platform(owner, built, RenderConfig(), credentials.fill())
    claim = f"{owner.metadata.name}-backups" if "size" in target.get("pvc", {}) else "shared"
    restore = (
        PostgresRestore(
            location="s3://duet-backups/prod/old/20250301T020000Z",
            directory="duet-backups/prod/old/20250301T020000Z/postgres",
            s3=owner.spec.backup.target.s3,  # type: ignore[union-attr]
            downloader_image="amazon/aws-cli:2.27.50",
        )
        if "s3" in target
        else PostgresRestore(
            location=f"pvc://{claim}/old/20250301T020000Z",
            directory="old/20250301T020000Z/postgres",
            claim=claim,
        )
    )
    restoring = with_restore(manifests, owner, built, RenderConfig(), restore)
    statefulsets = [
        m
        for m in [*manifests, *restoring]
        if m["kind"] == "StatefulSet" and m["metadata"]["name"].endswith("-postgres")
    ]
    assert len(statefulsets) == 2
    for sts in statefulsets:
        pod = sts["spec"]["template"]["spec"]
        assert ARCHIVER in [c["name"] for c in pod["containers"]]
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert len(claims) == len(set(claims))
    for manifest in [*manifests, statefulsets[-1]]:
        admitted = dry_run_apply(dynamic, manifest)
        assert admitted.metadata.name == manifest["metadata"]["name"]


def create(custom: Any, namespace: str, plural: str, body: dict[str, Any]) -> Any:
    return custom.create_namespaced_custom_object(
        "duet.aidatalabs.ai", "v1alpha1", namespace, plural, body, dry_run="All"
    )


def test_the_crds_take_backups_and_refuse_two_targets(custom: Any, namespace: str) -> None:
    good: dict[str, Any] = {
        "apiVersion": "duet.aidatalabs.ai/v1alpha1",
        "kind": "DataPlatformBackup",
        "metadata": {"name": "b1"},
        "spec": {"platformRef": {"name": "clicks"}, "target": {"s3": S3}},
    }
    made = create(custom, namespace, "dataplatformbackups", good)
    assert made["spec"]["components"] == ["clickhouse", "postgres"]
    two = good | {"spec": good["spec"] | {"target": {"s3": S3, "pvc": {"claimName": "x"}}}}
    with pytest.raises(client.ApiException, match="exactly one of pvc and s3"):
        create(custom, namespace, "dataplatformbackups", two)

    dp: dict[str, Any] = {
        "apiVersion": "duet.aidatalabs.ai/v1alpha1",
        "kind": "DataPlatform",
        "metadata": {"name": "clicks"},
        "spec": {
            "requirements": {"dataVolume": "1Ti"},
            "backup": {"schedule": "@daily", "target": {"pvc": {"size": "10Gi"}}},
            "restoreFrom": {"backup": "b1"},
        },
    }
    made = create(custom, namespace, "dataplatforms", dp)
    assert made["spec"]["backup"]["retention"] == 7
    # Point-in-time recovery: Time names its moment, and only Time takes one.
    timed = {"backup": "b1", "postgresRecovery": "Time"}
    for restore_from in (timed, {"backup": "b1", "recoveryTargetTime": "2025-03-01T14:30:00Z"}):
        body = dp | {
            "metadata": {"name": "clicks-pitr"},
            "spec": dp["spec"] | {"restoreFrom": restore_from},
        }
        with pytest.raises(client.ApiException) as refused:
            create(custom, namespace, "dataplatforms", body)
        assert "recoveryTargetTime is required with postgresRecovery Time" in refused.value.body
    timed["recoveryTargetTime"] = "2025-03-01T14:30:00Z"
    body = dp | {"metadata": {"name": "clicks-pitr"}, "spec": dp["spec"] | {"restoreFrom": timed}}
    made = create(custom, namespace, "dataplatforms", body)
    assert made["spec"]["restoreFrom"]["recoveryTargetTime"] == "2025-03-01T14:30:00Z"
    bad = dp | {"spec": dp["spec"] | {"backup": {"schedule": "every day", "target": {}}}}
    with pytest.raises(client.ApiException) as refused:
        create(custom, namespace, "dataplatforms", bad)
    assert "schedule" in refused.value.body
