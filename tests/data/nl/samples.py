"""The sample schemas of the NL-to-SQL question set: their DDL, their data and the questions.

    with chdb_samples(tmp_dir) as path:        # every schema loaded into one chDB directory
        engine = connect(f"chdb://{path}?database=shop")

Each schema is a ClickHouse database (and a PostgreSQL database, from postgres.sql) of the
same name; `generate.py` makes its rows, `questions.jsonl` asks about them.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from duet_agents.query.catalog import Catalog
from duet_agents.query.engines import Engine, Limits, connect
from duet_agents.query.nl import ValueIndex, collect_values
from duet_agents.query.nl.accuracy import GoldQuestion
from tests.data.nl.generate import TODAY, generate

HERE = Path(__file__).parent
SCHEMAS = ("shop", "web", "support")
QUESTIONS = HERE / "questions.jsonl"
# Written after the engine, to measure it on questions it was not shaped on (docs/nl-to-sql.md
# tells what its first run found).
HOLDOUT = HERE / "holdout.jsonl"

__all__ = [
    "HOLDOUT",
    "QUESTIONS",
    "SCHEMAS",
    "TODAY",
    "catalog_snapshot",
    "chdb_samples",
    "ddl",
    "introspect",
    "load_clickhouse",
    "questions",
    "scoped",
    "values_snapshot",
]


def ddl(schema: str, dialect: str) -> list[str]:
    """The statements of `<schema>/<dialect>.sql`, without comments. A statement ends with
    a semicolon at the end of a line (comments inside may hold semicolons)."""
    text = (HERE / schema / f"{dialect}.sql").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M) if s.strip()]


def questions(path: Path = QUESTIONS) -> list[GoldQuestion]:
    with path.open() as f:
        return [GoldQuestion.model_validate(json.loads(line)) for line in f if line.strip()]


def load_clickhouse(client: Client, schema: str) -> None:
    """Create database `schema` with its tables and rows, through a read-write client."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {schema}")
    for statement in ddl(schema, "clickhouse"):
        client.command(statement)
    for table, rows in generate(schema).items():
        client.insert(table, rows.rows, column_names=rows.columns, database=schema)


@contextmanager
def chdb_samples(path: Path) -> Iterator[Path]:
    """Every sample schema loaded into a chDB data directory at `path`; the admin connection
    is closed again before the caller opens its own engines."""
    path.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    try:
        for schema in SCHEMAS:
            load_clickhouse(client, schema)
    finally:
        client.close()
    yield path


# -- snapshots for the unit tests -----------------------------------------------------------------


def snapshot_path(schema: str, kind: str) -> Path:
    """`<schema>/catalog.json` or `<schema>/values.json`: what introspection and value
    collection return for the sample, kept so unit tests need no database."""
    return HERE / schema / f"{kind}.json"


def catalog_snapshot(schema: str) -> Catalog:
    return Catalog.model_validate_json(snapshot_path(schema, "catalog").read_text())


def values_snapshot(schema: str) -> ValueIndex:
    return ValueIndex.model_validate_json(snapshot_path(schema, "values").read_text())


def scoped(catalog: Catalog, schema: str) -> Catalog:
    """The catalog of one sample database: the engine sees every database of the chDB
    directory, the questions are about one."""
    kept = [s for s in catalog.schemas if s.name == schema]
    joins = [j for j in catalog.joins if j.from_schema == schema and j.to_schema == schema]
    return catalog.model_copy(update={"schemas": kept, "joins": joins})


def introspect(engine: Engine, schema: str) -> tuple[Catalog, ValueIndex]:
    catalog = scoped(engine.introspect(), schema)
    return catalog, collect_values(engine, catalog)


def write_snapshots(path: Path) -> None:
    """Load the samples into chDB at `path` and write every schema's snapshots."""
    with chdb_samples(path) as loaded:
        for schema in SCHEMAS:
            with connect(f"chdb://{loaded}?database={schema}", limits=Limits(max_rows=10_000)) as e:
                catalog, values = introspect(e, schema)
            snapshot_path(schema, "catalog").write_text(catalog.model_dump_json(indent=1) + "\n")
            snapshot_path(schema, "values").write_text(values.model_dump_json(indent=1) + "\n")


if __name__ == "__main__":
    # python -m tests.data.nl.samples: rewrite the snapshots after changing a schema.
    with tempfile.TemporaryDirectory() as scratch:
        write_snapshots(Path(scratch) / "chdb")
