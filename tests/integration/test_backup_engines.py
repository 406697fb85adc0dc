"""Backups against the real engines, with the statements and commands the Jobs run:
ClickHouse (chDB) BACKUP to files then RESTORE into a fresh server; pg_basebackup of the real
PostgreSQL test server, unpacked and started as a second server. Both compared row by row."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from duet_agents.backup import (
    Component,
    FileDestination,
    backup_statement,
    basebackup_args,
    location,
    platform_prefix,
    restore_script,
    restore_statement,
    size_query,
    stamp,
)
from tests.integration.postgres_fixtures import postgres_server
from tests.support.chdb_engine import chdb_server
from tests.support.postgres import (
    SUPERUSER,
    PostgresServer,
    _as_server_user,
    _stop,
    start_postgres,
)
from tests.support.wait import wait_until

pytest.importorskip("chdb.session")

__all__ = ["postgres_server"]

RUN = stamp(datetime(2025, 3, 1, 2, 0, tzinfo=UTC))
CH_TABLES = {
    "sales.orders": "(id UInt64, customer String, amount Decimal(12, 2), at DateTime)"
    " ENGINE = MergeTree ORDER BY id",
    "sales.refunds": "(order_id UInt64, note Nullable(String))"
    " ENGINE = MergeTree ORDER BY order_id",
    "web.hits": "(day Date, path LowCardinality(String), hits UInt32)"
    " ENGINE = SummingMergeTree ORDER BY (day, path)",
}
CH_FILL = {
    "sales.orders": "SELECT number, concat('c-', toString(number % 97)),"
    " toDecimal64(number / 7, 2), toDateTime('2025-01-01 00:00:00') + number FROM numbers(5000)",
    "sales.refunds": "SELECT number * 3, if(number % 2 = 0, NULL, 'late') FROM numbers(400)",
    "web.hits": "SELECT toDate('2025-01-01') + number % 30, concat('/p/', toString(number % 13)),"
    " number % 5 FROM numbers(3000)",
}


def rows(session: Any, table: str) -> str:
    order = {"sales.orders": "id", "sales.refunds": "order_id", "web.hits": "day, path"}[table]
    return str(session.query(f"SELECT * FROM {table} ORDER BY {order}", "TSV"))


def fill(session: Any) -> dict[str, str]:
    """The CH_TABLES made and filled in `session`; their rows, as `rows` reads them."""
    for database in ("sales", "web"):
        session.query(f"CREATE DATABASE {database}")
    for table, columns in CH_TABLES.items():
        session.query(f"CREATE TABLE {table} {columns}")
        session.query(f"INSERT INTO {table} {CH_FILL[table]}")
    return {table: rows(session, table) for table in CH_TABLES}


def test_clickhouse_backup_restores_into_a_fresh_server_row_for_row(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    config = tmp_path / "config.xml"
    config.write_text(
        f"<clickhouse><backups><allowed_path>{backups}/</allowed_path></backups></clickhouse>"
    )
    where = str(backups / location(platform_prefix("", "clicks"), RUN, Component.CLICKHOUSE))
    with chdb_server(tmp_path / "source", config) as source:
        before = fill(source)
        source.query(backup_statement(FileDestination()), params={"location": where})
        size = int(str(source.query(size_query(), "TSV", params={"location": where})).strip())
    assert size > 0
    assert (Path(where) / ".backup").is_file()

    with chdb_server(tmp_path / "restored", config) as restored:
        assert "sales" not in str(restored.query("SHOW DATABASES", "TSV")).split()
        restored.query(restore_statement(FileDestination()), params={"location": where})
        after = {table: rows(restored, table) for table in CH_TABLES}
    assert after == before
    assert after["sales.orders"].count("\n") == 5000


# -- PostgreSQL -------------------------------------------------------------------------------

PG_TABLES = {
    "accounts": "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, meta jsonb)",
    "events": "CREATE TABLE events (id bigserial PRIMARY KEY, account int REFERENCES"
    " accounts(id), at timestamptz NOT NULL, payload bytea)",
}


def pg_rows(server: PostgresServer, db: str, table: str) -> list[tuple[Any, ...]]:
    with server.admin(db) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


@contextlib.contextmanager
def server_on(
    data: Path, base: Path, original: PostgresServer, prefix: list[str]
) -> Iterator[PostgresServer]:
    """PostgreSQL started on an existing data directory (the restored backup)."""
    log_path = base / "restored.log"
    process, port = start_postgres(original.bin_dir, data, base, log_path, prefix)
    server = PostgresServer("127.0.0.1", port, original.password, original.bin_dir, base)

    def accepts() -> bool:
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-4000:])
        with server.admin() as conn:
            conn.execute("SELECT 1")
        return True

    try:
        wait_until(accepts, timeout=60, what="the restored server", ignore=(Exception,))
        yield server
    finally:
        _stop(process)


def backup_and_restore(
    server: PostgresServer, base: Path, prefix: list[str]
) -> dict[str, list[tuple[Any, ...]]]:
    """Back `server` up as the Job does, write a row after, restore, read the tables back."""
    backup_dir = base / location(platform_prefix("", "clicks"), RUN, Component.POSTGRES)
    args = basebackup_args(
        host=server.host, port=server.port, user=SUPERUSER, directory=str(backup_dir)
    )
    subprocess.run([*prefix, *args], check=True, capture_output=True, env=server.client_env())
    # Written after the backup: must not be in the restored server.
    with server.admin("shop") as conn:
        conn.execute("INSERT INTO accounts VALUES (9999, 'too late', NULL)")
    # (pg_verifybackup checks tar-format backups only from PostgreSQL 18 on.)
    assert sorted(p.name for p in backup_dir.iterdir()) == [
        "backup_manifest",
        "base.tar.gz",
        "pg_wal.tar.gz",
    ]
    data = base / "restored"
    subprocess.run(
        [*prefix, "sh", "-c", restore_script(str(backup_dir), str(data))],
        check=True,
        capture_output=True,
    )
    with server_on(data, base, server, prefix) as restored:
        with restored.admin() as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        return {table: pg_rows(restored, "shop", table) for table in PG_TABLES}


def test_postgres_base_backup_starts_as_a_second_server_row_for_row(
    postgres_server: PostgresServer,
) -> None:
    server = postgres_server
    with server.admin() as conn:
        conn.execute("DROP DATABASE IF EXISTS shop")
        conn.execute("CREATE DATABASE shop")
    with server.admin("shop") as conn:
        for ddl in PG_TABLES.values():
            conn.execute(ddl)
        conn.execute(
            "INSERT INTO accounts SELECT g, 'acct ' || g, jsonb_build_object('tier', g % 3)"
            " FROM generate_series(1, 500) g"
        )
        conn.execute(
            "INSERT INTO events (account, at, payload) SELECT 1 + g % 500,"
            " '2025-01-01'::timestamptz + g * interval '1 minute', decode(md5(g::text), 'hex')"
            " FROM generate_series(1, 20000) g"
        )
    before = {table: pg_rows(server, "shop", table) for table in PG_TABLES}

    prefix, uid, gid = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="duet-pg-backup-"))
    try:
        if uid is not None and gid is not None:
            os.chown(base, uid, gid)
        after = backup_and_restore(server, base, prefix)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert after == before
    assert len(after["events"]) == 20000
