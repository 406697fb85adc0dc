"""A new host's schema replayed from a healthy one, on the real ClickHouse engine (chDB).

A schema with several databases, MergeTree and ReplacingMergeTree tables, materialized
views with and without TO, views on views, a dictionary and a Merge table is made in one
chDB directory and read from it; the replay goes into a fresh directory, which must then
report the same definitions, work (the views fire, the dictionary answers), and stay as it
is when the replay runs again. chDB holds one data directory per process, so the source is
read and closed before the target opens. Replicated engines need Keeper, which chDB lacks:
their macros are covered in tests/unit/test_clickhouse_schema.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from duet_agents.clickhouse.schema import HostSchema, TableRef, compare, replay_plan
from duet_agents.clickhouse.sync import SchemaSyncError, apply_plan, read_host, sync_host

SCHEMA = [
    "CREATE DATABASE sales",
    "CREATE DATABASE shop ENGINE = Atomic",
    """CREATE TABLE sales.events (id UInt64, ts DateTime, amount Float64)
       ENGINE = MergeTree ORDER BY (id, ts)""",
    """CREATE TABLE sales.customers (id UInt64, name String, version UInt32)
       ENGINE = ReplacingMergeTree(version) ORDER BY id""",
    """CREATE TABLE sales.totals (id UInt64, amount Float64)
       ENGINE = SummingMergeTree ORDER BY id""",
    # Named so that name order would put each before what it reads.
    """CREATE MATERIALIZED VIEW sales.a_to_totals TO sales.totals
       AS SELECT id, amount FROM sales.events""",
    """CREATE MATERIALIZED VIEW sales.b_counts ENGINE = SummingMergeTree ORDER BY id
       AS SELECT id, count() AS n FROM sales.events GROUP BY id""",
    "CREATE VIEW sales.z_counted AS SELECT id, n FROM sales.b_counts",
    "CREATE VIEW sales.a_top AS SELECT id FROM sales.z_counted WHERE n > 1",
    "CREATE TABLE shop.source (k UInt64, label String) ENGINE = MergeTree ORDER BY k",
    """CREATE DICTIONARY shop.labels (k UInt64, label String) PRIMARY KEY k
       SOURCE(CLICKHOUSE(TABLE 'source' DB 'shop')) LIFETIME(0) LAYOUT(HASHED())""",
    "CREATE TABLE sales.all_events AS sales.events ENGINE = Merge('sales', '^events$')",
    "INSERT INTO sales.events VALUES (1, now(), 2.5), (1, now(), 1.5), (2, now(), 4)",
    "INSERT INTO shop.source VALUES (1, 'one'), (2, 'two')",
]


def user_tables(client: Client) -> dict[str, str]:
    rows = client.query(
        "SELECT database, name, create_table_query FROM system.tables"
        " WHERE database IN ('sales', 'shop')"
    ).result_rows
    return {f"{db}.{name}": query for db, name, query in rows}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[HostSchema, dict[str, str]]:
    """The healthy host's schema as read_host reports it, and its definitions."""
    path = tmp_path_factory.mktemp("schema-source") / "data"
    path.mkdir()
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    try:
        for statement in SCHEMA:
            client.command(statement)
        return asyncio.run(read_host(client)), user_tables(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
def target_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema-target") / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def target(source: tuple[HostSchema, dict[str, str]], target_path: Path) -> Iterator[Client]:
    """A new, empty host (opened only once the source is closed)."""
    client = clickhouse_connect.get_client(interface="chdb", path=str(target_path))
    yield client
    client.close()


def test_the_healthy_host_reports_what_orders_the_replay(
    source: tuple[HostSchema, dict[str, str]],
) -> None:
    schema, _ = source
    tables = {str(t.ref): t for t in schema.tables}
    assert {str(d) for d in tables["sales.events"].dependents} >= {
        "sales.a_to_totals", "sales.b_counts",
    }  # fmt: skip
    assert tables["shop.labels"].loading_dependencies == [TableRef(database="shop", name="source")]
    assert tables["sales.a_to_totals"].target == TableRef(database="sales", name="totals")
    assert tables["sales.a_top"].as_select
    assert any(t.is_inner for t in schema.tables), "the inner table of b_counts is reported"
    assert {d.name for d in schema.databases} >= {"sales", "shop"}


def test_a_new_host_gets_the_same_tables_and_they_work(
    source: tuple[HostSchema, dict[str, str]], target: Client
) -> None:
    schema, definitions = source
    report = asyncio.run(sync_host(schema, target))

    assert report.diff.in_sync, report.diff.message()
    # Same definitions, names of inner tables included: the UUIDs came along.
    assert user_tables(target) == definitions
    plan_objects = [s.object for s in report.plan.statements]
    assert not any(".inner" in o for o in plan_objects), "inner tables come with their views"
    assert plan_objects.index("sales.z_counted") < plan_objects.index("sales.a_top")

    target.command("INSERT INTO sales.events VALUES (3, now(), 1), (3, now(), 2)")
    totals = target.query("SELECT sum(amount) FROM sales.totals WHERE id = 3").result_rows
    assert totals == [(3.0,)], "the materialized view with TO fires on the new host"
    assert target.query("SELECT id FROM sales.a_top").result_rows == [(3,)]
    target.command("INSERT INTO shop.source VALUES (7, 'seven')")
    target.command("SYSTEM RELOAD DICTIONARY shop.labels")
    label = target.query("SELECT dictGet('shop.labels', 'label', toUInt64(7))").result_rows
    assert label == [("seven",)]


def test_a_second_replay_changes_nothing(
    source: tuple[HostSchema, dict[str, str]], target: Client
) -> None:
    schema, _ = source
    asyncio.run(sync_host(schema, target))
    before = user_tables(target)
    rows = target.query("SELECT count() FROM sales.events").result_rows

    report = asyncio.run(sync_host(schema, target))

    assert report.diff.in_sync
    assert user_tables(target) == before
    assert target.query("SELECT count() FROM sales.events").result_rows == rows


def test_a_host_missing_a_view_or_holding_another_definition_is_not_in_step(
    source: tuple[HostSchema, dict[str, str]], target: Client
) -> None:
    schema, _ = source
    asyncio.run(sync_host(schema, target))
    target.command("DROP VIEW sales.a_top")
    target.command("ALTER TABLE sales.customers ADD COLUMN email String")

    diff = compare(schema, asyncio.run(read_host(target)))
    assert diff.missing_tables == [TableRef(database="sales", name="a_top")]
    assert diff.different_tables == [TableRef(database="sales", name="customers")]

    # The replay restores what is missing; another definition it leaves for a person.
    report = asyncio.run(sync_host(schema, target))
    assert report.diff.missing_tables == []
    assert report.diff.different_tables == [TableRef(database="sales", name="customers")]
    target.command("ALTER TABLE sales.customers DROP COLUMN email")


def test_a_source_read_through_its_own_client_is_in_step_with_itself(
    source: tuple[HostSchema, dict[str, str]], target: Client, target_path: Path
) -> None:
    # chDB serves one directory per process, so both clients reach the same host here; it
    # exercises reading the source through a client, as the operator does.
    schema, _ = source
    asyncio.run(sync_host(schema, target))
    other = clickhouse_connect.get_client(interface="chdb", path=str(target_path))
    try:
        report = asyncio.run(sync_host(other, target))
    finally:
        other.close()
    assert report.diff.in_sync
    assert report.executed == len(report.plan.statements)


def test_a_failing_statement_names_the_object_not_the_statement(
    source: tuple[HostSchema, dict[str, str]], target: Client
) -> None:
    schema, _ = source
    plan = replay_plan(schema)
    broken = plan.model_copy(
        update={
            "statements": [
                s.model_copy(update={"sql": s.sql.replace("ENGINE = Atomic", "ENGINE = Nope")})
                if s.object == "shop"
                else s
                for s in plan.statements
            ]
        }
    )
    # SYNC: Atomic keeps a dropped table's directory (and UUID) for minutes otherwise.
    target.command("DROP DATABASE IF EXISTS shop SYNC")
    with pytest.raises(SchemaSyncError) as raised:
        asyncio.run(apply_plan(target, broken))
    assert raised.value.object_name == "shop"
    assert "CREATE DATABASE" not in str(raised.value)
    assert "Nope" in str(raised.value) or "UNKNOWN" in str(raised.value)
    asyncio.run(apply_plan(target, plan))
