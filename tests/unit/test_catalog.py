"""The catalog models and join inference (pure: no database)."""

from __future__ import annotations

import pytest

from duet_agents.query.catalog import (
    Catalog,
    Column,
    ForeignKey,
    Join,
    Schema,
    Table,
    find_joins,
    infer_joins,
)
from duet_agents.query.engines.clickhouse_catalog import split_key
from duet_agents.query.firewall import Dialect


def col(name: str, type_: str = "bigint", *, nullable: bool = False) -> Column:
    return Column(name=name, type=type_, nullable=nullable)


def table(name: str, *columns: Column, pk: list[str] | None = None, **extra: object) -> Table:
    return Table.model_validate(
        {"name": name, "kind": "table", "columns": list(columns), "primary_key": pk or []} | extra
    )


def catalog(*tables: Table, schema: str = "public", dialect: Dialect = Dialect.POSTGRES) -> Catalog:
    return Catalog(dialect=dialect, schemas=[Schema(name=schema, tables=list(tables))])


def pairs(joins: list[Join]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (
            f"{j.from_table}.{j.from_columns[0]}",
            f"{j.to_table}.{j.to_columns[0]}",
            "inferred" if j.inferred else "declared",
            j.to_schema,
        )
        for j in joins
    )


CUSTOMERS = table("customers", col("id"), col("name", "text"), pk=["id"])


# -- models ---------------------------------------------------------------------------------------


def test_a_catalog_survives_json() -> None:
    original = catalog(
        CUSTOMERS,
        table(
            "orders",
            col("id"),
            col("customer_id"),
            pk=["id"],
            comment="checkouts",
            row_count=12,
            row_count_estimated=True,
            foreign_keys=[
                ForeignKey(
                    name="orders_customer_id_fkey",
                    columns=["customer_id"],
                    ref_schema="public",
                    ref_table="customers",
                    ref_columns=["id"],
                )
            ],
        ),
    )
    original = original.model_copy(update={"joins": find_joins(original)})

    assert Catalog.model_validate_json(original.model_dump_json()) == original


def test_lookups_by_name() -> None:
    c = catalog(CUSTOMERS)
    assert c.table("public", "customers") == CUSTOMERS
    assert c.table("public", "nope") is None
    assert c.table("other", "customers") is None
    assert CUSTOMERS.column("name") == col("name", "text")
    assert CUSTOMERS.column("nope") is None


# -- inference -------------------------------------------------------------------------------------


def test_a_column_named_for_a_table_references_its_key() -> None:
    joins = infer_joins(catalog(CUSTOMERS, table("orders", col("id"), col("customer_id"))))

    assert pairs(joins) == [("orders.customer_id", "customers.id", "inferred", "public")]
    assert joins[0].reason == (
        "orders.customer_id names table customers and matches its primary key id (integer)"
    )


@pytest.mark.parametrize(
    ("target", "column"),
    [
        ("users", "user_id"),
        ("categories", "category_id"),
        ("addresses", "address_id"),
        ("statuses", "status_id"),
        ("courses", "course_id"),
        ("people", "person_id"),
        ("customer", "customer_id"),  # a table named in the singular
        ("customers", "customerId"),  # camelCase
        ("customers", "customerID"),
    ],
)
def test_plural_and_singular_table_names(target: str, column: str) -> None:
    joins = infer_joins(catalog(table(target, col("id")), table("facts", col(column))))
    assert pairs(joins) == [(f"facts.{column}", f"{target}.id", "inferred", "public")]


def test_a_table_keyed_by_its_own_name_is_found() -> None:
    """sessions.session_id is the key of sessions; events.session_id references it."""
    joins = infer_joins(
        catalog(
            table("sessions", col("session_id", "text"), col("started", "timestamptz")),
            table("events", col("session_id", "text"), col("kind", "text")),
        )
    )
    assert pairs(joins) == [("events.session_id", "sessions.session_id", "inferred", "public")]


def test_a_same_named_key_column_is_a_reference() -> None:
    joins = infer_joins(
        catalog(
            table("products", col("sku", "text"), pk=["sku"]),
            table("page_views", col("sku", "text"), col("at", "timestamptz")),
        )
    )
    assert pairs(joins) == [("page_views.sku", "products.sku", "inferred", "public")]
    assert joins[0].reason == "page_views.sku has the name of the primary key of products (string)"


def test_a_declared_foreign_key_is_not_inferred_again() -> None:
    fk = ForeignKey(
        name="orders_customer_id_fkey",
        columns=["customer_id"],
        ref_schema="public",
        ref_table="customers",
        ref_columns=["id"],
    )
    c = catalog(CUSTOMERS, table("orders", col("id"), col("customer_id"), foreign_keys=[fk]))

    assert infer_joins(c) == []
    [declared] = find_joins(c)
    assert not declared.inferred
    assert declared.reason == "declared foreign key orders_customer_id_fkey"


@pytest.mark.parametrize(
    ("key_type", "reference_type"),
    [
        ("UInt64", "Int32"),
        ("UInt64", "Nullable(UInt64)"),
        ("String", "LowCardinality(Nullable(String))"),
        ("bigint", "integer"),
        ("uuid", "uuid"),
        ("character varying(20)", "text"),
        ("numeric(10,0)", "numeric"),
    ],
)
def test_compatible_types_join(key_type: str, reference_type: str) -> None:
    c = catalog(
        table("customers", col("id", key_type)), table("orders", col("customer_id", reference_type))
    )
    assert len(infer_joins(c)) == 1


@pytest.mark.parametrize(
    ("key_type", "reference_type"),
    [("UInt64", "String"), ("uuid", "text"), ("integer", "numeric"), ("Date", "DateTime")],
)
def test_incompatible_types_do_not_join(key_type: str, reference_type: str) -> None:
    c = catalog(
        table("customers", col("id", key_type)), table("orders", col("customer_id", reference_type))
    )
    assert infer_joins(c) == []


def test_a_table_without_an_identity_is_never_a_target() -> None:
    """events has no id and a compound key: nothing can reference it."""
    c = catalog(
        table("events", col("user_id"), col("ts", "DateTime"), pk=["user_id", "ts"]),
        table("event_tags", col("event_id"), col("tag", "String")),
    )
    assert infer_joins(c) == []


def test_a_key_named_for_another_table_is_not_this_tables_identity() -> None:
    """ClickHouse's `PRIMARY KEY customer_id` on orders is a sort prefix, not an identity:
    events.customer_id references customers, not orders."""
    c = catalog(
        CUSTOMERS,
        table("orders", col("order_no"), col("customer_id"), pk=["customer_id"]),
        table("events", col("customer_id"), col("ts", "DateTime")),
        dialect=Dialect.CLICKHOUSE,
    )
    assert pairs(infer_joins(c)) == [
        ("events.customer_id", "customers.id", "inferred", "public"),
        ("orders.customer_id", "customers.id", "inferred", "public"),
    ]


def test_a_tables_own_key_references_nothing() -> None:
    c = catalog(
        table("users", col("user_id"), pk=["user_id"]),
        table("profiles", col("user_id"), col("bio", "text"), pk=["user_id"]),
    )
    # One join for the one-to-one, from the table the column does not name.
    assert pairs(infer_joins(c)) == [("profiles.user_id", "users.user_id", "inferred", "public")]


def test_self_references_and_unknown_names_are_left_alone() -> None:
    c = catalog(table("employees", col("id"), col("manager_id"), col("employee_id")))
    assert infer_joins(c) == []


def test_the_columns_own_schema_wins() -> None:
    c = Catalog(
        dialect=Dialect.POSTGRES,
        schemas=[
            Schema(name="crm", tables=[CUSTOMERS, table("orders", col("customer_id"))]),
            Schema(name="billing", tables=[CUSTOMERS]),
        ],
    )
    assert pairs(infer_joins(c)) == [("orders.customer_id", "customers.id", "inferred", "crm")]


def test_an_ambiguous_reference_is_left_out() -> None:
    c = Catalog(
        dialect=Dialect.POSTGRES,
        schemas=[
            Schema(name="crm", tables=[CUSTOMERS]),
            Schema(name="billing", tables=[CUSTOMERS]),
            Schema(name="sales", tables=[table("orders", col("customer_id"))]),
        ],
    )
    assert infer_joins(c) == []


def test_a_named_table_beats_a_same_named_key_elsewhere() -> None:
    """visits.session_id: the sessions table wins over a table that is keyed by session_id
    without being named for it."""
    c = catalog(
        table("sessions", col("id", "text")),
        table("session_stats", col("session_id", "text"), pk=["session_id"]),
        table("visits", col("session_id", "text")),
    )
    assert pairs(infer_joins(c)) == [
        ("session_stats.session_id", "sessions.id", "inferred", "public"),
        ("visits.session_id", "sessions.id", "inferred", "public"),
    ]


# -- ClickHouse keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "parts"),
    [
        ("", []),
        ("id", ["id"]),
        ("customer_id, created_at, id", ["customer_id", "created_at", "id"]),
        ("toStartOfHour(ts), cityHash64(x) % 8", ["toStartOfHour(ts)", "cityHash64(x) % 8"]),
        ("a, 'x,y', tuple(b, c)", ["a", "'x,y'", "tuple(b, c)"]),
        ("arr[1], `odd, name`", ["arr[1]", "`odd, name`"]),
    ],
)
def test_clickhouse_keys_split_into_expressions(expression: str, parts: list[str]) -> None:
    assert split_key(expression) == parts
