"""Pruning the WAL archive, without a server: the pure rules (LSN -> segment, a manifest's
start, which files go), the scripts' shell functions agreeing with them, the scripts' guards,
and the claim's script on a laid-out archive. Against real PostgreSQL and a real S3 server:
tests/integration/test_wal_archive.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from duet_agents.backup.cleanup import PVC_SCRIPT, S3_SCRIPT
from duet_agents.backup.wal_prune import (
    PRUNE_FUNCTIONS,
    PVC_PRUNE_SCRIPT,
    S3_PRUNE_SCRIPT,
    SEGMENT_SIZE,
    BackupWal,
    backup_history_name,
    backup_wal,
    is_history,
    parse_lsn,
    prunable,
    segment_name,
)
from duet_operator.models.backup import BackupTarget
from duet_operator.render.backup import SCHEDULED_LABEL
from duet_operator.render.backup_cleanup import KEEP_FROM_ENV, ExpiredRun, build_cleanup_job
from duet_operator.render.config import RenderConfig
from duet_operator.retention import (
    platform_backups,
    retention_plan,
    scheduled_backups,
    wal_keep_from,
)
from tests.support.platforms import design, platform

RUN = "clicks/20250302T020000Z"
SYSTEM = "7311902391023456789"

# The end of a real PostgreSQL 15 backup_manifest (pg_basebackup --format=tar).
MANIFEST = """{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "global/pg_control", "Size": 8192, "Last-Modified": "2025-03-02 02:00:01 GMT", \
"Checksum-Algorithm": "CRC32C", "Checksum": "43872087" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/5000028", "End-LSN": "0/5000100" }
],
"Manifest-Checksum": "54b9a67f49fa4778004ee7487c807e8f7421af7a4b972b9276e407b9c53747a0"}
"""
HISTORY = """START WAL LOCATION: 0/5000028 (file 000000010000000000000005)
STOP WAL LOCATION: 0/5000100 (file 000000010000000000000005)
CHECKPOINT LOCATION: 0/5000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2025-03-02 02:00:01 UTC
LABEL: duet
START TIMELINE: 1
STOP TIME: 2025-03-02 02:00:02 UTC
STOP TIMELINE: 1
"""


def test_an_lsn_is_two_hex_halves() -> None:
    assert parse_lsn("0/2000028") == 0x2000028
    assert parse_lsn("1A/FF000000") == (0x1A << 32) | 0xFF000000
    for bad in ["", "2000028", "0/", "0/xyz", "0/2000028/1", "123456789/0"]:
        with pytest.raises(ValueError, match="is not an LSN"):
            parse_lsn(bad)


@pytest.mark.parametrize(
    ("timeline", "lsn", "name"),
    [
        # As PostgreSQL names them (checked against pg_walfile_name on a real server too).
        (1, "0/2000028", "000000010000000000000002"),
        (1, "0/2FFFFFF", "000000010000000000000002"),
        (1, "0/3000000", "000000010000000000000003"),  # the segment holding the byte
        (2, "1/FF000028", "0000000200000001000000FF"),
        (16, "A/0", "000000100000000A00000000"),
    ],
)
def test_an_lsn_is_in_the_segment_postgres_names(timeline: int, lsn: str, name: str) -> None:
    assert segment_name(timeline, parse_lsn(lsn)) == name


def test_a_backups_history_file_is_named_by_its_start() -> None:
    # The name PostgreSQL 15 gave the history file of a backup starting at 0/2000028.
    assert backup_history_name(1, 0x2000028) == "000000010000000000000002.00000028.backup"
    assert backup_history_name(3, (1 << 32) | 0x0A0000D8) == (
        "00000003000000010000000A.000000D8.backup"
    )


def test_other_segment_sizes_follow_postgres_arithmetic() -> None:
    size = 64 * 1024 * 1024  # 64 segments per 4 GiB "log id"
    assert segment_name(1, (2 << 32) | 0x0C000010, size) == "000000010000000200000003"


def test_the_manifest_says_where_the_backups_wal_begins() -> None:
    assert backup_wal(MANIFEST) == BackupWal(timeline=1, start=0x5000028, end=0x5000100)
    assert backup_wal(MANIFEST).cutoff() == "000000010000000000000005"


def test_a_backup_across_a_timeline_switch_begins_on_the_older_one() -> None:
    manifest = (
        '{"WAL-Ranges": [\n'
        '{ "Timeline": 2, "Start-LSN": "0/7000000", "End-LSN": "0/8000100" },\n'
        '{ "Timeline": 1, "Start-LSN": "0/6000028", "End-LSN": "0/7000000" }\n]}'
    )
    assert backup_wal(manifest) == BackupWal(timeline=1, start=0x6000028, end=0x8000100)


@pytest.mark.parametrize(
    "manifest", ["", "{}", '{"WAL-Ranges": []}', '{"WAL-Ranges": [{"Timeline": 1}]}', "not json"]
)
def test_a_manifest_without_wal_ranges_says_nothing(manifest: str) -> None:
    with pytest.raises(ValueError, match=r"WAL-Ranges|no WAL range"):
        backup_wal(manifest)


def test_files_before_the_cutoff_on_its_timeline_or_older_go() -> None:
    names = [
        "000000010000000000000003",
        "000000010000000000000004.partial",
        "000000010000000000000004.00000028.backup",
        "000000020000000000000004",
        "000000020000000000000005",  # the cutoff: stays
        "000000020000000000000005.00000028.backup",  # the kept backup's own: stays
        "000000020000000000000006",
        "000000010000000000000009",  # older timeline, later segment: stays
        "000000030000000000000002",  # a later timeline: stays
        "00000002.history",
        "00000003.history",
        ".000000010000000000000001.tmp",
        "README",
    ]
    assert prunable(names, "000000020000000000000005") == [
        "000000010000000000000003",
        "000000010000000000000004.00000028.backup",
        "000000010000000000000004.partial",
        "000000020000000000000004",
    ]
    assert is_history("00000002.history")
    assert not is_history("000000020000000000000004")


def test_a_cutoff_must_be_a_segment_name() -> None:
    for bad in ["", "00000002.history", "000000010000000000000004.partial", "zz"]:
        with pytest.raises(ValueError, match="not a WAL segment name"):
            prunable([], bad)


# -- the scripts' shell functions --------------------------------------------------------------


def shell(
    call: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = f"set -eu\nsize={SEGMENT_SIZE}\nper=$((0x100000000 / size))\n{PRUNE_FUNCTIONS}\n{call}"
    return subprocess.run(
        ["/bin/sh", "-c", script, "test", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def test_the_scripts_cutoff_is_the_pure_one() -> None:
    cases = [
        (1, "0/2000028"),
        (1, "0/2FFFFFF"),
        (1, "0/3000000"),
        (2, "1/FF000028"),
        (7, "2A/1234ABCD"),
        (255, "FFFF/FFFFFFF0"),
    ]
    for timeline, lsn in cases:
        done = shell('cutoff_of "$1" "$2"', str(timeline), lsn)
        assert done.returncode == 0, done.stderr
        value = parse_lsn(lsn)
        expected = f"{segment_name(timeline, value)} {backup_history_name(timeline, value)}"
        assert done.stdout.strip() == expected, (timeline, lsn)
        name = segment_name(timeline, value)
        number = shell('segment_number "$1"', name)
        assert int(number.stdout) == value // SEGMENT_SIZE


@pytest.mark.parametrize(
    "path",
    [
        "clicks/wal/123/000000010000000000000003",
        "clicks/wal/123/000000010000000000000003.partial",
        "clicks/wal/123/000000010000000000000003.00000028.backup",
    ],
)
def test_the_guard_passes_wal_files_inside_the_archive(path: str) -> None:
    assert shell('wal="clicks/wal"; wal_file "$1"', path).returncode == 0


@pytest.mark.parametrize(
    "path",
    [
        "clicks/20250301T020000Z/000000010000000000000003",  # a run, not wal/
        "clicks/000000010000000000000003",
        "other/wal/123/000000010000000000000003",  # another platform's archive
        "clicks/wal/000000010000000000000003",  # no system directory
        "clicks/wal/abc/000000010000000000000003",  # not a system identifier
        "clicks/wal/123/00000002.history",  # history files never go
        "clicks/wal/123/backup_manifest",
        "clicks/wal/123/../000000010000000000000003",
        "clicks/wal/123/sub/000000010000000000000003",
        "clicks/wal/123/0000000100000000000000030",
        "/clicks/wal/123/000000010000000000000003",
        "",
    ],
)
def test_the_guard_refuses_anything_else(path: str) -> None:
    assert shell('wal="clicks/wal"; wal_file "$1"', path).returncode == 1


@pytest.mark.parametrize(
    "keep",
    ["", "/clicks/20250301T020000Z", "clicks/../20250301T020000Z", "clicks/wal", "clicks",
     "20250301T020000Z", "clicks/20250301T020000Z/", "clicks//20250301T020000Z",
     "clicks/2025030"],
)  # fmt: skip
def test_the_prune_refuses_a_kept_run_that_is_not_one(keep: str, tmp_path: Path) -> None:
    done = subprocess.run(
        ["/bin/sh", "-c", "set -eu\n" + PVC_PRUNE_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "BACKUP_ROOT": str(tmp_path), "KEEP_FROM": keep},
    )
    assert done.returncode == 1
    assert "not a run of this platform" in done.stderr


# -- the claim's script on a laid-out archive ----------------------------------------------------


def segment(path: Path) -> None:
    """A WAL segment as the archive holds one: 16 MiB (sparse here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(SEGMENT_SIZE)


def lay_out(root: Path) -> Path:
    run = root / RUN / "postgres"
    run.mkdir(parents=True)
    (run / "backup_manifest").write_text(MANIFEST)
    archive = root / "clicks" / "wal" / SYSTEM
    for n in range(1, 8):
        segment(archive / f"0000000100000000000000{n:02X}")
    (archive / "000000010000000000000002.00000028.backup").write_text("old backup")
    (archive / "000000010000000000000005.00000028.backup").write_text(HISTORY)
    (archive / "00000002.history").write_text("1\t0/5000000\tno recovery target specified\n")
    return archive


def prune(root: Path, keep: str = RUN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", "set -eu\n" + PVC_PRUNE_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "BACKUP_ROOT": str(root), "KEEP_FROM": keep},
    )


def test_the_claims_script_prunes_before_the_kept_backups_start(tmp_path: Path) -> None:
    archive = lay_out(tmp_path)
    before = sorted(p.name for p in archive.iterdir())

    done = prune(tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"pruned 5 archived WAL files of clicks/wal/{SYSTEM}/" in done.stdout
    left = sorted(p.name for p in archive.iterdir())
    assert left == sorted(set(before) - set(prunable(before, "000000010000000000000005")))
    assert left == [
        "000000010000000000000005",
        "000000010000000000000005.00000028.backup",
        "000000010000000000000006",
        "000000010000000000000007",
        "00000002.history",
    ]
    again = prune(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to prune" in again.stdout


def test_another_databases_archive_is_left_alone(tmp_path: Path) -> None:
    lay_out(tmp_path)
    other = tmp_path / "clicks" / "wal" / "42"
    segment(other / "000000010000000000000001")
    assert prune(tmp_path).returncode == 0
    assert (other / "000000010000000000000001").exists()


@pytest.mark.parametrize("what", ["manifest", "history", "history-differs", "twice", "size"])
def test_what_cannot_be_known_prunes_nothing_and_says_why(tmp_path: Path, what: str) -> None:
    archive = lay_out(tmp_path)
    manifest = tmp_path / RUN / "postgres" / "backup_manifest"
    history = archive / "000000010000000000000005.00000028.backup"
    if what == "manifest":
        manifest.unlink()
    elif what == "history":
        history.unlink()
    elif what == "history-differs":
        history.write_text(
            HISTORY.replace("STOP WAL LOCATION: 0/5000100", "STOP WAL LOCATION: 0/5000200")
        )
    elif what == "twice":
        twin = tmp_path / "clicks" / "wal" / "42" / history.name
        twin.parent.mkdir()
        twin.write_text(HISTORY)
    else:
        (archive / "000000010000000000000003").write_bytes(b"short")
    before = sorted(p.name for p in archive.iterdir())

    done = prune(tmp_path)

    assert done.returncode == 0, done.stderr
    assert "WAL archive kept:" in done.stdout
    assert sorted(p.name for p in archive.iterdir()) == before


def test_an_archive_reached_through_a_link_is_refused(tmp_path: Path) -> None:
    archive = lay_out(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    archive.rename(elsewhere)
    archive.symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())

    done = prune(tmp_path)

    assert done.returncode == 1
    assert "symbolic link" in done.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == before


# -- which run retention keeps WAL from, and the Job that prunes -------------------------------

CLAIM = {"pvc": {"claimName": "shared-backups"}}
S3 = {
    "s3": {
        "endpoint": "https://s3.eu-west-1.amazonaws.com",
        "bucket": "duet-backups",
        "prefix": "prod",
        "secretRef": {"name": "s3-keys"},
    }
}


def backup(
    name: str, day: int, phase: str = "Completed", *, scheduled: bool = True, **extra: Any
) -> dict[str, Any]:
    stamp_ = f"202503{day:02d}T020000Z"
    labels = {SCHEDULED_LABEL: "clicks"} if scheduled else {}
    status: dict[str, Any] = {"phase": phase, "startedAt": f"2025-03-{day:02d}T02:00:00Z"}
    if phase == "Completed":
        status["location"] = f"pvc://shared-backups/clicks/{stamp_}"
    body: dict[str, Any] = {
        "metadata": {"name": name, "labels": labels},
        "spec": {"platformRef": {"name": "clicks"}},
        "status": status,
    }
    for key, value in extra.items():
        body[key] = body[key] | value
    return body


def keep_from(backups: list[dict[str, Any]], keep: int = 2) -> tuple[str | None, str]:
    target = BackupTarget.model_validate(CLAIM)
    ours = platform_backups(backups, "clicks")
    plan = retention_plan(scheduled_backups(ours, "clicks"), "clicks", target, keep)
    return wal_keep_from(ours, plan, "clicks", target)


def test_wal_is_kept_from_the_oldest_backup_retention_keeps() -> None:
    found = [backup(f"clicks-backup-{d}", d) for d in (1, 2, 3, 4)]
    assert keep_from(found)[0] == "clicks/20250303T020000Z"


def test_an_older_on_demand_backup_keeps_its_wal() -> None:
    found = [backup(f"clicks-backup-{d}", d) for d in (2, 3, 4)]
    found.append(backup("before-migration", 1, scheduled=False))
    # Another platform's backups, and one without PostgreSQL, do not count.
    found.append(backup("other", 1, scheduled=False, spec={"platformRef": {"name": "other"}}))
    assert keep_from(found)[0] == "clicks/20250301T020000Z"
    found[-2]["spec"]["components"] = ["clickhouse"]
    assert keep_from(found)[0] == "clicks/20250303T020000Z"


def test_failed_deleted_and_foreign_backups_keep_nothing() -> None:
    found = [backup(f"clicks-backup-{d}", d) for d in (3, 4)]
    found += [
        backup("failed", 1, "Failed", scheduled=False),
        backup("going", 1, scheduled=False, metadata={"deletionTimestamp": "2025-03-09T00:00:00Z"}),
        backup("elsewhere", 1, scheduled=False, status={"location": "s3://b/clicks/20250301T020000Z"}),
    ]  # fmt: skip
    assert keep_from(found, keep=1)[0] == "clicks/20250304T020000Z"


def test_an_older_backup_still_running_stops_the_prune() -> None:
    found = [backup(f"clicks-backup-{d}", d) for d in (2, 3, 4)]
    found.append(backup("long-one", 1, "Running", scheduled=False))
    keep, why = keep_from(found)
    assert keep is None
    assert "long-one" in why
    assert "still running" in why
    # A newer one running does not.
    found[-1] = backup("new-one", 5, "Running", scheduled=False)
    assert keep_from(found)[0] == "clicks/20250303T020000Z"


def test_the_pvc_cleanup_prunes_from_the_kept_run_by_environment() -> None:
    owner = platform(backup={"schedule": "@daily", "retention": 2, "target": CLAIM})
    runs = [ExpiredRun("clicks-backup-1", "clicks/20250301T020000Z")]
    job = build_cleanup_job(
        owner, design(), RenderConfig(), runs=runs, trigger="t", keep_wal_from=RUN
    )
    (step,) = job["spec"]["template"]["spec"]["containers"]
    assert step["command"][2] == PVC_SCRIPT + PVC_PRUNE_SCRIPT
    assert step["command"][4:] == ["clicks/20250301T020000Z"]
    assert {"name": KEEP_FROM_ENV, "value": RUN} in step["env"]
    assert "clicks" not in PVC_PRUNE_SCRIPT
    without = build_cleanup_job(owner, design(), RenderConfig(), runs=runs, trigger="t")
    (plain,) = without["spec"]["template"]["spec"]["containers"]
    assert plain["command"][2] == PVC_SCRIPT
    assert KEEP_FROM_ENV not in {e["name"] for e in plain["env"]}


def test_the_s3_cleanup_prunes_under_the_prefix() -> None:
    owner = platform(backup={"schedule": "@daily", "retention": 2, "target": S3})
    runs = [ExpiredRun("clicks-backup-1", "prod/clicks/20250301T020000Z")]
    keep = "prod/clicks/20250302T020000Z"
    job = build_cleanup_job(
        owner, design(), RenderConfig(), runs=runs, trigger="t", keep_wal_from=keep
    )
    (step,) = job["spec"]["template"]["spec"]["containers"]
    assert step["command"][2] == S3_SCRIPT + S3_PRUNE_SCRIPT
    assert {"name": KEEP_FROM_ENV, "value": keep} in step["env"]


@pytest.mark.parametrize(
    "keep", ["clicks/20250302T020000Z", "prod/other/20250302T020000Z", "prod/clicks/wal", "../x"]
)
def test_a_kept_run_elsewhere_is_refused_when_rendering(keep: str) -> None:
    owner = platform(backup={"schedule": "@daily", "retention": 2, "target": S3})
    runs = [ExpiredRun("clicks-backup-1", "prod/clicks/20250301T020000Z")]
    with pytest.raises(ValueError, match="run"):
        build_cleanup_job(
            owner, design(), RenderConfig(), runs=runs, trigger="t", keep_wal_from=keep
        )
