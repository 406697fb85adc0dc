"""What the parser needs to know about tables and columns beyond their names: the kind of a
column's type, a table's identity key, the column that names its rows, its time column, and
the column a bare number is compared with.

Pure functions of the catalog's models; both dialects' type spellings are understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from duet_agents.query.catalog import Catalog, Column, Join, Table
from duet_agents.query.nl.vocabulary import (
    ADDITIVE_WORDS,
    DURATION_WORDS,
    LABEL_NAMES,
    PRICE_WORDS,
)
from duet_agents.query.nl.words import phrase_stems, singular


@dataclass(frozen=True, order=True)
class TableRef:
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True, order=True)
class ColumnRef:
    schema: str
    table: str
    column: str

    @property
    def table_ref(self) -> TableRef:
        return TableRef(self.schema, self.table)

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


_WRAPPERS = re.compile(r"^(nullable|lowcardinality)\((.*)\)$", re.IGNORECASE)
_TEXT = re.compile(
    r"^(string|fixedstring\(\d+\)|enum\d*\(.*\)|text|citext|name|bpchar|uuid|"
    r"(character varying|varchar|character|char)(\(\d+\))?)$"
)
_NUMERIC = re.compile(
    r"^(u?int\d*|float\d*|decimal\d*(\(.*\))?|numeric(\(.*\))?|smallint|integer|int|bigint|real"
    r"|double precision|double|money|(small|big)?serial)$"
)
_TEMPORAL = re.compile(
    r"^(date|date32|datetime(\(.*\))?|datetime64(\(.*\))?|timestamp(\(\d\))?"
    r"( with(out)? time zone)?|timestamptz)$"
)
_DATE_ONLY = re.compile(r"^(date|date32)$")


def base_type(type_name: str) -> str:
    """The type without Nullable/LowCardinality wrappers, lower-cased."""
    t = type_name.strip()
    while match := _WRAPPERS.match(t):
        t = match.group(2).strip()
    return t.lower()


def is_text(type_name: str) -> bool:
    return bool(_TEXT.match(base_type(type_name)))


def is_numeric(type_name: str) -> bool:
    return bool(_NUMERIC.match(base_type(type_name)))


def is_temporal(type_name: str) -> bool:
    return bool(_TEMPORAL.match(base_type(type_name)))


def is_date_only(type_name: str) -> bool:
    return bool(_DATE_ONLY.match(base_type(type_name)))


class SchemaView:
    """A catalog indexed for the parser: tables by reference, joins by table."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.tables: dict[TableRef, Table] = {
            TableRef(s.name, t.name): t for s in catalog.schemas for t in s.tables
        }
        self.joins: list[Join] = list(catalog.joins)
        self._join_columns: set[ColumnRef] = set()
        for j in self.joins:
            self._join_columns |= {
                ColumnRef(j.from_schema, j.from_table, c) for c in j.from_columns
            }
            self._join_columns |= {ColumnRef(j.to_schema, j.to_table, c) for c in j.to_columns}

    def table(self, ref: TableRef) -> Table:
        return self.tables[ref]

    def column(self, ref: ColumnRef) -> Column:
        column = self.tables[ref.table_ref].column(ref.column)
        if column is None:
            raise KeyError(str(ref))
        return column

    def is_key(self, ref: ColumnRef) -> bool:
        """An identity or a reference: counting or summing it means nothing."""
        name = ref.column.lower()
        return (
            ref in self._join_columns
            or name == "id"
            or name.endswith("_id")
            or ref == self.key(ref.table_ref)
        )

    def key(self, ref: TableRef) -> ColumnRef | None:
        """The column that identifies a row: a one-column primary key, else `id`, else
        `<singular>_id`."""
        table = self.tables[ref]
        names = [c.name for c in table.columns]
        if len(table.primary_key) == 1 and table.primary_key[0] in names:
            pk = table.primary_key[0]
            # ClickHouse's PRIMARY KEY customer_id on orders names another table's key.
            if not pk.lower().endswith("_id") or pk.lower() == f"{singular(ref.table.lower())}_id":
                return ColumnRef(ref.schema, ref.table, pk)
        lowered = {n.lower(): n for n in names}
        for candidate in ("id", f"{singular(ref.table.lower())}_id", f"{ref.table.lower()}_id"):
            if candidate in lowered:
                return ColumnRef(ref.schema, ref.table, lowered[candidate])
        return None

    def label(self, ref: TableRef) -> ColumnRef | None:
        """The text column that names a row for a reader (`name`, `title`, `email`...)."""
        table = self.tables[ref]
        lowered = {c.name.lower(): c for c in table.columns if is_text(c.type)}
        for wanted in LABEL_NAMES:
            if wanted in lowered:
                return ColumnRef(ref.schema, ref.table, lowered[wanted].name)
        named = [c for n, c in lowered.items() if n.endswith("_name")]
        return ColumnRef(ref.schema, ref.table, named[0].name) if len(named) == 1 else None

    def time_columns(self, ref: TableRef) -> list[ColumnRef]:
        return [
            ColumnRef(ref.schema, ref.table, c.name)
            for c in self.tables[ref].columns
            if is_temporal(c.type)
        ]

    def time_column(self, ref: TableRef) -> ColumnRef | None:
        """The column that dates a row: the first temporal column of the sorting or primary
        key (how ClickHouse tables are usually laid out), else the only temporal column, else
        one named like a creation time. None when there is none or no way to choose."""
        table = self.tables[ref]
        temporal = self.time_columns(ref)
        names = {c.column for c in temporal}
        for expression in [*table.sorting_key, *table.primary_key]:
            if expression in names:
                return ColumnRef(ref.schema, ref.table, expression)
        if len(temporal) == 1:
            return temporal[0]
        for preferred in ("created_at", "created", "occurred_at", "timestamp", "ts", "date"):
            for c in temporal:
                if c.column.lower() == preferred:
                    return c
        return None

    def measures(self, ref: TableRef) -> list[ColumnRef]:
        """Numeric columns that are not keys."""
        return [
            ColumnRef(ref.schema, ref.table, c.name)
            for c in self.tables[ref].columns
            if is_numeric(c.type) and not self.is_key(ColumnRef(ref.schema, ref.table, c.name))
        ]

    def is_additive(self, ref: ColumnRef) -> bool:
        """Whether a sum of the column means something (an amount, a quantity), by its name
        and comment."""
        column = self.column(ref)
        words = set(phrase_stems(column.name)) | set(phrase_stems(column.comment or ""))
        return bool(words & ADDITIVE_WORDS)

    def default_measure(self, ref: TableRef) -> ColumnRef | None:
        """The one additive measure of a table ("orders over 500" compares its amount), or
        None when there is none or more than one."""
        additive = [m for m in self.measures(ref) if self.is_additive(m)]
        return additive[0] if len(additive) == 1 else None

    def compared_measure(self, ref: TableRef) -> ColumnRef | None:
        """The column a bare number compares ("orders over 500"): the table's one additive
        measure, else its one measure."""
        column = self.default_measure(ref)
        if column is not None:
            return column
        measures = self.measures(ref)
        return measures[0] if len(measures) == 1 else None

    def ordering_column(self, ref: TableRef, kind: str | None) -> ColumnRef | None:
        """The column an ordering adjective orders by: "recent" the time column, "expensive"
        the price, "longest" the duration."""
        if kind == "time":
            return self.time_column(ref)
        words = PRICE_WORDS if kind == "price" else DURATION_WORDS
        found = self.columns_like(ref, words)
        if len(found) == 1:
            return found[0]
        return self.default_measure(ref) if kind == "price" else None

    def columns_like(self, ref: TableRef, word_stems: frozenset[str]) -> list[ColumnRef]:
        """Numeric columns of a table whose name has one of `word_stems`."""
        return [
            m for m in self.measures(ref) if set(phrase_stems(self.column(m).name)) & word_stems
        ]
