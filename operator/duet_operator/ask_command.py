"""`duet ask`: a question in plain English over a database, answered read-only.

The contract (DESIGN.md): `duet ask --database URL [--engine builtin] [--json] QUESTION`
prints the SQL, how the question was read and the rows; `--batch FILE` reads JSON Lines of
questions and prints one `{"question", "sql", "columns", "rows", "error"}` a line. Exit 0
answered, 3 when the question cannot be answered (the reason on stderr), 2 for bad input.
The same service as the query server runs it: table filter, firewall, read-only session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from duet_agents.query.server import QueryService

EXIT_USAGE = 2
EXIT_UNANSWERED = 3


def ask(
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    *,
    database: Annotated[
        str, typer.Option(help="chdb:///path, clickhouse://..., postgresql://...")
    ] = "",
    engine: Annotated[
        str, typer.Option(help="builtin (offline); model engines come with the LLM graph.")
    ] = "builtin",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    batch: Annotated[
        Path | None, typer.Option(help="JSON Lines of questions; JSON Lines of answers out.")
    ] = None,
    max_rows: Annotated[int, typer.Option(min=1, help="Rows per answer, at most.")] = 100,
) -> None:
    """Answer a question about the data in plain English, read-only."""
    from duet_agents.query.engines import QueryError  # noqa: PLC0415
    from duet_agents.query.server import ApiError, QueryService  # noqa: PLC0415
    from duet_agents.query.settings import QueryServerSettings  # noqa: PLC0415

    if not database:
        _fail("--database is required", EXIT_USAGE)
    if engine != "builtin":
        _fail(f"--engine {engine}: only the built-in engine is available", EXIT_USAGE)
    if (question is None) == (batch is None):
        _fail("give a QUESTION or --batch FILE, not both", EXIT_USAGE)
    try:
        settings = QueryServerSettings(database_url=database, max_rows=max_rows)
        service = QueryService(settings, None)
    except (ValueError, QueryError) as e:
        _fail(str(e), EXIT_USAGE)
    try:
        if batch is not None:
            for line in _questions(batch):
                typer.echo(json.dumps(_answer_line(service, line)))
            return
        assert question is not None
        try:
            found = service.ask(question)
        except ApiError as e:
            _fail(e.message, EXIT_UNANSWERED if e.code != "database_unavailable" else EXIT_USAGE)
        except QueryError as e:
            _fail(str(e), EXIT_USAGE)
        if as_json:
            typer.echo(found.model_dump_json(indent=2))
            return
        typer.echo(f"-- {found.explanation}\n{found.sql}\n")
        typer.echo("\t".join(c["name"] for c in found.columns))
        for row in found.rows:
            typer.echo("\t".join("" if v is None else str(v) for v in row))
        if found.truncated:
            typer.echo(f"(first {max_rows} rows)", err=True)
    finally:
        service.pool.close()


def _questions(path: Path) -> list[str]:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        questions = [json.loads(line) for line in lines]
    except (OSError, json.JSONDecodeError) as e:
        _fail(f"{path}: {e}", EXIT_USAGE)
    if not all(isinstance(q, str) for q in questions):
        _fail(f"{path}: every line must be a JSON string", EXIT_USAGE)
    return questions


def _answer_line(service: QueryService, question: str) -> dict[str, Any]:
    from duet_agents.query.engines import QueryError  # noqa: PLC0415
    from duet_agents.query.server import ApiError  # noqa: PLC0415

    try:
        found = service.ask(question)
    except ApiError as e:
        return {"question": question, "sql": None, "columns": [], "rows": [], "error": e.message}
    except QueryError as e:
        return {"question": question, "sql": None, "columns": [], "rows": [], "error": str(e)}
    return {
        "question": question,
        "sql": found.sql,
        "columns": [c["name"] for c in found.columns],
        "rows": found.rows,
        "error": None,
    }


def _fail(message: str, code: int) -> Any:
    typer.echo(f"duet: {message}", err=True)
    raise typer.Exit(code)
