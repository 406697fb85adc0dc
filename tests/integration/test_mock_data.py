"""`duet mock` against real databases: chDB (joins inferred from names) and a PostgreSQL server
(declared foreign keys the server enforces, so an inconsistent row would fail the insert).

A dry run must leave the database as it was; a write must produce rows whose keys join, and a
second write must add rows without colliding with the first.

chDB allows one data directory per process: this module uses one, and closes every client.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import psycopg
import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from duet_agents.query import mock
from duet_agents.query.engines import ConnectionFailedError, QueryDeniedError, connect
from duet_agents.query.mock_writer import (
    WriteNotRequestedError,
    fill,
    open_target,
)
from duet_operator.mock_command import mock as mock_command
from tests.integration.postgres_fixtures import postgres_server
from tests.support.postgres import PostgresServer

# The session's server fixture, imported so pytest finds it in this module.
__all__ = ["postgres_server"]

CHDB_SCHEMA = [
    "CREATE DATABASE shop",
    """CREATE TABLE shop.customers (
        id UInt64,
        first_name String,
        last_name String,
        email String,
        phone Nullable(String),
        country_code FixedString(2),
        city LowCardinality(String),
        created_at DateTime,
        updated_at Nullable(DateTime64(3))
    ) ENGINE = MergeTree ORDER BY id""",
    """CREATE TABLE shop.products (
        sku String,
        name String,
        category LowCardinality(String),
        price Decimal(10, 2),
        tags Array(String)
    ) ENGINE = MergeTree ORDER BY sku""",
    """CREATE TABLE shop.orders (
        id UInt64,
        customer_id UInt64,
        status Enum8('pending' = 1, 'paid' = 2, 'shipped' = 3),
        total Decimal(12, 2),
        currency LowCardinality(String),
        ip IPv4,
        uuid UUID,
        created_at DateTime,
        updated_at DateTime
    ) ENGINE = MergeTree PRIMARY KEY customer_id ORDER BY (customer_id, id)""",
    """CREATE TABLE shop.order_items (
        order_id UInt64,
        sku String,
        quantity UInt16,
        unit_price Decimal(10, 2),
        line_total Decimal(12, 2) MATERIALIZED quantity * unit_price
    ) ENGINE = MergeTree ORDER BY (order_id, sku)""",
    "CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE total > 100",
]
CHDB_TABLES = ["customers", "products", "orders", "order_items"]


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mock-chdb") / "data"


@pytest.fixture(scope="module")
def admin(chdb_dir: Path) -> Iterator[Client]:
    """A read-write connection that prepares the schema and checks the rows."""
    client = clickhouse_connect.get_client(interface="chdb", path=str(chdb_dir))
    try:
        for statement in CHDB_SCHEMA:
            client.command(statement)
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def chdb_url(admin: Client, chdb_dir: Path) -> str:
    return f"chdb://{chdb_dir}?database=shop"


def counts(admin: Client) -> dict[str, int]:
    return {t: int(scalar(admin, f"SELECT count() FROM shop.{t}")) for t in CHDB_TABLES}


def scalar(admin: Client, sql: str) -> Any:
    return admin.query(sql).result_rows[0][0]


@pytest.fixture
def cli() -> typer.Typer:
    """A `duet`-like app with only this command, as the lead registers it in cli.py."""
    app = typer.Typer()
    app.command("mock")(mock_command)

    @app.callback()
    def main() -> None:
        """Test app."""

    return app


# -- chDB -----------------------------------------------------------------------------------------


def test_chdb_dry_run_writes_nothing_and_says_what_it_would(chdb_url: str, admin: Client) -> None:
    report = fill(chdb_url, rows=40, seed=1)
    assert not report.written
    assert [t.table for t in report.tables] == [
        "shop.customers",
        "shop.products",
        "shop.orders",
        "shop.order_items",
    ]
    assert all(t.rows == 40 and len(t.sample) == 3 for t in report.tables)
    assert counts(admin) == dict.fromkeys(CHDB_TABLES, 0)


def test_chdb_refuses_to_write_on_a_dry_run_connection(chdb_url: str, admin: Client) -> None:
    with open_target(chdb_url, write=False) as target:
        catalog = target.introspect()
        data = mock.generate(catalog, rows=5, tables=["customers"])
        with pytest.raises(WriteNotRequestedError, match="write=True"):
            target.insert(data)
        # Even past that check, the connection itself is read-only.
        with pytest.raises(QueryDeniedError):
            target._insert(data)
    assert counts(admin)["customers"] == 0


def test_chdb_write_gives_rows_whose_keys_join(chdb_url: str, admin: Client) -> None:
    report = fill(chdb_url, rows=200, seed=1, write=True)
    assert report.written
    assert report.total_rows == 800
    assert counts(admin) == dict.fromkeys(CHDB_TABLES, 200)
    # Every order's customer exists, exactly once.
    joined = "SELECT count() FROM shop.orders o JOIN shop.customers c ON o.customer_id = c.id"
    assert scalar(admin, joined) == 200
    assert scalar(admin, "SELECT uniqExact(id) FROM shop.customers") == 200
    assert scalar(admin, "SELECT uniqExact(id) FROM shop.orders") == 200
    items = """SELECT count() FROM shop.order_items i
        JOIN shop.orders o ON i.order_id = o.id JOIN shop.products p ON i.sku = p.sku"""
    assert scalar(admin, items) == 200
    assert scalar(admin, "SELECT countIf(updated_at < created_at) FROM shop.customers") == 0
    assert scalar(admin, "SELECT countIf(updated_at < created_at) FROM shop.orders") == 0
    assert 0 < scalar(admin, "SELECT countIf(phone IS NULL) FROM shop.customers") < 100
    assert scalar(admin, "SELECT countIf(total <= 0) FROM shop.orders") == 0
    # The column ClickHouse computes was left to it.
    assert (
        scalar(admin, "SELECT countIf(line_total != quantity * unit_price) FROM shop.order_items")
        == 0
    )


def test_chdb_rows_can_be_read_through_the_read_only_engine(chdb_url: str, admin: Client) -> None:
    with connect(chdb_url) as engine:
        result = engine.execute(
            "SELECT c.country_code, count() FROM orders o JOIN customers c ON o.customer_id = c.id"
            " GROUP BY c.country_code"
        )
    assert sum(row[1] for row in result.rows) == scalar(admin, "SELECT count() FROM shop.orders")


def test_chdb_second_write_adds_new_keys(chdb_url: str, admin: Client) -> None:
    before = counts(admin)
    fill(chdb_url, rows=50, tables=["customers", "orders"], seed=1, write=True)
    after = counts(admin)
    assert after["customers"] == before["customers"] + 50
    assert after["orders"] == before["orders"] + 50
    assert after["products"] == before["products"]
    assert scalar(admin, "SELECT uniqExact(id) FROM shop.customers") == after["customers"]
    assert scalar(admin, "SELECT uniqExact(email) FROM shop.customers") == after["customers"]
    orphans = (
        "SELECT count() FROM shop.orders WHERE customer_id NOT IN (SELECT id FROM shop.customers)"
    )
    assert scalar(admin, orphans) == 0


def test_chdb_one_table_references_the_rows_already_there(chdb_url: str, admin: Client) -> None:
    fill(chdb_url, rows=30, tables=["order_items"], seed=9, write=True)
    orphans = """SELECT count() FROM shop.order_items
        WHERE order_id NOT IN (SELECT id FROM shop.orders)
           OR sku NOT IN (SELECT sku FROM shop.products)"""
    assert scalar(admin, orphans) == 0


def test_cli_dry_run_prints_the_plan_and_a_sample(
    cli: typer.Typer, chdb_url: str, admin: Client
) -> None:
    before = counts(admin)
    result = CliRunner().invoke(
        cli, ["mock", "--database", chdb_url, "--rows", "7", "-t", "products"]
    )
    assert result.exit_code == 0, result.output
    assert "dry run: nothing written" in result.output
    assert re.search(r"shop\.products\s+7 rows", result.output)
    assert "SKU-" in result.output
    assert counts(admin) == before


def test_cli_write_prints_counts(cli: typer.Typer, chdb_url: str, admin: Client) -> None:
    before = counts(admin)["products"]
    args = ["mock", "--database", chdb_url, "--rows", "7", "--table", "shop.products", "--write"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Wrote 7 rows" in result.output
    assert counts(admin)["products"] == before + 7


def test_cli_json_report(cli: typer.Typer, chdb_url: str) -> None:
    args = ["mock", "--database", chdb_url, "--rows", "2", "-t", "customers", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written"] is False
    assert report["tables"][0]["table"] == "shop.customers"
    assert report["tables"][0]["columns"][0] == "id"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-t", "nope"], "unknown table 'nope'"),
        (["-t", "big_orders"], "shop.big_orders is a View"),
    ],
)
def test_cli_unknown_table_exits_2_naming_it(
    cli: typer.Typer, chdb_url: str, args: list[str], says: str
) -> None:
    result = CliRunner().invoke(cli, ["mock", "--database", chdb_url, "--rows", "1", *args])
    assert result.exit_code == 2
    assert says in result.output


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:hunter2@db/x", "unsupported database URL"),
        ("chdb://", "in-memory chdb://"),
        ("chdb:///no/such/dir", "no chDB data directory"),
    ],
)
def test_cli_invalid_url_exits_2(cli: typer.Typer, url: str, says: str) -> None:
    result = CliRunner().invoke(cli, ["mock", "--database", url, "--rows", "1"])
    assert result.exit_code == 2
    assert says in result.output
    assert "hunter2" not in result.output


# -- PostgreSQL -----------------------------------------------------------------------------------

OWNER = "mocker"
PG_SCHEMA = """
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled');
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email varchar(120) NOT NULL UNIQUE,
    country char(2),
    signup_at timestamptz NOT NULL,
    updated_at timestamptz,
    is_active boolean NOT NULL DEFAULT true,
    referred_by bigint REFERENCES customers (id),
    CHECK (updated_at IS NULL OR updated_at >= signup_at)
);
CREATE TABLE products (
    sku text PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price > 0),
    tags text[],
    attributes jsonb
);
CREATE TABLE orders (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status order_status NOT NULL,
    total numeric(12, 2) NOT NULL,
    created_at timestamp NOT NULL,
    ip inet,
    uid uuid NOT NULL,
    total_cents bigint GENERATED ALWAYS AS ((total * 100)::bigint) STORED
);
CREATE TABLE order_items (
    order_id integer NOT NULL REFERENCES orders (id),
    sku text NOT NULL REFERENCES products (sku),
    quantity smallint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE books (
    id serial PRIMARY KEY,
    author_id integer NOT NULL REFERENCES authors (id),
    title text NOT NULL
);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
"""
PG_FILLED = ["customers", "products", "orders", "order_items"]


@pytest.fixture(scope="module")
def pg_url(postgres_server: PostgresServer) -> str:
    """A database of its own, owned by a role that is no superuser (the tables' owner is who
    fills a development database)."""
    password = secrets.token_urlsafe(12)
    with postgres_server.admin() as admin:
        admin.execute(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{password}'")
        admin.execute(f"CREATE DATABASE mockdata OWNER {OWNER}")
    url = postgres_server.url(OWNER, password, db="mockdata")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PG_SCHEMA)
    return url


def pg_counts(url: str) -> dict[str, int]:
    return {t: int(pg_scalar(url, f"SELECT count(*) FROM {t}")) for t in PG_FILLED}


def pg_scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def test_postgres_dry_run_writes_nothing(pg_url: str) -> None:
    report = fill(pg_url, rows=50, tables=PG_FILLED, seed=2)
    assert not report.written
    assert {t.table: t.rows for t in report.tables} == {f"public.{t}": 50 for t in PG_FILLED}
    assert "total_cents" not in report.tables[2].columns
    assert pg_counts(pg_url) == dict.fromkeys(PG_FILLED, 0)
    with open_target(pg_url, write=False) as target:
        data = mock.generate(target.introspect(), rows=3, tables=["authors"])
        with pytest.raises(QueryDeniedError):
            target._insert(data)
    assert pg_scalar(pg_url, "SELECT count(*) FROM authors") == 0


def test_postgres_write_keeps_declared_keys(pg_url: str) -> None:
    report = fill(pg_url, rows=300, tables=PG_FILLED, seed=2, write=True)
    assert report.written
    assert pg_counts(pg_url) == dict.fromkeys(PG_FILLED, 300)
    # The server enforced every foreign key, unique and check constraint on the way in; the
    # joins show the rows meet.
    joined = "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id"
    assert pg_scalar(pg_url, joined) == 300
    assert pg_scalar(pg_url, "SELECT count(*) FROM orders WHERE total_cents = total * 100") == 300
    assert pg_scalar(pg_url, "SELECT count(DISTINCT status) FROM orders") >= 3
    assert 0 < pg_scalar(pg_url, "SELECT count(*) FROM customers WHERE referred_by IS NULL") < 300


def test_postgres_sequences_move_past_the_keys_written(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "INSERT INTO customers (first_name, last_name, email, signup_at)"
            " VALUES ('Ada', 'Lovelace', 'ada@example.org', now()) RETURNING id"
        ).fetchone()
        assert row is not None
        assert row[0] > 300
        conn.rollback()


def test_postgres_second_write_appends_without_collisions(pg_url: str) -> None:
    before = pg_counts(pg_url)
    fill(pg_url, rows=100, tables=PG_FILLED, seed=2, write=True)
    assert pg_counts(pg_url) == {t: n + 100 for t, n in before.items()}


def test_postgres_one_table_draws_on_existing_parents(pg_url: str) -> None:
    before = pg_scalar(pg_url, "SELECT count(*) FROM order_items")
    fill(pg_url, rows=40, tables=["order_items"], seed=5, write=True)
    assert pg_scalar(pg_url, "SELECT count(*) FROM order_items") == before + 40


def test_postgres_empty_declared_parent_is_refused(pg_url: str) -> None:
    with pytest.raises(mock.MockError, match=r"fill it too \(--table public\.authors\)"):
        fill(pg_url, rows=5, tables=["books"], write=True)
    assert pg_scalar(pg_url, "SELECT count(*) FROM books") == 0


def test_postgres_cli(cli: typer.Typer, pg_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["mock", "--database", pg_url, "--rows", "3", "-t", "authors", "-t", "books"]
    )
    assert result.exit_code == 0, result.output
    assert "Would write 6 rows" in result.output
    result = runner.invoke(cli, ["mock", "--database", pg_url, "--rows", "3", "-t", "big_orders"])
    assert result.exit_code == 2
    assert "public.big_orders is a view" in result.output
    password = urlsplit(pg_url).password
    assert password
    assert password not in result.output


def test_postgres_bad_password_is_a_connection_failure(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(OWNER, "wrong-password", db="mockdata")
    with pytest.raises(ConnectionFailedError) as e:
        fill(url, rows=1)
    assert "wrong-password" not in str(e.value)
