"""The replay of a healthy host's schema on a new one, and the comparison behind SchemaInSync:
statement rewriting, macros, order, and what is left out. No server: chDB runs them in
tests/integration/test_schema_sync.py."""

from __future__ import annotations

import pytest

from duet_agents.clickhouse import ddl
from duet_agents.clickhouse.schema import (
    DatabaseInfo,
    HostSchema,
    TableInfo,
    TableRef,
    compare,
    dependency_order,
    replay_plan,
    selected_tables,
)

UUID_A = "5c1c8165-56bb-4a75-821f-9a83b2ea98f7"
UUID_B = "0b71bd7d-818e-40c0-8138-b2d9ea228e26"
HOST = {"shard": "1", "replica": "web-clickhouse-1-0", "cluster": "default"}
OTHER_HOST = {"shard": "1", "replica": "web-clickhouse-1-1", "cluster": "default"}


def table(database: str, name: str, engine: str, query: str, **extra: object) -> TableInfo:
    return TableInfo.model_validate(
        {"database": database, "name": name, "engine": engine, "create_table_query": query} | extra
    )


def ref(text: str) -> TableRef:
    database, name = text.split(".")
    return TableRef(database=database, name=name)


def atomic(name: str) -> DatabaseInfo:
    return DatabaseInfo(name=name, engine="Atomic", engine_full="Atomic")


# -- statements --------------------------------------------------------------------------


def test_a_statement_becomes_idempotent_with_its_uuids_and_without_on_cluster() -> None:
    query = (
        "CREATE MATERIALIZED VIEW sales.`hourly-2` ON CLUSTER default (`id` UInt64) "
        "ENGINE = MergeTree ORDER BY id AS SELECT id FROM sales.events"
    )
    assert ddl.replayable(query, uuid=UUID_A, inner_uuid=UUID_B) == (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS sales.`hourly-2` UUID '{UUID_A}' "
        f"TO INNER UUID '{UUID_B}' (`id` UInt64) "
        "ENGINE = MergeTree ORDER BY id AS SELECT id FROM sales.events"
    )


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("CREATE TABLE a.b (x UInt8) ENGINE = Memory", "TABLE"),
        ("CREATE VIEW a.b (x UInt8) AS SELECT 1 AS x", "VIEW"),
        ("CREATE DICTIONARY a.b (k UInt64) PRIMARY KEY k SOURCE(NULL()) LIFETIME(0)", "DICTIONARY"),
        ("CREATE TABLE IF NOT EXISTS a.b UUID 'x' (x UInt8) ENGINE = Memory", "TABLE"),
    ],
)
def test_every_kind_of_object_gets_the_same_header(query: str, kind: str) -> None:
    assert ddl.kind_of(query) == kind
    rewritten = ddl.replayable(query)
    assert rewritten.startswith(f"CREATE {kind} IF NOT EXISTS a.b ")
    assert ddl.replayable(rewritten) == rewritten, "rewriting twice changes nothing"


def test_a_statement_of_unknown_shape_is_refused_without_quoting_it() -> None:
    with pytest.raises(ddl.DDLError) as raised:
        ddl.replayable("ALTER TABLE a.b ADD COLUMN password String DEFAULT 'hunter2'")
    assert "hunter2" not in str(raised.value)


def test_a_database_keeps_its_engine_and_a_name_is_quoted() -> None:
    assert ddl.create_database("my-db", "Atomic") == (
        "CREATE DATABASE IF NOT EXISTS `my-db` ENGINE = Atomic"
    )
    assert ddl.create_database("default", "") == "CREATE DATABASE IF NOT EXISTS `default`"


# -- macros ------------------------------------------------------------------------------


def test_expanded_shard_and_replica_go_back_to_macros_in_a_replicated_engine() -> None:
    query = (
        "CREATE TABLE sales.events (`id` UInt64) ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/1/sales/events', 'web-clickhouse-1-0', ver) ORDER BY id "
        "SETTINGS storage_policy = '1'"
    )
    assert ddl.unexpand_table_macros(query, HOST) == (
        "CREATE TABLE sales.events (`id` UInt64) ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/sales/events', '{replica}', ver) ORDER BY id "
        "SETTINGS storage_policy = '1'"
    ), "only the engine's path and replica name change; a '1' elsewhere stays"


def test_unexpanded_macros_and_other_engines_are_left_alone() -> None:
    kept = (
        "CREATE TABLE sales.events (`id` UInt64) ENGINE = ReplicatedMergeTree("
        "'/clickhouse/tables/{uuid}/{shard}', '{replica}') ORDER BY id"
    )
    assert ddl.unexpand_table_macros(kept, HOST) == kept
    plain = "CREATE TABLE sales.t (`x` String DEFAULT '1') ENGINE = MergeTree ORDER BY x"
    assert ddl.unexpand_table_macros(plain, HOST) == plain
    # A path segment that merely contains the shard's value is not the shard.
    partial = "CREATE TABLE a.t (`x` UInt8) ENGINE = ReplicatedMergeTree('/t/10/x', 'r') ORDER BY x"
    assert ddl.unexpand_table_macros(partial, HOST) == partial


def test_a_replicated_databases_shard_and_replica_go_back_to_macros() -> None:
    engine = "Replicated('/clickhouse/databases/sales', '1', 'web-clickhouse-1-0')"
    assert ddl.unexpand_database_macros(engine, HOST) == (
        "Replicated('/clickhouse/databases/sales', '{shard}', '{replica}')"
    )
    assert ddl.unexpand_database_macros("Atomic", HOST) == "Atomic"


# -- the plan ----------------------------------------------------------------------------


def source_schema() -> HostSchema:
    """A host as system.databases and system.tables describe it (shapes as ClickHouse 26
    prints them)."""
    return HostSchema(
        macros=HOST,
        databases=[
            atomic("sales"),
            atomic("shop"),
            DatabaseInfo(
                name="events",
                engine="Replicated",
                engine_full="Replicated('/clickhouse/databases/events', '1', 'web-clickhouse-1-0')",
            ),
            DatabaseInfo(name="system", engine="Memory"),
        ],
        tables=[
            table("system", "one", "SystemOne", "CREATE TABLE system.one (`dummy` UInt8)"),
            table(
                "sales", "all", "Distributed",
                "CREATE TABLE sales.all (`id` UInt64) "
                "ENGINE = Distributed('default', 'sales', 'raw')",
            ),
            table(
                "sales", "by_hour", "View",
                "CREATE VIEW sales.by_hour (`id` UInt64) AS SELECT id FROM sales.hourly",
                as_select="SELECT id FROM sales.hourly",
            ),
            table(
                "sales", "hourly", "MaterializedView",
                "CREATE MATERIALIZED VIEW sales.hourly (`id` UInt64) ENGINE = MergeTree "
                "ORDER BY id AS SELECT id FROM sales.raw",
                uuid=UUID_A, as_select="SELECT id FROM sales.raw",
            ),
            table(
                "sales", f".inner_id.{UUID_A}", "MergeTree",
                f"CREATE TABLE sales.`.inner_id.{UUID_A}` (`id` UInt64) "
                "ENGINE = MergeTree ORDER BY id",
                uuid=UUID_B,
            ),
            table(
                "sales", "raw", "ReplicatedMergeTree",
                "CREATE TABLE sales.raw (`id` UInt64) ENGINE = ReplicatedMergeTree("
                "'/clickhouse/tables/1/raw', 'web-clickhouse-1-0') ORDER BY id",
                dependents=[{"database": "sales", "name": "hourly"}],
            ),
            table(
                "sales", "a_totals", "MaterializedView",
                "CREATE MATERIALIZED VIEW sales.a_totals TO shop.totals (`id` UInt64) "
                "AS SELECT id FROM sales.raw",
                target={"database": "shop", "name": "totals"},
            ),
            table(
                "shop", "totals", "SummingMergeTree",
                "CREATE TABLE shop.totals (`id` UInt64) ENGINE = SummingMergeTree ORDER BY id",
            ),
            table(
                "shop", "names", "Dictionary",
                "CREATE DICTIONARY shop.names (`k` UInt64) PRIMARY KEY k "
                "SOURCE(CLICKHOUSE(TABLE 'zz_src' DB 'shop')) LIFETIME(MIN 0 MAX 0) LAYOUT(FLAT())",
                loading_dependencies=[{"database": "shop", "name": "zz_src"}],
            ),
            table(
                "shop", "zz_src", "MergeTree",
                "CREATE TABLE shop.zz_src (`k` UInt64) ENGINE = MergeTree ORDER BY k",
            ),
            table(
                "events", "clicks", "ReplicatedMergeTree",
                "CREATE TABLE events.clicks (`id` UInt64) ENGINE = ReplicatedMergeTree ORDER BY id",
            ),
        ],
    )  # fmt: skip


def test_the_plan_creates_databases_then_tables_after_what_they_read() -> None:
    plan = replay_plan(source_schema())
    objects = [s.object for s in plan.statements]
    assert objects == [
        "events", "sales", "shop",
        "sales.raw", "shop.totals", "shop.zz_src",
        "shop.names",
        "sales.a_totals", "sales.hourly",
        "sales.all",
        "sales.by_hour",
    ]  # fmt: skip
    sql = {s.object: s.sql for s in plan.statements}
    assert sql["events"] == (
        "CREATE DATABASE IF NOT EXISTS `events` ENGINE = "
        "Replicated('/clickhouse/databases/events', '{shard}', '{replica}')"
    )
    assert sql["sales.raw"] == (
        "CREATE TABLE IF NOT EXISTS sales.raw (`id` UInt64) ENGINE = ReplicatedMergeTree("
        "'/clickhouse/tables/{shard}/raw', '{replica}') ORDER BY id"
    )
    assert sql["sales.hourly"].startswith(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS sales.hourly UUID '{UUID_A}' "
        f"TO INNER UUID '{UUID_B}' (`id` UInt64)"
    ), "the inner table comes with its view, under the same name as on the healthy host"
    assert all("ON CLUSTER" not in s.sql for s in plan.statements)
    assert any("events is Replicated" in note for note in plan.notes)


def test_a_view_on_a_view_comes_after_it_whatever_their_names() -> None:
    views = [
        table("a", "first", "View", "CREATE VIEW a.first", as_select="SELECT x FROM a.second"),
        table("a", "second", "View", "CREATE VIEW a.second", as_select="SELECT x FROM third"),
        table("a", "third", "MergeTree", "CREATE TABLE a.third (x UInt8) ENGINE = Memory"),
    ]
    assert [t.name for t in dependency_order(views)] == ["third", "second", "first"]


def test_a_dependency_cycle_is_reported() -> None:
    views = [
        table("a", "x", "View", "CREATE VIEW a.x AS SELECT 1", as_select="SELECT 1 FROM a.y"),
        table("a", "y", "View", "CREATE VIEW a.y AS SELECT 1", as_select="SELECT 1 FROM a.x"),
    ]
    with pytest.raises(ddl.DDLError, match="cycle"):
        dependency_order(views)


def test_tables_a_select_names_include_joins_and_subqueries() -> None:
    select = (
        "SELECT e.id FROM events AS e JOIN shop.users AS u ON e.id = u.id "
        "WHERE e.id IN (SELECT id FROM sales.refunds)"
    )
    assert {str(t) for t in selected_tables(select, "sales")} == {
        "sales.events", "shop.users", "sales.refunds",
    }  # fmt: skip
    assert selected_tables("this is not SQL (((", "sales") == []


def test_a_definition_whose_secrets_were_hidden_is_not_replayed() -> None:
    schema = HostSchema(
        databases=[atomic("shop")],
        tables=[
            table(
                "shop", "remote", "Dictionary",
                "CREATE DICTIONARY shop.remote (`k` UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE("
                "HOST 'h' USER 'u' PASSWORD '[HIDDEN]' TABLE 't')) LIFETIME(0) LAYOUT(FLAT())",
            ),
        ],
    )  # fmt: skip
    plan = replay_plan(schema)
    assert [s.object for s in plan.statements] == ["shop"]
    assert plan.unreplayable == [ref("shop.remote")]
    assert "format_display_secrets_in_show_and_select" in plan.notes[0]


# -- comparison --------------------------------------------------------------------------


def test_a_new_host_with_nothing_lacks_everything_but_inner_tables() -> None:
    diff = compare(source_schema(), HostSchema(macros=OTHER_HOST))
    assert not diff.in_sync
    assert diff.missing_databases == ["events", "sales", "shop"]
    assert [str(t) for t in diff.missing_tables] == [
        "events.clicks", "sales.a_totals", "sales.all", "sales.by_hour", "sales.hourly",
        "sales.raw", "shop.names", "shop.totals", "shop.zz_src",
    ]  # fmt: skip
    assert diff.message(limit=2) == (
        "lacks databases events, sales and 1 more; lacks tables events.clicks, sales.a_totals "
        "and 7 more"
    )


def test_replicas_compare_equal_with_their_own_macros_expanded_or_not() -> None:
    source = source_schema()
    expanded_here = [
        t.model_copy(
            update={
                "create_table_query": t.create_table_query.replace(
                    "web-clickhouse-1-0", "web-clickhouse-1-1"
                )
            }
        )
        for t in source.tables
    ]
    replica = HostSchema(macros=OTHER_HOST, databases=source.databases, tables=expanded_here)
    assert compare(source, replica).in_sync
    assert compare(source, replica).message() == "every database and table is in step"


def test_another_definition_is_reported() -> None:
    source = source_schema()
    changed = [
        t.model_copy(update={"create_table_query": t.create_table_query.replace("FLAT", "HASHED")})
        for t in source.tables
    ]
    diff = compare(source, HostSchema(macros=HOST, databases=source.databases, tables=changed))
    assert diff.different_tables == [ref("shop.names")]
    assert diff.missing_tables == []
    assert diff.message() == "has other definitions of shop.names"
