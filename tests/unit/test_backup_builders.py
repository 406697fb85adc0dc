"""Backup decisions without a cluster: schedules, layout, retention, statements, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duet_agents.backup import (
    BackupRecord,
    Component,
    DiskDestination,
    FileDestination,
    S3Destination,
    backup_statement,
    basebackup_args,
    check_cron,
    expired,
    location,
    parse_stamp,
    platform_prefix,
    restore_statement,
    size_query,
    stamp,
)

T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "schedule",
    ["0 2 * * *", "*/15 * * * *", "0 3 * * mon-fri", "30 1 1,15 jan,jul ?", "@daily", "0 0 * * 7"],
)
def test_schedules_cronjob_runs_are_accepted(schedule: str) -> None:
    assert check_cron(schedule) == schedule


@pytest.mark.parametrize(
    ("schedule", "named"),
    [
        ("61 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day of week"),
        ("0 0 * * fry", "day of week"),
        ("*/0 * * * *", "step"),
        ("0 5-2 * * *", "backwards"),
        ("? * * * *", "day fields"),
        ("0 2 * *", "five fields"),
        ("TZ=UTC 0 2 * * *", "five fields"),
        ("@every 1h", "five fields"),
    ],
)
def test_bad_schedules_are_refused_naming_what_is_wrong(schedule: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        check_cron(schedule)


def test_the_layout_is_prefix_platform_stamp_component() -> None:
    run = stamp(T0)
    assert run == "20250301T020000Z"
    assert parse_stamp(run) == T0
    assert stamp(datetime(2025, 3, 1, 3, 0, tzinfo=UTC).astimezone(UTC)) == "20250301T030000Z"
    directory = platform_prefix("/team/prod/", "clicks")
    assert (
        location(directory, run, Component.POSTGRES) == "team/prod/clicks/20250301T020000Z/postgres"
    )
    assert platform_prefix("", "clicks") == "clicks"


def test_stamps_sort_as_their_times_do() -> None:
    times = [T0 + timedelta(hours=h, seconds=s) for h in (30, 0, 5) for s in (59, 1)]
    assert sorted(stamp(t) for t in times) == [stamp(t) for t in sorted(times)]


def record(name: str, hours_ago: int, succeeded: bool | None = True) -> BackupRecord:
    return BackupRecord(name, T0 - timedelta(hours=hours_ago), succeeded)


def test_retention_keeps_the_newest_completed_and_never_a_running_one() -> None:
    records = [
        record("a", 1),
        record("b", 2, succeeded=False),
        record("c", 3),
        record("d", 4, succeeded=None),
        record("e", 5),
        record("f", 6, succeeded=False),
        record("g", 7),
    ]
    assert [r.name for r in expired(records, keep=2)] == ["g", "f", "e"]
    assert [r.name for r in expired(records, keep=4)] == []
    assert [r.name for r in expired(records, keep=3)] == ["g", "f"]


def test_failures_stay_until_enough_good_backups_are_newer() -> None:
    records = [
        record("new-fail", 1, succeeded=False),
        record("ok", 2),
        record("old-fail", 3, False),
    ]
    assert [r.name for r in expired(records, keep=1)] == ["old-fail"]
    assert expired(records, keep=2) == []


def test_retention_refuses_to_keep_nothing() -> None:
    with pytest.raises(ValueError, match="at least one"):
        expired([record("a", 1)], keep=0)


def test_statements_name_the_location_only_as_a_parameter() -> None:
    statement = backup_statement(S3Destination())
    assert statement == (
        'BACKUP ALL EXCEPT DATABASES "system", "INFORMATION_SCHEMA", "information_schema"'
        ' TO S3("duet_backups", {location:String})'
    )
    assert restore_statement(FileDestination(), databases=["sales"], on_cluster="default") == (
        'RESTORE DATABASE "sales" ON CLUSTER "default" FROM File({location:String})'
    )
    assert "{location:String}" in size_query()


def test_names_are_quoted_not_spliced() -> None:
    statement = backup_statement(DiskDestination("b'k"), databases=['we"ird', "x"])
    assert statement == (
        'BACKUP DATABASE "we""ird", DATABASE "x" TO Disk(\'b\'\'k\', {location:String})'
    )


def test_basebackup_is_tar_compressed_with_streamed_wal_and_no_password_argument() -> None:
    args = basebackup_args(host="db", port=5432, user="replicator", directory="/b/postgres")
    assert args[0] == "pg_basebackup"
    assert {"--format=tar", "--compress=gzip", "--wal-method=stream", "--no-password"} <= set(args)
    assert "--pgdata=/b/postgres" in args
    assert not [a for a in args if "password=" in a.lower()]
    deferred = basebackup_args(host="db", port=5432, user="replicator", directory=None)
    assert not [a for a in deferred if a.startswith("--pgdata")]
