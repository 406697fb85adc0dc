"""`duet mock`: fill a development database with realistic rows whose keys join.

The contract (DESIGN.md, "The command line contract"):
`duet mock --database URL [--table T ...] --rows N [--seed S] [--write] [--json]`.
Without `--write` it connects read-only, prints what it would write (tables, row counts, a few
sample rows) and exits 0: nothing is written. With `--write` it writes and prints the counts.
Exit 2: the URL is invalid or unreachable, a table is unknown, or the rows cannot be generated
(the message names the table or column); exit 1: the database refused the rows.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer

EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_ROWS = 1_000_000


def mock(
    *,
    database: Annotated[
        str,
        typer.Option(
            "--database",
            help="chdb:///path, clickhouse://..., postgresql://...",
            show_default=False,
        ),
    ],
    rows: Annotated[
        int,
        typer.Option(
            "--rows", min=0, max=MAX_ROWS, help="Rows to generate per table.", show_default=False
        ),
    ],
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            "-t",
            help="A table to fill, schema.table or a bare name (repeatable; default: all).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="The same seed gives the same rows (that day).")] = 0,
    write: Annotated[
        bool, typer.Option("--write", help="Write the rows. Without it nothing is written.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    sample: Annotated[int, typer.Option(min=0, help="Sample rows shown per table.")] = 3,
) -> None:
    """Fill tables with realistic mock data whose keys join (a dry run without --write).

    Values follow column names and types (emails, names, prices, statuses, timestamps...);
    primary keys are unique and foreign keys, declared or inferred from names, point at rows
    that exist. Exit 2: invalid URL, unknown table, or rows that cannot be generated.
    """
    from duet_agents.query.engines import (  # noqa: PLC0415 - drivers load only for this command
        ConnectionFailedError,
        InvalidURLError,
        QueryError,
    )
    from duet_agents.query.mock import MockError  # noqa: PLC0415
    from duet_agents.query.mock_writer import fill  # noqa: PLC0415

    try:
        report = fill(database, rows=rows, tables=table, seed=seed, write=write, sample_size=sample)
    except (MockError, InvalidURLError, ConnectionFailedError) as e:
        fail(str(e), EXIT_USAGE)
    except QueryError as e:
        fail(f"the database refused: {e}", EXIT_FAILED)
    if json_output:
        typer.echo(json.dumps(report.model_dump(), indent=2, ensure_ascii=False))
        return
    width = max((len(t.table) for t in report.tables), default=0)
    if report.written:
        typer.echo(f"Wrote {report.total_rows} rows to {report.database}:")
    else:
        typer.echo(
            f"Would write {report.total_rows} rows to {report.database} "
            "(dry run: nothing written; add --write to write them):"
        )
    for t in report.tables:
        typer.echo(f"  {t.table:<{width}}  {t.rows} rows")
    if not report.written:
        for t in report.tables:
            if t.sample:
                typer.echo(f"\n{t.table} ({', '.join(t.columns)}):")
                for row in t.sample:
                    typer.echo("  " + " | ".join(_cell(v) for v in row))
    for note in report.notes:
        typer.echo(f"duet: note: {note}", err=True)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"duet: {message}", err=True)
    raise typer.Exit(code)
