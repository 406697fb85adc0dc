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
Pruning, per target: two base backups with WAL switches between them, the second on timeline 2
(the server restarted through archive recovery, as after a failover), the archive filled by
the sidecar; retention's rendered cleanup step, keeping the second, deletes the first run and
exactly the files `prunable` names (timeline 1's segments, its partial one, the first backup's
history file), keeps `00000002.history` and another database's directory; a Latest restore
from the second backup still brings back every row.
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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duet_agents.backup import stamp
from duet_agents.backup.wal_prune import BackupWal, backup_wal, prunable
from duet_operator.models import DataPlatform, DataPlatformBackup
from duet_operator.models.backup import BackupTarget
from duet_operator.render.backup import (
    ExpiredRun,
    build_backup_job,
    build_cleanup_job,
    describe_location,
)
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
    RUN_AT,
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


@dataclass
class Source:
    """The platform's primary, as its pod runs it: the rendered archive settings, the
    ConfigMap's files in `config`, the data volume (spool beside PGDATA) in `volume`.
    `restart(**settings)` stops the server and starts it again (with `settings` besides the
    archive's), returning the new one."""

    server: PostgresServer
    config: Path
    volume: Path
    base: Path
    prefix: list[str]
    restart: Callable[..., PostgresServer]

    def new_timeline(self) -> None:
        """What a failover does to the archive: the server stops, and starts again through
        archive recovery (nothing to restore: recovery ends at once) and promotes, beginning
        timeline 2, whose history file and partial last segment of timeline 1 it archives."""
        signal_file = self.volume / "pgdata" / "recovery.signal"
        self.server = self.restart(_touch=str(signal_file), restore_command="false")
        with self.server.admin() as conn:
            row = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()
        assert row is not None
        assert int(str(row[0])) >= 2

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
    processes: list[subprocess.Popen[bytes]] = []
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

        def start(_touch: str | None = None, **extra: str) -> PostgresServer:
            if processes:
                _stop(processes.pop())
            if _touch:
                Path(_touch).touch()
                chown_tree(Path(_touch))
            process, port = start_postgres(
                bin_dir,
                volume / "pgdata",
                base,
                base / "source.log",
                prefix,
                wal_level="replica",
                **settings,
                **extra,
            )
            processes.append(process)
            server = PostgresServer("127.0.0.1", port, password, bin_dir, base)

            def accepts() -> bool:
                if process.poll() is not None:
                    raise RuntimeError((base / "source.log").read_text(errors="replace")[-4000:])
                with server.admin() as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return row is not None and row[0] is False

            wait_until(accepts, timeout=60, what="the archiving server", ignore=(psycopg.Error,))
            return server

        server = start()
        with server.admin() as conn:
            conn.execute(
                f"CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '{REPLICATION_PASSWORD}'"
            )
            conn.execute("CREATE DATABASE shop")
        yield Source(server, config, volume, base, prefix, start)
    finally:
        for process in processes:
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
    source: Source,
    target: Mapping[str, Any],
    tools: str,
    secrets: Any,
    claim: Path | None = None,
    run: DataPlatformBackup | None = None,
) -> None:
    """The backup Job's PostgreSQL step (into the claim, or scratch space and then its upload
    step to S3), run against the source, for the DataPlatformBackup `run` (`record()`'s, at
    STAMP, by default)."""
    server = source.server
    work, termination = source.base / "work", source.base / "termination-log"
    work.mkdir(exist_ok=True)
    # A Job's scratch space is its own: each run fixes its stamp anew.
    (work / "stamp").unlink(missing_ok=True)
    chown_tree(work)
    rewrites = {
        "/work": str(work),
        "/dev/termination-log": str(termination),
        f"--host={NAMES.service_host(NAMES.postgres_rw)}": f"--host={server.host}",
        "--port=5432": f"--port={server.port}",
    } | ({"/backups": str(claim)} if claim else {})
    steps = steps_of(build_backup_job(run or record(), owner(target), DESIGN, CONFIG))
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
    target_time: str | None = None,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """The restoring StatefulSet's init steps for a new platform made from the run at
    `location`, as the operator renders them, run in order until one fails."""
    restore_from = {"backup": "nightly", "postgresRecovery": recovery}
    if target_time is not None:
        restore_from["recoveryTargetTime"] = target_time
    restoring = owner(target, restoreFrom=restore_from)
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
        self, volume: Path, recovery: str = "Latest", target_time: str | None = None
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        run = HostRun({DATA_DIR: str(volume), "/backups": str(self.claim)}, path=self.tools)
        location = f"pvc://{CLAIM}/{PLATFORM}/{STAMP}"
        return restore_into(
            PVC_TARGET, volume, run, NEW_PLATFORM_PASSWORDS, location, recovery, target_time
        )


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


# -- pruning the archive (retention's cleanup step) -------------------------------------------

SECOND_AT = RUN_AT + timedelta(days=1)
SECOND = stamp(SECOND_AT)


def second_record() -> DataPlatformBackup:
    """The second base backup's DataPlatformBackup: a day after the first, its own stamp."""
    first = record()
    meta = first.metadata.model_copy(update={"name": "nightly-2", "creation_timestamp": SECOND_AT})
    return first.model_copy(update={"metadata": meta})


def prune_step(target: Mapping[str, Any], platform_dir: str) -> dict[str, Any]:
    """Retention's cleanup step as rendered for a pass that lets the first run go and keeps
    the second: it deletes the first run, then prunes the archive before the second."""
    job = build_cleanup_job(
        owner(target),
        DESIGN,
        CONFIG,
        BACKUPS,
        runs=[ExpiredRun("nightly", f"{platform_dir}/{STAMP}")],
        trigger="nightly-3",
        keep_wal_from=f"{platform_dir}/{SECOND}",
    )
    return steps_of(job)["cleanup"]


def two_backups_across_a_timeline(
    source: Source, backup: Callable[[DataPlatformBackup], None]
) -> list[tuple[Any, ...]]:
    """Rows and WAL switches around two base backups, the second on timeline 2 (as after a
    failover); returns every row written."""
    server = source.server
    write(server, 1, 100)
    source.switch_and_archive()
    backup(record())
    write(source.server, 101, 200)
    source.switch_and_archive()
    write(source.server, 201, 300)
    source.switch_and_archive()
    source.new_timeline()
    write(source.server, 301, 400)
    source.switch_and_archive()
    backup(second_record())
    write(source.server, 401, 500)
    source.switch_and_archive()
    return rows(source.server)


def check_the_cutoff(source: Source, manifest: str) -> BackupWal:
    """The second backup's start, from its manifest, and the segment PostgreSQL itself names
    for it (pg_walfile_name: the same, as a backup never starts at a segment's first byte)."""
    wal = backup_wal(manifest)
    assert wal.timeline == 2
    with source.server.admin() as conn:
        row = conn.execute(
            "SELECT pg_walfile_name(%s::pg_lsn)",
            [f"{wal.start >> 32:X}/{wal.start & 0xFFFFFFFF:X}"],
        ).fetchone()
    assert row is not None
    assert row[0] == wal.cutoff()
    return wal


def test_pruning_a_claims_archive_keeps_what_the_kept_backup_needs(bin_dir: Path) -> None:
    with claim_source(bin_dir) as c:
        source = c.source
        expected = two_backups_across_a_timeline(
            source,
            lambda run: base_backup(
                source, PVC_TARGET, c.tools, SOURCE_SECRETS, claim=c.claim, run=run
            ),
        )
        moved = c.sidecar_pass()
        assert moved.returncode == 0, moved.stderr
        system = source.system_identifier()
        archive = c.claim / PLATFORM / "wal" / system
        before = sorted(p.name for p in archive.iterdir())
        assert "00000002.history" in before
        manifest = (c.claim / PLATFORM / SECOND / "postgres" / "backup_manifest").read_text()
        wal = check_the_cutoff(source, manifest)
        doomed = prunable(before, wal.cutoff())
        # Timeline 1's segments, its partial last one, the first backup's history file.
        assert any(name.endswith(".partial") for name in doomed)
        assert any(name.endswith(".backup") for name in doomed)
        # Everything before the cutoff goes, but the history file.
        earlier = [name for name in before if name < wal.cutoff() and name not in doomed]
        assert earlier == ["00000002.history"]

        # As the user the sidecar ran as here (in a pod both are the backup uid).
        pod = HostRun({"/backups": str(c.claim)}, path=c.tools)
        done = pod.run(prune_step(PVC_TARGET, PLATFORM), {})

        assert done.returncode == 0, done.stdout + done.stderr
        assert f"deleted {PLATFORM}/{STAMP}" in done.stdout
        assert f"pruned {len(doomed)} archived WAL files" in done.stdout
        assert sorted(p.name for p in archive.iterdir()) == sorted(set(before) - set(doomed))
        assert (archive / "00000002.history").is_file()
        assert (archive / wal.cutoff()).is_file()

        # The archive still serves the kept backup: a Latest restore brings every row back.
        volume = new_volume(source, "restored")
        run = HostRun({DATA_DIR: str(volume), "/backups": str(c.claim)}, path=c.tools)
        location = f"pvc://{CLAIM}/{PLATFORM}/{SECOND}"
        restored = restore_into(PVC_TARGET, volume, run, NEW_PLATFORM_PASSWORDS, location)
        step = restored[RESTORE_STEP]
        assert step.returncode == 0, step.stdout + step.stderr
        assert "recovered to the end of the archive" in step.stdout
        assert restored_rows(source, volume) == expected
        assert len(expected) == 500


def test_pruning_an_s3_archive_keeps_what_the_kept_backup_needs(
    s3_server: S3Server, bin_dir: Path
) -> None:
    s3 = s3_server
    target = s3_target(s3)
    files, containers = rendered_postgres(owner(target))
    with archiving_source(bin_dir, files) as source:
        tools = host_path(s3.aws_cli.parent, source.server.bin_dir)
        secrets = key_secret(s3) | SOURCE_SECRETS
        expected = two_backups_across_a_timeline(
            source, lambda run: base_backup(source, target, tools, secrets, run=run)
        )
        scratch = source.base / "sidecar-home"
        scratch.mkdir()
        pod = HostRun({DATA_DIR: str(source.volume), "/work": str(scratch)}, path=tools)
        moved = sidecar_pass(containers[ARCHIVER], pod, key_secret(s3))
        assert moved.returncode == 0, moved.stderr
        archive = f"{PREFIX}/{PLATFORM}/wal/{source.system_identifier()}/"
        before = sorted(k.removeprefix(archive) for k in s3.keys(archive))
        assert "00000002.history" in before
        manifest_key = f"{PREFIX}/{PLATFORM}/{SECOND}/postgres/backup_manifest"
        fetched = source.base / "manifest"
        s3.aws("s3", "cp", f"s3://{s3.bucket}/{manifest_key}", str(fetched))
        wal = check_the_cutoff(source, fetched.read_text())
        doomed = prunable(before, wal.cutoff())
        assert doomed
        # Another database's archive under the same platform (a platform made anew) stays.
        other = f"{PREFIX}/{PLATFORM}/wal/42/000000010000000000000001"
        s3.put({other: b"another database"})

        cleanup = HostRun({"/work": str(scratch)}, path=tools)
        done = cleanup.run(prune_step(target, f"{PREFIX}/{PLATFORM}"), key_secret(s3))

        assert done.returncode == 0, done.stdout + done.stderr
        assert f"pruned {len(doomed)} archived WAL files" in done.stdout
        assert sorted(k.removeprefix(archive) for k in s3.keys(archive)) == sorted(
            set(before) - set(doomed)
        )
        assert other in s3.keys(f"{PREFIX}/{PLATFORM}/wal/42/")
        assert s3.keys(f"{PREFIX}/{PLATFORM}/{STAMP}/") == set()
        assert s3.secret_access_key not in done.stdout + done.stderr

        volume = new_volume(source, "restored")
        location = describe_location(PLATFORM, BackupTarget.model_validate(target), SECOND)
        restored = restore_into(
            target, volume, HostRun({DATA_DIR: str(volume)}, path=tools),
            new_platform_secrets(s3), location,
        )  # fmt: skip
        assert restored[DOWNLOAD_STEP].returncode == 0, restored[DOWNLOAD_STEP].stderr
        step = restored[RESTORE_STEP]
        assert step.returncode == 0, step.stdout + step.stderr
        assert restored_rows(source, volume) == expected
        assert len(expected) == 500


# -- point-in-time recovery (postgresRecovery Time) ---------------------------------------------


def server_time(server: PostgresServer) -> str:
    """The server's clock now, as RFC 3339 (what a user would write in recoveryTargetTime)."""
    with server.admin() as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    moment = row[0]
    assert isinstance(moment, datetime)
    return moment.astimezone(UTC).isoformat()


def test_a_restore_to_a_point_in_time_holds_what_was_committed_before_it(bin_dir: Path) -> None:
    with claim_source(bin_dir) as c:
        server = c.source.server
        write(server, 1, 100)
        before_backup = server_time(server)
        c.base_backup()
        # The backup's end is known to the second (its history file): the target is later.
        with server.admin() as conn:
            conn.execute("SELECT pg_sleep(1.1)")
        write(server, 101, 200)  # t1, committed before the target
        at_target = rows(server)
        with server.admin() as conn:
            conn.execute("SELECT pg_sleep(0.2)")
        target = server_time(server)
        with server.admin() as conn:
            conn.execute("SELECT pg_sleep(0.2)")
        write(server, 201, 300)  # t2, after it
        c.source.switch_and_archive()
        assert c.sidecar_pass().returncode == 0

        volume = new_volume(c.source, "restored")
        done = c.restore(volume, recovery="Time", target_time=target)
        step = done[RESTORE_STEP]
        assert step.returncode == 0, step.stdout + step.stderr
        assert "up to" in step.stdout
        assert "recovered to" in step.stdout
        assert restored_rows(c.source, volume) == at_target
        assert len(at_target) == 200

        # Before the backup ended: refused by the step, with nothing marked restored.
        early = new_volume(c.source, "early")
        refused = c.restore(early, recovery="Time", target_time=before_backup)[RESTORE_STEP]
        assert refused.returncode != 0
        assert "is before the base backup ended" in refused.stderr
        assert "choose a later recoveryTargetTime" in refused.stderr
        assert not (early / "duet-restored").exists()

        # Past the archive's end: PostgreSQL 15 refuses it, and the step says what that means.
        late = new_volume(c.source, "late")
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        refused = c.restore(late, recovery="Time", target_time=future)[RESTORE_STEP]
        assert refused.returncode != 0
        assert "the archive ends before the recovery target" in refused.stderr
        assert "recovery ended before configured recovery target was reached" in refused.stderr
        assert not (late / "duet-restored").exists()
