"""Restore at provisioning (spec.restoreFrom), end to end.

Against the real engines: instance 0's restore step (`restore_init_script`, as its init
container runs it) on a real PostgreSQL base backup: the data of the backup, this platform's
passwords on the restored roles, and a restarted pod that never restores twice.
(`restore_script` and `restore_statement` on their own are covered by test_backup_engines.)

Against the local control plane, with the session's operator: a platform whose restoreFrom
names a Completed DataPlatformBackup (made, with its status, through the API as the test's
given) gets the restore step on PostgreSQL's StatefulSet and, once ClickHouse is Ready, the
Job `<platform>-restore`, whose end the test plays as the kubelet would (kwok cannot write a
termination message); Restored then goes True and the platform Ready. A missing backup, a
failing restore Job and a change of restoreFrom are each refused in their own way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from duet_agents.backup import basebackup_args
from duet_operator.models import GROUP, VERSION
from duet_operator.render.postgres import restore_init_script
from tests.integration.postgres_fixtures import postgres_server
from tests.integration.test_backup_operator import (
    events_of,
    get,
    play_kubelet,
    wait_job,
    wait_ready,
)
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess
from tests.support.postgres import (
    SUPERUSER,
    PostgresServer,
    _as_server_user,
    _stop,
    start_postgres,
)
from tests.support.wait import wait_until

__all__ = ["postgres_server"]

NEW_PASSWORDS = {
    "POSTGRES_PASSWORD": "new-super-'pw",
    "POSTGRES_READONLY_PASSWORD": "new-readonly-pw",
    "POSTGRES_REPLICATION_PASSWORD": "new-repl-pw",
}


# -- the restore step against the real PostgreSQL ---------------------------------------------


@contextlib.contextmanager
def server_on(data: Path, base: Path, original: PostgresServer, prefix: list[str]) -> Iterator[int]:
    """PostgreSQL started on a restored data directory; yields its port."""
    log_path = base / "restored.log"
    process, port = start_postgres(original.bin_dir, data, base, log_path, prefix)

    def accepts() -> bool:
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-4000:])
        dsn = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, password=NEW_PASSWORDS["POSTGRES_PASSWORD"]) as conn:
            conn.execute("SELECT 1")
        return True

    try:
        wait_until(accepts, timeout=60, what="the restored server", ignore=(Exception,))
        yield port
    finally:
        _stop(process)


def run_step(
    script: str, prefix: list[str], server: PostgresServer, hostname: str
) -> subprocess.CompletedProcess[str]:
    env = (
        server.client_env()
        | NEW_PASSWORDS
        | {
            "HOSTNAME": hostname,
            "RESTORE_LOCATION": "pvc://shared-backups/shop/20250301T020000Z",
        }
    )
    return subprocess.run(
        [*prefix, "sh", "-c", script], env=env, capture_output=True, text=True, check=False
    )


def login(port: int, user: str, password: str, db: str = "postgres") -> Any:
    dsn = f"host=127.0.0.1 port={port} user={user} dbname={db} connect_timeout=5"
    return psycopg.connect(dsn, password=password)


def test_instance_0_restores_once_with_this_platforms_passwords(
    postgres_server: PostgresServer,
) -> None:
    server = postgres_server
    with server.admin() as conn:
        conn.execute("DROP DATABASE IF EXISTS orders")
        conn.execute("CREATE DATABASE orders")
        for role in ("readonly", "replicator"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
        # The roles as the old platform made them, with its passwords.
        conn.execute("CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'old-repl'")
        conn.execute("CREATE ROLE readonly WITH LOGIN PASSWORD 'old-readonly'")
    with server.admin("orders") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g")
        conn.execute("GRANT SELECT ON items TO readonly")
        before = conn.execute("SELECT * FROM items ORDER BY id").fetchall()

    prefix, uid, gid = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="duet-pg-restore-"))
    try:
        if uid is not None and gid is not None:
            os.chown(base, uid, gid)
        backup_dir = base / "backups" / "shop" / "20250301T020000Z" / "postgres"
        args = basebackup_args(
            host=server.host, port=server.port, user=SUPERUSER, directory=str(backup_dir)
        )
        subprocess.run([*prefix, *args], check=True, capture_output=True, env=server.client_env())
        pgdata = base / "data" / "pgdata"
        script = restore_init_script(str(backup_dir), str(pgdata))
        # A standby's pod does nothing: it clones instance 0 as always.
        standby = run_step(script, prefix, server, "shop-postgres-1")
        assert standby.returncode == 0, standby.stderr
        assert not pgdata.exists()

        first = run_step(script, prefix, server, "shop-postgres-0")
        assert first.returncode == 0, first.stderr
        assert "new-super" not in first.stdout + first.stderr
        assert (base / "data" / "duet-restored").read_text().strip().startswith("pvc://")

        with server_on(pgdata, base, server, prefix) as port:
            with login(port, SUPERUSER, NEW_PASSWORDS["POSTGRES_PASSWORD"], "orders") as conn:
                assert conn.execute("SELECT * FROM items ORDER BY id").fetchall() == before
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            with login(port, "readonly", "new-readonly-pw", "orders") as conn:
                assert conn.execute("SELECT count(*) FROM items").fetchone() == (1000,)
            with login(port, "replicator", "new-repl-pw") as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("replicator",)
            with pytest.raises(psycopg.OperationalError, match="password authentication"):
                login(port, "readonly", "old-readonly")

        # The pod restarted: it starts on what it restored, and restores nothing again.
        again = run_step(script, prefix, server, "shop-postgres-0")
        assert again.returncode == 0, again.stderr
        assert "restored before" in again.stdout

        # Data the step did not restore is never restored over.
        (base / "data" / "duet-restored").unlink()
        refused = run_step(script, prefix, server, "shop-postgres-0")
        assert refused.returncode == 1
        assert "holds data Duet did not restore" in refused.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- the operator on the local control plane -------------------------------------------------

READY = 120
RUN = 60
STAMP = "20250301T020000Z"


@pytest.fixture
def batch(api_client: Any) -> Any:
    return client.BatchV1Api(api_client)


def restoring_dp(name: str, backup: str) -> dict[str, Any]:
    """A small platform made from `backup`, reading backups where its own would go (the claim
    `<name>-backups`, which Duet makes): a platform made again from its last backup."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": {
            "requirements": {"dataVolume": "50Gi"},
            "clickhouse": {"shards": 1, "replicas": 1},
            "postgres": {"instances": 1},
            "backup": {"schedule": "@daily", "target": {"pvc": {"size": "1Gi"}}},
            "restoreFrom": {"backup": backup},
        },
    }


def completed_backup(custom: Any, namespace: str, name: str, platform: str) -> str:
    """The given: a Completed DataPlatformBackup of `platform` (gone at the time), its status
    written as the operator writes a finished run's. The operator sees the record first and
    waits for the platform (Pending, looking again in 15 s); then it is made Completed, which
    the operator leaves alone."""
    create_custom_object(
        custom,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DataPlatformBackup",
            "metadata": {"name": name},
            "spec": {"platformRef": {"name": platform}},
        },
    )
    wait_until(
        lambda: (
            (get(custom, namespace, "dataplatformbackups", name) or {})
            .get("status", {})
            .get("phase")
            == "Pending"
        ),
        timeout=RUN,
        what=f"backup {name} to be seen by the operator",
    )
    location = f"pvc://{platform}-backups/{platform}/{STAMP}"
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "dataplatformbackups",
        name,
        {
            "status": {
                "phase": "Completed",
                "location": location,
                "startedAt": "2025-03-01T02:00:00Z",
                "completedAt": "2025-03-01T02:01:00Z",
                "message": "backed up clickhouse, postgres (4096 bytes)",
            }
        },
    )
    return location


def condition(custom: Any, namespace: str, name: str, type_: str) -> dict[str, Any]:
    found = get(custom, namespace, "dataplatforms", name) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def wait_condition(
    custom: Any, namespace: str, name: str, type_: str, status: str, reason: str
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.clear()
        seen.update(condition(custom, namespace, name, type_))
        return dict(seen) if (seen.get("status"), seen.get("reason")) == (status, reason) else None

    return wait_until(
        reached, timeout=READY, what=f"{name} {type_}={status} {reason} (seen {seen})"
    )


def init_containers(apps: Any, namespace: str, name: str) -> list[Any]:
    sts = apps.read_namespaced_stateful_set(name, namespace)
    return sts.spec.template.spec.init_containers or []


@pytest.mark.integration
def test_a_platform_is_made_from_a_completed_backup_then_ready(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, batch: Any, namespace: str
) -> None:
    location = completed_backup(custom, namespace, "nightly", "shop")
    create_custom_object(custom, namespace, restoring_dp("shop", "nightly"))

    # PostgreSQL's instance 0 restores the base backup first, from the claim, read-only.
    wait_until(
        lambda: init_containers(apps, namespace, "shop-postgres"),
        timeout=READY,
        what="PostgreSQL's StatefulSet with its restore step",
        ignore=(client.ApiException,),
    )
    (step,) = init_containers(apps, namespace, "shop-postgres")
    assert step.name == "restore"
    assert f"/backups/shop/{STAMP}/postgres" in step.command[-1]
    assert any(m.mount_path == "/backups" and m.read_only for m in step.volume_mounts)
    assert condition(custom, namespace, "shop", "Ready").get("status") != "True"

    # Once ClickHouse is Ready, its restore Job; its end, as the kubelet would write it.
    job = wait_job(batch, namespace, "shop-restore")
    assert job.metadata.owner_references[0].kind == "DataPlatform"
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["LOCATION"] == f"/backups/shop/{STAMP}/clickhouse"
    assert env["RESTORE_SQL"].startswith("RESTORE ALL EXCEPT DATABASES")
    ending = (0, json.dumps({"component": "clickhouse", "location": env["LOCATION"]}))
    wait_until(
        play_kubelet(core, batch, namespace, job, {"clickhouse": ending}),
        timeout=RUN,
        what="the restore Job to end",
    )

    restored = wait_condition(custom, namespace, "shop", "Restored", "True", "Restored")
    assert restored["message"] == (
        f"restored clickhouse, postgres from backup nightly ({location})"
    )
    wait_ready(custom, namespace, "shop")
    # Done: the restore step leaves PostgreSQL's StatefulSet.
    wait_until(
        lambda: not init_containers(apps, namespace, "shop-postgres"),
        timeout=RUN,
        what="the restore step to leave PostgreSQL's StatefulSet",
    )
    events = events_of(core, namespace, "DataPlatform", "shop")
    assert ("Normal", "Restoring") in events
    assert ("Normal", "Restored") in events


@pytest.mark.integration
def test_a_missing_backup_starts_no_database_and_is_never_ready(
    duet_operator: OperatorProcess, custom: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, restoring_dp("lost", "no-such-backup"))
    found = wait_condition(custom, namespace, "lost", "Restored", "False", "BackupNotFound")
    assert f"DataPlatformBackup no-such-backup not found in {namespace}" in found["message"]
    ready = condition(custom, namespace, "lost", "Ready")
    assert (ready.get("status"), ready.get("reason")) == ("False", "NotRestored")
    assert apps.list_namespaced_stateful_set(namespace).items == []


@pytest.mark.integration
def test_a_failing_restore_job_is_restore_failed_with_its_words(
    duet_operator: OperatorProcess, custom: Any, core: Any, batch: Any, namespace: str
) -> None:
    completed_backup(custom, namespace, "last", "web")
    create_custom_object(custom, namespace, restoring_dp("web", "last"))
    job = wait_job(batch, namespace, "web-restore")
    words = "Code: 598. DB::Exception: Backup File('/backups/web/x/clickhouse') not found"
    wait_until(
        play_kubelet(core, batch, namespace, job, {"clickhouse": (1, words)}),
        timeout=RUN,
        what="the restore Job to fail",
    )
    failed = wait_condition(custom, namespace, "web", "Restored", "False", "RestoreFailed")
    assert "web-restore failed" in failed["message"]
    assert "step clickhouse exited with code 1 (Error): Code: 598" in failed["message"]
    assert condition(custom, namespace, "web", "Ready").get("status") == "False"


@pytest.mark.integration
def test_restore_from_cannot_change_after_creation(
    duet_operator: OperatorProcess, custom: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, restoring_dp("fixed", "one"))
    plain = restoring_dp("plain", "x")
    del plain["spec"]["restoreFrom"]
    create_custom_object(custom, namespace, plain)
    changes = [
        ("fixed", {"spec": {"restoreFrom": {"backup": "two"}}}),
        ("fixed", {"spec": {"restoreFrom": None}}),
        ("plain", {"spec": {"restoreFrom": {"backup": "one"}}}),
    ]
    for name, patch in changes:
        with pytest.raises(client.ApiException) as refused:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "dataplatforms", name, patch
            )
        assert refused.value.status == 422
        assert "restoreFrom cannot change after creation" in refused.value.body
