"""The built-in engine end to end, without a database: questions over the sample schemas'
catalogs (snapshots of their introspection) to SQL in both dialects, or to refusals."""

from __future__ import annotations

from datetime import date

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from duet_agents.query.catalog import Catalog, Column, Schema, Table
from duet_agents.query.firewall import Dialect, check
from duet_agents.query.nl import Answered, Refused, Translation, Translator
from duet_agents.query.nl.vocabulary import AGGREGATES, GROUP_WORDS, SUPERLATIVES
from tests.data.nl.samples import catalog_snapshot, values_snapshot

TODAY = date(2025, 6, 15)


def postgres(catalog: Catalog) -> Catalog:
    """The same schema as PostgreSQL would show it: in schema `public` of its database."""
    data = catalog.model_dump()
    old = catalog.schemas[0].name
    data["dialect"] = "postgres"
    data["schemas"][0]["name"] = "public"
    for join in data["joins"]:
        join["from_schema"] = join["to_schema"] = "public"
    data["database"] = old
    return Catalog.model_validate(data)


def translator(schema: str, dialect: Dialect = Dialect.CLICKHOUSE) -> Translator:
    catalog = catalog_snapshot(schema)
    values = values_snapshot(schema)
    if dialect is Dialect.POSTGRES:
        catalog = postgres(catalog)
        values = values.model_copy(
            update={
                "columns": [c.model_copy(update={"schema_name": "public"}) for c in values.columns]
            }
        )
    return Translator(catalog, values=values)


TRANSLATORS = {(s, d): translator(s, d) for s in ("shop", "web", "support") for d in Dialect}


def sql(question: str, schema: str = "shop", dialect: Dialect = Dialect.CLICKHOUSE) -> str:
    answer = TRANSLATORS[schema, dialect].answer(question, today=TODAY)
    assert isinstance(answer, Answered), answer
    return answer.sql


def refusal(question: str, schema: str = "shop") -> Refused:
    answer = TRANSLATORS[schema, Dialect.CLICKHOUSE].answer(question, today=TODAY)
    assert isinstance(answer, Refused), answer
    return answer


# -- shapes -----------------------------------------------------------------------------------


def test_count_with_a_date_range() -> None:
    assert sql("How many orders were placed in 2024?") == (
        "SELECT COUNT(*) AS orders_count FROM orders "
        "WHERE order_date >= '2024-01-01' AND order_date < '2025-01-01'"
    )


def test_a_value_found_in_the_data_filters_through_a_join() -> None:
    assert sql("How many orders came from Germany?") == (
        "SELECT COUNT(*) AS orders_count FROM orders "
        "INNER JOIN customers ON orders.customer_id = customers.id "
        "WHERE customers.country = 'Germany'"
    )


def test_several_values_of_one_column_are_alternatives() -> None:
    assert "customers.country IN ('Germany', 'France')" in sql(
        "How many orders came from Germany or France?"
    )


def test_group_by_a_period_in_both_dialects() -> None:
    question = "Average order value per month in 2024"
    assert sql(question) == (
        "SELECT toStartOfMonth(order_date) AS month, AVG(total_amount) AS avg_total_amount "
        "FROM orders WHERE order_date >= '2024-01-01' AND order_date < '2025-01-01' "
        "GROUP BY month ORDER BY month"
    )
    assert sql(question, dialect=Dialect.POSTGRES) == (
        "SELECT CAST(DATE_TRUNC('month', order_date) AS DATE) AS month, "
        "AVG(total_amount) AS avg_total_amount FROM orders "
        "WHERE order_date >= '2024-01-01' AND order_date < '2025-01-01' "
        "GROUP BY CAST(DATE_TRUNC('month', order_date) AS DATE) ORDER BY month"
    )


def test_top_n_groups_by_the_entity_and_orders_by_the_measure() -> None:
    assert sql("Top 5 customers by revenue") == (
        "SELECT customers.name, SUM(orders.total_amount) AS sum_total_amount FROM orders "
        "INNER JOIN customers ON orders.customer_id = customers.id "
        "GROUP BY customers.id, customers.name "
        "ORDER BY sum_total_amount DESC, customers.name LIMIT 5"
    )


def test_a_singular_noun_asks_for_one_row_a_plural_for_ten() -> None:
    assert sql("Which customer placed the most orders?").endswith("LIMIT 1")
    assert sql("Which customers placed the most orders?").endswith("LIMIT 10")


def test_superlatives_of_size_order_rows_of_count_group_them() -> None:
    assert sql("List the 5 biggest orders") == (
        "SELECT id, total_amount FROM orders ORDER BY total_amount DESC, id LIMIT 5"
    )
    assert sql("What is the most expensive product?") == (
        "SELECT id, name, price FROM products ORDER BY price DESC, id LIMIT 1"
    )
    assert sql("What is the highest price?") == ("SELECT MAX(price) AS max_price FROM products")


def test_anti_join_leaves_nulls_out_of_not_in() -> None:
    assert sql("Which agents have no tickets?", "support") == (
        "SELECT agents.id, agents.name FROM agents WHERE NOT (agents.id IN "
        "(SELECT tickets.agent_id FROM tickets WHERE NOT (tickets.agent_id IS NULL)))"
    )


def test_anti_join_along_a_path() -> None:
    assert sql("How many products were never ordered?") == (
        "SELECT COUNT(*) AS products_count FROM products WHERE NOT (products.id IN "
        "(SELECT order_items.product_id FROM order_items "
        "INNER JOIN orders ON order_items.order_id = orders.id))"
    )


def test_anti_join_with_its_own_filters() -> None:
    assert sql("Which agents never had an urgent ticket in 2025?", "support") == (
        "SELECT agents.id, agents.name FROM agents WHERE NOT (agents.id IN "
        "(SELECT tickets.agent_id FROM tickets WHERE tickets.priority = 'urgent' "
        "AND tickets.created_at >= '2025-01-01' AND tickets.created_at < '2026-01-01' "
        "AND NOT (tickets.agent_id IS NULL)))"
    )


def test_no_reference_is_missing_or_dangling() -> None:
    assert sql("Which tickets have no agent?", "support") == (
        "SELECT tickets.id, tickets.subject FROM tickets WHERE (tickets.agent_id IS NULL "
        "OR NOT (tickets.agent_id IN (SELECT agents.id FROM agents)))"
    )


def test_negated_values_and_empty_columns() -> None:
    assert sql("How many orders are not completed?") == (
        "SELECT COUNT(*) AS orders_count FROM orders WHERE status <> 'completed'"
    )
    assert sql("How many customers have no email?") == (
        "SELECT COUNT(*) AS customers_count FROM customers WHERE (email IS NULL OR email = '')"
    )


def test_a_filter_beyond_a_one_to_many_join_is_a_semi_join() -> None:
    assert sql("How many orders contain Books?") == (
        "SELECT COUNT(*) AS orders_count FROM orders WHERE orders.id IN "
        "(SELECT order_items.order_id FROM order_items "
        "INNER JOIN products ON order_items.product_id = products.id "
        "WHERE products.category = 'Books')"
    )


def test_a_count_grouped_across_a_one_to_many_join_counts_distinct_rows() -> None:
    assert sql("Number of orders by product category") == (
        "SELECT products.category, COUNT(DISTINCT orders.id) AS orders_count FROM orders "
        "INNER JOIN order_items ON orders.id = order_items.order_id "
        "INNER JOIN products ON order_items.product_id = products.id "
        "GROUP BY products.category ORDER BY orders_count DESC"
    )


def test_rows_listed_by_group_are_counted() -> None:
    assert sql("Which customers per country?") == (
        "SELECT country, COUNT(*) AS customers_count FROM customers GROUP BY country "
        "ORDER BY customers_count DESC"
    )


def test_comparisons_take_the_number_column_beside_them() -> None:
    assert sql("How many sessions lasted longer than 600 seconds?", "web") == (
        "SELECT COUNT(*) AS sessions_count FROM sessions WHERE duration_seconds > 600"
    )
    assert sql("Products with a price below 20") == (
        "SELECT id, name, price FROM products WHERE price < 20"
    )
    # None beside it: the table's one amount.
    assert sql("How many orders over 500?") == (
        "SELECT COUNT(*) AS orders_count FROM orders WHERE total_amount > 500"
    )


def test_relative_dates_follow_today() -> None:
    translator = TRANSLATORS["shop", Dialect.CLICKHOUSE]
    answer = translator.answer("How many orders in the last 7 days?", today=date(2024, 2, 10))
    assert isinstance(answer, Answered)
    assert "order_date >= '2024-02-03' AND order_date < '2024-02-11'" in answer.sql


def test_distinct_count_of_a_referenced_table() -> None:
    assert sql("How many distinct customers placed orders in March 2025?") == (
        "SELECT COUNT(DISTINCT customer_id) AS distinct_customer_id FROM orders "
        "WHERE order_date >= '2025-03-01' AND order_date < '2025-04-01'"
    )


def test_postgres_sql_reads_as_postgres() -> None:
    for question in (
        "Top 5 customers by revenue",
        "Which customers have never placed an order?",
        "Number of page views per day in the last 7 days",
        "Revenue per year",
    ):
        schema = "web" if "page views" in question else "shop"
        text = sql(question, schema, Dialect.POSTGRES)
        assert sqlglot.parse_one(text, read="postgres") is not None
        assert check(text, Dialect.POSTGRES).allowed


def test_tables_outside_the_default_database_are_qualified() -> None:
    catalog = catalog_snapshot("shop").model_copy(update={"database": "default"})
    answer = Translator(catalog, values=values_snapshot("shop")).answer(
        "How many orders came from Germany?", today=TODAY
    )
    assert isinstance(answer, Answered)
    assert answer.sql == (
        "SELECT COUNT(*) AS orders_count FROM shop.orders AS orders "
        "INNER JOIN shop.customers AS customers ON orders.customer_id = customers.id "
        "WHERE customers.country = 'Germany'"
    )


def test_identifiers_that_are_keywords_are_quoted() -> None:
    table = Table(
        name="user",
        kind="table",
        primary_key=["id"],
        columns=[
            Column(name="id", type="integer", nullable=False),
            Column(name="group", type="text", nullable=False),
        ],
    )
    catalog = Catalog(dialect=Dialect.POSTGRES, schemas=[Schema(name="public", tables=[table])])
    answer = Translator(catalog).answer("Number of user rows by group", today=TODAY)
    assert isinstance(answer, Answered)
    assert answer.sql == (
        'SELECT "group", COUNT(*) AS user_count FROM "user" GROUP BY "group" '
        # sqlglot spells out PostgreSQL's NULLS LAST: rankings put unknowns last everywhere.
        "ORDER BY user_count DESC NULLS LAST"
    )


# -- how the reading is told ------------------------------------------------------------------


def test_the_reading_names_links_filters_and_joins() -> None:
    answer = TRANSLATORS["shop", Dialect.CLICKHOUSE].answer(
        "Total revenue from business customers in 2024", today=TODAY
    )
    assert isinstance(answer, Answered)
    reading = answer.reading
    assert reading.tables == ["orders", "customers"]
    assert reading.measures == ["sum of orders.total_amount"]
    assert reading.filters == [
        "customers.segment = 'business'",
        "orders.order_date from 2024-01-01 to 2024-12-31 ('in 2024')",
    ]
    assert "'business' -> value 'business' of customers.segment (value)" in reading.links
    assert reading.joins[0].startswith("orders.customer_id = customers.id (inferred: ")
    assert answer.explanation.startswith("Reads sum of orders.total_amount over orders, customers")


def test_translations_round_trip_as_json() -> None:
    adapter: TypeAdapter[Translation] = TypeAdapter(Translation)
    for question in ("How many customers are there?", "What is the weather in Berlin?"):
        answer = TRANSLATORS["shop", Dialect.CLICKHOUSE].answer(question, today=TODAY)
        assert adapter.validate_json(adapter.dump_json(answer)) == answer


# -- refusals -----------------------------------------------------------------------------------


def test_words_that_link_nowhere_are_named() -> None:
    refused = refusal("What is the profit margin per product?")
    assert refused.unlinked == ["profit", "margin"]
    assert refused.reason == "no table, column or value matches 'profit', 'margin'"


def test_ambiguity_is_refused_with_the_candidates() -> None:
    refused = refusal("How many signups were there per month in 2025?", "web")
    assert refused.ambiguous[0].words == "signups"
    assert refused.ambiguous[0].candidates == [
        "column users.signed_up_at",
        "value 'signup' of events.event_type",
    ]


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        (
            "Total revenue by category",
            "grouping or measuring orders by products would repeat each orders row once per "
            "matching products row",
        ),
        ("Price by category", "does not add up"),
        ("Average number of orders per customer", "an aggregate of an aggregate"),
        ("Who are our best customers?", "could not tell what ranks the rows"),
        ("Which products have never been", "could not tell what 'never' applies to"),
        ("How many orders in 2025-02-30?", "no table, column or value matches '2025'"),
        ("revenue expensive", "could not tell how 'expensive' applies to sum of"),
        ("the 5 most recent orders per channel", "order orders rows and group them as well"),
    ],
)
def test_questions_beyond_the_engine_are_refused(question: str, reason: str) -> None:
    assert reason in refusal(question).reason


# -- properties ---------------------------------------------------------------------------------

SCHEMA_WORDS = """
    orders customers products revenue price country category status cancelled germany never
    without in 2024 last 30 days over 500 which top 5 per month total quantity items name
    between 2024-01-01 and 2024-03-31 not books
"""
WORDS = sorted(
    {w for phrase in [*AGGREGATES, *GROUP_WORDS, *SUPERLATIVES] for w in phrase.split()}
    | set(SCHEMA_WORDS.split())
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=9), st.sampled_from(list(Dialect)))
def test_any_words_give_firewall_clean_sql_or_a_reason(words: list[str], dialect: Dialect) -> None:
    answer = TRANSLATORS["shop", dialect].answer(" ".join(words), today=TODAY)
    if isinstance(answer, Answered):
        assert check(answer.sql, dialect).allowed
        assert sqlglot.parse_one(answer.sql, read=str(dialect)) is not None
    else:
        assert answer.reason
