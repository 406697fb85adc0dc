"""The chDB engine on a real data directory: introspection, limits, read-only proofs, and
`guarded.run` end to end.

An admin chDB connection (no readonly) prepares the data and stays open to check it: chDB lets
connections to one data directory coexist, each with its own settings. The
proofs run statements straight through `engine.execute`, past the SQL firewall.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from duet_agents.query import guarded
from duet_agents.query.catalog import Catalog, Column, Table
from duet_agents.query.engines import (
    ConnectionFailedError,
    Engine,
    Limits,
    QueryDeniedError,
    QueryError,
    QueryTimeoutError,
    connect,
)
from duet_agents.query.engines.clickhouse import limit_settings
from duet_agents.query.firewall import Category

LIMITS = Limits(max_rows=10, timeout_seconds=2)

SCHEMA = [
    "CREATE DATABASE shop COMMENT 'The web shop'",
    """CREATE TABLE shop.customers (
        id UInt64 COMMENT 'Customer number',
        name String,
        country LowCardinality(String) DEFAULT 'NL'
    ) ENGINE = MergeTree ORDER BY id COMMENT 'People who have bought something'""",
    """CREATE TABLE shop.orders (
        id UInt64,
        customer_id UInt64,
        total Decimal(10, 2),
        created_at DateTime
    ) ENGINE = MergeTree PRIMARY KEY customer_id ORDER BY (customer_id, created_at, id)
    COMMENT 'One row per checkout'""",
    """CREATE TABLE shop.users (id UInt64, email Nullable(String))
    ENGINE = ReplacingMergeTree ORDER BY id""",
    """CREATE TABLE shop.sessions (session_id String, started DateTime)
    ENGINE = MergeTree ORDER BY session_id""",
    """CREATE TABLE shop.events (
        user_id UInt64,
        session_id String,
        ts DateTime,
        kind LowCardinality(String)
    ) ENGINE = MergeTree ORDER BY (toStartOfHour(ts), user_id)""",
    "CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE total > 50",
    "INSERT INTO shop.customers (id, name) SELECT number, concat('customer ', toString(number))"
    " FROM numbers(3)",
    "INSERT INTO shop.orders SELECT number, number % 3, number * 1.25,"
    " toDateTime('2024-01-01 00:00:00') + number * 3600 FROM numbers(50)",
    "INSERT INTO shop.users SELECT number, NULL FROM numbers(5)",
    "INSERT INTO shop.sessions SELECT toString(number), now() FROM numbers(4)",
    "INSERT INTO shop.events SELECT number % 5, toString(number % 4), now(), 'view'"
    " FROM numbers(200)",
]
TABLES = ["customers", "orders", "users", "sessions", "events"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture(scope="module")
def admin(data_dir: Path) -> Iterator[Client]:
    """A read-write connection that prepares the data and checks it afterwards."""
    client = clickhouse_connect.get_client(interface="chdb", path=str(data_dir))
    try:
        for statement in SCHEMA:
            client.command(statement)
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def engine(admin: Client, data_dir: Path) -> Iterator[Engine]:
    with connect(f"chdb://{data_dir}?database=shop", limits=LIMITS) as e:
        yield e


def fingerprint(admin: Client) -> dict[str, object]:
    """The databases, the tables, and a hash of every table's rows, as the admin sees them."""
    queries = {
        "databases": "SELECT name FROM system.databases ORDER BY name",
        "tables": "SELECT database, name, engine FROM system.tables ORDER BY 1, 2",
        **{t: f"SELECT count(), groupBitXor(cityHash64(*)) FROM shop.{t}" for t in TABLES},
    }
    return {name: admin.query(sql).result_rows for name, sql in queries.items()}


@pytest.fixture
def unchanged(admin: Client, tmp_path: Path) -> Iterator[Path]:
    """Yields an empty directory; afterwards the data is as it was and the directory empty."""
    before = fingerprint(admin)
    yield tmp_path
    assert fingerprint(admin) == before
    assert list(tmp_path.iterdir()) == []


def table_of(catalog: Catalog, schema: str, name: str) -> Table:
    found = catalog.table(schema, name)
    assert found is not None, f"{schema}.{name} is not in the catalog"
    return found


def column_of(table: Table, name: str) -> Column:
    found = table.column(name)
    assert found is not None, f"{table.name}.{name} is not in the catalog"
    return found


# -- introspection ------------------------------------------------------------------------------


def test_introspection(engine: Engine) -> None:
    catalog = engine.introspect()

    assert catalog.dialect == "clickhouse"
    assert catalog.database == "shop"
    assert {s.name for s in catalog.schemas} == {"default", "shop"}
    shop = next(s for s in catalog.schemas if s.name == "shop")
    assert shop.comment == "The web shop"
    assert [t.name for t in shop.tables] == sorted([*TABLES, "big_orders"])
    customers = table_of(catalog, "shop", "customers")
    orders = table_of(catalog, "shop", "orders")
    events = table_of(catalog, "shop", "events")
    view = table_of(catalog, "shop", "big_orders")
    assert (customers.kind, customers.comment, customers.row_count) == (
        "MergeTree",
        "People who have bought something",
        3,
    )
    assert (customers.primary_key, customers.sorting_key) == (["id"], ["id"])
    assert (orders.primary_key, orders.sorting_key) == (
        ["customer_id"],
        ["customer_id", "created_at", "id"],
    )
    assert events.sorting_key == ["toStartOfHour(ts)", "user_id"]
    assert (view.kind, view.row_count) == ("View", None)
    id_column = column_of(customers, "id")
    country = column_of(customers, "country")
    assert (id_column.type, id_column.comment, id_column.nullable) == (
        "UInt64",
        "Customer number",
        False,
    )
    assert (country.type, country.default) == ("LowCardinality(String)", "'NL'")
    users = table_of(catalog, "shop", "users")
    email = column_of(users, "email")
    assert email.nullable


def test_joins_are_inferred(engine: Engine) -> None:
    joins = engine.introspect().joins

    assert all(j.inferred for j in joins)
    assert sorted(
        (j.from_table, j.from_columns[0], j.to_table, j.to_columns[0]) for j in joins
    ) == [
        ("big_orders", "customer_id", "customers", "id"),
        ("events", "session_id", "sessions", "session_id"),
        ("events", "user_id", "users", "id"),
        ("orders", "customer_id", "customers", "id"),
    ]
    reasons = {j.from_table + "." + j.from_columns[0]: j.reason for j in joins}
    assert reasons["orders.customer_id"] == (
        "orders.customer_id names table customers and matches its primary key id (integer)"
    )


def test_introspection_is_not_cut_by_the_result_limits(engine: Engine, data_dir: Path) -> None:
    with connect(f"chdb://{data_dir}", limits=Limits(max_rows=1, max_result_bytes=1)) as tiny:
        assert tiny.introspect().schemas == engine.introspect().schemas


# -- execution ----------------------------------------------------------------------------------


def test_select_returns_typed_rows_cut_at_max_rows(engine: Engine) -> None:
    result = engine.execute("SELECT id, total, created_at FROM orders ORDER BY id")

    assert [(c.name, c.type) for c in result.columns] == [
        ("id", "UInt64"),
        ("total", "Decimal(10, 2)"),
        ("created_at", "DateTime"),
    ]
    assert len(result.rows) == LIMITS.max_rows
    assert result.truncated
    assert result.rows[2] == (2, Decimal("2.50"), datetime.datetime(2024, 1, 1, 2, 0))


def test_a_small_result_is_whole(engine: Engine) -> None:
    result = engine.execute("SELECT name FROM customers ORDER BY id")
    assert result.rows == [("customer 0",), ("customer 1",), ("customer 2",)]
    assert not result.truncated


def test_max_result_rows_stops_the_server_not_only_the_client(engine: Engine) -> None:
    """result_overflow_mode='break' ends a huge result at the server: this returns at once
    instead of producing a billion rows."""
    result = engine.execute("SELECT number FROM system.numbers")
    assert len(result.rows) == LIMITS.max_rows
    assert result.truncated


def test_max_execution_time_stops_a_slow_query(engine: Engine) -> None:
    with pytest.raises(QueryTimeoutError, match="TIMEOUT_EXCEEDED"):
        engine.execute("SELECT count() FROM numbers(1000000000000)")
    assert engine.execute("SELECT 1").rows == [(1,)]


def test_another_data_directory_cannot_open_alongside(engine: Engine) -> None:
    with pytest.raises(ConnectionFailedError, match="different path"):
        connect("chdb://", limits=LIMITS)


# -- defense in depth: the firewall bypassed, the data unchanged -------------------------------

DENIED = [
    "INSERT INTO orders VALUES (999, 1, 1.00, now())",
    "INSERT INTO orders SELECT * FROM orders",
    "SELECT * FROM orders SETTINGS readonly = 0",
    "SELECT count() FROM numbers(1e12) SETTINGS max_execution_time = 0",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "SELECT id FROM orders INTO OUTFILE '{out}/orders.csv'",
    "SELECT 1 INTO OUTFILE '{out}/one.csv' TRUNCATE",
    "INSERT INTO FUNCTION file('{out}/rows.csv', 'CSV') SELECT 1",
]
REFUSED = [
    "CREATE TABLE stolen (a UInt8) ENGINE = Memory",
    "CREATE DATABASE stolen",
    "DROP TABLE orders",
    "DROP DATABASE shop",
    "ALTER TABLE orders DELETE WHERE 1",
    "ALTER TABLE orders UPDATE total = 0 WHERE 1",
    "ALTER TABLE orders ADD COLUMN note String",
    "TRUNCATE TABLE events",
    "RENAME TABLE orders TO orders_old",
    "OPTIMIZE TABLE orders FINAL",
    "SET readonly = 0",
    "SELECT 1; DROP TABLE orders",
]
# A backup counts as a read for readonly=1; chDB refuses it for want of a configured
# backups.allowed_path, and the engine's streaming API refuses it as not a query.
REFUSED_ELSEWHERE = ["BACKUP TABLE shop.orders TO File('{out}/backup')"]


@pytest.mark.parametrize("sql", DENIED)
def test_reads_that_write_or_loosen_are_denied(engine: Engine, unchanged: Path, sql: str) -> None:
    with pytest.raises(QueryDeniedError):
        engine.execute(sql.format(out=unchanged))


@pytest.mark.parametrize("sql", REFUSED + REFUSED_ELSEWHERE)
def test_statements_that_change_anything_are_refused(
    engine: Engine, unchanged: Path, sql: str
) -> None:
    with pytest.raises(QueryError):
        engine.execute(sql.format(out=unchanged))


@pytest.mark.parametrize("sql", REFUSED)
def test_the_engines_settings_refuse_them_on_any_api(
    admin: Client, data_dir: Path, unchanged: Path, sql: str
) -> None:
    """chDB's streaming API happens to take only queries; the read-only settings the engine
    opens its connection with refuse the rest on the API that does run them."""
    client = clickhouse_connect.get_client(
        interface="chdb", path=str(data_dir), database="shop", chdb_options=limit_settings(LIMITS)
    )
    try:
        with pytest.raises(Exception, match=r"READONLY|SYNTAX_ERROR|Multi-statements"):
            client.command(sql.format(out=unchanged))
    finally:
        client.close()


def test_into_outfile_inside_a_literal_is_only_text(engine: Engine) -> None:
    text = "a\nINTO OUTFILE x"  # a real line break, then the words
    assert engine.execute(f"SELECT '{text}' AS s").rows == [(text,)]


def test_the_session_is_still_read_only_afterwards(engine: Engine) -> None:
    result = engine.execute(
        "SELECT getSetting('readonly'), getSetting('max_execution_time'),"
        " getSetting('max_result_rows'), getSetting('result_overflow_mode')"
    )
    assert result.rows == [(1, 2.0, LIMITS.max_rows + 1, "break")]


# -- the firewall and the engine together -------------------------------------------------------


def test_guarded_run_adds_the_row_cap(engine: Engine) -> None:
    result = guarded.run(engine, "SELECT id FROM orders ORDER BY id", max_rows=5)

    assert result.rows == [(0,), (1,), (2,), (3,), (4,)]
    assert result.truncated
    # One row more than returned is asked of the database, to know there is more.
    assert result.sql.endswith("LIMIT 6")


def test_guarded_run_keeps_a_lower_limit(engine: Engine) -> None:
    result = guarded.run(engine, "SELECT id FROM orders ORDER BY id LIMIT 2", max_rows=5)
    assert result.rows == [(0,), (1,)]
    assert not result.truncated


def test_guarded_run_refuses_with_the_reason(engine: Engine, unchanged: Path) -> None:
    with pytest.raises(guarded.QueryRefusedError) as refused:
        guarded.run(engine, "ALTER TABLE orders DELETE WHERE 1", max_rows=5)
    assert refused.value.category is Category.NOT_A_QUERY
    assert refused.value.reason.startswith("not a query")


def test_guarded_run_refuses_a_table_function(engine: Engine) -> None:
    with pytest.raises(guarded.QueryRefusedError, match="table function not allowed: url"):
        guarded.run(engine, "SELECT * FROM url('http://127.0.0.1:9/', 'CSV')", max_rows=5)
