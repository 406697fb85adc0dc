"""The backup renderers: the CronJob of spec.backup, the Job of one DataPlatformBackup, and
what ClickHouse servers need to write backups."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from duet_operator.models import DataPlatform, DataPlatformBackup
from duet_operator.render.backup import (
    BACKUP_LABEL,
    build_backup_claim,
    build_backup_cronjob,
    build_backup_job,
    clickhouse_server_backup,
    cronjob_name,
    describe_location,
    job_name,
)
from duet_operator.render.config import RenderConfig
from duet_operator.render.platform import build_platform
from tests.support.platforms import SECRETS, design, platform

CONFIG = RenderConfig()
S3 = {
    "endpoint": "https://s3.eu-west-1.amazonaws.com",
    "bucket": "duet-backups",
    "prefix": "prod",
    "secretRef": {"name": "s3-keys"},
}
PVC_SIZE = {"pvc": {"size": "500Gi", "storageClass": "nfs"}}
PVC_CLAIM = {"pvc": {"claimName": "shared-backups"}}


def with_backup(target: dict[str, Any], **extra: Any) -> DataPlatform:
    return platform(backup={"schedule": "0 2 * * *", "retention": 3, "target": target}, **extra)


def backup_object(**spec: Any) -> DataPlatformBackup:
    return DataPlatformBackup.model_validate(
        {
            "metadata": {
                "name": "nightly-1",
                "namespace": "analytics",
                "uid": "0b5c7a1e-0000-4000-8000-0000000000b1",
                "creationTimestamp": "2025-03-01T02:00:05Z",
            },
            "spec": {"platformRef": {"name": "clicks"}} | spec,
        }
    )


def pod_of(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    job = spec["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else spec
    return job["template"]["spec"]  # type: ignore[no-any-return]


def steps(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_no_backup_spec_renders_nothing() -> None:
    assert build_backup_cronjob(platform(), design(), CONFIG) == []
    assert clickhouse_server_backup(platform()) is None


def test_the_cronjob_runs_on_schedule_one_at_a_time_owned_by_the_platform() -> None:
    (cronjob,) = build_backup_cronjob(with_backup({"s3": S3}), design(), CONFIG)
    assert cronjob["kind"] == "CronJob"
    assert cronjob["metadata"]["name"] == "clicks-backup"
    assert cronjob["metadata"]["ownerReferences"][0]["kind"] == "DataPlatform"
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 2 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] >= 0
    # A scheduled run stamps itself when it starts.
    for container in steps(pod_of(cronjob)):
        assert "BACKUP_STAMP" not in env_of(container)


def test_an_s3_job_backs_up_clickhouse_then_postgres_then_uploads() -> None:
    job = build_backup_job(backup_object(), with_backup({"s3": S3}), design(), CONFIG)
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "nightly-1-backup"
    assert job["metadata"]["labels"][BACKUP_LABEL] == "nightly-1"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "DataPlatformBackup"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    pod = pod_of(job)
    assert [c["name"] for c in pod["initContainers"]] == ["clickhouse", "postgres"]
    assert [c["name"] for c in pod["containers"]] == ["upload"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in steps(pod):
        assert container["resources"]["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert env_of(container)["BACKUP_STAMP"] == "20250301T020005Z"
    clickhouse, postgres, upload = steps(pod)
    assert clickhouse["image"] == "clickhouse/clickhouse-server:25.8"
    ch_env = env_of(clickhouse)
    assert ch_env["CLICKHOUSE_HOST"] == "clicks-clickhouse.analytics.svc.cluster.local"
    assert 'ON CLUSTER "default"' in ch_env["BACKUP_SQL"]
    assert 'TO S3("duet_backups", {location:String})' in ch_env["BACKUP_SQL"]
    assert postgres["image"] == "postgres:17"
    assert "--wal-method=stream" in postgres["command"][-1]
    assert "--host=clicks-postgres-rw.analytics.svc.cluster.local" in postgres["command"][-1]
    assert env_of(upload)["BUCKET_PREFIX"] == "duet-backups/prod/"
    assert env_of(upload)["AWS_ENDPOINT_URL"] == S3["endpoint"]


def test_credentials_come_from_secrets_never_literals() -> None:
    job = build_backup_job(backup_object(), with_backup({"s3": S3}), design(), CONFIG)
    refs = {}
    for container in steps(pod_of(job)):
        for entry in container["env"]:
            if any(word in entry["name"] for word in ("PASSWORD", "SECRET", "ACCESS_KEY")):
                assert "value" not in entry, entry["name"]
                ref = entry["valueFrom"]["secretKeyRef"]
                refs[entry["name"]] = (ref["name"], ref["key"])
    assert refs == {
        "CLICKHOUSE_PASSWORD": ("clicks-clickhouse-credentials", "admin-password"),
        "PGPASSWORD": ("clicks-postgres-credentials", "replication-password"),
        "AWS_ACCESS_KEY_ID": ("s3-keys", "access-key-id"),
        "AWS_SECRET_ACCESS_KEY": ("s3-keys", "secret-access-key"),
    }


def test_a_pvc_target_is_mounted_and_clickhouse_writes_files_there() -> None:
    job = build_backup_job(backup_object(), with_backup(PVC_CLAIM), design(), CONFIG)
    pod = pod_of(job)
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "shared-backups"}} in pod[
        "volumes"
    ]
    clickhouse, postgres = steps(pod)
    assert "TO File({location:String})" in env_of(clickhouse)["BACKUP_SQL"]
    assert env_of(clickhouse)["BACKUP_ROOT"] == "/backups/"
    for container in (clickhouse, postgres):
        assert {"name": "backups", "mountPath": "/backups"} in container["volumeMounts"]
    assert describe_location("clicks", with_backup(PVC_CLAIM).spec.backup.target, "S") == (  # type: ignore[union-attr]
        "pvc://shared-backups/clicks/S"
    )


def test_a_claim_given_by_size_is_made_shared_and_outlives_the_platform() -> None:
    (claim,) = build_backup_claim(with_backup(PVC_SIZE))
    (cronjob,) = build_backup_cronjob(with_backup(PVC_SIZE), design(), CONFIG)
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["metadata"]["name"] == "clicks-backups"
    assert "ownerReferences" not in claim["metadata"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "nfs"
    volumes = pod_of(cronjob)["volumes"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "clicks-backups"}} in volumes
    assert build_backup_claim(with_backup(PVC_CLAIM)) == []


def test_a_single_node_is_backed_up_without_on_cluster() -> None:
    job = build_backup_job(backup_object(), with_backup({"s3": S3}), design(1, 1, 0, 1), CONFIG)
    (clickhouse, *_) = steps(pod_of(job))
    assert "ON CLUSTER" not in env_of(clickhouse)["BACKUP_SQL"]


def test_shards_without_keeper_are_backed_up_one_by_one() -> None:
    job = build_backup_job(
        backup_object(components=["clickhouse"]),
        with_backup({"s3": S3}),
        design(3, 1, 0, 0),
        CONFIG,
    )
    pod = pod_of(job)
    names = [c["name"] for c in steps(pod)]
    assert names == ["clickhouse-shard-0", "clickhouse-shard-1", "clickhouse-shard-2"]
    hosts = [env_of(c)["CLICKHOUSE_HOST"] for c in steps(pod)]
    assert hosts[1].startswith("clicks-clickhouse-1-0.clicks-clickhouse-headless.")
    assert "/shard-2" in steps(pod)[2]["command"][-1]


def test_postgres_is_skipped_when_the_design_has_none() -> None:
    job = build_backup_job(
        backup_object(), with_backup({"s3": S3}), design(postgres_instances=0), CONFIG
    )
    assert [c["name"] for c in steps(pod_of(job))] == ["clickhouse"]


def test_a_backup_without_any_target_is_refused() -> None:
    with pytest.raises(ValueError, match="no target"):
        build_backup_job(backup_object(), platform(), design(), CONFIG)


def test_a_backups_own_target_wins_over_the_platforms() -> None:
    job = build_backup_job(
        backup_object(target=PVC_CLAIM), with_backup({"s3": S3}), design(), CONFIG
    )
    assert "File(" in env_of(steps(pod_of(job))[0])["BACKUP_SQL"]


def test_s3_servers_get_a_named_collection_with_keys_from_the_environment() -> None:
    server = clickhouse_server_backup(with_backup({"s3": S3}))
    assert server is not None
    collection = ET.fromstring(server.config_xml).find("named_collections/duet_backups")
    assert collection is not None
    assert collection.findtext("url") == "https://s3.eu-west-1.amazonaws.com/duet-backups/prod/"
    key = collection.find("access_key_id")
    assert key is not None
    assert key.get("from_env") == "DUET_BACKUP_S3_ACCESS_KEY_ID"
    assert not (key.text or "").strip()
    assert all("valueFrom" in e for e in server.env)
    assert server.volumes == []


def test_pvc_servers_mount_the_claim_and_allow_backups_there() -> None:
    server = clickhouse_server_backup(with_backup(PVC_CLAIM))
    assert server is not None
    assert ET.fromstring(server.config_xml).findtext("backups/allowed_path") == "/backups/"
    assert server.mounts == [{"name": "backups", "mountPath": "/backups"}]


def test_long_names_fit_kubernetes_limits_and_stay_distinct() -> None:
    long = "p" * 60
    assert len(cronjob_name(long)) <= 52
    assert len(job_name(long + "a")) <= 63
    assert job_name(long + "a") != job_name(long + "b")


def test_rendering_is_deterministic() -> None:
    first = build_backup_job(backup_object(), with_backup({"s3": S3}), design(), CONFIG)
    second = build_backup_job(backup_object(), with_backup({"s3": S3}), design(), CONFIG)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.mark.parametrize("target", [{"s3": S3}, PVC_CLAIM], ids=["s3", "pvc"])
def test_every_step_is_a_script_sh_can_parse(target: dict[str, Any]) -> None:
    job = build_backup_job(backup_object(), with_backup(target), design(3, 1, 0, 1), CONFIG)
    for container in steps(pod_of(job)):
        shell, flag, script = container["command"]
        assert (shell, flag) == ("/bin/sh", "-c")
        subprocess.run(["sh", "-n", "-c", script], check=True)


def test_the_platforms_servers_are_rendered_ready_to_write_its_backups() -> None:
    def servers(p: DataPlatform) -> tuple[dict[str, Any], dict[str, Any]]:
        objects = build_platform(p, design(), CONFIG, SECRETS)
        config = next(m for m in objects if m["metadata"]["name"] == "clicks-clickhouse-config")
        shard = next(m for m in objects if m["metadata"]["name"] == "clicks-clickhouse-0")
        return config, shard["spec"]["template"]["spec"]

    config, pod = servers(with_backup(PVC_CLAIM))
    assert "allowed_path" in config["data"]["backup.xml"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/backups"]["name"] == "backups"
    assert mounts["/etc/clickhouse-server/config.d/backup.xml"]["subPath"] == "backup.xml"
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "shared-backups"}} in (
        pod["volumes"]
    )

    _, pod = servers(with_backup({"s3": S3}))
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["DUET_BACKUP_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "s3-keys"

    config, pod = servers(platform())
    assert "backup.xml" not in config["data"], "no backup, nothing added"
    assert all(v["name"] != "backups" for v in pod["volumes"])
