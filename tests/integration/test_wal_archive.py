"""WAL archiving and its replay in a restore, against the real PostgreSQL server (Debian's)
and, for S3, the real S3 server (versitygw, tests/support/s3.py), with what the operator
renders for a platform with spec.backup.

The path, per target: a server started with the rendered archive settings (archive_command
and its script from the ConfigMap, the spool on a "data volume" directory); a base backup by
the backup Job's own steps; rows written after it; `pg_switch_wal()`; one pass of the rendered
`wal-archiver` sidecar, which moves the spooled files to `<platform>/wal/<system id>/` on the
target; then the restoring StatefulSet's init steps (S3: `restore-download`, which fetches the
archive too; both: `restore`, which unpacks, replays the archive to its end and promotes) into
an empty data volume, and a server started on it holds the rows written after the backup.
Also: archive_command is idempotent and refuses a different content; the sidecar keeps what
it could not move (a wrong key, a different content already on the target); an archive with
a hole is refused by the restore rather than half recovered.

What differs from the pods is what test_backup_s3.py says (the host's shell and tools, the
pods' paths rewritten to temp dirs, `HostRun`); besides, the servers here run as one OS user
where the PVC sidecar runs as the backup uid (the pod's fsGroup is what lets it read the
spool: not exercised here), and the sidecar makes one pass (`once`) instead of looping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duet_operator.models import DataPlatform
from duet_operator.models.backup import BackupTarget
from duet_operator.render.backup import build_backup_job, describe_location
from duet_operator.render.backup_pod import BACKUP_UID
from duet_operator.render.postgres import (
    CONFIG_DIR,
    DATA_DIR,
    DOWNLOAD_STEP,
    RESTORE_STEP,
    build_postgres,
    restore_steps,
)
from duet_operator.render.wal_archive import ARCHIVER, SCRIPT_FILE, SPOOL_NAME
from duet_operator.restore import RestoreReading, restore_step
from tests.integration.postgres_fixtures import postgres_server
from tests.integration.test_backup_s3 import (
    BACKUPS,
    CONFIG,
    DESIGN,
    NAMES,
    NAMESPACE,
    PLATFORM,
    PREFIX,
    STAMP,
    HostRun,
    host_path,
    key_secret,
    new_platform_secrets,
    record,
    s3_target,
    steps_of,
)
from tests.integration.test_restore import NEW_PASSWORDS, server_on
from tests.support.platforms import platform
from tests.support.postgres import (
    SUPERUSER,
    PostgresServer,
    _as_server_user,
    _stop,
    start_postgres,
)
from tests.support.s3 import S3Server, s3_server, s3_tools
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

__all__ = ["postgres_server", "s3_server", "s3_tools"]

CLAIM = "shared-backups"
PVC_TARGET = {"pvc": {"claimName": CLAIM}}
REPLICATION_PASSWORD = "source-repl-pw"
SOURCE_SECRETS = {NAMES.postgres_credentials: {"replication-password": REPLICATION_PASSWORD}}
BEFORE_ROWS = 500


def owner(target: Mapping[str, Any], **spec: Any) -> DataPlatform:
    backup = {"schedule": "0 2 * * *", "retention": 2, "target": dict(target)}
    return platform(PLATFORM, NAMESPACE, backup=backup, **spec)


def rendered_postgres(p: DataPlatform) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The PostgreSQL ConfigMap's files and the StatefulSet's containers, as rendered."""
    manifests = build_postgres(p, DESIGN, CONFIG, BACKUPS)
    (config_map,) = [m for m in manifests if m["kind"] == "ConfigMap"]
    (sts,) = [m for m in manifests if m["kind"] == "StatefulSet"]
    containers = sts["spec"]["template"]["spec"]["containers"]
    return config_map["data"], {c["name"]: c for c in containers}


def archive_settings(conf: str) -> dict[str, str]:
    """The archive_* settings of a rendered postgresql.conf, as values (unquoted)."""
    settings = {}
    for line in conf.splitlines():
        key, _, value = (part.strip() for part in line.partition("="))
        if key.startswith("archive_"):
            if value.startswith("'"):
                value = value[1:-1].replace("''", "'")
            settings[key] = value
    return settings


def chown_tree(path: Path) -> None:
    """Hand `path` to the server user (the tests run as root; the servers cannot)."""
    _, uid, gid = _as_server_user()
    if uid is None or gid is None:
        return
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, gid)


@dataclass(frozen=True)
class Source:
    """The platform's primary, as its pod runs it: the rendered archive settings, the
    ConfigMap's files in `config`, the data volume (spool beside PGDATA) in `volume`."""

    server: PostgresServer
    config: Path
    volume: Path
    base: Path
    prefix: list[str]

    @property
    def spool(self) -> Path:
        return self.volume / SPOOL_NAME

    def system_identifier(self) -> str:
        done = subprocess.run(
            [str(self.server.bin_dir / "pg_controldata"), str(self.volume / "pgdata")],
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            check=True,
        )
        (line,) = [x for x in done.stdout.splitlines() if x.startswith("Database system id")]
        return line.split(":")[1].strip()

    def switch_and_archive(self) -> str:
        """Close the current WAL file and wait until the archive command has spooled it;
        returns its name."""
        with self.server.admin() as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None
            name = str(row[0])

        def archived() -> bool:
            with self.server.admin() as conn:
                stats = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            assert stats is not None
            return stats[0] is not None and str(stats[0]) >= name

        wait_until(archived, timeout=60, what=f"{name} to be archived")
        return name


@contextlib.contextmanager
def archiving_source(bin_dir: Path, files: Mapping[str, str]) -> Iterator[Source]:
    """initdb, then the server started with the rendered archive settings, its paths (the
    ConfigMap's and the data volume's) rewritten to temp dirs the server user owns."""
    prefix = _as_server_user()[0]
    base = Path(tempfile.mkdtemp(prefix="duet-wal-"))
    config, volume = base / "config", base / "volume"
    config.mkdir()
    volume.mkdir()
    (config / SCRIPT_FILE).write_text(files[SCRIPT_FILE])
    password = "source-super-pw"
    (base / "password").write_text(password + "\n")
    chown_tree(base)
    process = None
    try:
        subprocess.run(
            [
                *prefix, str(bin_dir / "initdb"), f"--pgdata={volume / 'pgdata'}",
                f"--username={SUPERUSER}", f"--pwfile={base / 'password'}",
                "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        settings = {
            key: value.replace(CONFIG_DIR, str(config)).replace(DATA_DIR, str(volume))
            for key, value in archive_settings(files["postgresql.conf"]).items()
        }
        assert set(settings) == {"archive_mode", "archive_timeout", "archive_command"}
        assert str(config) in settings["archive_command"]
        assert str(volume / SPOOL_NAME) in settings["archive_command"]
        process, port = start_postgres(
            bin_dir,
            volume / "pgdata",
            base,
            base / "source.log",
            prefix,
            wal_level="replica",
            **settings,
        )
        server = PostgresServer("127.0.0.1", port, password, bin_dir, base)

        def accepts() -> bool:
            if process is not None and process.poll() is not None:
                raise RuntimeError((base / "source.log").read_text(errors="replace")[-4000:])
            with server.admin() as conn:
                conn.execute("SELECT 1")
            return True

        wait_until(accepts, timeout=60, what="the archiving server", ignore=(psycopg.Error,))
        with server.admin() as conn:
            conn.execute(
                f"CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '{REPLICATION_PASSWORD}'"
            )
            conn.execute("CREATE DATABASE shop")
        yield Source(server, config, volume, base, prefix)
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bin_dir(postgres_server: PostgresServer) -> Path:
    return postgres_server.bin_dir


def write(server: PostgresServer, first: int, last: int) -> None:
    with server.admin("shop") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, note text)")
        conn.execute(
            f"INSERT INTO orders SELECT g, 'order ' || g FROM generate_series({first}, {last}) g"
        )


def rows(server: PostgresServer) -> list[tuple[Any, ...]]:
    with server.admin("shop") as conn:
        return conn.execute("SELECT * FROM orders ORDER BY id").fetchall()


def as_backup_uid() -> list[str]:
    """The command prefix that runs a step as the backup Job's uid (ClickHouse's, 101)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={BACKUP_UID}", f"--regid={BACKUP_UID}", "--clear-groups", "--"]


def base_backup(
    source: Source, target: Mapping[str, Any], tools: str, secrets: Any, claim: Path | None = None
) -> None:
    """The backup Job's PostgreSQL step (into the claim, or scratch space and then its upload
    step to S3), run against the source."""
    server = source.server
    work, termination = source.base / "work", source.base / "termination-log"
    work.mkdir(exist_ok=True)
    chown_tree(work)
    rewrites = {
        "/work": str(work),
        "/dev/termination-log": str(termination),
        f"--host={NAMES.service_host(NAMES.postgres_rw)}": f"--host={server.host}",
        "--port=5432": f"--port={server.port}",
    } | ({"/backups": str(claim)} if claim else {})
    steps = steps_of(build_backup_job(record(), owner(target), DESIGN, CONFIG))
    # Into the claim as the Job's uid, as in a pod: the restore step, as the server's uid,
    # reads what it wrote. Into scratch space as root, whose upload step reads it.
    as_user = as_backup_uid() if claim else []
    done = HostRun(rewrites, path=tools, prefix=as_user).run(steps["postgres"], secrets)
    assert done.returncode == 0, done.stderr
    if "upload" in steps:
        upload = HostRun({"/work": str(work), "/dev/termination-log": str(termination)}, tools)
        done = upload.run(steps["upload"], secrets)
        assert done.returncode == 0, done.stderr


def sidecar_pass(
    container: Mapping[str, Any], run: HostRun, secrets: Any
) -> subprocess.CompletedProcess[str]:
    """One pass of the rendered sidecar (`once`: the loop's body, then exit)."""
    once = dict(container) | {"command": [*container["command"], "once"]}
    return run.run(once, secrets)


def restore_into(
    target: Mapping[str, Any],
    volume: Path,
    run: HostRun,
    secrets: Any,
    location: str,
    recovery: str = "Latest",
) -> dict[str, subprocess.CompletedProcess[str]]:
    """The restoring StatefulSet's init steps for a new platform made from the run at
    `location`, as the operator renders them, run in order until one fails."""
    restoring = owner(target, restoreFrom={"backup": "nightly", "postgresRecovery": recovery})
    state = restore_step(
        restoring,
        DESIGN,
        [],
        RestoreReading(record(location)),
        config=CONFIG,
        backup_config=BACKUPS,
    )
    assert state.postgres is not None
    init, _ = restore_steps(restoring, DESIGN, CONFIG, state.postgres)
    done = {}
    for step in init:
        name = str(step["name"])
        hostrun = run
        if name == RESTORE_STEP:
            # The download ran as root here (the CLI's venv is root's): hand its files over.
            chown_tree(volume)
            hostrun = HostRun(run.rewrites, path=run.path, prefix=_as_server_user()[0])
        done[name] = hostrun.run(step, secrets, HOSTNAME=f"{NAMES.postgres}-0")
        if done[name].returncode != 0:
            break
    return done


def restored_rows(source: Source, volume: Path) -> list[tuple[Any, ...]]:
    with server_on(volume / "pgdata", source.base, source.server, source.prefix) as port:
        dsn = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=shop"
        with psycopg.connect(dsn, password=NEW_PASSWORDS["POSTGRES_PASSWORD"]) as conn:
            return conn.execute("SELECT * FROM orders ORDER BY id").fetchall()


def new_volume(source: Source, name: str) -> Path:
    volume = source.base / name
    volume.mkdir()
    chown_tree(volume)
    return volume


# -- S3 ------------------------------------------------------------------------------------


def test_s3_archive_brings_a_restore_past_its_base_backup(
    s3_server: S3Server, bin_dir: Path
) -> None:
    s3 = s3_server
    target = s3_target(s3)
    files, containers = rendered_postgres(owner(target))
    sidecar = containers[ARCHIVER]
    assert sidecar["image"] == BACKUPS.uploader_image
    with archiving_source(bin_dir, files) as source:
        server = source.server
        tools = host_path(s3.aws_cli.parent, server.bin_dir)
        write(server, 1, BEFORE_ROWS)
        base_backup(source, target, tools, key_secret(s3) | SOURCE_SECRETS)
        # Written after the backup: only the archive has these.
        write(server, BEFORE_ROWS + 1, BEFORE_ROWS + 300)
        last = source.switch_and_archive()
        expected = rows(server)
        system = source.system_identifier()
        assert (source.spool / system / last).is_file()

        scratch = source.base / "sidecar-home"
        scratch.mkdir()
        pod = HostRun({DATA_DIR: str(source.volume), "/work": str(scratch)}, path=tools)
        moved = sidecar_pass(sidecar, pod, key_secret(s3))
        assert moved.returncode == 0, moved.stderr
        archive = f"{PREFIX}/{PLATFORM}/wal/{system}/"
        archived = {k.removeprefix(archive) for k in s3.keys(archive)}
        assert last in archived
        assert not list((source.spool / system).iterdir())  # moved, then deleted
        # The key is never on a command line or in what the step says.
        assert s3.secret_access_key not in moved.stdout + moved.stderr
        assert s3.secret_access_key not in str(sidecar["command"])

        volume = new_volume(source, "restored")
        location = describe_location(PLATFORM, BackupTarget.model_validate(target), STAMP)
        done = restore_into(
            target, volume, HostRun({DATA_DIR: str(volume)}, path=tools),
            new_platform_secrets(s3), location,
        )  # fmt: skip
        assert done[DOWNLOAD_STEP].returncode == 0, done[DOWNLOAD_STEP].stderr
        assert done[RESTORE_STEP].returncode == 0, done[RESTORE_STEP].stderr
        assert "replaying the WAL archived in" in done[RESTORE_STEP].stdout
        assert "recovered to the end of the archive" in done[RESTORE_STEP].stdout
        assert (volume / "duet-restored").read_text().strip() == location
        assert not (volume / "duet-restore").exists()
        assert not (volume / "duet-recovery").exists()
        assert restored_rows(source, volume) == expected
        assert len(expected) == BEFORE_ROWS + 300


def test_the_s3_sidecar_keeps_what_it_could_not_upload(s3_server: S3Server, bin_dir: Path) -> None:
    s3 = s3_server
    target = s3_target(s3)
    files, containers = rendered_postgres(owner(target))
    with archiving_source(bin_dir, files) as source:
        write(source.server, 1, 10)
        first = source.switch_and_archive()
        system = source.system_identifier()
        scratch = source.base / "sidecar-home"
        scratch.mkdir()
        pod = HostRun(
            {DATA_DIR: str(source.volume), "/work": str(scratch)},
            path=host_path(s3.aws_cli.parent),
        )
        wrong = {"s3-keys": {"access-key-id": s3.access_key_id, "secret-access-key": "wrong"}}

        refused = sidecar_pass(containers[ARCHIVER], pod, wrong)

        assert refused.returncode != 0
        assert f"could not archive {first}" in refused.stderr
        assert (source.spool / system / first).is_file()
        assert s3.keys(f"{PREFIX}/{PLATFORM}/wal/") == set()

        # A file of that name on the target with another content is not replaced, and the
        # spooled one stays; the same content is taken as done.
        key = f"{PREFIX}/{PLATFORM}/wal/{system}/{first}"
        s3.put({key: b"someone else's WAL"})
        kept = sidecar_pass(containers[ARCHIVER], pod, key_secret(s3))
        assert kept.returncode != 0
        assert "exists with a different content" in kept.stderr
        assert (source.spool / system / first).is_file()
        s3.put({key: (source.spool / system / first).read_bytes()})
        done = sidecar_pass(containers[ARCHIVER], pod, key_secret(s3))
        assert done.returncode == 0, done.stderr
        assert not (source.spool / system / first).exists()


# -- a claim (PVC) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimRun:
    source: Source
    claim: Path
    tools: str
    sidecar: dict[str, Any]

    def base_backup(self) -> None:
        base_backup(self.source, PVC_TARGET, self.tools, SOURCE_SECRETS, claim=self.claim)

    def sidecar_pass(self) -> subprocess.CompletedProcess[str]:
        pod = HostRun({DATA_DIR: str(self.source.volume), "/backups": str(self.claim)}, self.tools)
        return sidecar_pass(self.sidecar, pod, {})

    def restore(
        self, volume: Path, recovery: str = "Latest"
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        run = HostRun({DATA_DIR: str(volume), "/backups": str(self.claim)}, path=self.tools)
        location = f"pvc://{CLAIM}/{PLATFORM}/{STAMP}"
        return restore_into(PVC_TARGET, volume, run, NEW_PLATFORM_PASSWORDS, location, recovery)


NEW_PLATFORM_PASSWORDS = {
    NAMES.postgres_credentials: {
        "superuser-password": NEW_PASSWORDS["POSTGRES_PASSWORD"],
        "readonly-password": NEW_PASSWORDS["POSTGRES_READONLY_PASSWORD"],
        "replication-password": NEW_PASSWORDS["POSTGRES_REPLICATION_PASSWORD"],
    }
}


@contextlib.contextmanager
def claim_source(bin_dir: Path) -> Iterator[ClaimRun]:
    files, containers = rendered_postgres(owner(PVC_TARGET))
    with archiving_source(bin_dir, files) as source:
        claim = source.base / "claim"
        claim.mkdir()
        # The claim's writers in a pod (the backup Job, ClickHouse, the WAL archiver) run as
        # uid 101; the server and the restore step as PostgreSQL's own.
        if os.geteuid() == 0:
            os.chown(claim, BACKUP_UID, BACKUP_UID)
        yield ClaimRun(source, claim, host_path(bin_dir), containers[ARCHIVER])


def test_a_claims_archive_brings_a_restore_past_its_base_backup(bin_dir: Path) -> None:
    with claim_source(bin_dir) as c:
        server = c.source.server
        assert c.sidecar["image"] == f"{CONFIG.postgres_image}:{DESIGN.postgres.version}"
        write(server, 1, BEFORE_ROWS)
        c.base_backup()
        # Written as uid 101, read by the restore step as the server's uid: readable by
        # others. (Checked on the modes: this machine's file system lets any uid read.)
        run = c.claim / PLATFORM / STAMP / "postgres"
        for item in [run, *run.iterdir()]:
            assert item.stat().st_uid == BACKUP_UID
            wanted = 0o005 if item.is_dir() else 0o004
            assert item.stat().st_mode & wanted == wanted, f"{item} is {item.stat().st_mode:o}"
        write(server, BEFORE_ROWS + 1, BEFORE_ROWS + 100)
        c.source.switch_and_archive()
        write(server, BEFORE_ROWS + 101, BEFORE_ROWS + 200)
        last = c.source.switch_and_archive()
        expected = rows(server)

        moved = c.sidecar_pass()
        assert moved.returncode == 0, moved.stderr
        system = c.source.system_identifier()
        archive = c.claim / PLATFORM / "wal" / system
        assert (archive / last).is_file()
        assert not [p for p in archive.iterdir() if p.name.startswith(".")]  # no temp left
        # A second pass has nothing to do; the archive is as it was.
        again = c.sidecar_pass()
        assert again.returncode == 0, again.stderr
        assert "archived" not in again.stdout

        volume = new_volume(c.source, "restored")
        done = c.restore(volume)
        step = done[RESTORE_STEP]
        assert step.returncode == 0, step.stdout + step.stderr
        assert "recovered to the end of the archive" in done[RESTORE_STEP].stdout
        assert restored_rows(c.source, volume) == expected
        assert len(expected) == BEFORE_ROWS + 200


def test_postgres_recovery_backup_restores_the_backups_moment_despite_the_archive(
    bin_dir: Path,
) -> None:
    with claim_source(bin_dir) as c:
        server = c.source.server
        write(server, 1, BEFORE_ROWS)
        at_backup = rows(server)
        c.base_backup()
        write(server, BEFORE_ROWS + 1, BEFORE_ROWS + 100)
        c.source.switch_and_archive()
        moved = c.sidecar_pass()
        assert moved.returncode == 0, moved.stderr

        volume = new_volume(c.source, "restored")
        done = c.restore(volume, recovery="Backup")
        step = done[RESTORE_STEP]
        assert step.returncode == 0, step.stdout + step.stderr
        assert "replaying the WAL archived in" not in step.stdout
        # The archive holds the later rows; asked for the backup's moment, they stay out.
        assert restored_rows(c.source, volume) == at_backup
        assert len(at_backup) == BEFORE_ROWS


@pytest.mark.parametrize("damage", ["missing", "unreadable"])
def test_an_archive_with_a_hole_is_not_claimed_restored(bin_dir: Path, damage: str) -> None:
    with claim_source(bin_dir) as c:
        server = c.source.server
        write(server, 1, 50)
        c.base_backup()
        write(server, 51, 100)
        middle = c.source.switch_and_archive()
        write(server, 101, 150)
        last = c.source.switch_and_archive()
        assert c.sidecar_pass().returncode == 0
        archive = c.claim / PLATFORM / "wal" / c.source.system_identifier()
        if damage == "missing":
            # The file after it is there: recovery cannot reach it.
            (archive / middle).unlink()
        else:
            # The last one, zeroed: PostgreSQL takes it for the end of the WAL, right at a
            # file's start (the switch before it), which must not pass for the archive's end.
            (archive / last).write_bytes(bytes((archive / last).stat().st_size))

        volume = new_volume(c.source, "restored")
        done = c.restore(volume)

        failed = done[RESTORE_STEP]
        assert failed.returncode != 0
        assert "past where recovery ended" in failed.stderr
        assert "missing or unreadable" in failed.stderr
        assert not (volume / "duet-restored").exists()


def test_the_claims_sidecar_refuses_to_replace_a_different_file(bin_dir: Path) -> None:
    with claim_source(bin_dir) as c:
        write(c.source.server, 1, 10)
        name = c.source.switch_and_archive()
        system = c.source.system_identifier()
        theirs = c.claim / PLATFORM / "wal" / system / name
        theirs.parent.mkdir(parents=True)
        theirs.write_bytes(b"someone else's WAL")

        kept = c.sidecar_pass()

        assert kept.returncode != 0
        assert "exists with a different content" in kept.stderr
        assert theirs.read_bytes() == b"someone else's WAL"
        assert (c.source.spool / system / name).is_file()


# -- archive_command on its own ---------------------------------------------------------------


def archive_command(files: Mapping[str, str], data: Path, spool: Path, name: str) -> Any:
    """The rendered archive command's script, run as PostgreSQL runs it: in the data
    directory, with %p (relative to it), %f and the spool."""
    script = data.parent / SCRIPT_FILE
    script.write_text(files[SCRIPT_FILE])
    return subprocess.run(
        ["/bin/sh", str(script), f"pg_wal/{name}", name, str(spool)],
        cwd=data,
        capture_output=True,
        text=True,
        check=False,
    )


def test_archive_command_is_idempotent_and_refuses_a_different_content(tmp_path: Path) -> None:
    files, _ = rendered_postgres(owner(PVC_TARGET))
    # A data directory's control file (its system identifier) and one WAL file.
    data, spool = tmp_path / "pgdata", tmp_path / "spool"
    (data / "global").mkdir(parents=True)
    (data / "pg_wal").mkdir()
    control = b"\x2a\x00\x00\x00\x00\x00\x00\x70" + bytes(8184)
    (data / "global" / "pg_control").write_bytes(control)
    name = "000000010000000000000003"
    segment = data / "pg_wal" / name
    segment.write_bytes(os.urandom(1 << 16))
    system = str(int.from_bytes(control[:8], "little"))

    first = archive_command(files, data, spool, name)
    assert first.returncode == 0, first.stderr
    spooled = spool / system / name
    assert spooled.read_bytes() == segment.read_bytes()
    assert oct(spooled.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in spooled.parent.iterdir()] == [name]  # no temporary file left

    again = archive_command(files, data, spool, name)
    assert again.returncode == 0, again.stderr

    segment.write_bytes(os.urandom(1 << 16))
    refused = archive_command(files, data, spool, name)
    assert refused.returncode == 1
    assert "different content" in refused.stderr
    assert spooled.read_bytes() != segment.read_bytes()  # the first one stays
