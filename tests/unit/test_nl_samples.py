"""The sample schemas of the question set: both dialects' DDL agree, the data is the same on
every run, and the questions are well formed."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from tests.data.nl.generate import generate
from tests.data.nl.samples import HOLDOUT, SCHEMAS, catalog_snapshot, ddl, questions


@pytest.mark.parametrize("schema", SCHEMAS)
def test_postgres_ddl_declares_the_clickhouse_tables(schema: str) -> None:
    tables: dict[str, list[str]] = {}
    for statement in ddl(schema, "postgres"):
        tree = sqlglot.parse_one(statement, read="postgres")
        if isinstance(tree, exp.Create) and tree.kind == "TABLE":
            assert isinstance(tree.this, exp.Schema)
            name = tree.this.this.name
            tables[name] = [c.name for c in tree.this.expressions if isinstance(c, exp.ColumnDef)]
    (introspected,) = catalog_snapshot(schema).schemas
    assert tables == {t.name: [c.name for c in t.columns] for t in introspected.tables}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_data_is_the_same_on_every_run(schema: str) -> None:
    first, second = generate(schema), generate(schema)
    assert first == second
    assert generate(schema, seed=1) != first
    for table, rows in first.items():
        assert rows.rows, table
        assert all(len(row) == len(rows.columns) for row in rows.rows), table


def test_questions_name_their_database_and_ask_once() -> None:
    asked = questions() + questions(HOLDOUT)
    assert {q.db for q in asked} == set(SCHEMAS)
    assert len({q.question.lower() for q in asked}) == len(asked)
    for question in asked:
        if question.sql is not None:
            assert sqlglot.parse_one(question.sql, read="clickhouse") is not None
        else:
            assert question.tags == ["unanswerable"]
