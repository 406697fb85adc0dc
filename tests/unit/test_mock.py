"""Mock data generation (pure: no database): types honoured, keys unique, references valid,
dates in order, deterministic for a seed."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duet_agents.query import mock
from duet_agents.query.catalog import Catalog, Column, ForeignKey, Schema, Table
from duet_agents.query.firewall import Dialect
from duet_agents.query.mock import Kind, MockData, MockError, TableState, UnknownTableError
from duet_agents.query.mock_writer import jsonable

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def col(name: str, type_: str, *, nullable: bool = False, default: str | None = None) -> Column:
    return Column(name=name, type=type_, nullable=nullable, default=default)


def table(
    name: str, *columns: Column, pk: Iterable[str] = (), kind: str = "MergeTree", **extra: Any
) -> Table:
    return Table.model_validate(
        {"name": name, "kind": kind, "columns": list(columns), "primary_key": list(pk)} | extra
    )


def shop() -> Catalog:
    """A ClickHouse shop: no declared keys, joins inferred from names."""
    tables = [
        table(
            "customers",
            col("id", "UInt64"),
            col("first_name", "String"),
            col("last_name", "String"),
            col("full_name", "String"),
            col("email", "String"),
            col("phone", "Nullable(String)", nullable=True),
            col("country_code", "FixedString(2)"),
            col("city", "LowCardinality(String)"),
            col("age", "UInt8"),
            col("is_active", "Bool"),
            col("created_at", "DateTime"),
            col("updated_at", "Nullable(DateTime64(3))", nullable=True),
            col("birth_date", "Date"),
            pk=["id"],
        ),
        table(
            "products",
            col("sku", "String"),
            col("name", "String"),
            col("price", "Decimal(10, 2)"),
            col("category", "LowCardinality(Nullable(String))", nullable=True),
            col("tags", "Array(String)"),
            col("weights", "Array(Float32)"),
            pk=["sku"],
        ),
        table(
            "orders",
            col("id", "UInt64"),
            col("customer_id", "UInt64"),
            col("status", "Enum8('pending' = 1, 'paid' = 2, 'it\\'s shipped' = 3)"),
            col("total", "Decimal(12, 2)"),
            col("currency", "LowCardinality(String)"),
            col("created_at", "DateTime"),
            col("updated_at", "DateTime"),
            col("uuid", "UUID"),
            col("ip", "IPv4"),
            col("user_agent", "String"),
            col("metadata", "String"),
            col("total_cents", "UInt64", default="MATERIALIZED toUInt64(total * 100)"),
            # ClickHouse's PRIMARY KEY customer_id is a sort prefix, not an identity.
            pk=["customer_id"],
        ),
        table(
            "order_items",
            col("order_id", "UInt64"),
            col("sku", "String"),
            col("quantity", "UInt16"),
            col("unit_price", "Decimal(10, 2)"),
            pk=["order_id", "sku"],
        ),
        table("big_orders", col("id", "UInt64"), kind="View"),
    ]
    return Catalog(
        dialect=Dialect.CLICKHOUSE,
        database="shop",
        schemas=[Schema(name="shop", tables=tables)],
    )


def store() -> Catalog:
    """A PostgreSQL store with declared foreign keys, a composite key, a hierarchy and a cycle
    that can be broken."""
    fk = ForeignKey
    tables = [
        table(
            "customers",
            col("id", "bigint"),
            col("name", "text"),
            col("email", "character varying(40)"),
            col("country", "character(2)", nullable=True),
            col("signup_at", "timestamp with time zone"),
            col("last_login_at", "timestamp with time zone", nullable=True),
            col("deleted_at", "timestamp without time zone", nullable=True),
            pk=["id"],
            kind="table",
        ),
        table(
            "orders",
            col("id", "integer"),
            col("customer_id", "bigint"),
            col("status", "order_status"),
            col("amount", "numeric(6,2)"),
            col("created_at", "timestamp(3) without time zone"),
            col("notes", "jsonb", nullable=True),
            col("labels", "text[]"),
            col("placed_on", "date"),
            col("delivery_window", "tstzrange", nullable=True),
            col("shipped", "boolean"),
            col("uid", "uuid"),
            col("client_ip", "inet", nullable=True),
            col("pickup", "time without time zone", nullable=True),
            pk=["id"],
            kind="table",
            foreign_keys=[
                fk(
                    name="orders_customer",
                    columns=["customer_id"],
                    ref_schema="public",
                    ref_table="customers",
                    ref_columns=["id"],
                )
            ],
        ),
        table(
            "order_lines",
            col("order_id", "integer"),
            col("line", "smallint"),
            col("quantity", "integer"),
            pk=["order_id", "line"],
            kind="table",
            foreign_keys=[
                fk(
                    columns=["order_id"],
                    ref_schema="public",
                    ref_table="orders",
                    ref_columns=["id"],
                )
            ],
        ),
        table(
            "employees",
            col("id", "integer"),
            col("name", "text"),
            col("manager_id", "integer", nullable=True),
            col("department_id", "integer", nullable=True),
            pk=["id"],
            kind="table",
            foreign_keys=[
                fk(
                    columns=["manager_id"],
                    ref_schema="public",
                    ref_table="employees",
                    ref_columns=["id"],
                ),
                fk(
                    columns=["department_id"],
                    ref_schema="public",
                    ref_table="departments",
                    ref_columns=["id"],
                ),
            ],
        ),
        table(
            "departments",
            col("id", "integer"),
            col("name", "text"),
            col("head_id", "integer"),
            pk=["id"],
            kind="table",
            foreign_keys=[
                fk(
                    columns=["head_id"],
                    ref_schema="public",
                    ref_table="employees",
                    ref_columns=["id"],
                )
            ],
        ),
    ]
    return Catalog(
        dialect=Dialect.POSTGRES, database="app", schemas=[Schema(name="public", tables=tables)]
    )


ENUMS = {"order_status": ["pending", "paid", "shipped"]}


def generate(catalog: Catalog, rows: int | dict[str, int] = 200, **options: Any) -> MockData:
    defaults: dict[str, Any] = {"seed": 7, "now": NOW, "enums": ENUMS}
    return mock.generate(catalog, rows=rows, **(defaults | options))


def column(data: MockData, qualified: str, name: str) -> list[Any]:
    t = data.table(qualified)
    i = t.columns.index(name)
    return [row[i] for row in t.rows]


def records(data: MockData, qualified: str) -> list[dict[str, Any]]:
    t = data.table(qualified)
    return [dict(zip(t.columns, row, strict=True)) for row in t.rows]


# -- keys and references --------------------------------------------------------------------------


def test_tables_come_parents_first_and_views_are_left_out() -> None:
    data = generate(shop())
    order = [t.table for t in data.tables]
    assert set(order) == {"customers", "products", "orders", "order_items"}
    assert order.index("customers") < order.index("orders") < order.index("order_items")
    assert order.index("products") < order.index("order_items")


def test_keys_are_unique_and_every_reference_points_at_a_generated_row() -> None:
    data = generate(shop(), rows=300)
    customer_ids = column(data, "shop.customers", "id")
    order_ids = column(data, "shop.orders", "id")
    skus = column(data, "shop.products", "sku")
    assert customer_ids == list(range(1, 301))
    assert len(set(order_ids)) == 300
    assert len(set(skus)) == 300
    assert set(column(data, "shop.orders", "customer_id")) <= set(customer_ids)
    assert set(column(data, "shop.order_items", "order_id")) <= set(order_ids)
    assert set(column(data, "shop.order_items", "sku")) <= set(skus)
    # Some customers order more than others, as in real data.
    per_customer = [column(data, "shop.orders", "customer_id").count(c) for c in customer_ids]
    assert max(per_customer) >= 3


def test_a_clickhouse_sort_prefix_is_not_made_unique() -> None:
    # orders' PRIMARY KEY customer_id: many orders per customer.
    data = generate(shop(), rows=200)
    assert len(set(column(data, "shop.orders", "customer_id"))) < 200


def test_a_postgres_composite_primary_key_is_unique() -> None:
    data = generate(store(), rows=300)
    lines = [(r["order_id"], r["line"]) for r in records(data, "public.order_lines")]
    assert len(set(lines)) == 300
    assert {r["order_id"] for r in records(data, "public.order_lines")} <= set(
        column(data, "public.orders", "id")
    )


def test_a_declared_foreign_key_is_honoured() -> None:
    data = generate(store())
    assert set(column(data, "public.orders", "customer_id")) <= set(
        column(data, "public.customers", "id")
    )


def test_a_hierarchy_references_earlier_rows_and_has_roots() -> None:
    data = generate(store())
    seen: set[int] = set()
    roots = 0
    for row in records(data, "public.employees"):
        if row["manager_id"] is None:
            roots += 1
        else:
            assert row["manager_id"] in seen
        seen.add(row["id"])
    assert 0 < roots < 200


def test_a_cycle_is_broken_at_a_nullable_reference_and_said() -> None:
    data = generate(store())
    assert all(v is None for v in column(data, "public.employees", "department_id"))
    assert set(column(data, "public.departments", "head_id")) <= set(
        column(data, "public.employees", "id")
    )
    assert any("department_id" in n and "reference each other" in n for n in data.notes)


def test_a_cycle_that_cannot_be_null_is_refused() -> None:
    a = table("a", col("id", "integer"), col("b_id", "integer"), pk=["id"], kind="table")
    b = table("b", col("id", "integer"), col("a_id", "integer"), pk=["id"], kind="table")
    catalog = Catalog(dialect=Dialect.POSTGRES, schemas=[Schema(name="public", tables=[a, b])])
    with pytest.raises(MockError, match="reference each other") as e:
        generate(catalog)
    assert "public.a" in str(e.value)
    assert "public.b" in str(e.value)


def test_a_one_to_one_reference_takes_each_parent_once() -> None:
    users = table("users", col("id", "integer"), col("email", "text"), pk=["id"], kind="table")
    profiles = table(
        "profiles",
        col("user_id", "integer"),
        col("bio", "text"),
        pk=["user_id"],
        kind="table",
        foreign_keys=[
            ForeignKey(
                columns=["user_id"], ref_schema="public", ref_table="users", ref_columns=["id"]
            )
        ],
    )
    catalog = Catalog(
        dialect=Dialect.POSTGRES, schemas=[Schema(name="public", tables=[users, profiles])]
    )
    data = generate(catalog, rows={"users": 50, "profiles": 50})
    assert sorted(column(data, "public.profiles", "user_id")) == list(range(1, 51))
    with pytest.raises(MockError, match=r"unique and references public\.users"):
        generate(catalog, rows={"users": 10, "profiles": 11})


def test_integer_keys_follow_the_existing_rows() -> None:
    existing = {"shop.customers": TableState(rows=1000, key_max={"id": 1000})}
    data = generate(shop(), rows=10, existing=existing)
    assert column(data, "shop.customers", "id") == list(range(1001, 1011))
    # Emails are numbered after the rows already there, so they stay unique too.
    assert all(".100" in e or ".101" in e for e in column(data, "shop.customers", "email"))


def test_a_table_filled_alone_references_the_rows_already_there() -> None:
    existing = {"shop.customers": TableState(rows=3, key_values={("id",): [(10,), (20,), (30,)]})}
    data = generate(shop(), rows=100, tables=["orders"], existing=existing)
    assert [t.table for t in data.tables] == ["orders"]
    assert set(column(data, "shop.orders", "customer_id")) <= {10, 20, 30}


def test_a_declared_parent_without_rows_is_refused_with_what_to_do() -> None:
    with pytest.raises(MockError, match=r"--table public\.customers"):
        generate(store(), tables=["orders"])


def test_an_inferred_parent_without_rows_is_only_a_note() -> None:
    data = generate(shop(), rows=20, tables=["orders"])
    assert len(data.table("shop.orders").rows) == 20
    assert any("shop.orders(customer_id) does not match shop.customers" in n for n in data.notes)


def test_new_unique_keys_avoid_the_existing_ones() -> None:
    taken = [(f"SKU-{i}",) for i in range(5)]
    existing = {"shop.products": TableState(rows=5, key_values={("sku",): taken})}
    data = generate(shop(), rows=50, tables=["products"], existing=existing)
    assert not set(column(data, "shop.products", "sku")) & {t[0] for t in taken}


def test_a_key_type_too_small_for_the_rows_is_refused() -> None:
    tiny = table("flags", col("id", "UInt8"), col("name", "String"), pk=["id"])
    catalog = Catalog(dialect=Dialect.CLICKHOUSE, schemas=[Schema(name="d", tables=[tiny])])
    assert len(generate(catalog, rows=255).tables[0].rows) == 255
    with pytest.raises(MockError, match=r"d\.flags\.id \(UInt8\) cannot hold keys up to 256"):
        generate(catalog, rows=256)


def test_composite_keys_that_run_out_are_refused() -> None:
    data = {"public.customers": 2, "public.orders": 2, "public.order_lines": 5000}
    with pytest.raises(MockError, match=r"no new value of \(order_id, line\)"):
        generate(store(), rows=data)


# -- values ---------------------------------------------------------------------------------------


def test_values_follow_the_column_names() -> None:
    data = generate(shop(), rows=100)
    customer = records(data, "shop.customers")[0]
    assert customer["full_name"] == f"{customer['first_name']} {customer['last_name']}"
    for row in records(data, "shop.customers"):
        local, _, domain = row["email"].partition("@")
        assert local.startswith(f"{row['first_name']}.{row['last_name']}".lower()[:3])
        assert domain.startswith("example.")
        assert 18 <= row["age"] <= 85
    assert len(set(column(data, "shop.customers", "email"))) == 100
    assert all(p > 0 for p in column(data, "shop.products", "price"))
    assert all(q >= 1 for q in column(data, "shop.order_items", "quantity"))
    assert all(len(c) == 3 and c.isupper() for c in column(data, "shop.orders", "currency"))
    assert all(
        ua.startswith(("Mozilla", "Opera")) for ua in column(data, "shop.orders", "user_agent")
    )


def test_categorical_columns_take_a_few_values_the_first_most_often() -> None:
    data = generate(shop(), rows=400)
    statuses = column(data, "shop.orders", "status")
    assert set(statuses) <= {"pending", "paid", "it's shipped"}
    assert statuses.count("pending") > statuses.count("it's shipped")
    categories = {c for c in column(data, "shop.products", "category") if c is not None}
    assert 2 <= len(categories) <= 6


def test_status_fits_the_table() -> None:
    orders = table("orders", col("id", "UInt64"), col("status", "String"), pk=["id"])
    tickets = table("tickets", col("id", "UInt64"), col("status", "String"), pk=["id"])
    catalog = Catalog(
        dialect=Dialect.CLICKHOUSE, schemas=[Schema(name="d", tables=[orders, tickets])]
    )
    data = generate(catalog, rows=200)
    assert "shipped" in column(data, "d.orders", "status")
    assert "resolved" in column(data, "d.tickets", "status")


def test_updates_follow_creation_and_everything_is_in_the_past_year() -> None:
    data = generate(shop(), rows=300)
    for row in records(data, "shop.customers") + records(data, "shop.orders"):
        assert NOW - timedelta(days=366) <= row["created_at"] <= NOW
        if row["updated_at"] is not None:
            assert row["updated_at"] >= row["created_at"]
            assert row["updated_at"] <= NOW


def test_postgres_timestamps_after_creation_and_rarely_set_deletions() -> None:
    data = generate(store(), rows=300)
    rows = records(data, "public.customers")
    for row in rows:
        if row["last_login_at"] is not None:
            assert row["last_login_at"] >= row["signup_at"]
    deleted = sum(r["deleted_at"] is not None for r in rows)
    assert 0 < deleted < 100


def test_nullable_columns_get_some_nulls_and_others_none() -> None:
    data = generate(shop(), rows=300)
    phones = column(data, "shop.customers", "phone")
    assert 0 < phones.count(None) < 100
    for t in data.tables:
        for name in ("id", "email", "sku", "customer_id", "created_at"):
            if name in t.columns:
                assert None not in column(data, t.qualified, name)


def test_clickhouse_types_are_honoured() -> None:
    data = generate(shop(), rows=200)
    customers = records(data, "shop.customers")
    assert all(len(r["country_code"].encode()) <= 2 for r in customers)
    assert all(isinstance(r["is_active"], bool) for r in customers)
    # DateTime holds seconds; DateTime64(3) milliseconds; both as aware UTC.
    assert all(r["created_at"].microsecond == 0 and r["created_at"].tzinfo for r in customers)
    assert all(
        r["updated_at"] is None or r["updated_at"].microsecond % 1000 == 0 for r in customers
    )
    # ClickHouse's Date begins in 1970: birth dates keep within it, without piling up there.
    births = [r["birth_date"] for r in customers]
    assert min(births) >= date(1970, 1, 1)
    assert births.count(date(1970, 1, 1)) <= 1
    assert max(births) <= date(2007, 6, 1)
    for price in column(data, "shop.products", "price"):
        assert isinstance(price, Decimal)
        assert price.as_tuple().exponent == -2
        assert price < Decimal("100000000")
    for tags, weights in zip(
        column(data, "shop.products", "tags"), column(data, "shop.products", "weights"), strict=True
    ):
        assert all(isinstance(t, str) for t in tags)
        assert all(isinstance(w, float) for w in weights)
    orders = records(data, "shop.orders")
    assert all(isinstance(r["uuid"], uuid.UUID) for r in orders)
    assert all(isinstance(r["ip"], ipaddress.IPv4Address) for r in orders)
    assert "total_cents" not in data.table("shop.orders").columns
    assert all(r["metadata"].startswith("{") for r in orders)


def test_postgres_types_are_honoured() -> None:
    data = generate(store(), rows=200)
    for row in records(data, "public.customers"):
        assert len(row["email"]) <= 40
        assert row["country"] is None or len(row["country"]) <= 2
        assert row["signup_at"].tzinfo is not None
        assert row["deleted_at"] is None or row["deleted_at"].tzinfo is None
    orders = records(data, "public.orders")
    for row in orders:
        assert row["status"] in ENUMS["order_status"]
        assert Decimal(0) < row["amount"] <= Decimal("9999.99")
        assert row["created_at"].tzinfo is None
        assert row["created_at"].microsecond % 1000 == 0
        assert row["notes"] is None or isinstance(row["notes"], dict)
        assert isinstance(row["labels"], list)
        assert type(row["placed_on"]) is date
        assert isinstance(row["shipped"], bool)
        assert row["pickup"] is None or isinstance(row["pickup"], time)
        # A type mock data cannot make is left NULL where it may be.
        assert row["delivery_window"] is None
    assert any("delivery_window (tstzrange) is left NULL" in n for n in data.notes)


def test_a_type_without_values_is_left_to_its_default_or_refused() -> None:
    with_default = table(
        "t",
        col("id", "integer"),
        col("span", "int4range", default="'[1,2)'"),
        pk=["id"],
        kind="table",
    )
    catalog = Catalog(
        dialect=Dialect.POSTGRES, schemas=[Schema(name="public", tables=[with_default])]
    )
    assert generate(catalog).table("public.t").columns == ("id",)
    required = table("t", col("id", "integer"), col("span", "int4range"), pk=["id"], kind="table")
    catalog = Catalog(dialect=Dialect.POSTGRES, schemas=[Schema(name="public", tables=[required])])
    with pytest.raises(MockError, match=r"public\.t\.span \(int4range\): cannot generate"):
        generate(catalog)


# -- determinism ----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_rows_and_another_seed_others() -> None:
    assert generate(shop(), seed=3).tables == generate(shop(), seed=3).tables
    assert generate(shop(), seed=3).tables != generate(shop(), seed=4).tables


def test_a_table_does_not_change_with_the_other_tables_chosen() -> None:
    alone = generate(shop(), rows=50, tables=["products"])
    together = generate(shop(), rows=50)
    assert alone.table("shop.products") == together.table("shop.products")


# -- choosing tables ------------------------------------------------------------------------------


def test_an_unknown_table_is_named_with_the_tables_there_are() -> None:
    with pytest.raises(UnknownTableError, match="unknown table 'nope'") as e:
        generate(shop(), tables=["nope"])
    assert "shop.customers" in str(e.value)


def test_a_view_is_refused() -> None:
    with pytest.raises(MockError, match=r"shop\.big_orders is a View"):
        generate(shop(), tables=["big_orders"])


def test_a_distributed_table_is_filled_only_when_named() -> None:
    local = table("events_local", col("id", "UInt64"), pk=["id"], kind="ReplicatedMergeTree")
    front = table("events", col("id", "UInt64"), kind="Distributed")
    catalog = Catalog(dialect=Dialect.CLICKHOUSE, schemas=[Schema(name="d", tables=[local, front])])
    assert mock.resolve_tables(catalog, None) == ["d.events_local"]
    assert mock.resolve_tables(catalog, ["events"]) == ["d.events"]


def test_a_bare_name_prefers_the_default_schema_and_is_otherwise_ambiguous() -> None:
    t = table("events", col("id", "UInt64"), pk=["id"])
    catalog = Catalog(
        dialect=Dialect.CLICKHOUSE,
        database="b",
        schemas=[Schema(name="a", tables=[t]), Schema(name="b", tables=[t])],
    )
    assert mock.resolve_tables(catalog, ["events"]) == ["b.events"]
    assert mock.resolve_tables(catalog, ["a.events"]) == ["a.events"]
    with pytest.raises(UnknownTableError, match="ambiguous"):
        mock.resolve_tables(catalog.model_copy(update={"database": "c"}), ["events"])


def test_row_counts_per_table() -> None:
    data = generate(shop(), rows={"customers": 5, "shop.orders": 12})
    assert {t.table: len(t.rows) for t in data.tables} == {"customers": 5, "orders": 12}
    with pytest.raises(MockError, match=r"no row count given for shop\.products"):
        generate(shop(), rows={"customers": 5}, tables=["customers", "products"])


def test_needed_state_asks_for_key_maxima_and_the_keys_of_parents_not_filled() -> None:
    queries = {q.qualified: q for q in mock.needed_state(shop(), ["orders", "order_items"])}
    assert queries["shop.orders"].max_of == ("id",)
    assert queries["shop.customers"].values_of == (("id",),)
    assert queries["shop.products"].values_of == (("sku",),)
    assert "shop.customers" not in {q.qualified for q in mock.needed_state(shop(), ["products"])}


# -- names and types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("email", "email"),
        ("contactEmail", "email"),
        ("first_name", "first_name"),
        ("created_at", "created"),
        ("updated_at", "after"),
        ("shipped_at", "after"),
        ("deleted_at", "rare_after"),
        ("expires_at", "future"),
        ("ts", "event_time"),
        ("visited_on", "event_time"),
        ("unit_price", "money"),
        ("order_status", "category:status"),
        ("event_type", "category:kind"),
        ("is_active", "true_mostly"),
        ("is_deleted", "false_mostly"),
        ("has_coupon", "bool"),
        ("session_id", "identifier"),
        ("product_name", "name"),
        ("colour", "color"),
        ("frobnication", None),
    ],
)
def test_column_roles(name: str, role: str | None) -> None:
    assert mock.column_role(name) == role


@pytest.mark.parametrize(
    ("spelling", "dialect", "kind", "facts"),
    [
        ("UInt8", Dialect.CLICKHOUSE, Kind.INT, {"low": 0, "high": 255}),
        ("Int16", Dialect.CLICKHOUSE, Kind.INT, {"low": -32768, "high": 32767}),
        (
            "Nullable(Decimal(10, 2))",
            Dialect.CLICKHOUSE,
            Kind.DECIMAL,
            {"precision": 10, "scale": 2},
        ),
        ("Decimal64(4)", Dialect.CLICKHOUSE, Kind.DECIMAL, {"precision": 18, "scale": 4}),
        ("LowCardinality(Nullable(String))", Dialect.CLICKHOUSE, Kind.STRING, {}),
        ("FixedString(3)", Dialect.CLICKHOUSE, Kind.STRING, {"length": 3, "fixed": True}),
        ("DateTime('Europe/Amsterdam')", Dialect.CLICKHOUSE, Kind.DATETIME, {"aware": True}),
        ("DateTime64(6, 'UTC')", Dialect.CLICKHOUSE, Kind.DATETIME, {"scale": 6}),
        ("Date", Dialect.CLICKHOUSE, Kind.DATE, {"earliest": date(1970, 1, 1)}),
        ("Enum16('a' = 1, 'b\\\\c' = 2)", Dialect.CLICKHOUSE, Kind.ENUM, {"labels": ("a", "b\\c")}),
        ("Array(Nullable(UInt32))", Dialect.CLICKHOUSE, Kind.ARRAY, {}),
        ("Map(String, UInt64)", Dialect.CLICKHOUSE, Kind.UNSUPPORTED, {}),
        ("Array(Array(String))", Dialect.CLICKHOUSE, Kind.UNSUPPORTED, {}),
        ("numeric(8,3)", Dialect.POSTGRES, Kind.DECIMAL, {"precision": 8, "scale": 3}),
        ("numeric", Dialect.POSTGRES, Kind.DECIMAL, {"precision": 12, "scale": 2}),
        ("character varying(80)", Dialect.POSTGRES, Kind.STRING, {"length": 80}),
        ("character(2)", Dialect.POSTGRES, Kind.STRING, {"length": 2}),
        (
            "timestamp(0) with time zone",
            Dialect.POSTGRES,
            Kind.DATETIME,
            {"aware": True, "scale": 0},
        ),
        (
            "timestamp without time zone",
            Dialect.POSTGRES,
            Kind.DATETIME,
            {"aware": False, "scale": 6},
        ),
        ("jsonb", Dialect.POSTGRES, Kind.JSON, {}),
        ("integer[]", Dialect.POSTGRES, Kind.ARRAY, {}),
        ("order_status", Dialect.POSTGRES, Kind.ENUM, {"labels": ("pending", "paid", "shipped")}),
        ("tsvector", Dialect.POSTGRES, Kind.UNSUPPORTED, {}),
    ],
)
def test_types(spelling: str, dialect: Dialect, kind: Kind, facts: dict[str, Any]) -> None:
    parsed = mock.parse_type(spelling, dialect, ENUMS)
    assert parsed.kind is kind
    for name, value in facts.items():
        assert getattr(parsed, name) == value


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), rows=st.integers(1, 60))
def test_any_seed_keeps_keys_unique_and_references_valid(seed: int, rows: int) -> None:
    data = generate(shop(), rows=rows, seed=seed)
    assert generate(shop(), rows=rows, seed=seed).tables == data.tables
    ids = column(data, "shop.customers", "id")
    assert len(set(ids)) == rows
    assert set(column(data, "shop.orders", "customer_id")) <= set(ids)
    assert set(column(data, "shop.order_items", "sku")) <= set(column(data, "shop.products", "sku"))
    for row in records(data, "shop.orders"):
        assert row["updated_at"] >= row["created_at"]


_INTS = st.sampled_from([f"{u}Int{b}" for u in ("", "U") for b in (8, 16, 32, 64, 128, 256)])
_DECIMALS = st.integers(1, 40).flatmap(lambda p: st.tuples(st.just(p), st.integers(0, p)))


@settings(max_examples=60, deadline=None)
@given(
    int_type=_INTS,
    decimal=_DECIMALS,
    fixed=st.integers(1, 8),
    name=st.sampled_from(["price", "quantity", "age", "score", "year", "value", "created_at"]),
    nullable=st.booleans(),
)
def test_values_fit_any_numeric_type(
    int_type: str, decimal: tuple[int, int], fixed: int, name: str, nullable: bool
) -> None:
    precision, scale = decimal
    wrap = "Nullable({})" if nullable else "{}"
    t = table(
        "facts",
        col("id", "UInt64"),
        col(name, wrap.format(int_type), nullable=nullable),
        col(f"{name}_d", wrap.format(f"Decimal({precision}, {scale})"), nullable=nullable),
        col("code", f"FixedString({fixed})"),
        pk=["id"],
    )
    catalog = Catalog(dialect=Dialect.CLICKHOUSE, schemas=[Schema(name="d", tables=[t])])
    data = generate(catalog, rows=30)
    ints = mock.parse_type(int_type, Dialect.CLICKHOUSE)
    for row in records(data, "d.facts"):
        number, amount = row[name], row[f"{name}_d"]
        if number is not None:
            assert ints.low <= number <= ints.high
        if amount is not None:
            assert amount.as_tuple().exponent == -scale
            assert 0 <= amount < Decimal(10) ** (precision - scale)
        assert len(row["code"].encode()) <= fixed
        if not nullable:
            assert number is not None
            assert amount is not None


def test_every_value_has_a_json_form() -> None:
    data = generate(store(), rows=20)
    for t in data.tables:
        for row in t.rows:
            for value in row:
                shown = jsonable(value)
                assert shown is None or isinstance(shown, bool | int | float | str | list | dict)
