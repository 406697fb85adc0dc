"""The schema sent with a question: the agent's catalog, ranked for the question, within bounds.

Tables are scored with the built-in engine's lexicon (nl/lexicon.py: names, name parts,
comments, synonyms and known values, each with how sure a match is): every phrase of the
question adds its best match per table, times its length. A table joined to a scored one
gets a share of that score, so the path between two named tables comes along. Tables then go
in best first while the document stays under `max_schema_chars` and `max_tables`; a schema
that fits is sent whole, only in that order, since a question's words do not always name
what it needs. The first table always goes in, its columns cut if it alone is too large.

The catalog is the one the agent may show (the table filter already applied), so nothing
hidden can reach the model. Comments and values come from the database: the prompt treats
them as data like the question.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from duet_agents.query.catalog import Catalog, Table
from duet_agents.query.firewall import Dialect
from duet_agents.query.llm.models import AskPolicy
from duet_agents.query.nl.lexicon import MAX_PHRASE, build_lexicon, table_of
from duet_agents.query.nl.schema import TableRef
from duet_agents.query.nl.values import ValueIndex
from duet_agents.query.nl.vocabulary import STOPWORDS
from duet_agents.query.nl.words import tokenize

# The share of a table's score that each table joined to it receives.
JOIN_SHARE = 0.25
# Said in a table whose columns did not all fit.
_CUT_NOTE = "columns cut to fit: ask about fewer at once"


@dataclass(frozen=True)
class SchemaContext:
    """The schema as the model sees it: a JSON-able document, and which tables it holds."""

    document: dict[str, Any]
    tables: list[str]
    omitted: int


class SchemaIndex:
    """A catalog prepared for many questions: its lexicon is built once."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        values: ValueIndex | None = None,
        default_schema: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.dialect = Dialect(catalog.dialect)
        self.values = values or ValueIndex()
        self.default_schema = default_schema or catalog.database or _first_schema(catalog)
        self.lexicon = build_lexicon(catalog, self.values)

    def relevance(self, question: str) -> dict[TableRef, float]:
        """How strongly `question` calls each table (tables it does not call are absent)."""
        tokens = tokenize(question)
        direct: dict[TableRef, float] = defaultdict(float)
        for i in range(len(tokens)):
            for n in range(1, MAX_PHRASE + 1):
                phrase = tokens[i : i + n]
                if len(phrase) < n:
                    break
                if n == 1 and phrase[0].text in STOPWORDS:
                    continue
                best: dict[TableRef, float] = {}
                for candidate in self.lexicon.match(phrase):
                    table = table_of(candidate.element)
                    best[table] = max(best.get(table, 0.0), candidate.score * n)
                for table, score in best.items():
                    direct[table] += score
        scores = dict(direct)
        for join in self.catalog.joins:
            many = TableRef(join.from_schema, join.from_table)
            one = TableRef(join.to_schema, join.to_table)
            for a, b in ((many, one), (one, many)):
                if direct.get(a):
                    scores[b] = scores.get(b, 0.0) + JOIN_SHARE * direct[a]
        return scores

    def context(self, question: str, policy: AskPolicy) -> SchemaContext:
        """The schema for `question`, best tables first, within the policy's bounds."""
        scores = self.relevance(question)
        ranked = sorted(
            (
                (TableRef(schema.name, table.name), table)
                for schema in self.catalog.schemas
                for table in schema.tables
            ),
            key=lambda item: (-scores.get(item[0], 0.0), item[0]),
        )
        document: dict[str, Any] = {
            "dialect": str(self.dialect),
            "default_schema": self.default_schema,
            "tables": [],
            "joins": [],
        }
        kept: list[TableRef] = []
        used = _size(document)
        for ref, table in ranked:
            if len(kept) >= policy.max_tables:
                break
            entry = self._table(ref, table, policy)
            size = _size(entry) + 1
            if used + size > policy.max_schema_chars:
                if kept:
                    continue  # a smaller table further down may still fit
                entry = _cut(entry, policy.max_schema_chars - used)
                size = _size(entry) + 1
            document["tables"].append(entry)
            kept.append(ref)
            used += size
        chosen = set(kept)
        for join in self.catalog.joins:
            if (
                TableRef(join.from_schema, join.from_table) in chosen
                and TableRef(join.to_schema, join.to_table) in chosen
            ):
                line = _join(join.from_schema, join.from_table, join.from_columns)
                line += " = " + _join(join.to_schema, join.to_table, join.to_columns)
                line += " (inferred)" if join.inferred else " (declared)"
                if used + len(line) + 3 <= policy.max_schema_chars:
                    document["joins"].append(line)
                    used += len(line) + 3
        total = sum(len(s.tables) for s in self.catalog.schemas)
        if len(kept) < total:
            document["omitted_tables"] = total - len(kept)
        return SchemaContext(
            document=document, tables=[str(ref) for ref in kept], omitted=total - len(kept)
        )

    def _table(self, ref: TableRef, table: Table, policy: AskPolicy) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": str(ref)}
        if table.comment:
            entry["comment"] = table.comment
        if table.row_count is not None:
            entry["rows"] = table.row_count
        if table.primary_key:
            entry["primary_key"] = table.primary_key
        columns = []
        for column in table.columns:
            item: dict[str, Any] = {"name": column.name, "type": column.type}
            if column.comment:
                item["comment"] = column.comment
            values = self.values.of(ref.schema, ref.table, column.name)
            if values and policy.max_values:
                item["values"] = values[: policy.max_values]
                if len(values) > policy.max_values:
                    item["more_values"] = len(values) - policy.max_values
            columns.append(item)
        entry["columns"] = columns
        return entry


def _cut(entry: dict[str, Any], room: int) -> dict[str, Any]:
    """`entry` with as many of its first columns as fit in `room` characters (at least one)."""
    base = {key: value for key, value in entry.items() if key != "columns"}
    base["note"] = _CUT_NOTE
    columns: list[dict[str, Any]] = []
    for column in entry["columns"]:
        if columns and _size({**base, "columns": [*columns, column]}) > room:
            break
        columns.append(column)
    return {**base, "columns": columns}


def _join(schema: str, table: str, columns: list[str]) -> str:
    return ", ".join(f"{schema}.{table}.{c}" for c in columns)


def _size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")))


def _first_schema(catalog: Catalog) -> str:
    return catalog.schemas[0].name if catalog.schemas else "default"
