"""WAL archiving as rendered, without a cluster: postgresql.conf's archive settings (only with
spec.backup), the archive command's script in the ConfigMap, the wal-archiver sidecar for
each target, and the pieces of the restore that replay the archive. The scripts themselves
run for real in tests/integration/test_wal_archive.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from duet_agents.backup import wal_directory
from duet_agents.backup.wal import (
    ARCHIVE_SCRIPT,
    PUSH_PVC_SCRIPT,
    PUSH_S3_SCRIPT,
    archive_command,
    recovery_script,
)
from duet_operator.render.backup import BackupConfig
from duet_operator.render.config import RenderConfig
from duet_operator.render.postgres import (
    WAL_SPOOL,
    build_postgres,
    postgresql_conf,
    wal_archive_of,
)
from duet_operator.render.wal_archive import ARCHIVER, RESOURCES, SCRIPT_FILE
from tests.support.platforms import S3_ENDPOINT, design, platform, s3_target

CONFIG = RenderConfig()
BACKUPS = BackupConfig(uploader_image="example/aws-cli:2")
S3 = {"s3": s3_target()}
PVC_SIZE = {"pvc": {"size": "100Gi"}}
PVC_CLAIM = {"pvc": {"claimName": "shared"}}
SPOOL = "/var/lib/postgresql/data/duet-wal-spool"


def test_the_spool_the_probe_reads_is_the_one_rendered() -> None:
    # The operator's probe takes render/postgres.py's WAL_SPOOL; the pods get this one.
    assert WAL_SPOOL == SPOOL


def rendered(target: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"backup": {"schedule": "@daily", "target": target}} if target else {}
    manifests = build_postgres(platform(**spec), design(), CONFIG, BACKUPS)
    return {m["kind"]: m for m in manifests if m["kind"] in ("ConfigMap", "StatefulSet")}


def pod(objects: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["StatefulSet"]["spec"]["template"]["spec"]
    return spec


def containers(objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod(objects)["containers"]}


def conf(objects: dict[str, Any]) -> dict[str, str]:
    lines = objects["ConfigMap"]["data"]["postgresql.conf"].splitlines()[1:]
    return {key.strip(): value.strip() for key, _, value in (x.partition("=") for x in lines)}


@pytest.mark.parametrize("target", [S3, PVC_SIZE, PVC_CLAIM], ids=["s3", "pvc-size", "pvc-claim"])
def test_a_platform_with_backups_archives_its_wal_into_the_spool(target: dict[str, Any]) -> None:
    objects = rendered(target)
    settings = conf(objects)
    assert settings["archive_mode"] == "on"
    assert settings["archive_timeout"] == "'60s'"
    assert settings["archive_command"] == (
        f"'/bin/sh /etc/duet-postgres/{SCRIPT_FILE} %p %f {SPOOL}'"
    )
    assert objects["ConfigMap"]["data"][SCRIPT_FILE] == ARCHIVE_SCRIPT
    # Every instance has the sidecar: any of them can become the primary.
    assert list(containers(objects)) == ["postgres", "exporter", ARCHIVER]


def test_without_backups_nothing_is_archived() -> None:
    objects = rendered(None)
    assert not [k for k in conf(objects) if k.startswith("archive")]
    assert SCRIPT_FILE not in objects["ConfigMap"]["data"]
    assert list(containers(objects)) == ["postgres", "exporter"]
    assert [v["name"] for v in pod(objects)["volumes"]] == ["config"]


def test_adding_backups_rolls_the_servers() -> None:
    def config_hash(objects: dict[str, Any]) -> str:
        annotations = objects["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]
        return str(next(iter(annotations.values())))

    assert config_hash(rendered(None)) != config_hash(rendered(S3))


def test_extra_settings_join_the_sorted_conf() -> None:
    text = postgresql_conf("2Gi", {"archive_mode": "on"})
    keys = [line.split(" = ")[0] for line in text.splitlines()[1:]]
    assert keys == sorted(keys)
    assert "archive_mode = on" in text
    assert "archive_mode" not in postgresql_conf("2Gi")


def test_the_s3_sidecar_uploads_with_the_targets_keys_by_reference() -> None:
    objects = rendered(S3)
    sidecar = containers(objects)[ARCHIVER]
    assert sidecar["image"] == "example/aws-cli:2"
    assert sidecar["command"][:3] == ["/bin/sh", "-c", PUSH_S3_SCRIPT]
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["WAL_DIR"]["value"] == "prod/clicks/wal"
    assert env["BUCKET"]["value"] == "duet-backups"
    assert env["SPOOL"]["value"] == SPOOL
    assert env["AWS_ENDPOINT_URL"]["value"] == S3_ENDPOINT
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-keys",
        "key": "access-key-id",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-keys",
        "key": "secret-access-key",
    }
    assert "s3-keys" not in json.dumps(sidecar["command"])
    # The pod's user (no override), the spool on the data volume, HOME on scratch space.
    assert "runAsUser" not in sidecar["securityContext"]
    assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
    assert sidecar["volumeMounts"] == [
        {"name": "data", "mountPath": "/var/lib/postgresql/data"},
        {"name": "wal-archiver-work", "mountPath": "/work"},
    ]
    assert env["HOME"]["value"] == "/work"
    assert {"name": "wal-archiver-work", "emptyDir": {}} in pod(objects)["volumes"]
    assert sidecar["resources"] == RESOURCES


@pytest.mark.parametrize(
    ("target", "claim"), [(PVC_SIZE, "clicks-backups"), (PVC_CLAIM, "shared")], ids=["size", "name"]
)
def test_the_claims_sidecar_writes_as_the_backup_uid(target: dict[str, Any], claim: str) -> None:
    objects = rendered(target)
    sidecar = containers(objects)[ARCHIVER]
    assert sidecar["image"] == "postgres:17"
    assert sidecar["command"][:3] == ["/bin/sh", "-c", PUSH_PVC_SCRIPT]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["WAL_DIR"] == "/backups/clicks/wal"
    assert not [e for e in sidecar["env"] if "valueFrom" in e]
    # Every writer of the claim is uid 101; the pod's fsGroup (999) lets it read the spool.
    assert sidecar["securityContext"]["runAsUser"] == 101
    assert pod(objects)["securityContext"]["fsGroup"] == 999
    assert {"name": "backups", "mountPath": "/backups"} in sidecar["volumeMounts"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": claim}} in pod(objects)[
        "volumes"
    ]


def test_the_archive_of_a_run_is_its_platforms() -> None:
    assert wal_directory("prod/clicks") == "prod/clicks/wal"
    assert wal_archive_of("/backups/shop/20250301T020000Z/postgres") == "/backups/shop/wal"
    assert (
        wal_archive_of("duet-backups/prod/shop/20250301T020000Z/postgres/")
        == "duet-backups/prod/shop/wal"
    )


def test_archive_command_and_recovery_take_only_plain_paths() -> None:
    assert archive_command("/etc/x/a.sh", "/data/spool") == "/bin/sh /etc/x/a.sh %p %f /data/spool"
    script = recovery_script("/backups/shop/wal", "/data/pgdata", "/data/duet-recovery")
    assert 'restore_command="[ -f $wal/%f ] && cp $wal/%f %p"' in script
    assert "recovery_target_timeline=latest" in script
    assert "archive_mode=off" in script
    for hostile in ("/backups/it's", "/data/$(reboot)", "/data dir"):
        with pytest.raises(ValueError, match="only letters"):
            recovery_script(hostile, "/data/pgdata", "/data/duet-recovery")
