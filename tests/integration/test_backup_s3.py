"""The S3 paths of backup, restore and retention against a real S3 server (versitygw, see
tests/support/s3.py), with what the operator renders: the servers' named collection, the
Jobs' statements, scripts and environment.

- ClickHouse (chDB): the `config.d/backup.xml` the StatefulSets get (the named collection
  `duet_backups`, keys `from_env`), the backup step's BACKUP_SQL and SIZE_SQL into the bucket,
  then the restore Job's RESTORE_SQL and LOCATION into a fresh server, compared row for row.
- PostgreSQL: the backup Job's `postgres` step (pg_basebackup of the real test server) and its
  `upload` step (the AWS CLI), then the restoring StatefulSet's `restore-download` and
  `restore` steps, and the restored server compared row for row.
- Retention's cleanup step: the expired run goes, the others stay; hostile runs delete nothing.

What differs from a pod, and why: the images cannot run here, so each rendered script runs in
the host's shell with the host's tools (the AWS CLI 1.x that hack/testenv/build installs, where
the uploader image has 2.x; Debian's PostgreSQL; chDB instead of clickhouse-server, sent the
rendered statements directly rather than through clickhouse-client). The pod's paths (/work,
the data volume, /dev/termination-log) are rewritten to temp dirs in the script text and the
environment, and pg_basebackup's --host/--port to the test server instead of the platform's
Service; each rewrite must match something in the step, so a step whose paths move fails
here instead of being run unrewritten. Secret references are resolved from dicts, as the
kubelet would, and the scripts get no environment beyond PATH and what the container declares.
The cleanup tests lay runs out with the keys the backups above write, not real backups.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duet_agents.backup import stamp
from duet_operator.models import DataPlatform, DataPlatformBackup
from duet_operator.models.backup import BackupTarget
from duet_operator.observe import expected_statefulsets
from duet_operator.render.backup import (
    BackupConfig,
    ExpiredRun,
    build_backup_job,
    build_cleanup_job,
    clickhouse_server_backup,
    describe_location,
    run_path,
)
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names
from duet_operator.render.postgres import DATA_DIR, DOWNLOAD_STEP, RESTORE_STEP, restore_steps
from duet_operator.restore import RestoreReading, restore_step
from tests.integration.postgres_fixtures import postgres_server
from tests.integration.test_backup_engines import CH_TABLES, fill, rows
from tests.integration.test_restore import NEW_PASSWORDS, server_on
from tests.support.chdb_engine import chdb_server
from tests.support.platforms import design, platform
from tests.support.postgres import SUPERUSER, PostgresServer, _as_server_user
from tests.support.s3 import S3Server, s3_server, s3_tools

pytest.importorskip("chdb.session")

pytestmark = pytest.mark.integration

__all__ = ["postgres_server", "s3_server", "s3_tools"]

PLATFORM = "clicks"
NAMESPACE = "analytics"
PREFIX = "prod"
KEYS_SECRET = "s3-keys"
RUN_AT = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
STAMP = stamp(RUN_AT)
# One server: one step per component, no ON CLUSTER (chDB has no cluster).
DESIGN = design(shards=1, replicas=1, keeper=0, postgres_instances=1)
CONFIG = RenderConfig()
BACKUPS = BackupConfig()
NAMES = Names(PLATFORM, NAMESPACE)


# -- what the platform renders, and running it on the host -------------------------------------


def s3_target(s3: S3Server) -> dict[str, Any]:
    return {
        "s3": {
            "endpoint": s3.endpoint,
            "bucket": s3.bucket,
            "prefix": PREFIX,
            "region": s3.region,
            "secretRef": {"name": KEYS_SECRET},
        }
    }


def owner(s3: S3Server, **spec: Any) -> DataPlatform:
    backup = {"schedule": "0 2 * * *", "retention": 2, "target": s3_target(s3)}
    return platform(PLATFORM, NAMESPACE, backup=backup, **spec)


def key_secret(s3: S3Server) -> dict[str, dict[str, str]]:
    """The target's Secret, as the user made it."""
    return {
        KEYS_SECRET: {
            "access-key-id": s3.access_key_id,
            "secret-access-key": s3.secret_access_key,
        }
    }


def record(location: str | None = None) -> DataPlatformBackup:
    """A DataPlatformBackup of the platform made at RUN_AT; Completed at `location` if given."""
    body: dict[str, Any] = {
        "metadata": {
            "name": "nightly",
            "namespace": NAMESPACE,
            "creationTimestamp": RUN_AT.isoformat(),
        },
        "spec": {"platformRef": {"name": PLATFORM}},
    }
    if location:
        body["status"] = {"phase": "Completed", "location": location}
    return DataPlatformBackup.model_validate(body)


def run_location(s3: S3Server) -> str:
    """The run's status.location, as the operator describes it."""
    return describe_location(PLATFORM, BackupTarget.model_validate(s3_target(s3)), STAMP)


def steps_of(job: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def pod_env(
    env: Sequence[Mapping[str, Any]], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """A container's environment as the kubelet gives it: values, and secretKeyRefs read from
    `secrets` (Secret name -> its data)."""
    resolved = {}
    for var in env:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        resolved[var["name"]] = secrets[ref["name"]][ref["key"]] if ref else var.get("value", "")
    return resolved


@dataclass(frozen=True)
class HostRun:
    """A rendered container's `/bin/sh -c SCRIPT ARGS...` run by the host's shell, with the
    pod's paths (and any other pod-only text) rewritten in the script and the environment."""

    rewrites: Mapping[str, str]
    path: str  # the tools the image would have
    prefix: Sequence[str] = ()  # runs it as the server user, where the step needs that

    def run(
        self,
        container: Mapping[str, Any],
        secrets: Mapping[str, Mapping[str, str]],
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        shell, flag, script, *args = container["command"]
        assert (shell, flag) == ("/bin/sh", "-c")
        env = pod_env(container["env"], secrets)
        for pod_text in self.rewrites:
            assert pod_text in script or any(pod_text in v for v in env.values()), (
                f"{pod_text!r} is not in the {container['name']} step any more: update the test"
            )
        return subprocess.run(
            [*self.prefix, "sh", "-c", self._rewrite(script), *args],
            env={"PATH": self.path} | {k: self._rewrite(v) for k, v in env.items()} | extra,
            capture_output=True,
            text=True,
            check=False,
        )

    def _rewrite(self, text: str) -> str:
        for pod_text in sorted(self.rewrites, key=len, reverse=True):
            text = text.replace(pod_text, self.rewrites[pod_text])
        return text


def host_path(*dirs: Path) -> str:
    return os.pathsep.join([*(str(d) for d in dirs), os.environ.get("PATH", "")])


def report(termination_log: Path) -> dict[str, Any]:
    """What the step wrote as its termination message, which the operator reads."""
    body: dict[str, Any] = json.loads(termination_log.read_text())
    return body


# -- ClickHouse -------------------------------------------------------------------------------


def ready_statefulsets() -> list[dict[str, Any]]:
    """ClickHouse's StatefulSets as stored once Ready: what lets the operator make the
    restore Job."""
    return [
        {
            "metadata": {"name": name, "generation": 1},
            "spec": {"replicas": replicas},
            "status": {
                "observedGeneration": 1,
                "readyReplicas": replicas,
                "updatedReplicas": replicas,
                "currentRevision": "r1",
                "updateRevision": "r1",
            },
        }
        for name, replicas in expected_statefulsets(NAMES, DESIGN).items()
    ]


def test_clickhouse_backs_up_to_the_bucket_and_restores_row_for_row(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = s3_server
    # (chDB, in this process, needs no admin password; clickhouse-client would send it.)
    secrets = key_secret(s3) | {NAMES.clickhouse_credentials: {"admin-password": "unused"}}
    source_platform = owner(s3)
    # The servers' side: the config.d file and the keys by reference, as the StatefulSets get
    # them. chDB reads `from_env` from this process's environment.
    servers = clickhouse_server_backup(source_platform)
    assert servers is not None
    config = tmp_path / "backup.xml"
    config.write_text(servers.config_xml)
    assert s3.secret_access_key not in servers.config_xml
    for name, value in pod_env(servers.env, secrets).items():
        monkeypatch.setenv(name, value)

    job = build_backup_job(record(), source_platform, DESIGN, CONFIG)
    step = steps_of(job)["clickhouse"]
    env = pod_env(step["env"], secrets)
    # The location the step's shell computes and binds with --param_location.
    assert 'location="$BACKUP_ROOT$BACKUP_DIR/$stamp/clickhouse"' in step["command"][2]
    where = f"{env['BACKUP_ROOT']}{env['BACKUP_DIR']}/{env['BACKUP_STAMP']}/clickhouse"
    assert s3.secret_access_key not in env["BACKUP_SQL"]

    with chdb_server(tmp_path / "source", config) as source:
        before = fill(source)
        source.query(env["BACKUP_SQL"], params={"location": where})
        size = int(str(source.query(env["SIZE_SQL"], "TSV", params={"location": where})).strip())
    assert size > 0

    # Under the collection's url: endpoint/bucket/prefix/, then the run's location.
    run_keys = s3.keys()
    assert f"{PREFIX}/{PLATFORM}/{STAMP}/clickhouse/.backup" in run_keys
    assert all(k.startswith(f"{PREFIX}/{PLATFORM}/{STAMP}/clickhouse/") for k in run_keys)
    assert any("/data/sales/orders/" in k for k in run_keys)

    # A new platform of the same name restores from the run's record once its ClickHouse is
    # Ready: the operator's own reading of the location, into the restore Job.
    restoring = owner(s3, restoreFrom={"backup": "nightly"})
    state = restore_step(
        restoring,
        DESIGN,
        ready_statefulsets(),
        RestoreReading(record(run_location(s3))),
        config=CONFIG,
        backup_config=BACKUPS,
    )
    (restore_job,) = state.manifests
    restore_env = pod_env(steps_of(restore_job)["clickhouse"]["env"], secrets)
    assert restore_env["LOCATION"] == where
    with chdb_server(tmp_path / "restored", config) as restored:
        assert "sales" not in str(restored.query("SHOW DATABASES", "TSV")).split()
        restored.query(restore_env["RESTORE_SQL"], params={"location": restore_env["LOCATION"]})
        after = {table: rows(restored, table) for table in CH_TABLES}
    assert after == before
    assert after["sales.orders"].count("\n") == 5000


# -- PostgreSQL -------------------------------------------------------------------------------

REPLICATION_PASSWORD = "old-platform-repl-pw"
PG_ROWS = 2000


def old_platform_secrets(s3: S3Server) -> dict[str, dict[str, str]]:
    """The Secrets the backup Job reads: the target's keys and the backed-up platform's
    replication password."""
    return key_secret(s3) | {
        NAMES.postgres_credentials: {"replication-password": REPLICATION_PASSWORD}
    }


def new_platform_secrets(s3: S3Server) -> dict[str, dict[str, str]]:
    """The Secrets of the platform made from the backup: the same target, its own passwords."""
    return key_secret(s3) | {
        NAMES.postgres_credentials: {
            "superuser-password": NEW_PASSWORDS["POSTGRES_PASSWORD"],
            "readonly-password": NEW_PASSWORDS["POSTGRES_READONLY_PASSWORD"],
            "replication-password": NEW_PASSWORDS["POSTGRES_REPLICATION_PASSWORD"],
        }
    }


def seed(server: PostgresServer) -> list[tuple[Any, ...]]:
    with server.admin() as conn:
        conn.execute("DROP DATABASE IF EXISTS s3shop")
        conn.execute("CREATE DATABASE s3shop")
        # The role the backup step connects as (the platform's replication user).
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'replicator'").fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            f"{verb} ROLE replicator WITH REPLICATION LOGIN PASSWORD '{REPLICATION_PASSWORD}'"
        )
    with server.admin("s3shop") as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric)")
        conn.execute(
            "INSERT INTO orders SELECT g, 'c-' || g % 97, g / 7.0"
            f" FROM generate_series(1, {PG_ROWS}) g"
        )
        return conn.execute("SELECT * FROM orders ORDER BY id").fetchall()


@pytest.fixture
def pg_base() -> Iterator[tuple[Path, list[str]]]:
    """A temp dir the server user can use (PostgreSQL refuses to run as root), and the
    command prefix that runs as that user."""
    prefix, uid, gid = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="duet-s3-pg-"))
    if uid is not None and gid is not None:
        os.chown(base, uid, gid)
    try:
        yield base, prefix
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_base_backup_goes_to_the_bucket_and_restores_row_for_row(
    s3_server: S3Server, postgres_server: PostgresServer, pg_base: tuple[Path, list[str]]
) -> None:
    s3, server = s3_server, postgres_server
    base, prefix = pg_base
    before = seed(server)
    tools = host_path(s3.aws_cli.parent, server.bin_dir)

    # The backup Job's two PostgreSQL steps, sharing /work as they do in the pod.
    job = build_backup_job(record(), owner(s3), DESIGN, CONFIG)
    steps = steps_of(job)
    work, termination = base / "work", base / "termination-log"
    work.mkdir()
    pod = HostRun(
        {
            "/work": str(work),
            "/dev/termination-log": str(termination),
            f"--host={NAMES.service_host(NAMES.postgres_rw)}": f"--host={server.host}",
            "--port=5432": f"--port={server.port}",
        },
        path=tools,
    )
    backed_up = pod.run(steps["postgres"], old_platform_secrets(s3))
    assert backed_up.returncode == 0, backed_up.stderr
    written = report(termination)
    assert written["location"] == f"{work}/{PLATFORM}/{STAMP}/postgres"
    assert written["bytes"] > 0
    # Written after the backup: must not be in the restored server.
    with server.admin("s3shop") as conn:
        conn.execute("INSERT INTO orders VALUES (999999, 'too late', 0)")

    uploaded = HostRun(
        {"/work": str(work), "/dev/termination-log": str(termination)}, path=tools
    ).run(steps["upload"], old_platform_secrets(s3))
    assert uploaded.returncode == 0, uploaded.stderr
    assert report(termination) == {
        "component": "postgres",
        "location": f"{run_location(s3)}/postgres",
        "bytes": written["bytes"],
    }
    run = f"{PREFIX}/{PLATFORM}/{STAMP}/postgres"
    assert s3.keys() == {
        f"{run}/{name}" for name in ("backup_manifest", "base.tar.gz", "pg_wal.tar.gz")
    }

    # Instance 0 of a new platform restores from the run's record, as the operator reads it.
    restoring = owner(s3, restoreFrom={"backup": "nightly"})
    state = restore_step(
        restoring,
        DESIGN,
        [],
        RestoreReading(record(run_location(s3))),
        config=CONFIG,
        backup_config=BACKUPS,
    )
    assert state.postgres is not None
    init, _ = restore_steps(restoring, DESIGN, CONFIG, state.postgres)
    init_steps = {str(c["name"]): c for c in init}
    data = base / "data"  # the data volume, mounted at DATA_DIR
    data.mkdir()
    volume = {DATA_DIR: str(data)}
    secrets = new_platform_secrets(s3)

    downloaded = HostRun(volume, path=tools).run(
        init_steps[DOWNLOAD_STEP], secrets, HOSTNAME=f"{NAMES.postgres}-0"
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert sorted(p.name for p in (data / "duet-restore").iterdir()) == [
        "base.tar.gz",
        "pg_wal.tar.gz",
    ]
    # In the pod both steps run as one uid; here the download ran as root (the CLI's venv is
    # root's), so its files are handed to the server user before the restore step.
    _, uid, gid = _as_server_user()
    if uid is not None and gid is not None:
        for path in [data, *data.rglob("*")]:
            os.chown(path, uid, gid)

    restored = HostRun(volume, path=tools, prefix=prefix).run(
        init_steps[RESTORE_STEP], secrets, HOSTNAME=f"{NAMES.postgres}-0"
    )
    assert restored.returncode == 0, restored.stderr
    assert f"restored from {run_location(s3)}" in restored.stdout
    assert not (data / "duet-restore").exists()  # the downloaded archives are removed
    assert (data / "duet-restored").read_text().strip() == run_location(s3)

    with server_on(data / "pgdata", base, server, prefix) as port:
        dsn = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=s3shop"
        with psycopg.connect(dsn, password=NEW_PASSWORDS["POSTGRES_PASSWORD"]) as conn:
            after = conn.execute("SELECT * FROM orders ORDER BY id").fetchall()
    assert after == before
    assert len(after) == PG_ROWS


# -- retention's cleanup ------------------------------------------------------------------------

RUNS = [stamp(RUN_AT + timedelta(days=d)) for d in range(3)]
# The keys one run writes, as the backups above showed them.
RUN_FILES = (
    "clickhouse/.backup",
    "clickhouse/data/shop/orders/all_1_1_0/data.bin",
    "postgres/backup_manifest",
    "postgres/base.tar.gz",
    "postgres/pg_wal.tar.gz",
)


@pytest.fixture
def bucket(s3_server: S3Server) -> S3Server:
    """Three runs of `clicks` under the prefix, a run of `ads` and the same run of `clicks`
    under another prefix (neither the platform's), laid out as the backups write them."""
    s3 = s3_server
    objects = {
        f"{PREFIX}/{PLATFORM}/{run}/{name}": f"{run}/{name}".encode()
        for run in RUNS
        for name in RUN_FILES
    }
    objects[f"{PREFIX}/ads/{RUNS[0]}/postgres/base.tar.gz"] = b"ads"
    objects[f"staging/{PLATFORM}/{RUNS[0]}/postgres/base.tar.gz"] = b"staging"
    s3.put(objects)
    assert s3.keys() == set(objects)
    return s3


def cleanup(s3: S3Server, tmp: Path, runs: list[str]) -> subprocess.CompletedProcess[str]:
    """The rendered cleanup Job's one step, for `runs` (key prefixes as `run_path` gives)."""
    expired = [ExpiredRun(f"{PLATFORM}-{i}", path) for i, path in enumerate(runs)]
    job = build_cleanup_job(owner(s3), DESIGN, CONFIG, runs=expired, trigger="clicks-backup-3")
    home = tmp / "work"
    home.mkdir(exist_ok=True)
    pod = HostRun({"/work": str(home)}, path=host_path(s3.aws_cli.parent))
    return pod.run(steps_of(job)["cleanup"], key_secret(s3))


def expired(s3: S3Server, run: str) -> str:
    """A run as a retention pass takes it: from the location its record's status says."""
    target = BackupTarget.model_validate(s3_target(s3))
    return run_path(PLATFORM, target, describe_location(PLATFORM, target, run))


def test_the_expired_run_goes_and_the_others_stay(bucket: S3Server, tmp_path: Path) -> None:
    s3 = bucket
    oldest = RUNS[0]
    before = s3.keys()

    done = cleanup(s3, tmp_path, [expired(s3, oldest)])

    assert done.returncode == 0, done.stderr
    assert f"deleted s3://{s3.bucket}/{PREFIX}/{PLATFORM}/{oldest}/" in done.stdout
    gone = {k for k in before if k.startswith(f"{PREFIX}/{PLATFORM}/{oldest}/")}
    assert len(gone) == len(RUN_FILES)
    assert s3.keys() == before - gone

    # A retry (a pass after a cleanup that half-failed) finishes without an error.
    again = cleanup(s3, tmp_path, [expired(s3, oldest)])
    assert again.returncode == 0, again.stderr
    assert s3.keys() == before - gone


@pytest.mark.parametrize(
    "hostile",
    ["../../", "/etc", "", f"{PREFIX}/{PLATFORM}/..", f"{PREFIX}/{PLATFORM}/../ads/{RUNS[0]}"],
)
def test_hostile_runs_are_refused_before_anything_is_deleted(
    bucket: S3Server, tmp_path: Path, hostile: str
) -> None:
    s3 = bucket
    before = s3.keys()

    done = cleanup(s3, tmp_path, [expired(s3, RUNS[0]), hostile])

    assert done.returncode == 1
    assert "refusing to delete" in done.stderr
    # Checked before anything goes: the valid run in the same Job is still there.
    assert s3.keys() == before


def test_a_prefix_of_runs_deletes_nothing(bucket: S3Server, tmp_path: Path) -> None:
    s3 = bucket
    before = s3.keys()

    # A stamp cut short is a key prefix of every run it starts; the step deletes only whole
    # `<run>/` prefixes, and refuses anything that does not end in a whole stamp.
    done = cleanup(
        s3, tmp_path, [f"{PREFIX}/{PLATFORM}/2025030", f"{PREFIX}/{PLATFORM}/{RUNS[0][:-1]}"]
    )

    assert s3.keys() == before
    assert done.returncode == 1


@pytest.mark.parametrize("parent", [f"{PREFIX}/{PLATFORM}", PREFIX])
def test_a_directory_above_the_runs_is_refused(
    bucket: S3Server, tmp_path: Path, parent: str
) -> None:
    s3 = bucket
    before = s3.keys()

    done = cleanup(s3, tmp_path, [parent])

    assert s3.keys() == before
    assert done.returncode == 1
    assert "refusing to delete" in done.stderr
