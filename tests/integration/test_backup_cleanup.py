"""Retention's cleanup step against real backups: the command of the rendered cleanup Job,
run by a real shell on a directory tree that real ClickHouse (chDB) wrote with the Jobs'
`BACKUP ... TO File(...)`, as it is laid out on a backup claim. The expired run goes; the
others stay, and one of them still restores row for row. Links and hostile paths are refused
before anything is deleted. The S3 step runs against a real S3 server in
test_backup_s3.py."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from duet_agents.backup import (
    Component,
    FileDestination,
    backup_statement,
    location,
    platform_prefix,
    restore_statement,
    stamp,
)
from duet_operator.models.backup import BackupTarget
from duet_operator.render.backup import (
    ExpiredRun,
    build_cleanup_job,
    describe_location,
    run_path,
)
from duet_operator.render.config import RenderConfig
from tests.support.chdb_engine import chdb_server
from tests.support.platforms import design, platform

pytest.importorskip("chdb.session")

pytestmark = pytest.mark.integration

TARGET = {"pvc": {"claimName": "shared-backups"}}
RUNS = [stamp(datetime(2025, 3, 1, 2, 0, tzinfo=UTC) + timedelta(days=d)) for d in range(3)]


@pytest.fixture
def claim(tmp_path: Path) -> Path:
    """The backup claim's root after three runs of the platform `clicks`, each a real
    ClickHouse backup of a table that grows by 1,000 rows a run, and one run of `ads`."""
    root = tmp_path / "claim"
    root.mkdir()
    config = tmp_path / "config.xml"
    config.write_text(
        f"<clickhouse><backups><allowed_path>{root}/</allowed_path></backups></clickhouse>"
    )
    with chdb_server(tmp_path / "server", config) as server:
        server.query("CREATE DATABASE shop")
        server.query("CREATE TABLE shop.orders (id UInt64) ENGINE = MergeTree ORDER BY id")
        for number, run in enumerate(RUNS):
            server.query(
                f"INSERT INTO shop.orders SELECT number + {number * 1000} FROM numbers(1000)"
            )
            for name in ("clicks", *(["ads"] if number == 0 else [])):
                where = root / location(platform_prefix("", name), run, Component.CLICKHOUSE)
                server.query(backup_statement(FileDestination()), params={"location": str(where)})
    return root


def run_step(
    target: dict[str, Any], runs: list[ExpiredRun], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The cleanup Job's step, as rendered, with `env` over the values it renders (a local
    root for /backups; a loopback endpoint and the keys its secretKeyRefs would give)."""
    owner = platform(backup={"schedule": "0 2 * * *", "retention": 2, "target": target})
    job = build_cleanup_job(owner, design(), RenderConfig(), runs=runs, trigger="clicks-backup-3")
    (step,) = job["spec"]["template"]["spec"]["containers"]
    rendered = {e["name"]: e["value"] for e in step["env"] if "value" in e}
    return subprocess.run(
        step["command"],
        env=os.environ | rendered | env,
        capture_output=True,
        text=True,
        check=False,
    )


def cleanup(root: Path, runs: list[ExpiredRun]) -> subprocess.CompletedProcess[str]:
    return run_step(TARGET, runs, {"BACKUP_ROOT": str(root)})


def expired(run: str, target: dict[str, Any] = TARGET) -> ExpiredRun:
    """A run as a retention pass takes it: from the location its record's status says."""
    where = BackupTarget.model_validate(target)
    path = run_path("clicks", where, describe_location("clicks", where, run))
    return ExpiredRun(f"clicks-{run}", path)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_expired_run_goes_and_the_others_still_restore(claim: Path, tmp_path: Path) -> None:
    oldest, kept, newest = RUNS
    before = tree(claim)
    assert (claim / "clicks" / oldest / "clickhouse" / ".backup").is_file()

    done = cleanup(claim, [expired(oldest)])

    assert done.returncode == 0, done.stderr
    assert f"deleted clicks/{oldest}" in done.stdout
    assert not (claim / "clicks" / oldest).exists()
    gone = {p for p in before if p.startswith(f"clicks/{oldest}")}
    assert gone
    assert tree(claim) == before - gone
    # What stays is still a backup: the middle run restores, with the rows it held.
    config = tmp_path / "restore.xml"
    config.write_text(
        f"<clickhouse><backups><allowed_path>{claim}/</allowed_path></backups></clickhouse>"
    )
    where = claim / location("clicks", kept, Component.CLICKHOUSE)
    with chdb_server(tmp_path / "restored", config) as restored:
        restored.query(restore_statement(FileDestination()), params={"location": str(where)})
        count = str(restored.query("SELECT count() FROM shop.orders", "TSV")).strip()
    assert count == "2000"
    assert (claim / "clicks" / newest / "clickhouse" / ".backup").is_file()
    assert (claim / "ads" / oldest / "clickhouse" / ".backup").is_file()

    # A retry (a pass after a cleanup that half-failed) finishes without an error.
    again = cleanup(claim, [expired(oldest)])
    assert again.returncode == 0, again.stderr
    assert f"clicks/{oldest} was already gone" in again.stdout


def test_a_run_that_is_a_link_is_refused_and_nothing_is_deleted(
    claim: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data").write_text("keep me")
    planted = stamp(datetime(2024, 1, 1, tzinfo=UTC))
    (claim / "clicks" / planted).symlink_to(outside)
    before = tree(claim)

    done = cleanup(claim, [expired(RUNS[0]), expired(planted)])

    assert done.returncode == 1
    assert f"refusing to delete clicks/{planted}: not a directory" in done.stderr
    assert (outside / "data").read_text() == "keep me"
    # Checked before anything goes: the valid run in the same Job is still there.
    assert tree(claim) == before


def test_a_platform_directory_reached_through_a_link_is_refused(
    claim: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    (outside / RUNS[0]).mkdir(parents=True)
    (outside / RUNS[0] / "data").write_text("keep me")
    (claim / "evil").symlink_to(outside)

    # (The operator never passes this: `run_path` accepts only the platform's own directory.)
    done = cleanup(claim, [ExpiredRun("evil", f"evil/{RUNS[0]}")])

    assert done.returncode == 1
    assert "reached through a symbolic link" in done.stderr
    assert (outside / RUNS[0] / "data").read_text() == "keep me"


@pytest.mark.parametrize(
    "hostile",
    [
        "../../",
        "/etc",
        "",
        "clicks/..",
        f"clicks/../ads/{RUNS[0]}",
        # Directories above the runs: the platform's, and the claim's root.
        "clicks",
        "clicks/",
        ".",
        f"clicks/{RUNS[0]}/data",
    ],
)
def test_hostile_paths_are_refused_by_the_step_itself(claim: Path, hostile: str) -> None:
    before = tree(claim)

    done = cleanup(claim, [expired(RUNS[0]), ExpiredRun("hostile", hostile)])

    assert done.returncode == 1
    assert "refusing to delete" in done.stderr
    assert tree(claim) == before
