"""`duet sql check`: the query agent's SQL firewall on the command line.

The contract (DESIGN.md, "The command line contract"): exit 0 when the statement is allowed
(the SQL to run on stdout), 3 when it is blocked (the reason on stderr), 2 for a usage error.
`--batch FILE` reads JSON Lines, one SQL string a line, and prints one
`{"allowed": bool, "reason": str|null}` a line, in order; it exits 0 even when some are blocked,
since the verdicts are the output.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from duet_agents.query.firewall import DEFAULT_MAX_ROWS, Dialect, Verdict, check

EXIT_USAGE = 2
EXIT_BLOCKED = 3
SQL_ARGUMENT = "'SQL'"  # how usage errors name the argument
# The reason given for a batch line that holds no SQL string.
NOT_A_JSON_STRING = "not a JSON string"

sql_app = typer.Typer(
    help="Check SQL the way the query agent does before it runs any.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@sql_app.callback()
def sql() -> None:
    """Check SQL the way the query agent does before it runs any."""


@sql_app.command("check")
def check_command(
    dialect: Annotated[Dialect, typer.Option(help="The SQL dialect.", show_default=False)],
    statement: Annotated[
        str | None, typer.Argument(metavar="SQL", help="One statement.", show_default=False)
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help='Print {"allowed": bool, "reason": str|null}.')
    ] = False,
    max_rows: Annotated[
        int, typer.Option(min=1, help="Rows the checked SQL may return at most.")
    ] = DEFAULT_MAX_ROWS,
    batch: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="JSON Lines of SQL strings ('-': stdin); prints a JSON verdict a line.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check one SQL statement: exit 0 and the SQL to run when allowed, 3 when blocked."""
    # sqlglot logs a warning for syntax it cannot read; the verdict already says so.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    if statement is not None and batch is not None:
        raise typer.BadParameter(
            "give one SQL statement or --batch FILE, not both", param_hint=SQL_ARGUMENT
        )
    if batch is not None:
        for line_number, line in enumerate(json_lines(read_batch(batch)), start=1):
            typer.echo(json.dumps(batch_verdict(line, line_number, dialect, max_rows)))
        return
    if statement is None:
        raise typer.BadParameter("give one SQL statement or --batch FILE", param_hint=SQL_ARGUMENT)
    verdict = check(statement, dialect, max_rows=max_rows)
    if json_output:
        typer.echo(json.dumps(wire(verdict)))
    elif verdict.allowed:
        typer.echo(verdict.sql)
    else:
        typer.echo(f"duet: blocked: {verdict.reason}", err=True)
    if not verdict.allowed:
        raise typer.Exit(EXIT_BLOCKED)


def read_batch(path: str) -> str:
    if path == "-":
        return typer.get_text_stream("stdin").read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e}", EXIT_USAGE)


def json_lines(text: str) -> list[str]:
    # Not str.splitlines(): JSON strings may hold U+2028 and other line breaks unescaped.
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def batch_verdict(
    line: str, line_number: int, dialect: Dialect, max_rows: int
) -> dict[str, bool | str | None]:
    """One line's verdict; a line that is not a JSON string is refused, not skipped, so that
    output line N always answers input line N."""
    try:
        statement = json.loads(line)
    except json.JSONDecodeError:
        statement = None
    if not isinstance(statement, str):
        return {"allowed": False, "reason": f"{NOT_A_JSON_STRING}: line {line_number}"}
    return wire(check(statement, dialect, max_rows=max_rows))


def wire(verdict: Verdict) -> dict[str, bool | str | None]:
    return {"allowed": verdict.allowed, "reason": verdict.reason}


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"duet: {message}", err=True)
    raise typer.Exit(code)
