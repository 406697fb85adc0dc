"""Schema docs from a catalog: Markdown that survives odd names and comments, and a Mermaid
ERD whose syntax holds for any type name."""

from __future__ import annotations

import re

from duet_agents.query.catalog import Catalog, Column, ForeignKey, Join, Schema, Table
from duet_agents.query.docs import render_erd, render_markdown

CATALOG = Catalog(
    dialect="postgres",
    database="shop",
    schemas=[
        Schema(
            name="public",
            tables=[
                Table(
                    name="customers",
                    kind="table",
                    comment="People | who buy",
                    row_count=1200,
                    row_count_estimated=True,
                    primary_key=["id"],
                    columns=[
                        Column(name="id", type="bigint", nullable=False),
                        Column(name="country", type="text", nullable=True, comment="ISO\ncode"),
                    ],
                ),
                Table(
                    name="orders",
                    kind="table",
                    primary_key=["id"],
                    columns=[
                        Column(name="id", type="bigint", nullable=False),
                        Column(name="customer_id", type="bigint", nullable=False),
                        Column(name="total", type="numeric(10, 2)", nullable=False),
                    ],
                    foreign_keys=[
                        ForeignKey(
                            columns=["customer_id"],
                            ref_schema="public",
                            ref_table="customers",
                            ref_columns=["id"],
                        )
                    ],
                ),
            ],
        ),
        Schema(name="empty"),
    ],
    joins=[
        Join(
            from_schema="public",
            from_table="orders",
            from_columns=["customer_id"],
            to_schema="public",
            to_table="customers",
            to_columns=["id"],
            inferred=False,
            reason="declared",
        )
    ],
)


def test_markdown_documents_every_table_and_column() -> None:
    text = render_markdown(CATALOG, samples={("public", "customers", "country"): ["DE", "NL"]})
    assert text.startswith("# Schema of shop\n")
    assert "2 tables in 1 schema (postgres); 1 relationship, 0 of them inferred" in text
    assert "### public.customers" in text
    assert "People \\| who buy; table; about 1,200 rows" in text
    assert "| `country` | `text` | yes |  | ISO code | `DE`, `NL` |" in text
    assert "| `customer_id` | `bigint` |  | foreign |  |  |" in text
    assert "declared foreign key" in text
    assert "## empty" not in text, "a schema with no tables says nothing"


def test_the_erd_is_valid_mermaid_for_any_type_name() -> None:
    erd = render_erd(CATALOG)
    assert erd.splitlines()[0] == "erDiagram"
    assert "        numeric(10-2) total" in erd
    assert "        bigint customer_id FK" in erd
    assert 'public__customers ||--o{ public__orders : "customer_id"' in erd
    attribute = re.compile(
        r"^        [A-Za-z][A-Za-z0-9_()\[\]-]* [A-Za-z0-9_]+( PK| FK| PK, FK)?$"
    )
    for line in erd.splitlines():
        if line.startswith("        "):
            assert attribute.match(line), line
