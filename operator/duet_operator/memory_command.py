"""`duet memory list|show|forget|export|import`: what the platform memory has learnt.

The store is `--url`, else `$DUET_MEMORY__URL` (the operator's own setting), else a SQLite
file in the user's state directory. Exit 2 for a pattern that is not `<symptom>/<component>/
<action>` or a file that is not an export, 1 when the pattern is not recorded or the store
cannot be opened; the message says which, without the URL's password.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from duet_agents.memory import MemoryExport, MemoryStore, Pattern, default_url
from duet_operator import yamlio

EXIT_NOT_FOUND = 1
EXIT_STORE = 1
EXIT_USAGE = 2

memory_app = typer.Typer(
    help="What the platform memory has learnt from past designs and remediations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The memory database: sqlite:///FILE or postgresql://... "
        "[default: $DUET_MEMORY__URL, else ~/.local/state/duet/memory.db]",
        show_default=False,
    ),
]
OutputOption = Annotated[Output, typer.Option("-o", "--output", help="How to print it.")]
PatternArgument = Annotated[
    str, typer.Argument(metavar="PATTERN", help="<symptom>/<component>/<action>, as listed.")
]


@memory_app.callback()
def memory() -> None:
    """What the platform memory has learnt from past designs and remediations."""


@memory_app.command("list")
def list_command(url: UrlOption = None, output: OutputOption = Output.TABLE) -> None:
    """Every pattern (a symptom, a component, a remedy) and how often it verified."""
    with _store(url) as store:
        patterns = store.patterns()
    if output is Output.TABLE:
        typer.echo(_table(patterns))
        return
    wire = [p.model_dump(mode="json", by_alias=True) for p in patterns]
    typer.echo(_dump({"patterns": wire}, output))


@memory_app.command("show")
def show_command(
    pattern: PatternArgument, url: UrlOption = None, output: OutputOption = Output.YAML
) -> None:
    """One pattern with every remediation behind it and its platform's figures."""
    with _store(url) as store:
        try:
            detail = store.pattern(pattern)
        except ValueError as e:
            _fail(str(e), EXIT_USAGE)
    if detail is None:
        _fail(f"no pattern {pattern} is recorded", EXIT_NOT_FOUND)
    wire = detail.model_dump(mode="json", by_alias=True)
    if output is Output.TABLE:
        typer.echo(_table([detail]))
        return
    typer.echo(_dump(wire, output))


@memory_app.command("forget")
def forget_command(pattern: PatternArgument, url: UrlOption = None) -> None:
    """Remove a pattern and its records: designs no longer learn from it."""
    with _store(url) as store:
        try:
            removed = store.forget(pattern)
        except ValueError as e:
            _fail(str(e), EXIT_USAGE)
    if not removed:
        _fail(f"no pattern {pattern} is recorded", EXIT_NOT_FOUND)
    typer.echo(f"forgot {pattern}: {removed} remediation{'s' if removed != 1 else ''}")


@memory_app.command("export")
def export_command(
    patterns: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PATTERN]...", help="Only these patterns (default: all)."),
    ] = None,
    url: UrlOption = None,
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """The patterns and their evidence as YAML, for `duet memory import` elsewhere."""
    with _store(url) as store:
        try:
            document = store.export(patterns or ())
        except ValueError as e:
            _fail(str(e), EXIT_USAGE)
    text = document.to_yaml()
    if file is None:
        typer.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")


@memory_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A `duet memory export`.")],
    url: UrlOption = None,
) -> None:
    """Add the lessons of an export; remediations already recorded are skipped."""
    try:
        document = MemoryExport.from_yaml(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError) as e:
        _fail(f"{file}: {e}", EXIT_USAGE)
    with _store(url) as store:
        added = store.import_(document)
    typer.echo(f"imported {added} remediation{'s' if added != 1 else ''} from {file}")


@contextlib.contextmanager
def _store(url: str | None) -> Iterator[MemoryStore]:
    try:
        store = MemoryStore.open(url or default_url())
    except ValueError as e:
        _fail(str(e), EXIT_USAGE)
    except (SQLAlchemyError, OSError, RuntimeError) as e:
        # SQLAlchemy's message carries the driver's, never the URL's password.
        _fail(f"cannot open the memory store: {_first_line(e)}", EXIT_STORE)
    with store:
        try:
            yield store
        except SQLAlchemyError as e:
            _fail(f"the memory store failed: {_first_line(e)}", EXIT_STORE)


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _table(patterns: list[Pattern]) -> str:
    header = ("PATTERN", "PLATFORMS", "VERIFIED", "FAILED", "PENDING", "FACTOR", "LAST SEEN")
    rows = [
        (
            p.id,
            str(p.platforms),
            str(p.verified),
            str(p.failed),
            str(p.pending),
            f"x{p.factor.normalize():f}" if p.factor is not None else "-",
            p.last_seen.strftime("%Y-%m-%d %H:%M"),
        )
        for p in patterns
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _dump(document: object, output: Output) -> str:
    if output is Output.JSON:
        return json.dumps(document, indent=2)
    return yamlio.dump(document, sort_keys=False).rstrip("\n")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"duet: {message}", err=True)
    raise typer.Exit(code)
