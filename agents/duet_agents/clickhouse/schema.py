"""A new ClickHouse host's schema, from what a healthy replica reports. Pure: no I/O.

When shards or replicas are added, the new hosts start empty. `replay_plan` turns what a
healthy host reports (`system.databases`, `system.tables`, `system.macros`; sync.py reads them)
into the ordered statements that give a new host the same databases and tables, and
`compare` says which ones a host lacks or has with another definition: the `SchemaInSync`
condition.

The statements are per host: `IF NOT EXISTS` everywhere (a replay is idempotent), never
`ON CLUSTER`, the host's own macros left as macros, UUIDs kept (as ON CLUSTER keeps them).
A `Replicated` database needs only the database: it replays its tables itself, so its tables
are left out and the plan says so. The inner `.inner_id.` tables of materialized views come
with their views. Order: databases, then tables by dependency (what ClickHouse reports, the
TO target of a materialized view, and the tables a view's SELECT names), ties broken by kind:
storage tables, dictionaries, materialized views, Distributed/Merge/Buffer, views.
"""

from __future__ import annotations

import heapq
from graphlib import CycleError, TopologicalSorter

import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError

from duet_agents.clickhouse import ddl

SYSTEM_DATABASES = frozenset({"system", "information_schema", "INFORMATION_SCHEMA"})
_INNER_PREFIXES = (".inner.", ".inner_id.", ".inner_target.")
# Definitions ClickHouse printed without their secrets (a dictionary's or an external
# table's password): replaying them would create a broken object.
HIDDEN_MARKER = "'[HIDDEN]'"

_READERS = frozenset({"Distributed", "Merge", "Buffer"})
_VIEWS = frozenset({"View", "LiveView", "WindowView"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableRef(_Frozen):
    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.database}.{self.name}"

    def key(self) -> tuple[str, str]:
        return (self.database, self.name)


class DatabaseInfo(_Frozen):
    """A row of system.databases."""

    name: str
    engine: str
    engine_full: str = ""
    uuid: str | None = None


class TableInfo(_Frozen):
    """A row of system.tables."""

    database: str
    name: str
    engine: str
    create_table_query: str = Field(repr=False)
    uuid: str | None = None
    as_select: str = Field(default="", repr=False)
    # Objects that read this one (materialized views on a source table).
    dependents: list[TableRef] = Field(default_factory=list)
    # Objects this one needs to load (a dictionary's source table, a dictGet default).
    loading_dependencies: list[TableRef] = Field(default_factory=list)
    # The TO table of a materialized view.
    target: TableRef | None = None

    @property
    def ref(self) -> TableRef:
        return TableRef(database=self.database, name=self.name)

    @property
    def is_inner(self) -> bool:
        return self.name.startswith(_INNER_PREFIXES)


class HostSchema(_Frozen):
    """What one ClickHouse host reports about its schema."""

    macros: dict[str, str] = Field(default_factory=dict)
    databases: list[DatabaseInfo] = Field(default_factory=list)
    tables: list[TableInfo] = Field(default_factory=list)


class Statement(_Frozen):
    """One statement of a replay: what it creates (`database` or `database.table`) and how."""

    object: str
    sql: str = Field(repr=False)


class ReplayPlan(_Frozen):
    statements: list[Statement]
    # What the plan leaves out, and why: for the condition's message and the operator's log.
    notes: list[str] = Field(default_factory=list)
    # Objects that cannot be replayed from what the host reported.
    unreplayable: list[TableRef] = Field(default_factory=list)


class SchemaDiff(_Frozen):
    """What a host lacks, or has otherwise, compared with a healthy one."""

    missing_databases: list[str] = Field(default_factory=list)
    missing_tables: list[TableRef] = Field(default_factory=list)
    different_tables: list[TableRef] = Field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not (self.missing_databases or self.missing_tables or self.different_tables)

    def message(self, limit: int = 10) -> str:
        """One line for a condition's message: what differs, the first `limit` of each."""
        parts = [
            _listed(label, [str(x) for x in found], limit)
            for label, found in (
                ("lacks databases", self.missing_databases),
                ("lacks tables", self.missing_tables),
                ("has other definitions of", self.different_tables),
            )
            if found
        ]
        return "; ".join(parts) if parts else "every database and table is in step"


def replay_plan(source: HostSchema) -> ReplayPlan:
    """The ordered statements that give an empty (or partly built) host the source's schema."""
    notes: list[str] = []
    statements: list[Statement] = []
    replicated: set[str] = set()
    for db in sorted(_user_databases(source), key=lambda d: d.name):
        engine = ddl.unexpand_database_macros(db.engine_full, source.macros)
        statements.append(Statement(object=db.name, sql=ddl.create_database(db.name, engine)))
        if db.engine == "Replicated":
            replicated.add(db.name)
            notes.append(
                f"database {db.name} is Replicated: it replays its own tables on a new host,"
                " so only the database is created"
            )
    tables = [t for t in _user_tables(source) if t.database not in replicated and not t.is_inner]
    hidden = sorted((t.ref for t in tables if HIDDEN_MARKER in t.create_table_query), key=str)
    if hidden:
        notes.append(
            "the server hid secrets in the definitions of "
            + ", ".join(map(str, hidden))
            + ": let the reading user see them (format_display_secrets_in_show_and_select)"
        )
    inner = {t.name: t.uuid for t in source.tables if t.is_inner}
    for table in dependency_order([t for t in tables if t.ref not in hidden]):
        query = ddl.unexpand_table_macros(table.create_table_query, source.macros)
        inner_uuid = inner.get(f".inner_id.{table.uuid}") if table.uuid else None
        sql = ddl.replayable(query, uuid=table.uuid, inner_uuid=inner_uuid)
        statements.append(Statement(object=str(table.ref), sql=sql))
    return ReplayPlan(statements=statements, notes=notes, unreplayable=hidden)


def compare(source: HostSchema, target: HostSchema) -> SchemaDiff:
    """Which of the source's databases and tables the target lacks or defines otherwise.

    Each side's definitions are read with its own macros unexpanded, so two replicas of one
    ReplicatedMergeTree compare equal whether or not the server expanded them. Tables of a
    Replicated database are compared too: the database replays them, and until it has,
    the host is not in step.
    """
    target_dbs = {d.name for d in _user_databases(target)}
    theirs = {
        t.ref.key(): ddl.comparable(t.create_table_query, target.macros)
        for t in _user_tables(target)
        if not t.is_inner
    }
    missing: list[TableRef] = []
    different: list[TableRef] = []
    for table in sorted(_user_tables(source), key=lambda t: t.ref.key()):
        if table.is_inner:
            continue
        found = theirs.get(table.ref.key())
        if found is None:
            missing.append(table.ref)
        elif found != ddl.comparable(table.create_table_query, source.macros):
            different.append(table.ref)
    return SchemaDiff(
        missing_databases=sorted(
            d.name for d in _user_databases(source) if d.name not in target_dbs
        ),
        missing_tables=missing,
        different_tables=different,
    )


def dependency_order(tables: list[TableInfo]) -> list[TableInfo]:
    """Tables so that each comes after what it reads, ties broken by kind, then by name."""
    by_key = {t.ref.key(): t for t in tables}
    graph: dict[tuple[str, str], set[tuple[str, str]]] = {key: set() for key in by_key}
    for table in tables:
        for needed in _needs(table):
            if needed.key() in by_key and needed.key() != table.ref.key():
                graph[table.ref.key()].add(needed.key())
        for dependent in table.dependents:
            if dependent.key() in by_key and dependent.key() != table.ref.key():
                graph[dependent.key()].add(table.ref.key())
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as e:
        cycle = " -> ".join(".".join(k) for k in e.args[1])
        raise ddl.DDLError(f"tables depend on each other in a cycle: {cycle}") from None

    def rank(key: tuple[str, str]) -> tuple[int, str, str]:
        return (_kind_rank(by_key[key].engine), *key)

    ready = [rank(k) for k in sorter.get_ready()]
    heapq.heapify(ready)
    ordered: list[TableInfo] = []
    while ready:
        _, database, name = heapq.heappop(ready)
        ordered.append(by_key[(database, name)])
        sorter.done((database, name))
        for key in sorter.get_ready():
            heapq.heappush(ready, rank(key))
    return ordered


def _needs(table: TableInfo) -> list[TableRef]:
    needs = list(table.loading_dependencies)
    if table.target is not None:
        needs.append(table.target)
    if table.as_select:
        needs.extend(selected_tables(table.as_select, table.database))
    return needs


def selected_tables(select: str, default_database: str) -> list[TableRef]:
    """The tables a view's SELECT names, as far as sqlglot reads ClickHouse; none when it
    cannot parse the statement (kinds then decide the order)."""
    try:
        tree = sqlglot.parse_one(select, read="clickhouse")
    except SqlglotError:
        return []
    return [
        TableRef(database=t.db or default_database, name=t.name)
        for t in tree.find_all(exp.Table)
        if t.name
    ]


def _kind_rank(engine: str) -> int:
    if engine == "Dictionary":
        return 1
    if engine == "MaterializedView":
        return 2
    if engine in _READERS:
        return 3
    if engine in _VIEWS:
        return 4
    return 0


def _user_databases(schema: HostSchema) -> list[DatabaseInfo]:
    return [d for d in schema.databases if d.name not in SYSTEM_DATABASES]


def _user_tables(schema: HostSchema) -> list[TableInfo]:
    return [t for t in schema.tables if t.database not in SYSTEM_DATABASES]


def _listed(label: str, names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{label} {shown}{more}"
