"""Schema documentation from a catalog: Markdown per schema and table, and a Mermaid ERD.

The renderers are pure: the caller introspects and may pass sample values of low-cardinality
columns (`sample_values` reads them through the firewall). Everything shown comes from the
database's own metadata; inferred joins are marked as such, with the reason, so a reader can
weigh them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jinja2

from duet_agents.query.catalog import Catalog, Join, Table
from duet_agents.query.engines import Engine
from duet_agents.query.nl.values import collect_values

# (schema, table, column) -> a few distinct values.
Samples = Mapping[tuple[str, str, str], Sequence[str]]
MAX_SAMPLES_SHOWN = 8

_TEMPLATE = """\
# {{ title }}

{{ summary }}

## Relationships

```mermaid
{{ erd }}
```
{% if joins %}
| from | to | how known |
| --- | --- | --- |
{% for j in joins -%}
| `{{ j.from_schema }}.{{ j.from_table }}({{ j.from_columns | join(", ") }})` | \
`{{ j.to_schema }}.{{ j.to_table }}({{ j.to_columns | join(", ") }})` | \
{{ "inferred: " ~ cell(j.reason) if j.inferred else "declared foreign key" }} |
{% endfor %}
{%- else %}
No relationships declared or inferred.
{% endif %}
{% for schema in schemas %}
## {{ schema.name }}
{% if schema.comment %}
{{ schema.comment }}
{% endif %}
{% for table in schema.tables %}
### {{ schema.name }}.{{ table.name }}

{{ table_line(table) }}

| column | type | null | key | comment | sample values |
| --- | --- | --- | --- | --- | --- |
{% for c in table.columns -%}
| `{{ c.name }}` | `{{ c.type }}` | {{ "yes" if c.nullable else "" }} | \
{{ keys(table, c.name) }} | {{ cell(c.comment or "") }} | \
{{ sample(schema.name, table.name, c.name) }} |
{% endfor %}
{% endfor %}
{% endfor %}"""


def render_markdown(catalog: Catalog, *, samples: Samples | None = None, title: str = "") -> str:
    """The whole schema as one Markdown document, ERD first."""
    samples = samples or {}
    schemas = [s for s in catalog.schemas if s.tables]
    tables = sum(len(s.tables) for s in schemas)
    level = "database" if catalog.dialect == "clickhouse" else "schema"
    summary = (
        f"{_count(tables, 'table')} in {_count(len(schemas), level)} ({catalog.dialect}); "
        f"{_count(len(catalog.joins), 'relationship')}, "
        f"{sum(1 for j in catalog.joins if j.inferred)} of them inferred from names and types."
    )

    def sample(schema: str, table: str, column: str) -> str:
        values = list(samples.get((schema, table, column), ()))
        shown = ", ".join(f"`{_cell(v)}`" for v in values[:MAX_SAMPLES_SHOWN])
        return shown + (", ..." if len(values) > MAX_SAMPLES_SHOWN else "")

    environment = jinja2.Environment(autoescape=False, keep_trailing_newline=True)  # noqa: S701 - Markdown, not HTML
    template = environment.from_string(_TEMPLATE)
    text = template.render(
        title=title or f"Schema of {catalog.database or 'the database'}",
        summary=summary,
        erd=render_erd(catalog),
        joins=catalog.joins,
        schemas=schemas,
        cell=_cell,
        keys=_keys,
        sample=sample,
        table_line=_table_line,
    )
    return re.sub(r"\n{3,}", "\n\n", text)


def sample_values(engine: Engine, catalog: Catalog) -> Samples:
    """A few distinct values of each low-cardinality text column, read through the firewall
    (the value index the NL engine links words with). Columns whose names say they hold
    identifiers or contact details are left out."""
    index = collect_values(engine, catalog)
    return {(c.schema_name, c.table, c.column): c.values for c in index.columns}


def render_erd(catalog: Catalog) -> str:
    """A Mermaid `erDiagram`: every table with its columns (keys marked), every join."""
    lines = ["erDiagram"]
    for schema in catalog.schemas:
        for table in schema.tables:
            lines.append(f"    {_entity(schema.name, table.name)} {{")
            for column in table.columns:
                mark = _erd_key(table, column.name, catalog)
                lines.append(
                    f"        {_erd_type(column.type)} {_erd_name(column.name)}"
                    + (f" {mark}" if mark else "")
                )
            lines.append("    }")
    for join in catalog.joins:
        lines.append(
            f"    {_entity(join.to_schema, join.to_table)} ||--o{{ "
            f"{_entity(join.from_schema, join.from_table)} : {_label(join)}"
        )
    return "\n".join(lines)


def _entity(schema: str, table: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{schema}__{table}")


def _erd_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _erd_type(type_name: str) -> str:
    # Mermaid attribute types are one word; `Decimal(10, 2)` becomes `Decimal(10-2)`.
    cleaned = re.sub(r"\s*,\s*", "-", type_name)
    cleaned = re.sub(r"[^A-Za-z0-9_()\[\]-]", "_", cleaned)
    return cleaned if cleaned[:1].isalpha() else f"t_{cleaned}"


def _erd_key(table: Table, column: str, catalog: Catalog) -> str:
    marks = []
    if column in table.primary_key:
        marks.append("PK")
    if any(column in j.from_columns and j.from_table == table.name for j in catalog.joins):
        marks.append("FK")
    return ", ".join(marks)


def _label(join: Join) -> str:
    columns = ", ".join(join.from_columns)
    return f'"{columns}{" (inferred)" if join.inferred else ""}"'.replace("\n", " ")


def _keys(table: Table, column: str) -> str:
    marks = []
    if column in table.primary_key:
        marks.append("primary")
    if column in table.sorting_key and table.sorting_key != table.primary_key:
        marks.append("sorting")
    if any(column in fk.columns for fk in table.foreign_keys):
        marks.append("foreign")
    return ", ".join(marks)


def _table_line(table: Table) -> str:
    parts = [table.comment] if table.comment else []
    parts.append(table.kind)
    if table.row_count is not None:
        about = "about " if table.row_count_estimated else ""
        parts.append(f"{about}{table.row_count:,} rows")
    if table.sorting_key:
        parts.append(f"sorted by ({', '.join(table.sorting_key)})")
    return _cell("; ".join(parts))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()
