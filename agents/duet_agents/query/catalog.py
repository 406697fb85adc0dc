"""The schema of a database as the query agent sees it, and the joins between its tables.

Engines fill a `Catalog` by introspection (`Engine.introspect()`); schema docs, the ERD and the
prompts of the NL-to-SQL agent read it, as models or as JSON (`catalog.model_dump_json()`).
A ClickHouse database and a PostgreSQL schema are both a `Schema`: the level that qualifies a
table name in SQL.

Analytics schemas rarely declare foreign keys (ClickHouse has none), so `find_joins` adds the
joins their names imply: `orders.customer_id` -> `customers.id`, `events.session_id` ->
`sessions.session_id`, each marked inferred and saying why, so a reader can weigh it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from duet_agents.query.firewall import Dialect


class Column(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    # The database's own spelling: `integer`, `character varying(80)`, `Nullable(String)`.
    type: str
    nullable: bool
    comment: str | None = None
    # The default expression as the database prints it (ClickHouse: `MATERIALIZED expr` and
    # `ALIAS expr` keep their kind).
    default: str | None = None


class ForeignKey(BaseModel):
    """A declared foreign key: `columns` of this table reference `ref_columns` of another."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    columns: list[str]
    ref_schema: str
    ref_table: str
    ref_columns: list[str]


class Table(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    # PostgreSQL: table, partitioned table, view, materialized view, foreign table.
    # ClickHouse: the table engine (MergeTree, ReplacingMergeTree, View, Distributed...).
    kind: str
    comment: str | None = None
    # None when unknown (a view, a table never analysed); an estimate when `row_count_estimated`
    # (PostgreSQL's pg_class.reltuples for tables too large to count).
    row_count: int | None = None
    row_count_estimated: bool = False
    primary_key: list[str] = []
    # ClickHouse's ORDER BY expressions; empty elsewhere.
    sorting_key: list[str] = []
    columns: list[Column] = []
    foreign_keys: list[ForeignKey] = []

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


class Schema(BaseModel):
    """A PostgreSQL schema or a ClickHouse database."""

    model_config = ConfigDict(frozen=True)

    name: str
    comment: str | None = None
    tables: list[Table] = []


class Join(BaseModel):
    """`from_table.from_columns` = `to_table.to_columns`: the many side first, then the table
    whose key it references."""

    model_config = ConfigDict(frozen=True)

    from_schema: str
    from_table: str
    from_columns: list[str]
    to_schema: str
    to_table: str
    to_columns: list[str]
    inferred: bool
    reason: str


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    dialect: Dialect
    # The connection's database: PostgreSQL's current database, ClickHouse's default database
    # (which unqualified table names resolve in).
    database: str | None = None
    schemas: list[Schema] = []
    joins: list[Join] = []

    def table(self, schema: str, name: str) -> Table | None:
        for s in self.schemas:
            if s.name == schema:
                return next((t for t in s.tables if t.name == name), None)
        return None


def find_joins(catalog: Catalog) -> list[Join]:
    """The declared foreign keys as joins, then the joins inferred for columns that no foreign
    key covers, in a stable order."""
    return declared_joins(catalog) + infer_joins(catalog)


def declared_joins(catalog: Catalog) -> list[Join]:
    return [
        Join(
            from_schema=schema.name,
            from_table=table.name,
            from_columns=fk.columns,
            to_schema=fk.ref_schema,
            to_table=fk.ref_table,
            to_columns=fk.ref_columns,
            inferred=False,
            reason=f"declared foreign key {fk.name}" if fk.name else "declared foreign key",
        )
        for schema in catalog.schemas
        for table in schema.tables
        for fk in table.foreign_keys
    ]


# -- inference ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """A table's identity column: what a reference to the table would hold."""

    schema: str
    table: Table
    column: Column
    why: str


def infer_joins(catalog: Catalog) -> list[Join]:
    """Joins implied by names and types, for columns outside any declared foreign key.

    A column `<stem>_id` (or `<stem>Id`) references the table named `<stem>` or its plural
    when that table has an identity key (its one-column primary key, else a column `id`, else
    `<singular>_id`); a column with the name of another table's identity key (other than a bare
    `id`) references that table. The types must be of one family (integers, strings, UUIDs,
    decimals, else the same type). A table in the column's own schema wins over others; a
    column that still points at several tables is left out rather than guessed.
    """
    keys = [key for schema in catalog.schemas for t in schema.tables if (key := _key(schema, t))]
    joins: list[Join] = []
    seen: set[tuple[frozenset[tuple[str, str]], str]] = set()
    for schema in catalog.schemas:
        for table in schema.tables:
            declared = {c for fk in table.foreign_keys for c in fk.columns}
            for column in table.columns:
                if column.name in declared:
                    continue
                join = _infer(schema.name, table, column, keys)
                if join is None:
                    continue
                # Two tables keyed by one column name (a one-to-one) are joined once.
                ends = frozenset(
                    {(join.from_schema, join.from_table), (join.to_schema, join.to_table)}
                )
                if (ends, column.name.lower()) not in seen:
                    seen.add((ends, column.name.lower()))
                    joins.append(join)
    return joins


def _infer(schema: str, table: Table, column: Column, keys: list[_Key]) -> Join | None:
    name = column.name.lower()
    stem = _reference_stem(column.name)
    if stem is not None and _names_table(stem, table.name):
        # users.user_id is the users table's own key, not a reference.
        return None
    family = _type_family(column.type)
    by_stem: list[tuple[_Key, str]] = []
    same_name: list[tuple[_Key, str]] = []
    for key in keys:
        if key.table is table or _type_family(key.column.type) != family:
            continue
        key_name = key.column.name.lower()
        if stem is not None and _names_table(stem, key.table.name):
            by_stem.append(
                (
                    key,
                    f"{table.name}.{column.name} names table {key.table.name} and matches its "
                    f"{key.why} {key.column.name} ({family})",
                )
            )
        elif key_name == name and key_name != "id":
            same_name.append(
                (
                    key,
                    f"{table.name}.{column.name} has the name of the {key.why} of "
                    f"{key.table.name} ({family})",
                )
            )
    # A table the column names beats one that merely has a key of the same name.
    candidates = by_stem or same_name
    local = [c for c in candidates if c[0].schema == schema]
    chosen = local or candidates
    if len(chosen) != 1:
        return None
    key, reason = chosen[0]
    return Join(
        from_schema=schema,
        from_table=table.name,
        from_columns=[column.name],
        to_schema=key.schema,
        to_table=key.table.name,
        to_columns=[key.column.name],
        inferred=True,
        reason=reason,
    )


def _key(schema: Schema, table: Table) -> _Key | None:
    if len(table.primary_key) == 1 and (pk := table.column(table.primary_key[0])) is not None:
        stem = _reference_stem(pk.name)
        # A key named for another table (ClickHouse's PRIMARY KEY customer_id on orders, a
        # profile table keyed by user_id) is that table's identity, not this one's.
        if stem is None or _names_table(stem, table.name):
            return _Key(schema.name, table, pk, "primary key")
    by_name = {c.name.lower(): c for c in table.columns}
    if "id" in by_name:
        return _Key(schema.name, table, by_name["id"], "key")
    for form in sorted(_singulars(table.name.lower())):
        if (own := by_name.get(f"{form}_id")) is not None:
            return _Key(schema.name, table, own, "key")
    return None


_CAMEL_ID = re.compile(r"^(?P<stem>.*[a-z0-9])(Id|ID)$")


def _reference_stem(name: str) -> str | None:
    """`customer` for `customer_id`, `customerId` and `customerID`; None for anything else."""
    lowered = name.lower()
    if lowered.endswith("_id") and len(lowered) > 3:
        return lowered[:-3]
    match = _CAMEL_ID.match(name)
    return match.group("stem").lower() if match else None


def _names_table(stem: str, table: str) -> bool:
    table = table.lower()
    return table == _plural(stem) or stem in _singulars(table)


# -- types ----------------------------------------------------------------------------------------

_WRAPPERS = re.compile(r"^(nullable|lowcardinality)\((.*)\)$", re.IGNORECASE)
_FAMILIES = (
    ("integer", re.compile(r"^(u?int\d*|smallint|integer|bigint|(small|big)?serial\d?)$")),
    (
        "string",
        re.compile(
            r"^(string|fixedstring\(\d+\)|text|citext|name|bpchar|"
            r"(character varying|varchar|character|char)(\(\d+\))?)$"
        ),
    ),
    ("uuid", re.compile(r"^uuid$")),
    ("decimal", re.compile(r"^(numeric|decimal(32|64|128|256)?)(\(.*\))?$")),
)


def _type_family(type_name: str) -> str:
    """The family a key's type belongs to, for deciding whether two columns can be joined."""
    t = type_name.strip()
    while match := _WRAPPERS.match(t):
        t = match.group(2).strip()
    t = t.lower()
    return next((family for family, pattern in _FAMILIES if pattern.match(t)), t)


# -- English plurals, enough for table names ------------------------------------------------------

_IRREGULAR = {
    "person": "people",
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "datum": "data",
    "criterion": "criteria",
}
_IRREGULAR_SINGULAR = {v: k for k, v in _IRREGULAR.items()}
_SIBILANT = ("s", "x", "z", "ch", "sh")


def _plural(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(_SIBILANT):
        return word + "es"
    return word + "s"


def _singulars(word: str) -> set[str]:
    """The word and what it may be the plural of: `courses` -> course or cours, since spelling
    alone cannot tell `courses` from `statuses`; callers look for the form that exists."""
    forms = {word}
    if word in _IRREGULAR_SINGULAR:
        forms.add(_IRREGULAR_SINGULAR[word])
    if word.endswith("ies") and len(word) > 3:
        forms.add(word[:-3] + "y")
    if word.endswith("es") and len(word) > 2:
        forms.add(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        forms.add(word[:-1])
    return forms
