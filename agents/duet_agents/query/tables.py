"""Which tables a query agent may read: glob patterns over `schema.table`, deny over allow.

The filter is applied twice: to the schema the agent shows (so nobody is told about a table
they cannot query) and to every statement (every table it names, in any subquery or join).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from duet_agents.query.catalog import Catalog
from duet_agents.query.firewall import Dialect


@dataclass(frozen=True)
class TableFilter:
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = field(default_factory=tuple)

    def allows(self, schema: str, table: str) -> bool:
        # A bare pattern (`orders`) matches the table in any schema.
        names = (f"{schema}.{table}".lower(), table.lower())
        allowed = any(fnmatchcase(n, p.lower()) for p in self.allow for n in names)
        denied = any(fnmatchcase(n, p.lower()) for p in self.deny for n in names)
        return allowed and not denied

    def catalog(self, catalog: Catalog) -> Catalog:
        """The catalog without the tables (and the joins to them) this filter hides."""
        schemas = [
            s.model_copy(update={"tables": [t for t in s.tables if self.allows(s.name, t.name)]})
            for s in catalog.schemas
        ]
        visible = {(s.name, t.name) for s in schemas for t in s.tables}
        joins = [
            j
            for j in catalog.joins
            if (j.from_schema, j.from_table) in visible and (j.to_schema, j.to_table) in visible
        ]
        return catalog.model_copy(update={"schemas": schemas, "joins": joins})

    def refused_tables(self, sql: str, dialect: Dialect, default_schema: str) -> list[str]:
        """The tables `sql` names that this filter hides, as `schema.table`; CTE names are
        the query's own and not tables. SQL that does not parse names nothing here: the
        firewall refuses it on its own."""
        try:
            tree = sqlglot.parse_one(sql, read=str(dialect))
        except ParseError:
            return []
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        refused = []
        for table in tree.find_all(exp.Table):
            if not table.name or (not table.db and table.name.lower() in ctes):
                continue
            schema = table.db or default_schema
            if not self.allows(schema, table.name):
                refused.append(f"{schema}.{table.name}")
        return sorted(set(refused))
