"""The PostgreSQL engine against a real server: introspection, limits, and read-only proofs.

The read-only role is created by the operator's own init script (render/postgres.py), run
with psql as the image's init hook runs it. The proofs execute statements straight through
`engine.execute`, past the SQL firewall, and check through a superuser connection that
nothing changed. They run twice: as that `readonly` role, and as `writer`, a role that owns
the tables and may do anything to them, so each proof shows the engine's read-only session
holding on its own, not the role's missing privileges.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import traceback
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from duet_agents.query.catalog import Catalog, Column, Join, Table
from duet_agents.query.engines import (
    ConnectionFailedError,
    Engine,
    Limits,
    QueryDeniedError,
    QueryError,
    QueryTimeoutError,
    connect,
)
from duet_operator.render.postgres import INIT_SQL_SCRIPT, READONLY_USER, SUPERUSER
from tests.integration.postgres_fixtures import postgres_server
from tests.support.postgres import PostgresServer

# The session's server fixture, imported so pytest finds it in this module.
__all__ = ["postgres_server"]

WRITER = "writer"
MAX_ROWS = 10
TIMEOUT_SECONDS = 2.0

SCHEMA_SQL = """
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text
);
COMMENT ON TABLE customers IS 'People who have bought something';
COMMENT ON COLUMN customers.email IS 'Where receipts go';
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total numeric(10, 2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orders IS 'One row per checkout';
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    customer_id bigint,
    order_id bigint,
    kind text NOT NULL
);
COMMENT ON TABLE events IS 'Clickstream: no declared keys';
INSERT INTO customers (name, email)
    SELECT 'customer ' || n, 'c' || n || '@example.com' FROM generate_series(1, 3) AS n;
INSERT INTO orders (customer_id, total)
    SELECT 1 + n % 3, n * 1.25 FROM generate_series(1, 50) AS n;
INSERT INTO events (customer_id, order_id, kind)
    SELECT 1 + n % 3, 1 + n % 50, 'view' FROM generate_series(1, 200) AS n;
CREATE SCHEMA hidden;
CREATE TABLE hidden.salaries (employee text, amount numeric);
"""


@pytest.fixture(scope="module")
def passwords(postgres_server: PostgresServer) -> dict[str, str]:
    """The operator's roles (by its init script) and a writer role, then the schema."""
    chosen = {READONLY_USER: secrets.token_urlsafe(12), WRITER: secrets.token_urlsafe(12)}
    env = postgres_server.client_env() | {
        "POSTGRES_USER": SUPERUSER,
        "POSTGRES_READONLY_PASSWORD": chosen[READONLY_USER],
        "POSTGRES_REPLICATION_PASSWORD": secrets.token_urlsafe(12),
    }
    result = subprocess.run(
        ["sh", "-c", INIT_SQL_SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    with postgres_server.admin() as admin:
        admin.execute(SCHEMA_SQL)
        admin.execute(f"CREATE ROLE {WRITER} LOGIN PASSWORD '{chosen[WRITER]}'")
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {WRITER}")
        for table in ("customers", "orders", "events"):
            admin.execute(f"ALTER TABLE {table} OWNER TO {WRITER}")
    return chosen


@pytest.fixture(scope="module", params=[READONLY_USER, WRITER])
def engine(
    request: pytest.FixtureRequest, postgres_server: PostgresServer, passwords: dict[str, str]
) -> Iterator[Engine]:
    user: str = request.param
    url = postgres_server.url(user, passwords[user])
    with connect(url, limits=Limits(max_rows=MAX_ROWS, timeout_seconds=TIMEOUT_SECONDS)) as e:
        yield e


@pytest.fixture
def readonly_engine(postgres_server: PostgresServer, passwords: dict[str, str]) -> Iterator[Engine]:
    url = postgres_server.url(READONLY_USER, passwords[READONLY_USER])
    with connect(url, limits=Limits(max_rows=MAX_ROWS, timeout_seconds=TIMEOUT_SECONDS)) as e:
        yield e


def fingerprint(server: PostgresServer) -> dict[str, object]:
    """Every row of every table, the relations that exist, and the sequences' positions, as
    the superuser sees them."""
    with server.admin() as admin:
        state: dict[str, object] = {
            "relations": admin.execute(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('public', 'hidden') ORDER BY 1, 2"
            ).fetchall(),
            "sequences": admin.execute(
                "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1"
            ).fetchall(),
        }
        for table in ("customers", "orders", "events", "hidden.salaries"):
            state[table] = admin.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        return state


@pytest.fixture
def unchanged(postgres_server: PostgresServer, passwords: dict[str, str]) -> Iterator[None]:
    before = fingerprint(postgres_server)
    yield
    assert fingerprint(postgres_server) == before


def table_of(catalog: Catalog, schema: str, name: str) -> Table:
    found = catalog.table(schema, name)
    assert found is not None, f"{schema}.{name} is not in the catalog"
    return found


def column_of(table: Table, name: str) -> Column:
    found = table.column(name)
    assert found is not None, f"{table.name}.{name} is not in the catalog"
    return found


# -- introspection ------------------------------------------------------------------------------


def test_introspection_as_the_readonly_role(readonly_engine: Engine) -> None:
    catalog = readonly_engine.introspect()

    assert catalog.database == "postgres"
    # The role has no USAGE on `hidden`: neither the schema nor its table shows.
    assert [s.name for s in catalog.schemas] == ["public"]
    customers = table_of(catalog, "public", "customers")
    orders = table_of(catalog, "public", "orders")
    events = table_of(catalog, "public", "events")
    assert customers.kind == "table"
    assert customers.comment == "People who have bought something"
    assert customers.primary_key == ["id"]
    email = column_of(customers, "email")
    assert (email.type, email.nullable, email.comment) == ("text", True, "Where receipts go")
    id_column = column_of(customers, "id")
    assert id_column.default is not None
    assert id_column.default.startswith("nextval(")
    total = column_of(orders, "total")
    assert (total.type, total.nullable, total.default) == ("numeric(10,2)", False, "0")
    # Small tables are counted exactly.
    assert (customers.row_count, customers.row_count_estimated) == (3, False)
    assert (events.row_count, events.primary_key, events.comment) == (
        200,
        [],
        "Clickstream: no declared keys",
    )
    [fk] = orders.foreign_keys
    assert (fk.columns, fk.ref_schema, fk.ref_table, fk.ref_columns) == (
        ["customer_id"],
        "public",
        "customers",
        ["id"],
    )


def test_joins_declared_and_inferred(readonly_engine: Engine) -> None:
    joins = readonly_engine.introspect().joins

    def ends(join: Join) -> tuple[str, str, str, str, bool]:
        return (
            join.from_table,
            join.from_columns[0],
            join.to_table,
            join.to_columns[0],
            join.inferred,
        )

    assert sorted(ends(j) for j in joins) == [
        ("events", "customer_id", "customers", "id", True),
        ("events", "order_id", "orders", "id", True),
        ("orders", "customer_id", "customers", "id", False),
    ]
    declared = next(j for j in joins if not j.inferred)
    assert declared.reason == "declared foreign key orders_customer_id_fkey"
    inferred = next(j for j in joins if j.from_columns == ["order_id"])
    assert "names table orders" in inferred.reason


def test_catalog_is_json(readonly_engine: Engine) -> None:
    catalog = readonly_engine.introspect()
    assert type(catalog).model_validate_json(catalog.model_dump_json()) == catalog


# -- execution ----------------------------------------------------------------------------------


def test_select_returns_typed_rows(engine: Engine) -> None:
    result = engine.execute("SELECT id, name, email FROM customers ORDER BY id")

    assert [(c.name, c.type) for c in result.columns] == [
        ("id", "bigint"),
        ("name", "text"),
        ("email", "text"),
    ]
    assert result.rows[0] == (1, "customer 1", "c1@example.com")
    assert len(result.rows) == 3
    assert not result.truncated
    assert result.elapsed_ms >= 0


def test_select_is_cut_at_max_rows(engine: Engine) -> None:
    result = engine.execute("SELECT id, total FROM orders ORDER BY id")

    assert len(result.rows) == MAX_ROWS
    assert result.truncated
    assert result.rows[1] == (2, Decimal("2.50"))


def test_an_empty_result_keeps_its_columns(engine: Engine) -> None:
    result = engine.execute("SELECT id, kind FROM events WHERE false")
    assert [c.name for c in result.columns] == ["id", "kind"]
    assert result.rows == []
    assert not result.truncated


def test_a_failed_statement_leaves_the_engine_usable(engine: Engine) -> None:
    with pytest.raises(QueryError, match="no_such_table"):
        engine.execute("SELECT * FROM no_such_table")
    assert engine.execute("SELECT count(*) FROM events").rows == [(200,)]


def test_a_statement_past_the_timeout_is_cancelled(engine: Engine) -> None:
    with pytest.raises(QueryTimeoutError, match="statement timeout"):
        engine.execute("SELECT pg_sleep(60)")
    assert engine.execute("SELECT 1").rows == [(1,)]


# -- defense in depth: the firewall bypassed, the data unchanged -------------------------------

WRITES = [
    "INSERT INTO customers (name) VALUES ('mallory')",
    "UPDATE orders SET total = 0",
    "DELETE FROM events",
    "CREATE TABLE stolen (a int)",
    "CREATE TEMP TABLE scratch (a int)",
    "DROP TABLE events",
    "TRUNCATE orders",
    "ALTER TABLE customers ADD COLUMN note text",
    "WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone",
    "SELECT nextval('orders_id_seq')",
    "DO $$ BEGIN INSERT INTO customers (name) VALUES ('via do'); END $$",
    "GRANT SELECT ON hidden.salaries TO PUBLIC",
]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("sql", WRITES)
def test_a_write_is_refused_by_the_read_only_transaction(engine: Engine, sql: str) -> None:
    with pytest.raises(QueryDeniedError):
        engine.execute(sql)


# Several statements in one string: the simple query protocol would run them in turn, and
# the first would undo the read-only transaction for the second.
SMUGGLED = [
    "SET TRANSACTION READ WRITE; INSERT INTO customers (name) VALUES ('mallory')",
    "COMMIT; INSERT INTO customers (name) VALUES ('mallory')",
    "ROLLBACK; SET default_transaction_read_only = off; DELETE FROM events",
    "SELECT set_config('default_transaction_read_only', 'off', false); COMMIT; DELETE FROM events",
    "SELECT 1; DROP TABLE events",
]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("sql", SMUGGLED)
def test_several_statements_in_one_are_refused(engine: Engine, sql: str) -> None:
    with pytest.raises(QueryError, match="multiple commands"):
        engine.execute(sql)


# A statement that succeeds and loosens the session, then a write as the next call.
LOOSENERS = [
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "COMMIT",
    "SET statement_timeout = 0",
]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("loosener", LOOSENERS)
def test_what_one_statement_loosens_dies_with_its_transaction(
    engine: Engine, loosener: str
) -> None:
    with contextlib.suppress(QueryError):  # refused is as good as rolled back
        engine.execute(loosener)
    with pytest.raises(QueryDeniedError, match="read-only transaction"):
        engine.execute("INSERT INTO customers (name) VALUES ('mallory')")
    settings = engine.execute(
        "SELECT current_setting('default_transaction_read_only'), "
        "current_setting('transaction_read_only'), current_setting('statement_timeout')"
    )
    assert settings.rows == [("on", "on", f"{int(TIMEOUT_SECONDS)}s")]


@pytest.mark.usefixtures("unchanged")
def test_password_hashes_stay_unreadable(engine: Engine) -> None:
    with pytest.raises(QueryDeniedError, match="permission denied"):
        engine.execute("SELECT rolname, rolpassword FROM pg_authid")


def test_the_engine_shows_no_password(engine: Engine, passwords: dict[str, str]) -> None:
    for password in passwords.values():
        assert password not in repr(engine)
    assert ":***@127.0.0.1" in repr(engine)


def test_a_superuser_is_refused(postgres_server: PostgresServer) -> None:
    with pytest.raises(ConnectionFailedError, match="superuser") as refused:
        connect(postgres_server.url(), limits=Limits())
    assert postgres_server.password not in str(refused.value)


def test_a_wrong_password_is_not_echoed(postgres_server: PostgresServer) -> None:
    wrong = "Wr0ng-" + secrets.token_urlsafe(12)
    with pytest.raises(ConnectionFailedError, match="password authentication failed") as failed:
        connect(postgres_server.url(READONLY_USER, wrong), limits=Limits())
    shown = "".join(traceback.format_exception(failed.value)) + repr(failed.value)
    assert wrong not in shown
    assert READONLY_USER in str(failed.value)


def test_the_session_starts_read_only(
    postgres_server: PostgresServer, passwords: dict[str, str]
) -> None:
    """Outside the engine's own transactions, the role and the session settings still hold."""
    with psycopg.connect(
        postgres_server.url(READONLY_USER, passwords[READONLY_USER]), autocommit=True
    ) as conn:
        row = conn.execute("SHOW default_transaction_read_only").fetchone()
    assert row == ("on",)
