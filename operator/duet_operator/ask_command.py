"""`duet ask`: a question in plain English over a database, answered read-only.

The contract (DESIGN.md): `duet ask --database URL [--engine builtin|anthropic|openai] [--json]
QUESTION` prints the SQL, how the question was read and the rows; `--batch FILE` reads JSON
Lines of questions and prints one `{"question", "sql", "columns", "rows", "error"}` a line.
Exit 0 answered, 3 when the question cannot be answered (the reason on stderr), 2 for bad
input. The same service as the query server runs it: table filter, firewall, read-only
session, and for a model engine the same graph and the same fall back to the built-in engine
when the model gives no usable answer (said on stderr). Model keys and endpoints come from
the environment as the SDKs read them: `ANTHROPIC_API_KEY`/`ANTHROPIC_BASE_URL`,
`OPENAI_API_KEY`/`OPENAI_BASE_URL`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from duet_agents.query.server import AskAnswer, QueryService

EXIT_USAGE = 2
EXIT_UNANSWERED = 3
ENGINES = ("builtin", "anthropic", "openai")


def ask(
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    *,
    database: Annotated[
        str, typer.Option(help="chdb:///path, clickhouse://..., postgresql://...")
    ] = "",
    engine: Annotated[
        str,
        typer.Option(
            help="builtin (offline), or a model: anthropic (ANTHROPIC_API_KEY) or openai"
            " (OPENAI_API_KEY, OPENAI_BASE_URL for any compatible endpoint)."
        ),
    ] = "builtin",
    model: Annotated[
        str | None,
        typer.Option(help="The model of --engine (default claude-sonnet-4-5, gpt-4.1)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    batch: Annotated[
        Path | None, typer.Option(help="JSON Lines of questions; JSON Lines of answers out.")
    ] = None,
    max_rows: Annotated[int, typer.Option(min=1, help="Rows per answer, at most.")] = 100,
) -> None:
    """Answer a question about the data in plain English, read-only."""
    from duet_agents.query.engines import QueryError  # noqa: PLC0415
    from duet_agents.query.server import QueryService  # noqa: PLC0415
    from duet_agents.query.settings import QueryServerSettings  # noqa: PLC0415

    if not database:
        _fail("--database is required", EXIT_USAGE)
    if engine not in ENGINES:
        _fail(f"--engine {engine}: expected one of {', '.join(ENGINES)}", EXIT_USAGE)
    if model is not None and engine == "builtin":
        _fail("--model needs --engine anthropic or openai", EXIT_USAGE)
    if (question is None) == (batch is None):
        _fail("give a QUESTION or --batch FILE, not both", EXIT_USAGE)
    questions = _questions(batch) if batch is not None else [question or ""]
    try:
        settings = QueryServerSettings(
            database_url=database, max_rows=max_rows, engine=engine, model=model
        )
        service = QueryService(settings, None)
    except (ValueError, QueryError) as e:
        _fail(str(e), EXIT_USAGE)
    if batch is not None:
        asyncio.run(_batch(service, questions))
        return
    found = asyncio.run(_one(service, questions[0]))
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
        return
    typer.echo(f"-- {found.explanation}\n{found.sql}\n")
    typer.echo("\t".join(c["name"] for c in found.columns))
    for row in found.rows:
        typer.echo("\t".join("" if v is None else str(v) for v in row))
    if found.truncated:
        typer.echo(f"(first {max_rows} rows)", err=True)


async def _one(service: QueryService, question: str) -> AskAnswer:
    from duet_agents.query.engines import QueryError  # noqa: PLC0415
    from duet_agents.query.server import ApiError  # noqa: PLC0415

    try:
        found = await service.ask(question)
    except ApiError as e:
        _fail(e.message, EXIT_UNANSWERED if e.code != "database_unavailable" else EXIT_USAGE)
    except QueryError as e:
        _fail(str(e), EXIT_USAGE)
    finally:
        await service.aclose()
    _note(found)
    return found


async def _batch(service: QueryService, questions: list[str]) -> None:
    # One event loop for every question: the model's HTTP connections are bound to it.
    try:
        for question in questions:
            typer.echo(json.dumps(await _answer_line(service, question)))
    finally:
        await service.aclose()


def _questions(path: Path) -> list[str]:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        questions = [json.loads(line) for line in lines]
    except (OSError, json.JSONDecodeError) as e:
        _fail(f"{path}: {e}", EXIT_USAGE)
    if not all(isinstance(q, str) for q in questions):
        _fail(f"{path}: every line must be a JSON string", EXIT_USAGE)
    return questions


async def _answer_line(service: QueryService, question: str) -> dict[str, Any]:
    from duet_agents.query.engines import QueryError  # noqa: PLC0415
    from duet_agents.query.server import ApiError  # noqa: PLC0415

    try:
        found = await service.ask(question)
    except ApiError as e:
        return {"question": question, "sql": None, "columns": [], "rows": [], "error": e.message}
    except QueryError as e:
        return {"question": question, "sql": None, "columns": [], "rows": [], "error": str(e)}
    _note(found)
    return {
        "question": question,
        "sql": found.sql,
        "columns": [c["name"] for c in found.columns],
        # As the JSON answer writes them: a Decimal sum is a string, a date ISO 8601.
        "rows": found.model_dump(mode="json")["rows"],
        "error": None,
    }


def _note(found: AskAnswer) -> None:
    """What a model engine did, on stderr: stdout stays the answer the contract promises."""
    if found.fallback_reason is not None:
        typer.echo(f"duet: the built-in engine answered: {found.fallback_reason}", err=True)
    if found.llm is not None:
        report = found.llm
        cost = f"${report.cost_usd:.6f}" if report.price_known else "cost unknown (no price)"
        typer.echo(
            f"duet: {report.provider} model {report.model}: {report.calls} call(s), "
            f"{report.input_tokens} input and {report.output_tokens} output tokens, {cost}",
            err=True,
        )


def _fail(message: str, code: int) -> Any:
    typer.echo(f"duet: {message}", err=True)
    raise typer.Exit(code)
